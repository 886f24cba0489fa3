package tree

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// MaxEditSize bounds what a write may make of plan.json or of a scratch
// file: they live in memory.
const MaxEditSize = 4 << 20

// The control files of a plan's directory.
const (
	planJSONName = "plan.json"
	runName      = "run"
	statusName   = "status"
	logName      = "log"
)

// controlNames are the control files, sorted.
var controlNames = []string{logName, planJSONName, runName, statusName}

func isControl(name string) bool { return slices.Contains(controlNames, name) }

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

// planState is the mount's side of one plan.
type planState struct {
	mu sync.Mutex // guards the fields below and the flags of the plan's handles
	// draft is plan.json while it is being written (drafting), made on
	// the first write or truncation and dropped when a handle that
	// wrote commits it with Define.
	draft    []byte
	drafting bool
	scratch  map[string]*scratchFile
}

func newPlansDir(p Plans, uid, gid uint32, start time.Time) *plansDir {
	return &plansDir{p: p, ino: childIno(RootIno, "plans"), uid: uid, gid: gid, start: start,
		states: map[string]*planState{}}
}

func (d *plansDir) Mutable() bool { return d.p != nil }

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
		st = &planState{scratch: map[string]*scratchFile{}}
		d.states[name] = st
	}
	return st
}

func (d *plansDir) dropState(name string) {
	d.mu.Lock()
	delete(d.states, name)
	d.mu.Unlock()
}

// scratchIno numbers a new scratch file of dir: scratch files keep their
// inode when renamed, so it cannot derive from the name.
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
	st := d.state(name)
	st.mu.Lock()
	scratch := len(st.scratch)
	st.mu.Unlock()
	if scratch > 0 {
		return ErrNotEmpty
	}
	if err := d.p.Remove(ctx, name); err != nil {
		return err
	}
	d.dropState(name)
	return nil
}

func (d *plansDir) Setattr(ctx context.Context, h Handle, a SetAttr) error {
	if d.p == nil {
		return ErrReadOnly
	}
	cur, _ := d.Attr(ctx)
	return fixedAttrs(a, cur)
}

// fixedAttrs accepts a change of attributes that changes nothing (tools
// copying a file's mode or owner onto itself) and ignores times; anything
// else is ErrPerm.
func fixedAttrs(a SetAttr, cur Attr) error {
	switch {
	case a.Mode != nil && *a.Mode&0o7777 != cur.Mode&0o7777,
		a.UID != nil && *a.UID != cur.UID,
		a.GID != nil && *a.GID != cur.GID,
		a.Size != nil:
		return ErrPerm
	}
	return nil
}

// planDir is plans/<name>/: the control files plan.json, run, status and
// log, and the scratch files editors make beside plan.json.
type planDir struct {
	root *plansDir
	name string
	ino  uint64
}

func (d *planDir) Mutable() bool     { return true }
func (d *planDir) state() *planState { return d.root.state(d.name) }
func (d *planDir) plans() Plans      { return d.root.p }
func (d *planDir) modified() time.Time {
	if t := d.plans().Modified(d.name); !t.IsZero() {
		return t
	}
	return d.root.start
}

// OutputPublisher is implemented by a Plans model that lets a plan make
// its log public (plan.Manager, from the plan's hooks.public_output).
//
// A plan's log holds its hooks' output, which may hold anything a hook
// prints, so it is private to the mount's owner (0400) unless the model
// says the plan opts in (0444). With --allow-other the kernel enforces
// the mode (default_permissions). status stays 0444: it names hooks'
// commands and exit statuses, as plan.json (0644) does, never their
// output.
type OutputPublisher interface {
	PublicOutput(name string) bool
}

// publicOutput reports whether the plan's log may be read by everyone.
func (d *planDir) publicOutput() bool {
	p, ok := d.plans().(OutputPublisher)
	return ok && p.PublicOutput(d.name)
}

