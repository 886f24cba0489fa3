package tree

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// Sentinel errors of the tree.
var (
	ErrNotExist = errors.New("no such file or directory")
	ErrReadOnly = errors.New("read-only: snapshots cannot be changed")
	ErrNoAttr   = errors.New("no such extended attribute")
	// ErrExist: the name is taken (create, mkdir, rename without replace).
	ErrExist = errors.New("file exists")
	// ErrNotDir: a directory's operation on a file (rmdir, renaming a
	// directory onto one).
	ErrNotDir = errors.New("not a directory")
	// ErrIsDir: a file's operation on a directory (unlink, truncate,
	// renaming a file onto one).
	ErrIsDir = errors.New("is a directory")
	// ErrNotEmpty: rmdir of a directory that still holds files.
	ErrNotEmpty = errors.New("directory not empty")
	// ErrPerm: the node never allows the operation (renaming a control
	// file, chmod of a generated file, mkdir inside a plan).
	ErrPerm = errors.New("operation not permitted")
	// ErrAccess: writing a read-only generated file (status, log).
	ErrAccess = errors.New("permission denied")
	// ErrCrossDir: a rename between directories that cannot share files.
	ErrCrossDir = errors.New("cannot move between these directories")
	// ErrTooLarge: a write past the bound of a file held in memory
	// (MaxEditSize).
	ErrTooLarge = errors.New("file too large")
)

// File type bits of Attr.Mode, as in st_mode.
const (
	ModeDir     = 0o040000
	ModeFile    = 0o100000
	ModeSymlink = 0o120000
	ModeBlock   = 0o060000
	ModeChar    = 0o020000
	ModeFIFO    = 0o010000
	ModeSocket  = 0o140000
	ModeType    = 0o170000
)

// Attr is what stat shows.
type Attr struct {
	Ino                 uint64
	Mode                uint32 // type and permission bits
	Nlink               uint32
	UID, GID            uint32
	Size                uint64
	Blocks              uint64 // 512-byte blocks holding data
	Rdev                uint64
	Atime, Mtime, Ctime time.Time
}

// Entry is one name of a listing.
type Entry struct {
	Name string
	Ino  uint64
	Mode uint32 // type bits suffice
}

// Node is any node of the tree.
type Node interface {
	Attr(ctx context.Context) (Attr, error)
}

// Dir is a directory.
type Dir interface {
	Node
	Lookup(ctx context.Context, name string) (Node, error)
	List(ctx context.Context) ([]Entry, error)
}

// File is a regular file.
type File interface {
	Node
	Open(ctx context.Context) (Handle, error)
}

// Handle reads an open file. ReadAt is stateless and safe for concurrent
// use: parallel and out-of-order reads just work.
type Handle interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	Close() error
}

// Symlink is a symbolic link.
type Symlink interface {
	Node
	Readlink(ctx context.Context) (string, error)
}

// Xattrer is a node with extended attributes.
type Xattrer interface {
	Xattrs(ctx context.Context) ([]repo.Xattr, error)
}

// Seeker is a file that knows its holes (SEEK_DATA, SEEK_HOLE).
type Seeker interface {
	// Seek returns the first offset >= off inside data (data true:
	// SEEK_DATA) or inside a hole (data false: SEEK_HOLE); the end of the
	// file counts as a hole. ErrNoData if there is no data at or after
	// off, or off is at or past the end (ENXIO, as lseek(2) answers).
	Seek(ctx context.Context, off int64, data bool) (int64, error)
}

// Immutable nodes never change: the adapter lets the kernel cache them.
type Immutable interface {
	Immutable() bool
}

// childIno derives a child's inode number from its parent's and its name.
func childIno(parent uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], parent)
	h.Write(b[:])
	h.Write([]byte(name))
	return fixIno(h.Sum64())
}

// linkIno is the shared inode number of a hard-link group of a snapshot.
func linkIno(snap repo.ID, device, inode uint64) uint64 {
	h := fnv.New64a()
	h.Write(snap[:])
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], device)
	binary.LittleEndian.PutUint64(b[8:], inode)
	h.Write(b[:])
	return fixIno(h.Sum64())
}

// fixIno keeps clear of 0 and of 1 (the root's).
func fixIno(n uint64) uint64 {
	if n <= 1 {
		n += 2
	}
	return n
}
