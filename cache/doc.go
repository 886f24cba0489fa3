// Package cache holds decompressed chunks in memory for restore and for the
// FUSE mount: a least-recently-used cache bounded by the total size of its
// values (not by their count), with single-flight loading so that many
// readers of one chunk cause one fetch, one decryption and one
// decompression.
//
// The package owns only the in-memory cache; it knows nothing of
// repositories, blobs or FUSE, and imports no package of this project. Keys
// are any comparable type (the callers use blob ids).
//
// # Read-only values
//
// A slice returned by Get or GetOrLoad is the one the cache holds and may be
// handed to many goroutines at once; callers must treat it as read-only and
// copy it before modifying it. Likewise, Add and a loader hand their slice
// over to the cache: the caller must not modify it afterwards. The cache
// never copies, which is what makes a hit cheap.
//
// # Loads and cancellation
//
// GetOrLoad runs the loader in its own goroutine, with a context that
// carries the values of the first caller's context but not its cancellation
// or deadline. Each caller waits for the shared result or for its own
// context, whichever comes first, so a caller that gives up returns at once
// without spoiling the load for the others. The loader's context is
// cancelled only when every caller waiting for it has gone away. A loader
// error is returned to the callers of that load and is not cached: the next
// call loads again.
//
// Fill loads many keys with one loader call ahead of their readers (the
// mount's read-ahead reads neighbouring blobs of a pack with one request):
// readers of those keys join it as they would join a GetOrLoad.
package cache
