// Package repo implements cairn's repository format (docs/FORMAT.md): the
// config and key objects, blob encoding (zstd, then AES-256-GCM), packs with
// an encrypted header, index files, tree blobs, snapshot records and locks,
// and the Repository type that saves and loads blobs through a
// backend.Backend: one at a time (LoadBlob) or by the batch (LoadBlobs,
// which reads neighbouring blobs of a pack with one request and decodes
// on every core; the mount's read-ahead, restore and check use it). The
// rule for chunks of zeros (ZeroID, IsZeroChunk) lives here too, so that
// backup, restore and the mount agree on it.
//
// Write order is packs, then the index naming them, then the snapshot
// naming the trees: a snapshot becomes visible only once everything it
// references is stored, so a crash at any point leaves a repository that
// check passes (at worst with unreferenced packs for prune to collect).
//
// The package knows nothing of FUSE, plans or the command line.
package repo
