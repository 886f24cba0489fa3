package tree

import (
	"context"
	"sync"
	"time"
)

// memDir is a directory held in memory whose entries are made, renamed
// and removed through the mount: the building block of writable
// directories. plans/<name>/ keeps its scratch files in one (beside the
// control files it serves itself, its own attributes unused); a pending
// snapshot (DESIGN.md §5) will be a tree of them with hooks of its own, and
// with the symlinks, hard links, device nodes and extended attributes the
// adapter does not pass on yet.
//
// The directories of one tree (a memDir and those made in it by Mkdir)
// share a mutex and their options, and renames move entries within a
// tree only. Entries keep their inode number when renamed, so new ones
// are numbered by the tree's ino function, never from their name. Moving
// a directory below itself is refused by the kernel before it asks
// (do_renameat2), as for every filesystem.
type memDir struct {
	t *memTree

	// Guarded by t.mu.
	attr    Attr // all but Nlink, which follows the subdirectories
	entries map[string]Node
}

// memTree is what the directories of one tree share.
type memTree struct {
	opts memDirOptions

	// mu guards the attributes and entries of every directory of the
	// tree, so that a rename between two of them, or one replacing a
	// directory it must find empty, needs no lock order. Nothing else is
	// locked, and nothing called, while it is held.
	mu sync.Mutex
}

// memDirOptions say how a tree of memDirs behaves.
type memDirOptions struct {
	uid, gid uint32 // owner of what is made in the tree
	// ino numbers a new entry. It must not repeat a number the kernel may
	// still hold for another node: the adapter would take the new entry
	// for the old one.
	ino func() uint64
	// file is how the files made in the tree behave: their size bound and
	// commit hook (base is not used).
	file memFileOptions
	// uncached: the tree may change or vanish behind the mount's back
	// (Uncached); its files are made uncached too.
	uncached bool
	// rename, if set, is called before an entry n of the tree is renamed
	// to newName in dir, without locks held. It may refuse the rename
	// (its error is the rename's and nothing moves), or take the entry
	// itself (taken): the entry then leaves its directory instead of
	// moving, as a scratch file renamed onto plan.json becomes the plan's
	// definition.
	rename func(ctx context.Context, n Node, dir *memDir, newName string) (taken bool, err error)
}

// newMemDir makes the root of a tree with the attributes of a.
func newMemDir(a Attr, opts memDirOptions) *memDir {
	opts.file.base = nil
	opts.file.uncached = opts.uncached
	a.Mode = ModeDir | a.Mode&0o7777
	return &memDir{t: &memTree{opts: opts}, attr: a, entries: map[string]Node{}}
}

func (d *memDir) Writable() bool { return true }
func (d *memDir) Uncached() bool { return d.t.opts.uncached }

func (d *memDir) Attr(ctx context.Context) (Attr, error) {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	a := d.attr
	a.Nlink = 2
	for _, n := range d.entries {
		if _, ok := n.(*memDir); ok {
			a.Nlink++
		}
	}
	return a, nil
}

// Len is the number of entries.
func (d *memDir) Len() int {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	return len(d.entries)
}

func (d *memDir) Lookup(ctx context.Context, name string) (Node, error) {
	d.t.mu.Lock()
	n := d.entries[name]
	d.t.mu.Unlock()
	if n == nil {
		return nil, ErrNotExist
	}
	return n, nil
}

func (d *memDir) List(ctx context.Context) ([]Entry, error) {
	d.t.mu.Lock()
	names := make([]string, 0, len(d.entries))
	nodes := make([]Node, 0, len(d.entries))
	for name, n := range d.entries {
		names = append(names, name)
		nodes = append(nodes, n)
	}
	d.t.mu.Unlock()
	out := make([]Entry, 0, len(nodes))
	for i, n := range nodes {
		a, err := n.Attr(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Name: names[i], Ino: a.Ino, Mode: a.Mode & ModeType})
	}
	sortEntries(out)
	return out, nil
}

// newAttr is the attributes of an entry made now with the permission bits
// of mode and the type bits typ.
func (d *memDir) newAttr(typ, mode uint32, now time.Time) Attr {
	o := &d.t.opts
	return Attr{Ino: o.ino(), Mode: typ | mode&0o7777, Nlink: 1, UID: o.uid, GID: o.gid,
		Atime: now, Mtime: now, Ctime: now}
}

// add enters n under name unless the name is taken; t.mu held.
func (d *memDir) add(name string, n Node, now time.Time) error {
	if _, taken := d.entries[name]; taken {
		return ErrExist
	}
	d.entries[name] = n
	d.attr.Mtime, d.attr.Ctime = now, now
	return nil
}

