package tree

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// plansDir is plans/: a directory per plan of the model; mkdir creates a
// plan and rmdir (or rm -r) removes one. With no model it is empty and
// read-only.
//
// Nodes below it hold only names: what the mount keeps of a plan (the
// draft of plan.json, scratch files) lives in states, keyed by name,
// because the adapter may keep a node object across an rmdir and a mkdir
// of the same name (inode numbers derive from names).
type plansDir struct {
	p        Plans // nil: no plans
	ino      uint64
	uid, gid uint32 // owner of everything below
	start    time.Time

	mu     sync.Mutex // guards the fields below
	states map[string]*planState
	seq    uint64 // numbers scratch files, for their inode numbers
}

// planState is the mount's side of one plan. Its parts lock themselves.
type planState struct {
	// planJSON is plan.json: the plan's definition, or the draft of one
	// while a handle writes it; see planFile.
	planJSON *memFile
	// scratch holds the files editors and sed make beside plan.json.
	scratch *memDir
}

func newPlansDir(p Plans, uid, gid uint32, start time.Time) *plansDir {
	return &plansDir{p: p, ino: childIno(RootIno, "plans"), uid: uid, gid: gid, start: start,
		states: map[string]*planState{}}
}

func (d *plansDir) Writable() bool { return d.p != nil }
func (d *plansDir) Uncached() bool { return d.p != nil }

func (d *plansDir) names() []string {
	if d.p == nil {
		return nil
	}
	return d.p.Names()
}

func (d *plansDir) exists(name string) bool {
	_, ok := slices.BinarySearch(d.names(), name)
	return ok
}

// state returns the plan's state, made on first use.
func (d *plansDir) state(name string) *planState {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.states[name]
	if st == nil {
		st = d.newState(name)
		d.states[name] = st
	}
	return st
}

// newState makes the state of a plan: plan.json over its definition,
// defining the plan when a handle commits it, and the scratch files'
// directory, defining it when one is renamed onto plan.json.
func (d *plansDir) newState(name string) *planState {
	ino := childIno(d.ino, name)
	st := &planState{}
	st.planJSON = newMemFile(Attr{Ino: childIno(ino, planJSONName), Mode: 0o644, Nlink: 1, UID: d.uid, GID: d.gid},
		memFileOptions{
			base: func(context.Context) ([]byte, error) { return d.p.Definition(name) },
			commit: func(ctx context.Context, _ *memFile, data []byte) error {
				return d.p.Define(ctx, name, data)
			},
			uncached: true,
		})
	st.scratch = newMemDir(Attr{Ino: ino, Mode: 0o755, UID: d.uid, GID: d.gid}, memDirOptions{
		uid: d.uid, gid: d.gid, uncached: true,
		ino: func() uint64 { return d.scratchIno(ino) },
		rename: func(ctx context.Context, n Node, _ *memDir, newName string) (bool, error) {
			if newName != planJSONName {
				return false, nil
			}
			data, err := n.(*memFile).Content(ctx)
			if err != nil {
				return false, err
			}
			if err := d.p.Define(ctx, name, data); err != nil {
				return false, err // refused: the scratch file stays
			}
			st.planJSON.discard() // the new definition wins over a half-written one
			return true, nil
		},
	})
	return st
}

func (d *plansDir) dropState(name string) {
	d.mu.Lock()
	delete(d.states, name)
	d.mu.Unlock()
}

// scratchIno numbers a new scratch file of dir: scratch files keep their
// inode when renamed, so it cannot derive from the name, and one sequence
// for all plans never repeats a number across an rmdir and a mkdir.
func (d *plansDir) scratchIno(dir uint64) uint64 {
	d.mu.Lock()
	d.seq++
	seq := d.seq
	d.mu.Unlock()
	return childIno(dir, "\x00scratch"+strconv.FormatUint(seq, 10))
}

func (d *plansDir) Attr(ctx context.Context) (Attr, error) {
	mode := uint32(0o755)
	if d.p == nil {
		mode = 0o555
	}
	return Attr{Ino: d.ino, Mode: ModeDir | mode, Nlink: uint32(2 + len(d.names())), UID: d.uid, GID: d.gid,
		Atime: d.start, Mtime: d.start, Ctime: d.start}, nil
}

func (d *plansDir) plan(name string) *planDir {
	return &planDir{root: d, name: name, ino: childIno(d.ino, name)}
}

func (d *plansDir) Lookup(ctx context.Context, name string) (Node, error) {
	if !d.exists(name) {
		d.dropState(name) // removed behind our back: forget its scratch files
		return nil, ErrNotExist
	}
	return d.plan(name), nil
}

func (d *plansDir) List(ctx context.Context) ([]Entry, error) {
	names := d.names()
	out := make([]Entry, len(names))
	for i, name := range names {
		out[i] = Entry{Name: name, Ino: childIno(d.ino, name), Mode: ModeDir}
	}
	return out, nil
}

// Mkdir creates an empty plan.
func (d *plansDir) Mkdir(ctx context.Context, name string, mode uint32) (Dir, error) {
	if d.p == nil {
		return nil, ErrReadOnly
	}
	if err := d.p.Create(name); err != nil {
		return nil, err
	}
	d.dropState(name) // a fresh start, whatever an older plan of the name left
	return d.plan(name), nil
}

// Rmdir removes a plan, once its scratch files are gone; the control
// files do not count (unlinking them succeeds and does nothing, so that
// rm -r works).
func (d *plansDir) Rmdir(ctx context.Context, name string) error {
	if d.p == nil {
		return ErrReadOnly
	}
	if d.state(name).scratch.Len() > 0 {
		return ErrNotEmpty
	}
	if err := d.p.Remove(ctx, name); err != nil {
		return err
	}
	d.dropState(name)
	return nil
}

func (d *plansDir) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	if d.p == nil {
		return ErrReadOnly
	}
	cur, _ := d.Attr(ctx)
	return fixedAttrs(a, cur)
}

var (
	_ Dir       = (*plansDir)(nil)
	_ Mkdirer   = (*plansDir)(nil)
	_ Rmdirer   = (*plansDir)(nil)
	_ Setattrer = (*plansDir)(nil)
	_ Writable  = (*plansDir)(nil)
	_ Uncached  = (*plansDir)(nil)
)
