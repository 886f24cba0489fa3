package tree

import (
	"context"
	"time"
)

// The write side of the tree. A node opts into each operation by
// implementing its interface; the adapter answers the others with EROFS
// (snapshots, the root) or, for Writable nodes, EPERM.
//
// Two properties that used to be one are separate: whether a node takes
// changes through the mount (Writable) and whether it changes behind the
// mount's back (Uncached). plans/ is both; a pending snapshot (DESIGN.md
// §5) is writable but changes only through the mount.

// Writable nodes take changes through the mount: access(W_OK) follows
// their mode, and the adapter answers the operations they do not
// implement with EPERM rather than EROFS (and extended attributes they do
// not keep with ENOTSUP).
type Writable interface {
	Writable() bool
}

// Uncached nodes may change or vanish at any moment behind the mount's
// back (plans/: the configuration file is edited by hand, runs change
// status and log). The kernel caches neither their entries nor their
// attributes, nor a failed lookup below an uncached directory, and their
// content is read with direct I/O.
type Uncached interface {
	Uncached() bool
}

// OpenFlags say how a file is opened for writing.
type OpenFlags struct {
	// Truncate: O_TRUNC. The truncation of the open itself, which
	// shells do long before they write.
	Truncate bool
	// Append: O_APPEND. Every write goes to the end, whatever offset
	// the kernel passes.
	Append bool
}

// WriteOpener is a file that can be opened for writing (O_WRONLY or
// O_RDWR; the handle reads too).
type WriteOpener interface {
	OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error)
}

// WriteHandle is a file open for writing. Its methods are safe for
// concurrent use. Errors of Flush and Fsync reach the caller of close(2)
// and fsync(2); those of Release reach no one.
//
// It is not a Handle: where a read handle's Close has nothing to do, the
// last release of a write handle may have to commit what no flush did
// (I/O), so it gets the context of the kernel's RELEASE.
type WriteHandle interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// WriteAt writes p at off (or at the end, for O_APPEND handles) and
	// returns len(p) or an error.
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	// Flush is called on every close(2) of a descriptor of the handle,
	// so more than once for a duplicated one.
	Flush(ctx context.Context) error
	// Fsync makes what was written take effect.
	Fsync(ctx context.Context) error
	// Release is the last close of the handle, once every descriptor of
	// it is closed; it is called once.
	Release(ctx context.Context) error
}

// SetAttr is a change of attributes: chmod, chown, truncate, utimes. Nil
// fields stay as they are.
type SetAttr struct {
	Mode         *uint32 // permission bits
	UID, GID     *uint32
	Size         *uint64
	Atime, Mtime *time.Time
}

// Setattrer is a node whose attributes can be changed. h is the write
// handle the change came through (ftruncate, and the truncation of an
// open with O_TRUNC), or nil (a change by path).
type Setattrer interface {
	Setattr(ctx context.Context, h WriteHandle, a SetAttr) error
}

// Creator is a directory in which files can be created (O_CREAT). Create
// fails with ErrExist if the name is taken; mode holds the permission
// bits, the umask already applied.
type Creator interface {
	Create(ctx context.Context, name string, mode uint32, flags OpenFlags) (File, WriteHandle, error)
}

// Mkdirer is a directory in which directories can be made.
type Mkdirer interface {
	Mkdir(ctx context.Context, name string, mode uint32) (Dir, error)
}

// Unlinker is a directory from which files can be removed.
type Unlinker interface {
	Unlink(ctx context.Context, name string) error
}

// Rmdirer is a directory from which directories can be removed;
// ErrNotEmpty if the directory still holds removable files.
type Rmdirer interface {
	Rmdir(ctx context.Context, name string) error
}

// Renamer is a directory whose entries can be renamed, to newName in
// newDir (the node the adapter holds for the target directory). An
// existing target is replaced unless noReplace (RENAME_NOREPLACE), which
// makes it ErrExist.
type Renamer interface {
	Rename(ctx context.Context, name string, newDir Node, newName string, noReplace bool) error
}

// fixedAttrs accepts a change of attributes that changes nothing (tools
// copying a file's mode or owner onto itself) and ignores times; anything
// else is ErrPerm. It is the Setattr of nodes whose attributes are not
// theirs to change (the plans' directories and control files).
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
