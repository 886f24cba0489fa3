package fs

import (
	"context"
	"syscall"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cairn-backup/cairn/fs/tree"
)

// Timeouts the kernel may cache entries and attributes for.
const (
	immutableTimeout = time.Hour
	dynamicTimeout   = time.Second
)

// node adapts one tree.Node.
type node struct {
	gofuse.Inode
	t tree.Node
}

var (
	_ gofuse.NodeLookuper      = (*node)(nil)
	_ gofuse.NodeReaddirer     = (*node)(nil)
	_ gofuse.NodeGetattrer     = (*node)(nil)
	_ gofuse.NodeOpener        = (*node)(nil)
	_ gofuse.NodeReader        = (*node)(nil)
	_ gofuse.NodeReleaser      = (*node)(nil)
	_ gofuse.NodeFlusher       = (*node)(nil)
	_ gofuse.NodeReadlinker    = (*node)(nil)
	_ gofuse.NodeGetxattrer    = (*node)(nil)
	_ gofuse.NodeListxattrer   = (*node)(nil)
	_ gofuse.NodeLseeker       = (*node)(nil)
	_ gofuse.NodeStatfser      = (*node)(nil)
	_ gofuse.NodeAccesser      = (*node)(nil)
	_ gofuse.NodeSetattrer     = (*node)(nil)
	_ gofuse.NodeCreater       = (*node)(nil)
	_ gofuse.NodeMkdirer       = (*node)(nil)
	_ gofuse.NodeMknoder       = (*node)(nil)
	_ gofuse.NodeLinker        = (*node)(nil)
	_ gofuse.NodeSymlinker     = (*node)(nil)
	_ gofuse.NodeUnlinker      = (*node)(nil)
	_ gofuse.NodeRmdirer       = (*node)(nil)
	_ gofuse.NodeRenamer       = (*node)(nil)
	_ gofuse.NodeSetxattrer    = (*node)(nil)
	_ gofuse.NodeRemovexattrer = (*node)(nil)
)

func immutable(t tree.Node) bool {
	i, ok := t.(tree.Immutable)
	return ok && i.Immutable()
}

func fillAttr(a tree.Attr, out *fuse.Attr) {
	out.Ino = a.Ino
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Owner = fuse.Owner{Uid: a.UID, Gid: a.GID}
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.Blksize = 4096
	out.Rdev = uint32(a.Rdev)
	out.SetTimes(&a.Atime, &a.Mtime, &a.Ctime)
}

func timeout(t tree.Node) time.Duration {
	if immutable(t) {
		return immutableTimeout
	}
	return dynamicTimeout
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	dir, ok := n.t.(tree.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	child, err := dir.Lookup(ctx, name)
	if err != nil {
		return nil, toErrno(err)
	}
	a, err := child.Attr(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	fillAttr(a, &out.Attr)
	out.SetEntryTimeout(timeout(child))
	out.SetAttrTimeout(timeout(child))
	return n.NewInode(ctx, &node{t: child}, gofuse.StableAttr{Mode: a.Mode & tree.ModeType, Ino: a.Ino}), 0
}

func (n *node) Readdir(ctx context.Context) (gofuse.DirStream, syscall.Errno) {
	dir, ok := n.t.(tree.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	entries, err := dir.List(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	out := make([]fuse.DirEntry, len(entries))
	for i, e := range entries {
		out[i] = fuse.DirEntry{Name: e.Name, Ino: e.Ino, Mode: e.Mode}
	}
	return gofuse.NewListDirStream(out), 0
}

func (n *node) Getattr(ctx context.Context, f gofuse.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.t.Attr(ctx)
	if err != nil {
		return toErrno(err)
	}
	fillAttr(a, &out.Attr)
	out.SetTimeout(timeout(n.t))
	return 0
}

// handle is an open file.
type handle struct{ h tree.Handle }

func (n *node) Open(ctx context.Context, flags uint32) (gofuse.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	f, ok := n.t.(tree.File)
	if !ok {
		return nil, 0, syscall.EISDIR
	}
	h, err := f.Open(ctx)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	var fl uint32
	if immutable(n.t) {
		fl = fuse.FOPEN_KEEP_CACHE
	}
	if d, ok := n.t.(tree.Dynamic); ok && d.Dynamic() {
		fl = fuse.FOPEN_DIRECT_IO
	}
	return &handle{h}, fl, 0
}

func (n *node) Read(ctx context.Context, f gofuse.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := f.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	k, err := h.h.ReadAt(ctx, dest, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *node) Release(ctx context.Context, f gofuse.FileHandle) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return toErrno(h.h.Close())
	}
	return 0
}

// Flush answers ENOSYS on purpose: the kernel then stops sending FLUSH on
// every close (nothing here is ever dirty), saving a round trip per file.
func (n *node) Flush(ctx context.Context, f gofuse.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	l, ok := n.t.(tree.Symlink)
	if !ok {
		return nil, syscall.EINVAL
	}
	target, err := l.Readlink(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(target), 0
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	x, ok := n.t.(tree.Xattrer)
	if !ok {
		return 0, syscall.ENODATA
	}
	xs, err := x.Xattrs(ctx)
	if err != nil {
		return 0, toErrno(err)
	}
	for _, a := range xs {
		if a.Name == attr {
			if len(dest) == 0 {
				return uint32(len(a.Value)), 0
			}
			if len(dest) < len(a.Value) {
				return uint32(len(a.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, a.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	x, ok := n.t.(tree.Xattrer)
	if !ok {
		return 0, 0
	}
	xs, err := x.Xattrs(ctx)
	if err != nil {
		return 0, toErrno(err)
	}
	var names []byte
	for _, a := range xs {
		names = append(append(names, a.Name...), 0)
	}
	if len(dest) == 0 {
		return uint32(len(names)), 0
	}
	if len(dest) < len(names) {
		return uint32(len(names)), syscall.ERANGE
	}
	return uint32(copy(dest, names)), 0
}

// Seek values of lseek(2) that reach the filesystem.
const (
	seekData = 3
	seekHole = 4
)

func (n *node) Lseek(ctx context.Context, f gofuse.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	s, ok := n.t.(tree.Seeker)
	if !ok || (whence != seekData && whence != seekHole) {
		return 0, syscall.EINVAL
	}
	pos, err := s.Seek(ctx, int64(off), whence == seekData)
	if err != nil {
		return 0, toErrno(err)
	}
	return uint64(pos), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}

func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	const wOK = 2
	if mask&wOK != 0 {
		return syscall.EROFS
	}
	return 0
}

// Everything that would change the tree: read-only for now (pending
// snapshots for replication and plans/ come with later issues).

func (n *node) Setattr(ctx context.Context, f gofuse.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofuse.Inode, gofuse.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Link(ctx context.Context, target gofuse.InodeEmbedder, name string, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno { return syscall.EROFS }
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno  { return syscall.EROFS }

func (n *node) Rename(ctx context.Context, name string, newParent gofuse.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno { return syscall.EROFS }
