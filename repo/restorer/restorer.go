package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/repo"
)

// Options tune a restore.
type Options struct {
	// Includes are absolute paths inside the snapshot, e.g.
	// "/home/alice/docs". Each selects its subtree and the directories on
	// the way to it (created with their recorded metadata, but holding only
	// what leads to an include). Empty selects everything.
	Includes []string
	// Workers is the number of entries restored in parallel; 0 means
	// 2*GOMAXPROCS, at least 4.
	Workers int
	// Window, if positive, makes blob reads load whole aligned windows of
	// this many bytes of a pack and keep them: for remote storage, where
	// thousands of small files would otherwise cost a request each.
	Window int
	// OnError is called for each entry that fails, with its path inside
	// the snapshot; the restore goes on. Calls are serialised. May be nil.
	OnError func(path string, err error)
	// Progress, if set, is called about ten times a second and once at the
	// end, never concurrently.
	Progress func(Progress)
	// NumericOwner ignores recorded user and group names and restores the
	// recorded uid and gid.
	NumericOwner bool
}

// Progress counts what is done so far. Files counts non-directory entries.
// The totals come from the snapshot's summary or, when that does not apply
// (Includes, or no summary), from a walk of the trees before the restore.
type Progress struct{ Files, Bytes, TotalFiles, TotalBytes uint64 }

// Result counts what a restore did. Files counts restored non-directory
// entries (each hard link once per name), Bytes the sizes of the restored
// regular files, Errors the entries reported to OnError (an entry whose
// content was restored but some metadata not counts in Files and Errors).
type Result struct{ Files, Dirs, Bytes, Errors uint64 }

// Tuning. Memory is bounded by workers × maxRange (each worker's batch load
// holds one range at a time), the chunks being decoded and written (one per
// core, repo.LoadBlobs), and the caches.
const (
	maxRange         = 8 << 20   // largest pack range loaded for several chunks at once
	maxGap           = 256 << 10 // unused bytes of a pack read to join two chunks into one load
	treeCacheBytes   = 8 << 20
	dataCacheBytes   = 16 << 20
	progressInterval = 100 * time.Millisecond
)

// Restore writes snap, or the parts of it that opts.Includes select, into
// target, creating target if needed. A symlink on the path to target is
// followed only if root or the effective user owns it; any other makes
// Restore fail with a *SymlinkError (ErrUntrustedSymlink) before anything
// is created. See the package documentation for what happens to entries
// already in target.
//
// The error is for fatal problems only: an include names nothing in the
// snapshot (*IncludeError, before anything is created), target cannot be
// resolved, created or opened, a tree on the way to an include or the
// root tree cannot be read, or ctx is done (then it is ctx.Err()).
// Per-entry problems go to opts.OnError and Result.Errors.
func Restore(ctx context.Context, r *repo.Repository, snap *repo.Snapshot, target string, opts Options) (Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	rs := &restorer{
		r:      r,
		opts:   opts,
		root:   os.Geteuid() == 0,
		trees:  cache.New[repo.ID](treeCacheBytes),
		blobs:  cache.New[repo.ID](dataCacheBytes),
		jobs:   make(chan *job, opts.Workers),
		links:  make(map[inodeKey]*linkGroup),
		owners: newOwners(),
		load:   repo.LoadOptions{Gap: maxGap, MaxRange: maxRange, Ranges: 1},
	}
	if opts.Window > 0 {
		rs.windows = cache.New[windowKey](CachedWindows * int64(opts.Window))
		rs.packEnds = make(map[repo.ID]int64)
		r.Index().Each(func(_ repo.ID, loc repo.Location) {
			rs.packEnds[loc.Pack] = max(rs.packEnds[loc.Pack], int64(loc.Offset)+int64(loc.Length))
		})
		rs.load.ReadRange = rs.loadWindows
	}

	sel, incs := parseIncludes(opts.Includes)

	rootTree, err := rs.loadTree(ctx, snap.Tree)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{}, fmt.Errorf("snapshot %s: root tree: %w", snap.ID().Short(), err)
	}
	// A mistyped include fails the restore before anything is created.
	if err := rs.findIncludes(ctx, rootTree, incs); err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{}, err
	}
	fd, err := openTarget(target)
	if err != nil {
		return Result{}, err
	}

	if opts.Progress != nil {
		s := snap.Summary
		if len(incs) == 0 && s.Files+s.Dirs+s.Others > 0 {
			rs.totalFiles, rs.totalBytes = s.Files+s.Others, s.Bytes
		} else {
			rs.count(ctx, rootTree, sel)
		}
	}
	rs.target = &dir{fd: fd, path: "/"}
	rs.target.refs.Store(1)
	stopProgress := rs.startProgress()

	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rs.jobs {
				rs.run(ctx, j)
			}
		}()
	}

	rs.walk(ctx, rs.target, rootTree, sel)
	rs.release(ctx, rs.target)
	close(rs.jobs)
	wg.Wait()
	stopProgress()

	res := Result{Files: rs.files.Load(), Dirs: rs.dirs.Load(), Bytes: rs.bytes.Load(), Errors: rs.errors.Load()}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// restorer is the state of one Restore call.
