// Package fs mounts the tree of fs/tree with go-fuse. It is a thin
// adapter: it translates types, and errors through one function
// (errno.go); the behaviour lives in fs/tree.
//
// Kernel caching: snapshot contents are immutable, so their entries and
// attributes get long timeouts and open files keep the page cache
// (FOPEN_KEEP_CACHE). The rest of repos/ (status, snapshots/, latest)
// gets a one second timeout. Everything under plans/ changes through the
// mount and behind its back (the configuration file, runs), so it gets
// no entry or attribute caching at all, and not even negative entries.
// Generated and writable files are read and written with direct I/O, so
// their size never has to be known in advance and the page cache never
// serves stale content.
//
// Writes: the tree's nodes opt into the write interfaces of fs/tree;
// others answer EROFS (snapshots) or EPERM (plans/). FLUSH is answered,
// never ENOSYS, because closing a handle that wrote plan.json is when the
// plan is defined, and EINVAL there is what close(2) returns.
//
// Interrupts: go-fuse cancels a request's context when the kernel sends
// INTERRUPT; repository loads honour it and the request fails with EINTR.
//
// Deadlocks: nothing here takes a lock while calling into the tree, and
// the tree never calls back into the kernel (a backup that walks into the
// mount point is the plans issue's to prevent).
package fs