func (d *planDir) Attr(ctx context.Context) (Attr, error) {
	if !d.root.exists(d.name) {
		return Attr{}, ErrNotExist
	}
	t := d.modified()
	return Attr{Ino: d.ino, Mode: ModeDir | 0o755, Nlink: 2, UID: d.root.uid, GID: d.root.gid,
		Atime: t, Mtime: t, Ctime: t}, nil
}

func (d *planDir) Setattr(ctx context.Context, h Handle, a SetAttr) error {
	cur, err := d.Attr(ctx)
	if err != nil {
		return err
	}
	return fixedAttrs(a, cur)
}

func (d *planDir) control(name string) Node {
	ino := childIno(d.ino, name)
	switch name {
	case planJSONName:
		return &planFile{d: d, ino: ino}
	case runName:
		return &runFile{d: d, ino: ino}
	case statusName:
		return &infoFile{d: d, ino: ino, gen: d.plans().Status, public: func() bool { return true }}
	case logName:
		return &infoFile{d: d, ino: ino, gen: d.plans().Log, public: d.publicOutput}
	}
	return nil
}

func (d *planDir) Lookup(ctx context.Context, name string) (Node, error) {
	if !d.root.exists(d.name) {
		return nil, ErrNotExist
	}
	if isControl(name) {
		return d.control(name), nil
	}
	st := d.state()
	st.mu.Lock()
	f := st.scratch[name]
	st.mu.Unlock()
	if f == nil {
		return nil, ErrNotExist
	}
	return f, nil
}

func (d *planDir) List(ctx context.Context) ([]Entry, error) {
	if !d.root.exists(d.name) {
		return nil, ErrNotExist
	}
	out := make([]Entry, 0, len(controlNames))
	for _, name := range controlNames {
		out = append(out, Entry{Name: name, Ino: childIno(d.ino, name), Mode: ModeFile})
	}
	st := d.state()
	st.mu.Lock()
	for name, f := range st.scratch {
		out = append(out, Entry{Name: name, Ino: f.ino, Mode: ModeFile})
	}
	st.mu.Unlock()
	sortEntries(out)
	return out, nil
}

// Create makes a scratch file (an editor's swap file, sed's temporary).
func (d *planDir) Create(ctx context.Context, name string, mode uint32, flags OpenFlags) (File, WriteHandle, error) {
	if isControl(name) {
		return nil, nil, ErrExist
	}
	if !d.root.exists(d.name) {
		return nil, nil, ErrNotExist
	}
	now := time.Now()
	ino := d.root.scratchIno(d.ino)
	f := &scratchFile{ino: ino, attr: Attr{Ino: ino, Mode: ModeFile | mode&0o7777, Nlink: 1,
		UID: d.root.uid, GID: d.root.gid, Atime: now, Mtime: now, Ctime: now}}
	st := d.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.scratch[name]; ok {
		return nil, nil, ErrExist
	}
	st.scratch[name] = f
	return f, &scratchHandle{f: f, append: flags.Append}, nil
}

// Unlink removes a scratch file. Unlinking a control file succeeds and
// does nothing, so that rm -r can empty the directory before its rmdir.
func (d *planDir) Unlink(ctx context.Context, name string) error {
	if isControl(name) {
		return nil
	}
	st := d.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.scratch[name]; !ok {
		return ErrNotExist
	}
	delete(st.scratch, name)
	return nil
}

