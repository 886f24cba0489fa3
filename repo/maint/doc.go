// Package maint owns repository maintenance: check, forget and prune now;
// copy later. It works through the exported API of package repo and the
// repository's backend, and never changes the format.
//
// Prune (prune.go) frees the space of packs no snapshot needs in two
// phases: it marks them (mark objects, docs/FORMAT.md §15), and a later
// prune deletes them once the mark is older than a grace period longer
// than the lock stale time and they are still unneeded then. It also
// compacts the index and repacks sparse packs.
//
// Walk and Reachable find what snapshots reference: each distinct tree
// once, loaded on several goroutines, and the data blobs of its files.
// Check and prune (what to keep) walk with them, and copy (what to send)
// is meant to.
//
// Check verifies a repository the way DESIGN.md §3 makes possible: every
// write-once object is named by the SHA-256 of its bytes, index files name
// the packs, snapshots name root trees, trees name blobs. It reports damage
// as Problems and keeps going, so one run lists everything that is wrong;
// its error return is kept for failures to run at all (storage refusing
// access or failing transiently, a cancelled context).
//
// Check takes no lock and changes nothing, so it may run beside backups
// (DESIGN.md §7). It lists snapshots before index files and index files
// before packs: the write order is packs, index, snapshot, so whatever a
// listed snapshot references was stored before the later listings began,
// and a concurrent backup shows up at worst as unreferenced packs (a
// warning), never as a false error.
package maint
