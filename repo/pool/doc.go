// Package pool shares open repositories within a process and takes their
// locks per operation (DESIGN.md §7).
//
// A Pool keeps one open repository per store (by its canonical location,
// location.Location.Key), so that the mount, the plans it runs and a
// `backup --plan` share one index and one pack uploader. Opening is single
// flight: concurrent callers for one store wait for one open; a failed open
// is not kept, the next caller tries again.
//
// Holding a repository open takes no lock: reads need none, so a mount that
// is only read holds nothing under locks/. Every operation that writes (a
// backup run, a forget, later a copy or a prune) takes a lock with
// Entry.Lock and releases it when it ends. Concurrent shared operations of
// the process share one lock object, refreshed in the background while any
// of them runs and removed when the last one ends; an exclusive operation
// takes its own, after the store's settle time. If a lock is lost (not
// refreshed in time), the contexts of its operations are cancelled with
// cause repo.ErrLockLost, and the next operation takes a new lock.
//
// Lock order: Pool.mu, then nothing; Entry.mu, then nothing. No lock is
// held while calling into the repository.
package pool