// Create makes an empty file.
func (d *memDir) Create(ctx context.Context, name string, mode uint32, flags OpenFlags) (File, WriteHandle, error) {
	now := time.Now()
	f := newMemFile(d.newAttr(ModeFile, mode, now), d.t.opts.file)
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if err := d.add(name, f, now); err != nil {
		return nil, nil, err
	}
	return f, &memHandle{f: f, append: flags.Append}, nil
}

// Mkdir makes an empty directory of the tree.
func (d *memDir) Mkdir(ctx context.Context, name string, mode uint32) (Dir, error) {
	now := time.Now()
	sub := &memDir{t: d.t, attr: d.newAttr(ModeDir, mode, now), entries: map[string]Node{}}
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if err := d.add(name, sub, now); err != nil {
		return nil, err
	}
	return sub, nil
}

// Unlink removes an entry that is not a directory.
func (d *memDir) Unlink(ctx context.Context, name string) error {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	switch d.entries[name].(type) {
	case nil:
		return ErrNotExist
	case *memDir:
		return ErrIsDir
	}
	delete(d.entries, name)
	d.attr.Mtime = time.Now()
	d.attr.Ctime = d.attr.Mtime
	return nil
}

// Rmdir removes an empty directory.
func (d *memDir) Rmdir(ctx context.Context, name string) error {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	switch n := d.entries[name].(type) {
	case nil:
		return ErrNotExist
	case *memDir:
		if len(n.entries) > 0 {
			return ErrNotEmpty
		}
	default:
		return ErrNotDir
	}
	delete(d.entries, name)
	d.attr.Mtime = time.Now()
	d.attr.Ctime = d.attr.Mtime
	return nil
}

// remove removes name if it still names n, and reports whether it did.
func (d *memDir) remove(name string, n Node) bool {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if d.entries[name] != n {
		return false
	}
	delete(d.entries, name)
	d.attr.Mtime = time.Now()
	d.attr.Ctime = d.attr.Mtime
	return true
}

// Rename moves an entry to newName in newDir, a directory of the same tree
// (else ErrCrossDir), after asking the tree's rename hook. A target that
// exists is replaced, as rename(2) does: a file by a file, an empty
// directory by a directory.
func (d *memDir) Rename(ctx context.Context, name string, newDir Node, newName string, noReplace bool) error {
	to, ok := newDir.(*memDir)
	if !ok || to.t != d.t {
		return ErrCrossDir
	}
	d.t.mu.Lock()
	n := d.entries[name]
	d.t.mu.Unlock()
	if n == nil {
		return ErrNotExist
	}
	if hook := d.t.opts.rename; hook != nil {
		taken, err := hook(ctx, n, to, newName)
		if err != nil {
			return err
		}
		if taken {
			d.remove(name, n)
			return nil
		}
	}
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if d.entries[name] != n {
		return ErrNotExist // removed or replaced meanwhile
	}
	if d == to && name == newName {
		return nil
	}
	if old, taken := to.entries[newName]; taken {
		if noReplace {
			return ErrExist
		}
		if err := replaceable(n, old); err != nil {
			return err
		}
	}
	delete(d.entries, name)
	to.entries[newName] = n
	now := time.Now()
	d.attr.Mtime, d.attr.Ctime = now, now
	to.attr.Mtime, to.attr.Ctime = now, now
	return nil
}

// replaceable reports whether n may replace old in a rename; t.mu held.
func replaceable(n, old Node) error {
	oldDir, oldIsDir := old.(*memDir)
	_, isDir := n.(*memDir)
	switch {
	case oldIsDir && !isDir:
		return ErrIsDir
	case !oldIsDir && isDir:
		return ErrNotDir
	case oldIsDir && len(oldDir.entries) > 0:
		return ErrNotEmpty
	}
	return nil
}

// Setattr changes the directory's mode, owner and times.
func (d *memDir) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	if a.Size != nil {
		return ErrIsDir
	}
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if a.Mode != nil {
		d.attr.Mode = ModeDir | *a.Mode&0o7777
	}
	if a.UID != nil {
		d.attr.UID = *a.UID
	}
	if a.GID != nil {
		d.attr.GID = *a.GID
	}
	if a.Atime != nil {
		d.attr.Atime = *a.Atime
	}
	if a.Mtime != nil {
		d.attr.Mtime = *a.Mtime
	}
	d.attr.Ctime = time.Now()
	return nil
}

var (
	_ Dir       = (*memDir)(nil)
	_ Creator   = (*memDir)(nil)
	_ Mkdirer   = (*memDir)(nil)
	_ Unlinker  = (*memDir)(nil)
	_ Rmdirer   = (*memDir)(nil)
	_ Renamer   = (*memDir)(nil)
	_ Setattrer = (*memDir)(nil)
	_ Writable  = (*memDir)(nil)
	_ Uncached  = (*memDir)(nil)
)
