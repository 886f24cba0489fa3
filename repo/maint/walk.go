package maint

import (
	"context"
	"fmt"
	"path"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// Reachability: what snapshots reference. Check walks it to verify every
// reference; prune (what to keep) and copy (what to send) walk it too.

// WalkOptions tune Walk. The zero value loads trees through the
// repository's index, 8 at a time, and follows every subtree.
type WalkOptions struct {
	// LoadTree loads a tree in place of Repository.LoadTree: check loads
	// through the index it builds itself.
	LoadTree func(ctx context.Context, id repo.ID) (*repo.Tree, error)
	// Follow, if set, is asked about a tree before it is queued (a
	// snapshot's root, a directory's subtree) and may refuse it: check
	// reports the references the index does not back instead of loading
	// them. It is asked about each reference to a tree not queued yet
	// (so again where a refused tree is referenced again), from several
	// goroutines at once.
	Follow func(s *repo.Snapshot, path string, id repo.ID) bool
	// Workers is how many trees are loaded at once; 0 means 8.
	Workers int
}

// Visit is one tree that Walk reached.
type Visit struct {
	Snapshot *repo.Snapshot // the snapshot the walk first reached it from
	Path     string         // where, inside that snapshot: "/" for the root
	ID       repo.ID
	Tree     *repo.Tree // nil if Err is set
	Err      error      // why the tree could not be loaded or decoded
}

// Walk calls fn once for every distinct tree reachable from snaps, with
// the tree or the error of loading it; the subtrees of a tree that failed
// are not walked. A tree shared by several snapshots, or several places
// of one, is loaded and passed once, with the first place the walk met.
// The newest snapshot (the last of snaps as repo.SortSnapshots orders
// them) is walked first, so that a problem shared with older ones is
// told with the snapshot most likely to matter.
//
// fn is called from up to opts.Workers goroutines at once. An error from
// fn stops the walk and is returned; so is ctx.Err() when ctx ends first.
func Walk(ctx context.Context, r *repo.Repository, snaps []*repo.Snapshot, opts WalkOptions, fn func(ctx context.Context, v Visit) error) error {
	if opts.LoadTree == nil {
		opts.LoadTree = r.LoadTree
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	w := &walker{opts: opts, fn: fn, seen: make(map[repo.ID]bool)}
	w.cond = sync.NewCond(&w.mu)
	// The queue is a stack and roots go on it oldest first, so the newest
	// is walked first.
	for _, s := range snaps {
		if !w.seen[s.Tree] && (opts.Follow == nil || opts.Follow(s, "/", s.Tree)) {
			w.seen[s.Tree] = true
			w.todo = append(w.todo, Visit{Snapshot: s, Path: "/", ID: s.Tree})
		}
	}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(func() { w.work(ctx) })
	}
	wg.Wait()
	if w.err != nil {
		return w.err
	}
	return ctx.Err()
}

// walker is the state of one Walk.
type walker struct {
	opts WalkOptions
	fn   func(context.Context, Visit) error

	mu   sync.Mutex // guards the fields below; never held across I/O or fn
	cond *sync.Cond // signalled when todo grows, busy drops or err is set
	seen map[repo.ID]bool
	todo []Visit // a stack: depth first keeps it short
	busy int     // visits taken and not finished
	err  error   // the first error; stops the walk
}

func (w *walker) work(ctx context.Context) {
	for {
		w.mu.Lock()
		for len(w.todo) == 0 && w.busy > 0 && w.err == nil {
			w.cond.Wait()
		}
		if len(w.todo) == 0 || w.err != nil {
			w.mu.Unlock()
			return
		}
		v := w.todo[len(w.todo)-1]
		w.todo = w.todo[:len(w.todo)-1]
		w.busy++
		w.mu.Unlock()

		children, err := w.visit(ctx, v)

		w.mu.Lock()
		w.busy--
		if err != nil && w.err == nil {
			w.err = err
		}
		for _, ch := range children {
			if w.err == nil && !w.seen[ch.ID] {
				w.seen[ch.ID] = true
				w.todo = append(w.todo, ch)
			}
		}
		w.mu.Unlock()
		w.cond.Broadcast()
	}
}

// visit loads one tree, passes it to fn and returns the subtrees to walk
// that Follow accepts. Follow runs outside the lock, so a subtree met in
// two trees at once may be asked about twice; only one is queued.
func (w *walker) visit(ctx context.Context, v Visit) ([]Visit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v.Tree, v.Err = w.opts.LoadTree(ctx, v.ID)
	if v.Err != nil {
		v.Tree = nil
	}
	if err := w.fn(ctx, v); err != nil {
		return nil, err
	}
	if v.Tree == nil {
		return nil, nil
	}
	var children []Visit
	for _, n := range v.Tree.Nodes {
		if n.Type != repo.NodeDir || n.Subtree == nil {
			continue
		}
		p := path.Join(v.Path, n.Name)
		w.mu.Lock()
		seen := w.seen[*n.Subtree]
		w.mu.Unlock()
		if !seen && (w.opts.Follow == nil || w.opts.Follow(v.Snapshot, p, *n.Subtree)) {
			children = append(children, Visit{Snapshot: v.Snapshot, Path: p, ID: *n.Subtree})
		}
	}
	return children, nil
}

// TreeError is a tree that Reachable could not load: what it reports
// cannot be complete.
type TreeError struct {
	Snapshot *repo.Snapshot
	Path     string // inside the snapshot
	Tree     repo.ID
	Err      error
}

func (e *TreeError) Error() string {
	return fmt.Sprintf("%s: %s: tree %s: %v", describe(e.Snapshot), e.Path, e.Tree.Short(), e.Err)
}

func (e *TreeError) Unwrap() error { return e.Err }

// Reachable calls fn once for every blob reachable from snaps: each tree,
// then the data blobs of its files that were not passed before. fn is
// never called concurrently. A tree that cannot be loaded stops the walk
// with a *TreeError (a caller deciding what to keep must not go on with
// part of the answer); so does an error from fn, which is returned.
func Reachable(ctx context.Context, r *repo.Repository, snaps []*repo.Snapshot, opts WalkOptions, fn func(id repo.ID, t repo.BlobType) error) error {
	var mu sync.Mutex // serialises fn and guards data
	data := make(map[repo.ID]bool)
	return Walk(ctx, r, snaps, opts, func(ctx context.Context, v Visit) error {
		if v.Err != nil {
			return &TreeError{Snapshot: v.Snapshot, Path: v.Path, Tree: v.ID, Err: v.Err}
		}
		mu.Lock()
		defer mu.Unlock()
		if err := fn(v.ID, repo.TreeBlob); err != nil {
			return err
		}
		for _, n := range v.Tree.Nodes {
			if n.Type != repo.NodeFile {
				continue
			}
			for _, id := range n.Content {
				if !data[id] {
					data[id] = true
					if err := fn(id, repo.DataBlob); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}