// Rename moves scratch files within the directory. Renaming one onto
// plan.json defines the plan with its content: refused (the Define error,
// ErrInvalid for plan) the scratch file stays; accepted it is gone.
// Control files cannot be renamed (ErrPerm), but plan.json onto itself is
// harmless.
func (d *planDir) Rename(ctx context.Context, name string, newDir Node, newName string, noReplace bool) error {
	to, ok := newDir.(*planDir)
	same := ok && to.root == d.root && to.name == d.name
	if isControl(name) {
		if same && name == newName && !noReplace {
			return nil
		}
		return ErrPerm
	}
	if !same {
		return ErrCrossDir
	}
	st := d.state()
	st.mu.Lock()
	f := st.scratch[name]
	st.mu.Unlock()
	if f == nil {
		return ErrNotExist
	}
	switch {
	case newName == planJSONName:
		if noReplace {
			return ErrExist
		}
		if err := d.plans().Define(ctx, d.name, f.content()); err != nil {
			return err
		}
		st.mu.Lock()
		if st.scratch[name] == f {
			delete(st.scratch, name)
		}
		st.draft, st.drafting = nil, false // the new definition wins over a half-written one
		st.mu.Unlock()
		return nil
	case isControl(newName):
		return ErrPerm
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.scratch[name] != f {
		return ErrNotExist // removed meanwhile
	}
	if name == newName {
		return nil
	}
	if _, taken := st.scratch[newName]; taken && noReplace {
		return ErrExist
	}
	delete(st.scratch, name)
	st.scratch[newName] = f
	return nil
}

// content is plan.json as reads see it: the draft while one is being
// written, else the definition.
func (d *planDir) content(st *planState) ([]byte, error) {
	st.mu.Lock()
	if st.drafting {
		data := bytes.Clone(st.draft)
		st.mu.Unlock()
		return data, nil
	}
	st.mu.Unlock()
	return d.plans().Definition(d.name)
}

// editDraft calls edit on the draft, under st.mu, after starting one from
// the definition if none is being written.
func (d *planDir) editDraft(st *planState, edit func(draft *[]byte) error) error {
	st.mu.Lock()
	if !st.drafting {
		st.mu.Unlock()
		def, err := d.plans().Definition(d.name)
		if err != nil {
			return err
		}
		st.mu.Lock()
		if !st.drafting {
			st.draft, st.drafting = bytes.Clone(def), true
		}
	}
	defer st.mu.Unlock()
	return edit(&st.draft)
}

// planFile is plans/<name>/plan.json: the definition, which writes
// replace. Writes go to the plan's draft; the handle that wrote commits
// it with Define when it is flushed (close), synced or released.
type planFile struct {
	d   *planDir
	ino uint64
}

func (f *planFile) Mutable() bool { return true }
func (f *planFile) Dynamic() bool { return true }

func (f *planFile) Attr(ctx context.Context) (Attr, error) {
	data, err := f.d.content(f.d.state())
	if err != nil {
		return Attr{}, err
	}
	t := f.d.modified()
	return Attr{Ino: f.ino, Mode: ModeFile | 0o644, Nlink: 1, UID: f.d.root.uid, GID: f.d.root.gid,
		Size: uint64(len(data)), Blocks: uint64(len(data)+511) / 512, Atime: t, Mtime: t, Ctime: t}, nil
}

func (f *planFile) Open(ctx context.Context) (Handle, error) {
	data, err := f.d.content(f.d.state())
	if err != nil {
		return nil, err
	}
	return bytesHandle{bytes.NewReader(data)}, nil
}

func (f *planFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	h := &planHandle{d: f.d, st: f.d.state(), append: flags.Append}
	if flags.Truncate {
		if err := h.truncate(0, false); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Setattr truncates: through a handle, as part of its writing; by path
// (truncate(1)), as a complete write of its own, defined at once.
func (f *planFile) Setattr(ctx context.Context, h Handle, a SetAttr) error {
	cur, err := f.Attr(ctx)
	if err != nil {
		return err
	}
	size := a.Size
	a.Size = nil
	if err := fixedAttrs(a, cur); err != nil || size == nil {
		return err
	}
	if ph, ok := h.(*planHandle); ok {
		return ph.truncate(int64(*size), true)
	}
	ph := &planHandle{d: f.d, st: f.d.state()}
	if err := ph.truncate(int64(*size), true); err != nil {
		return err
	}
	return ph.commit(ctx)
}

// planHandle is plan.json open for writing.
type planHandle struct {
	d      *planDir
	st     *planState
	append bool

	// Guarded by st.mu. A flush commits only after a write or an
	// ftruncate, not after the O_TRUNC of the open alone: shells open
	// with O_TRUNC, dup the descriptor and close the original (a flush)
	// before they write, and committing the empty file then would
	// refuse it and lose the write that follows.
	wrote bool // written or ftruncated since the last commit
	dirty bool // wrote, or truncated by the open, since the last commit
}

func (h *planHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	data, err := h.d.content(h.st)
	if err != nil {
		return 0, err
	}
	return bytesHandle{bytes.NewReader(data)}.ReadAt(ctx, p, off)
}

func (h *planHandle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	err := h.d.editDraft(h.st, func(draft *[]byte) error {
		if h.append {
			off = int64(len(*draft))
		}
		end := off + int64(len(p))
		if off < 0 || end > MaxEditSize {
			return ErrTooLarge
		}
		if end > int64(len(*draft)) {
			*draft = append(*draft, make([]byte, end-int64(len(*draft)))...)
		}
		copy((*draft)[off:], p)
		h.wrote, h.dirty = true, true
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// truncate resizes the draft: explicitly (ftruncate, truncate by path),
// or as the O_TRUNC of the open.
func (h *planHandle) truncate(size int64, explicit bool) error {
	if size < 0 || size > MaxEditSize {
		return ErrTooLarge
	}
	if size == 0 { // the usual case needs no definition to start from
		h.st.mu.Lock()
		h.st.draft, h.st.drafting = h.st.draft[:0], true
		h.dirty = true
		h.wrote = h.wrote || explicit
		h.st.mu.Unlock()
		return nil
	}
	return h.d.editDraft(h.st, func(draft *[]byte) error {
		if size <= int64(len(*draft)) {
			*draft = (*draft)[:size]
		} else {
			*draft = append(*draft, make([]byte, size-int64(len(*draft)))...)
		}
		h.dirty = true
		h.wrote = h.wrote || explicit
		return nil
	})
}

// commit defines the plan with the draft if this handle changed it. The
// draft is dropped either way; refused, the old definition stays.
func (h *planHandle) commit(ctx context.Context) error {
	h.st.mu.Lock()
	dirty := h.dirty
	h.wrote, h.dirty = false, false
	data, drafting := h.st.draft, h.st.drafting
	if dirty && drafting {
		h.st.draft, h.st.drafting = nil, false
	}
	h.st.mu.Unlock()
	if !dirty || !drafting {
		return nil // nothing changed, or another handle committed our writes with its own
	}
	return h.d.plans().Define(ctx, h.d.name, data)
}

func (h *planHandle) Flush(ctx context.Context) error {
	h.st.mu.Lock()
	wrote := h.wrote
	h.st.mu.Unlock()
	if !wrote {
		return nil
	}
	return h.commit(ctx)
}

func (h *planHandle) Fsync(ctx context.Context) error { return h.commit(ctx) }

// Close commits what no flush did (a truncation without a write); the
// error reaches no one but the plan's status.
func (h *planHandle) Close() error { return h.commit(context.Background()) }

// runFile is plans/<name>/run: "idle" or "running"; writing starts a run.
type runFile struct {
	d   *planDir
	ino uint64
}

func (f *runFile) Mutable() bool { return true }
func (f *runFile) Dynamic() bool { return true }

func (f *runFile) content() []byte {
	if f.d.plans().Running(f.d.name) {
		return []byte("running\n")
	}
	return []byte("idle\n")
}

func (f *runFile) Attr(ctx context.Context) (Attr, error) {
	if !f.d.root.exists(f.d.name) {
		return Attr{}, ErrNotExist
	}
	n := uint64(len(f.content()))
	now := time.Now()
	return Attr{Ino: f.ino, Mode: ModeFile | 0o644, Nlink: 1, UID: f.d.root.uid, GID: f.d.root.gid,
		Size: n, Blocks: (n + 511) / 512, Atime: now, Mtime: now, Ctime: now}, nil
}

func (f *runFile) Open(ctx context.Context) (Handle, error) {
	return bytesHandle{bytes.NewReader(f.content())}, nil
}

func (f *runFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	return &runHandle{f: f, truncated: flags.Truncate}, nil
}

// Setattr accepts truncation (echo > run truncates before it writes):
// through a handle it counts as that handle's write.
func (f *runFile) Setattr(ctx context.Context, h Handle, a SetAttr) error {
	cur, err := f.Attr(ctx)
	if err != nil {
		return err
	}
	size := a.Size
	a.Size = nil
	if err := fixedAttrs(a, cur); err != nil {
		return err
	}
	if rh, ok := h.(*runHandle); ok && size != nil {
		rh.mu.Lock()
		rh.truncated = true
		rh.mu.Unlock()
	}
	return nil
}

// runHandle is run open for writing: it starts one run, at its first
// write or, if it only truncated, at its flush.
type runHandle struct {
	f *runFile

	mu        sync.Mutex // guards the fields below
	truncated bool
	started   bool
}

func (h *runHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return bytesHandle{bytes.NewReader(h.f.content())}.ReadAt(ctx, p, off)
}

// start runs the plan unless this handle did already (or, with
// onlyIfTruncated, unless it has not truncated either).
func (h *runHandle) start(onlyIfTruncated bool) error {
	h.mu.Lock()
	run := !h.started && (h.truncated || !onlyIfTruncated)
	if run {
		h.started = true
	}
	h.mu.Unlock()
	if !run {
		return nil
	}
	return h.f.d.plans().Run(h.f.d.name)
}

func (h *runHandle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := h.start(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *runHandle) Flush(ctx context.Context) error { return h.start(true) }
func (h *runHandle) Fsync(ctx context.Context) error { return h.start(true) }
func (h *runHandle) Close() error                    { return h.start(true) }

// infoFile is plans/<name>/status or log: generated on each open,
// readable by everyone when public says so, else by the owner only.
type infoFile struct {
	d      *planDir
	ino    uint64
	gen    func(name string) ([]byte, error)
	public func() bool
}

func (f *infoFile) Mutable() bool { return true }
func (f *infoFile) Dynamic() bool { return true }

func (f *infoFile) Attr(ctx context.Context) (Attr, error) {
	data, err := f.gen(f.d.name)
	if err != nil {
		return Attr{}, err
	}
	mode := uint32(0o400)
	if f.public() {
		mode = 0o444
	}
	now := time.Now()
	return Attr{Ino: f.ino, Mode: ModeFile | mode, Nlink: 1, UID: f.d.root.uid, GID: f.d.root.gid,
		Size: uint64(len(data)), Blocks: uint64(len(data)+511) / 512, Atime: now, Mtime: now, Ctime: now}, nil
}

func (f *infoFile) Open(ctx context.Context) (Handle, error) {
	data, err := f.gen(f.d.name)
	if err != nil {
		return nil, err
	}
	return bytesHandle{bytes.NewReader(data)}, nil
}

func (f *infoFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	return nil, ErrAccess
}

func (f *infoFile) Setattr(ctx context.Context, h Handle, a SetAttr) error {
	cur, err := f.Attr(ctx)
	if err != nil {
		return err
	}
	if a.Size != nil {
		return ErrAccess
	}
	return fixedAttrs(a, cur)
}

// scratchFile is a file an editor or sed made in a plan's directory, kept
// in memory until it is removed or renamed onto plan.json.
type scratchFile struct {
	ino uint64

	mu   sync.Mutex // guards the fields below
	data []byte
	attr Attr // all but Size and Blocks, which follow data
}

func (f *scratchFile) Mutable() bool { return true }
func (f *scratchFile) Dynamic() bool { return true }

func (f *scratchFile) content() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.data)
}

func (f *scratchFile) Attr(ctx context.Context) (Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.attr
	a.Size = uint64(len(f.data))
	a.Blocks = (a.Size + 511) / 512
	return a, nil
}

func (f *scratchFile) Open(ctx context.Context) (Handle, error) { return &scratchHandle{f: f}, nil }

func (f *scratchFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	h := &scratchHandle{f: f, append: flags.Append}
	if flags.Truncate {
		f.mu.Lock()
		f.resize(0)
		f.mu.Unlock()
	}
	return h, nil
}

// resize sets the length of data; f.mu held.
func (f *scratchFile) resize(size int64) {
	if size <= int64(len(f.data)) {
		f.data = f.data[:size]
	} else {
		f.data = append(f.data, make([]byte, size-int64(len(f.data)))...)
	}
	f.attr.Mtime = time.Now()
	f.attr.Ctime = f.attr.Mtime
}

func (f *scratchFile) Setattr(ctx context.Context, h Handle, a SetAttr) error {
	if a.Size != nil && *a.Size > MaxEditSize {
		return ErrTooLarge
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.Size != nil {
		f.resize(int64(*a.Size))
	}
	if a.Mode != nil {
		f.attr.Mode = ModeFile | *a.Mode&0o7777
	}
	if a.UID != nil {
		f.attr.UID = *a.UID
	}
	if a.GID != nil {
		f.attr.GID = *a.GID
	}
	if a.Atime != nil {
		f.attr.Atime = *a.Atime
	}
	if a.Mtime != nil {
		f.attr.Mtime = *a.Mtime
	}
	f.attr.Ctime = time.Now()
	return nil
}

// scratchHandle reads and writes a scratch file.
type scratchHandle struct {
	f      *scratchFile
	append bool
}

func (h *scratchHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if off >= int64(len(h.f.data)) {
		return 0, nil
	}
	return copy(p, h.f.data[off:]), nil
}

func (h *scratchHandle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if h.append {
		off = int64(len(h.f.data))
	}
	end := off + int64(len(p))
	if off < 0 || end > MaxEditSize {
		return 0, ErrTooLarge
	}
	if end > int64(len(h.f.data)) {
		h.f.resize(end)
	}
	copy(h.f.data[off:], p)
	h.f.attr.Mtime = time.Now()
	h.f.attr.Ctime = h.f.attr.Mtime
	return len(p), nil
}

func (h *scratchHandle) Flush(ctx context.Context) error { return nil }
func (h *scratchHandle) Fsync(ctx context.Context) error { return nil }
func (h *scratchHandle) Close() error                    { return nil }

var (
	_ Dir         = (*plansDir)(nil)
	_ Mkdirer     = (*plansDir)(nil)
	_ Rmdirer     = (*plansDir)(nil)
	_ Setattrer   = (*plansDir)(nil)
	_ Dir         = (*planDir)(nil)
	_ Creator     = (*planDir)(nil)
	_ Unlinker    = (*planDir)(nil)
	_ Renamer     = (*planDir)(nil)
	_ Setattrer   = (*planDir)(nil)
	_ WriteOpener = (*planFile)(nil)
	_ Setattrer   = (*planFile)(nil)
	_ WriteOpener = (*runFile)(nil)
	_ Setattrer   = (*runFile)(nil)
	_ WriteOpener = (*infoFile)(nil)
	_ Setattrer   = (*infoFile)(nil)
	_ WriteOpener = (*scratchFile)(nil)
	_ Setattrer   = (*scratchFile)(nil)
	_ WriteHandle = (*planHandle)(nil)
	_ WriteHandle = (*runHandle)(nil)
	_ WriteHandle = (*scratchHandle)(nil)
)
