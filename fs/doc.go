// Package fs mounts the tree of fs/tree with go-fuse. It is a thin
// adapter: it translates types, and errors through one function
// (errno.go); the behaviour lives in fs/tree.
//
// Kernel caching: snapshot contents are immutable, so their entries and
// attributes get long timeouts and open files keep the page cache
// (FOPEN_KEEP_CACHE). The rest of repos/ (status, snapshots/, latest)
// gets a one second timeout. Uncached nodes (tree.Uncached: everything
// under plans/, which changes through the mount and behind its back, by
// the configuration file and by runs) get no entry or attribute caching
// at all, and not even negative entries. Generated and writable files are
// read and written with direct I/O, so their size never has to be known
// in advance and the page cache never serves stale content.
//
// Node lifetime: inodes are made with NewInode, never persistent, so
// go-fuse drops them, and the tree nodes they hold, when the kernel
// forgets them; memory follows what the kernel keeps cached, not what was
// ever browsed. Inode numbers derive from names, so they stay the same
// across lookups.
//
// Writes: the tree's nodes opt into the write interfaces of fs/tree;
// others answer EROFS (snapshots) or, on tree.Writable nodes, EPERM.
// FLUSH is answered, never ENOSYS, because closing a handle that wrote
// plan.json is when the plan is defined, and EINVAL there is what
// close(2) returns.
//
// Interrupts: go-fuse cancels a request's context when the kernel sends
// INTERRUPT; repository loads honour it and the request fails with EINTR.
//
// Deadlocks: nothing here takes a lock while calling into the tree, and
// the tree never calls back into the kernel. A backup that the mount runs
// (a plan) never walks into the mount point: cairn mount gives it as a
// path to skip (plan.ManagerOptions.SkipPaths), which the walk recognises
// without a stat of it, and other FUSE filesystems are left out too.
package fs