type restorer struct {
	r        *repo.Repository
	opts     Options
	root     bool // running as root: failures to chown are errors
	trees    *cache.Cache[repo.ID]
	blobs    *cache.Cache[repo.ID]
	windows  *cache.Cache[windowKey] // nil unless opts.Window > 0
	packEnds map[repo.ID]int64       // end of each pack's blobs; read-only once set
	load     repo.LoadOptions        // how files' chunks are loaded; read-only once set
	jobs     chan *job
	owners   *owners

	// target is open until every job is finished: each holds a reference
	// on its directory and so on every directory above.
	target *dir

	// Owned by the walker goroutine.
	links map[inodeKey]*linkGroup

	errMu sync.Mutex // serialises OnError

	// Results and progress.
	files, dirs, bytes, errors atomic.Uint64
	doneFiles, doneBytes       atomic.Uint64
	totalFiles, totalBytes     uint64 // set before the workers start
}

// dir is a directory the restore has opened. Its metadata is applied and
// its descriptor closed when the last reference goes: the walker holds one
// while it lists the directory, each queued entry one, each subdirectory
// one on its parent, each hard link one on the directory of the name it
// links to while that is still open.
type dir struct {
	parent *dir // nil for the target
	fd     int
	node   *repo.Node // nil for the target, whose metadata is left alone
	path   string     // inside the snapshot
	refs   atomic.Int32
}

