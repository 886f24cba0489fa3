// Package tree is the filesystem of DESIGN.md §1 as plain Go types, free
// of FUSE: the root with README.txt and repos/, each repository's status
// file and snapshots/, and the contents of every snapshot, decoded lazily
// from its tree blobs. The fs package adapts it to go-fuse; tests call it
// directly.
//
// Nodes answer Attr; directories add Lookup and List, files Open, symlinks
// Readlink, and nodes with extended attributes Xattrs. Errors are the
// sentinels below (or repo.ErrCorrupt), which the adapter maps to errnos.
//
// Inode numbers are stable across lookups and remounts: a node's is the
// hash of its parent's number and its name, and the members of a hard-link
// group share one derived from the snapshot and their recorded device and
// inode. Listings are sorted (tree blobs are) and never iterate a map.
//
// Lock order: Repo.mu, then nothing. No lock is held while calling into
// the repository or the cache.
package tree
