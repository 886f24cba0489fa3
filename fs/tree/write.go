package tree

import (
	"context"
	"time"
)

// The write side of the tree. A node opts into each operation by
// implementing its interface; the adapter answers the others with EROFS
// (snapshots, the root) or, for Mutable nodes, EPERM.

// Mutable nodes may change at any moment, through the mount or behind its
// back (plans/). The adapter lets the kernel cache neither their entries
// nor their attributes, serves their content with direct I/O, lets
// access(W_OK) follow their mode, and answers operations they do not
// implement with EPERM rather than EROFS.
type Mutable interface {
	Mutable() bool
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
// and fsync(2); those of Close (the last release of the handle) reach no
// one.
type WriteHandle interface {
	Handle
	// WriteAt writes p at off (or at the end, for O_APPEND handles) and
	// returns len(p) or an error.
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	// Flush is called on every close(2) of a descriptor of the handle,
	// so more than once for a duplicated one.
	Flush(ctx context.Context) error
	// Fsync makes what was written take effect.
	Fsync(ctx context.Context) error
}

// SetAttr is a change of attributes: chmod, chown, truncate, utimes. Nil
// fields stay as they are.
type SetAttr struct {
	Mode         *uint32 // permission bits
	UID, GID     *uint32
	Size         *uint64
	Atime, Mtime *time.Time
}

// Setattrer is a node whose attributes can be changed. h is the handle
// the change came through (ftruncate, fchmod, and the truncation of an
// open with O_TRUNC), or nil.
type Setattrer interface {
	Setattr(ctx context.Context, h Handle, a SetAttr) error
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