// tryRef takes a reference on d unless d is finished already (a count
// that has reached zero stays there).
func (d *dir) tryRef() bool {
	for {
		n := d.refs.Load()
		if n <= 0 {
			return false
		}
		if d.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops one reference to d and finalises every directory whose
// last reference that was, bottom up.
func (rs *restorer) release(ctx context.Context, d *dir) {
	for d != nil {
		if d.refs.Add(-1) > 0 {
			return
		}
		if d.node != nil && ctx.Err() == nil {
			if rs.applyMeta(d.parent.fd, d.node.Name, d.fd, d.node, d.path) {
				rs.errors.Add(1)
			}
		}
		unix.Close(d.fd)
		d = d.parent
	}
}

// job is one non-directory entry for a worker.
type job struct {
	dir    *dir
	node   *repo.Node
	path   string
	own    *linkGroup // this entry restores the group's content
	follow *linkGroup // this entry links to the group's first name
	// srcDir is follow.dir if the walker could take a reference on it;
	// nil if that directory was already finished and closed.
	srcDir *dir
}

type inodeKey struct{ dev, ino uint64 }

// linkGroup is one hard-linked file of the snapshot.
type linkGroup struct {
	dir  *dir // holds the first name; may be finished before a follower comes
	name string
	path string
	seen uint64 // names met so far (walker only)

	done chan struct{} // closed when the first name is finished
	err  error         // its failure; read after done
}

// walk restores the entries of t into d. It returns when ctx is done or
// every entry is created (directories) or queued (the rest).
func (rs *restorer) walk(ctx context.Context, d *dir, t *repo.Tree, sel selection) {
	for _, n := range t.Nodes {
		if ctx.Err() != nil {
			return
		}
		sub, ok := sel.child(n.Name)
		if !ok {
			continue
		}
		p := path.Join(d.path, n.Name)
		if err := repo.ValidName(n.Name); err != nil {
			rs.fail(p, err)
			continue
		}
		switch n.Type {
		case repo.NodeDir:
			rs.restoreDir(ctx, d, n, p, sub)
		case repo.NodeSocket:
			rs.doneFiles.Add(1)
		default:
			if !sub.all {
				continue // an include reaches below a non-directory
			}
			rs.enqueue(ctx, d, n, p)
		}
	}
}

// restoreDir creates (or reuses) directory n in parent and walks its tree.
func (rs *restorer) restoreDir(ctx context.Context, parent *dir, n *repo.Node, p string, sel selection) {
	if n.Subtree == nil {
		rs.fail(p, errors.New("directory without a tree"))
		return
	}
	fd, err := mkdirOpen(parent.fd, n.Name)
	if err != nil {
		rs.fail(p, err)
		return
	}
	d := &dir{parent: parent, fd: fd, node: n, path: p}
	d.refs.Store(1)
	parent.refs.Add(1)
	rs.dirs.Add(1)
	t, err := rs.loadTree(ctx, *n.Subtree)
	if err != nil {
		if ctx.Err() == nil {
			rs.fail(p, err)
		}
	} else {
		rs.walk(ctx, d, t, sel)
	}
	rs.release(ctx, d)
}

// enqueue hands one entry to the workers, sorting out hard links first.
func (rs *restorer) enqueue(ctx context.Context, d *dir, n *repo.Node, p string) {
	j := &job{dir: d, node: n, path: p}
	d.refs.Add(1)
	if n.Links > 1 && n.Inode != 0 { // no inode recorded: nothing to match
		k := inodeKey{n.Device, n.Inode}
		if g, ok := rs.links[k]; ok {
			j.follow = g
			if g.dir.tryRef() {
				j.srcDir = g.dir
			}
			g.seen++
			if g.seen >= n.Links {
				delete(rs.links, k) // every name met: free the entry
			}
		} else {
			g := &linkGroup{dir: d, name: n.Name, path: p, seen: 1, done: make(chan struct{})}
			rs.links[k] = g
			j.own = g
		}
	}
	select {
	case rs.jobs <- j:
	case <-ctx.Done():
		rs.finish(ctx, j, ctx.Err())
	}
}

// run restores one queued entry.
func (rs *restorer) run(ctx context.Context, j *job) {
	var err error
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case j.follow != nil:
		err = rs.link(ctx, j)
	default:
		err = rs.create(ctx, j)
	}
	rs.finish(ctx, j, err)
}

// finish records the outcome of j and drops its references.
func (rs *restorer) finish(ctx context.Context, j *job, err error) {
	if err != nil {
		if ctx.Err() == nil {
			rs.fail(j.path, err)
		}
	} else {
		rs.files.Add(1)
		rs.doneFiles.Add(1)
		if j.node.Type == repo.NodeFile {
			rs.bytes.Add(j.node.Size)
		}
	}
	if j.own != nil {
		// After the report, so that the first name's error comes before
		// those of its links.
		j.own.err = err
		close(j.own.done)
	}
	if j.srcDir != nil {
		rs.release(ctx, j.srcDir)
	}
	rs.release(ctx, j.dir)
}

// errLinkSource: the first name of a hard-linked file failed, so the
// others have nothing to link to.
var errLinkSource = errors.New("the first name of the file was not restored")

// link makes j another name of its group's file once that is complete.
func (rs *restorer) link(ctx context.Context, j *job) error {
	g := j.follow
	select {
	case <-g.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.err != nil {
		return fmt.Errorf("hard link to %s: %w", g.path, errLinkSource)
	}
	srcfd := -1
	if j.srcDir != nil {
		srcfd = j.srcDir.fd
	} else {
		// The directory was finished: open it again from the target,
		// refusing symlinks on the way.
		fd, err := openBeneath(rs.target.fd, g.dir.path)
		if err != nil {
			return fmt.Errorf("hard link to %s: reopen directory: %w", g.path, err)
		}
		defer unix.Close(fd)
		srcfd = fd
	}
	name := j.node.Name
	err := replace(j.dir.fd, name, func() error { return unix.Linkat(srcfd, g.name, j.dir.fd, name, 0) })
	if err != nil {
		return fmt.Errorf("hard link to %s: %w", g.path, err)
	}
	if j.node.Type == repo.NodeFile {
		rs.doneBytes.Add(j.node.Size)
	}
	return nil
}

// create restores a non-directory entry that is not a second name.
func (rs *restorer) create(ctx context.Context, j *job) error {
	n, fd, name := j.node, j.dir.fd, j.node.Name
	var err error
	switch n.Type {
	case repo.NodeFile:
		return rs.restoreFile(ctx, j)
	case repo.NodeSymlink:
		err = replace(fd, name, func() error { return unix.Symlinkat(n.LinkTarget, fd, name) })
	case repo.NodeFIFO:
		err = replace(fd, name, func() error { return unix.Mknodat(fd, name, unix.S_IFIFO|0o600, 0) })
	case repo.NodeCharDev:
		err = replace(fd, name, func() error { return unix.Mknodat(fd, name, unix.S_IFCHR|0o600, int(n.Rdev)) })
	case repo.NodeDev:
		err = replace(fd, name, func() error { return unix.Mknodat(fd, name, unix.S_IFBLK|0o600, int(n.Rdev)) })
	default:
		return fmt.Errorf("unknown entry type %q", n.Type)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", n.Type, err)
	}
	if rs.applyMeta(fd, name, -1, n, j.path) {
		rs.errors.Add(1)
	}
	return nil
}

// fail reports an entry that failed and counts it.
func (rs *restorer) fail(p string, err error) {
	rs.errors.Add(1)
	rs.report(p, err)
}

// report passes err to OnError without counting it.
func (rs *restorer) report(p string, err error) {
	if rs.opts.OnError == nil {
		return
	}
	rs.errMu.Lock()
	defer rs.errMu.Unlock()
	rs.opts.OnError(p, err)
}

// loadTree loads a tree blob through the tree cache.
func (rs *restorer) loadTree(ctx context.Context, id repo.ID) (*repo.Tree, error) {
	data, err := rs.trees.GetOrLoad(ctx, id, func(ctx context.Context) ([]byte, error) {
		return rs.r.LoadBlob(ctx, repo.TreeBlob, id)
	})
	if err != nil {
		return nil, err
	}
	t, err := repo.DecodeTree(data)
	if err != nil {
		loc, _ := rs.r.LookupBlob(id)
		return nil, &repo.CorruptError{Object: repo.PackHandle(loc.Pack).String(), Blob: id, Err: fmt.Errorf("tree: %w", err)}
	}
	return t, nil
}

// count adds up what sel selects below t for the progress totals. Trees
// that fail to load are left out; the restore itself reports them.
func (rs *restorer) count(ctx context.Context, t *repo.Tree, sel selection) {
	for _, n := range t.Nodes {
		if ctx.Err() != nil {
			return
		}
		sub, ok := sel.child(n.Name)
		if !ok {
			continue
		}
		if n.Type == repo.NodeDir {
			if n.Subtree == nil {
				continue
			}
			if st, err := rs.loadTree(ctx, *n.Subtree); err == nil {
				rs.count(ctx, st, sub)
			}
			continue
		}
		if sub.all {
			rs.totalFiles++
			if n.Type == repo.NodeFile {
				rs.totalBytes += n.Size
			}
		}
	}
}

// startProgress calls Progress every progressInterval until the returned
// function is called, which makes the final call.
func (rs *restorer) startProgress() (stop func()) {
	if rs.opts.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				rs.opts.Progress(rs.progress())
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		rs.opts.Progress(rs.progress())
	}
}

func (rs *restorer) progress() Progress {
	return Progress{Files: rs.doneFiles.Load(), Bytes: rs.doneBytes.Load(), TotalFiles: rs.totalFiles, TotalBytes: rs.totalBytes}
}

// findIncludes checks that every include names an entry of the snapshot,
// loading the trees on the way (they stay cached for the walk). It returns
// an *IncludeError naming those that do not, or the error of a tree that
// cannot be loaded.
func (rs *restorer) findIncludes(ctx context.Context, root *repo.Tree, incs []*include) error {
	var missing []string
	for _, inc := range incs {
		if inc.path == "/" {
			continue
		}
		t := root
		names := strings.Split(inc.path[1:], "/")
		for i, name := range names {
			n := t.Find(name)
			if n == nil {
				missing = append(missing, inc.path)
				break
			}
			if i == len(names)-1 {
				break
			}
			if n.Type != repo.NodeDir || n.Subtree == nil {
				missing = append(missing, inc.path) // a path below a non-directory
				break
			}
			sub, err := rs.loadTree(ctx, *n.Subtree)
			if err != nil {
				return fmt.Errorf("%s: %w", path.Join(append([]string{"/"}, names[:i+1]...)...), err)
			}
			t = sub
		}
	}
	if len(missing) > 0 {
		return &IncludeError{Paths: missing}
	}
	return nil
}

// ErrNotInSnapshot is what an IncludeError matches: an include names
// nothing in the snapshot.
var ErrNotInSnapshot = errors.New("not in the snapshot")

// IncludeError lists the includes that name nothing in the snapshot.
type IncludeError struct{ Paths []string }

func (e *IncludeError) Error() string {
	return "include " + strings.Join(e.Paths, ", ") + ": " + ErrNotInSnapshot.Error()
}

func (e *IncludeError) Is(target error) bool { return target == ErrNotInSnapshot }

// include is one of Options.Includes.
type include struct {
	path string // cleaned
}

// incRef is an include with the path components still to match.
type incRef struct {
	inc  *include
	rest []string
}

// selection says what of a directory is restored: everything, or what
// leads to the includes.
type selection struct {
	all  bool
	incs []incRef
}

func parseIncludes(paths []string) (selection, []*include) {
	if len(paths) == 0 {
		return selection{all: true}, nil
	}
	var sel selection
	var incs []*include
	for _, p := range paths {
		inc := &include{path: path.Clean("/" + p)}
		incs = append(incs, inc)
		if inc.path == "/" {
			sel.all = true
			continue
		}
		sel.incs = append(sel.incs, incRef{inc: inc, rest: strings.Split(inc.path[1:], "/")})
	}
	return sel, incs
}

// child returns the selection below the entry called name of a directory
// with selection s and whether that entry is restored at all.
func (s selection) child(name string) (sub selection, ok bool) {
	if s.all {
		return s, true
	}
	for _, ir := range s.incs {
		if ir.rest[0] != name {
			continue
		}
		if len(ir.rest) == 1 {
			sub.all = true
			continue
		}
		sub.incs = append(sub.incs, incRef{inc: ir.inc, rest: ir.rest[1:]})
	}
	if sub.all {
		sub.incs = nil
	}
	return sub, sub.all || len(sub.incs) > 0
}
