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
	_ gofuse.InodeEmbedder     = (*node)(nil)
	_ gofuse.NodeLookuper      = (*node)(nil)
	_ gofuse.NodeReaddirer     = (*node)(nil)
	_ gofuse.NodeGetattrer     = (*node)(nil)
	_ gofuse.NodeOpener        = (*node)(nil)
	_ gofuse.NodeReader        = (*node)(nil)
	_ gofuse.NodeReleaser      = (*node)(nil)
	_ gofuse.NodeFlusher       = (*node)(nil)
	_ gofuse.NodeWriter        = (*node)(nil)
	_ gofuse.NodeFsyncer       = (*node)(nil)
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

// writable nodes (plans/) take changes through the mount.
func writable(t tree.Node) bool {
	w, ok := t.(tree.Writable)
	return ok && w.Writable()
}

// uncached nodes (plans/) change behind the mount's back too.
func uncached(t tree.Node) bool {
	u, ok := t.(tree.Uncached)
	return ok && u.Uncached()
}

// refused is the answer to a change a node does not support: EROFS in
// snapshots and the fixed parts of the tree, EPERM where other changes
// are allowed.
func refused(t tree.Node) syscall.Errno {
	if writable(t) {
		return syscall.EPERM
	}
	return syscall.EROFS
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

// timeout is how long the kernel may cache t's entry and attributes:
// uncached nodes not at all, so that a stat or ls after a change (Define,
// mkdir, rename, a run, an edit of the configuration file) sees it.
func timeout(t tree.Node) time.Duration {
	switch {
	case immutable(t):
		return immutableTimeout
	case uncached(t):
		return 0
	}
	return dynamicTimeout
}

// newChild makes the inode of a child just looked up or created and fills
// in its entry.
//
// The inode is not persistent (NewInode): go-fuse drops it, and with it
// the tree node, once the kernel has forgotten it (FORGET, sent when the
// kernel evicts the inode under memory pressure or drop_caches) and it
// has no children left, so the mount's memory follows what the kernel
// holds, not what was ever browsed (DESIGN.md §6; the tree keeps no node
// of its own either). The number stays stable all the same: it derives
// from the parent's number and the name, and while go-fuse still holds a
// number it answers a new lookup of it with the inode it has, dropping
// the node made here.
func (n *node) newChild(ctx context.Context, child tree.Node, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	a, err := child.Attr(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	fillAttr(a, &out.Attr)
	out.SetEntryTimeout(timeout(child))
	out.SetAttrTimeout(timeout(child))
	return n.NewInode(ctx, &node{t: child}, gofuse.StableAttr{Mode: a.Mode & tree.ModeType, Ino: a.Ino}), 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	dir, ok := n.t.(tree.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	child, err := dir.Lookup(ctx, name)
	if err != nil {
		errno := toErrno(err)
		if errno == syscall.ENOENT && uncached(n.t) {
			// A nonzero entry timeout keeps go-fuse from turning this into
			// a negative entry cached for the mount's NegativeTimeout; the
			// kernel caches no ENOENT reply, so a plan or file made behind
			// the mount's back shows at once.
			out.SetEntryTimeout(time.Nanosecond)
		}
		return nil, errno
	}
	return n.newChild(ctx, child, out)
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

// handle is an open file: r if it was opened for reading, w if for
// writing (w reads too).
type handle struct {
	r tree.Handle
	w tree.WriteHandle
}

var _ gofuse.FileHandle = (*handle)(nil)

func (h *handle) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if h.w != nil {
		return h.w.ReadAt(ctx, p, off)
	}
	return h.r.ReadAt(ctx, p, off)
}

// writeFlags are the open flags that make an open one for writing.
const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND

func openFlags(flags uint32) tree.OpenFlags {
	return tree.OpenFlags{Truncate: flags&syscall.O_TRUNC != 0, Append: flags&syscall.O_APPEND != 0}
}

// Open serves writable and generated files with direct I/O: the page
// cache would serve stale content and sizes.
func (n *node) Open(ctx context.Context, flags uint32) (gofuse.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		w, ok := n.t.(tree.WriteOpener)
		if !ok {
			return nil, 0, refused(n.t)
		}
		h, err := w.OpenWrite(ctx, openFlags(flags))
		if err != nil {
			return nil, 0, toErrno(err)
		}
		return &handle{w: h}, fuse.FOPEN_DIRECT_IO, 0
	}
	f, ok := n.t.(tree.File)
	if !ok {
		return nil, 0, syscall.EISDIR
	}
	h, err := f.Open(ctx)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	// A handle opened for reading has nothing to flush: NOFLUSH spares
	// every close(2) its FLUSH round trip (a cp -a of small files pays
	// about one in six of its requests for it).
	var fl uint32
	if immutable(n.t) {
		fl = fuse.FOPEN_KEEP_CACHE
	}
	if d, ok := n.t.(tree.Dynamic); (ok && d.Dynamic()) || uncached(n.t) {
		fl = fuse.FOPEN_DIRECT_IO
	}
	return &handle{r: h}, fl | fuse.FOPEN_NOFLUSH, 0
}

func writeHandle(f gofuse.FileHandle) (tree.WriteHandle, bool) {
	h, ok := f.(*handle)
	if !ok || h.w == nil {
		return nil, false
	}
	return h.w, true
}

func (n *node) Write(ctx context.Context, f gofuse.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w, ok := writeHandle(f)
	if !ok {
		return 0, syscall.EBADF
	}
	k, err := w.WriteAt(ctx, data, off)
	if err != nil {
		return 0, toErrno(err)
	}
	return uint32(k), 0
}

func (n *node) Read(ctx context.Context, f gofuse.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := f.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	k, err := h.readAt(ctx, dest, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Release is the last close of a handle. A write handle may commit here
// what no flush did; its error reaches no one (the kernel does not wait).
func (n *node) Release(ctx context.Context, f gofuse.FileHandle) syscall.Errno {
	h, ok := f.(*handle)
	switch {
	case !ok:
		return 0
	case h.w != nil:
		return toErrno(h.w.Release(ctx))
	}
	return toErrno(h.r.Close())
}

// Flush is close(2): a handle that wrote plan.json defines the plan here,
// and a refusal (EINVAL) is what close returns. It must never answer
// ENOSYS, which would make the kernel stop sending FLUSH for the whole
// mount.
func (n *node) Flush(ctx context.Context, f gofuse.FileHandle) syscall.Errno {
	if w, ok := writeHandle(f); ok {
		return toErrno(w.Flush(ctx))
	}
	return 0
}

func (n *node) Fsync(ctx context.Context, f gofuse.FileHandle, flags uint32) syscall.Errno {
	if w, ok := writeHandle(f); ok {
		return toErrno(w.Fsync(ctx))
	}
	return 0 // nothing of ours is ever dirty but what write handles hold
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

// Access grants writing by mode on writable nodes and refuses it
// elsewhere (EROFS).
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	const wOK = 2
	if mask&wOK == 0 {
		return 0
	}
	if !writable(n.t) {
		return syscall.EROFS
	}
	a, err := n.t.Attr(ctx)
	if err != nil {
		return toErrno(err)
	}
	if a.Mode&0o222 == 0 {
		return syscall.EACCES
	}
	return 0
}

// Changes of the tree go to the node if it implements the operation's
// interface of fs/tree; the others are refused.

func (n *node) Setattr(ctx context.Context, f gofuse.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	s, ok := n.t.(tree.Setattrer)
	if !ok {
		return refused(n.t)
	}
	var a tree.SetAttr
	if m, ok := in.GetMode(); ok {
		a.Mode = &m
	}
	if uid, ok := in.GetUID(); ok {
		a.UID = &uid
	}
	if gid, ok := in.GetGID(); ok {
		a.GID = &gid
	}
	if size, ok := in.GetSize(); ok {
		a.Size = &size
	}
	if t, ok := in.GetATime(); ok {
		a.Atime = &t
	}
	if t, ok := in.GetMTime(); ok {
		a.Mtime = &t
	}
	w, _ := writeHandle(f)
	if err := s.Setattr(ctx, w, a); err != nil {
		return toErrno(err)
	}
	attr, err := n.t.Attr(ctx)
	if err != nil {
		return toErrno(err)
	}
	fillAttr(attr, &out.Attr)
	out.SetTimeout(timeout(n.t))
	return 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofuse.Inode, gofuse.FileHandle, uint32, syscall.Errno) {
	c, ok := n.t.(tree.Creator)
	if !ok {
		return nil, nil, 0, refused(n.t)
	}
	f, h, err := c.Create(ctx, name, mode&0o7777, openFlags(flags))
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	in, errno := n.newChild(ctx, f, out)
	if errno != 0 {
		h.Release(ctx)
		return nil, nil, 0, errno
	}
	return in, &handle{w: h}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	m, ok := n.t.(tree.Mkdirer)
	if !ok {
		return nil, refused(n.t)
	}
	d, err := m.Mkdir(ctx, name, mode&0o7777)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, d, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, refused(n.t)
}

func (n *node) Link(ctx context.Context, target gofuse.InodeEmbedder, name string, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, refused(n.t)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofuse.Inode, syscall.Errno) {
	return nil, refused(n.t)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	u, ok := n.t.(tree.Unlinker)
	if !ok {
		return refused(n.t)
	}
	return toErrno(u.Unlink(ctx, name))
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	r, ok := n.t.(tree.Rmdirer)
	if !ok {
		return refused(n.t)
	}
	return toErrno(r.Rmdir(ctx, name))
}

// renameNoreplace is RENAME_NOREPLACE of renameat2(2); RENAME_EXCHANGE
// and RENAME_WHITEOUT are not supported (EINVAL, as the kernel answers
// for filesystems without them).
const renameNoreplace = 1

func (n *node) Rename(ctx context.Context, name string, newParent gofuse.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	r, ok := n.t.(tree.Renamer)
	if !ok {
		return refused(n.t)
	}
	if flags&^renameNoreplace != 0 {
		return syscall.EINVAL
	}
	to, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	return toErrno(r.Rename(ctx, name, to.t, newName, flags&renameNoreplace != 0))
}

// Setxattr and Removexattr: snapshots are read-only; writable nodes keep
// no extended attributes yet (ENOTSUP, which cp -a and editors tolerate).
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if writable(n.t) {
		return syscall.ENOTSUP
	}
	return syscall.EROFS
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if writable(n.t) {
		return syscall.ENOTSUP
	}
	return syscall.EROFS
}
