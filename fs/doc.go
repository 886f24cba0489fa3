// Package fs mounts the tree of fs/tree with go-fuse. It is a thin
// adapter: it translates types, and errors through one function
// (errno.go); the behaviour lives in fs/tree.
//
// Kernel caching: snapshot contents are immutable, so their entries and
// attributes get long timeouts and open files keep the page cache
// (FOPEN_KEEP_CACHE). The rest (status, snapshots/, latest) gets a one
// second timeout, and generated files are read with direct I/O so their
// size never has to be known in advance.
//
// Interrupts: go-fuse cancels a request's context when the kernel sends
// INTERRUPT; repository loads honour it and the request fails with EINTR.
//
// Deadlocks: nothing here takes a lock while calling into the tree, and
// the tree never calls back into the kernel (a backup that walks into the
// mount point is the plans issue's to prevent).
package fs
