// Package tree is the filesystem of DESIGN.md §1 as plain Go types, free
// of FUSE: the root with README.txt, plans/ and repos/; each plan's
// plan.json, run, status and log over the Plans model; each repository's
// status file and snapshots/, and the contents of every snapshot, decoded
// lazily from its tree blobs. The fs package adapts it to go-fuse; tests
// call it directly.
//
// Nodes answer Attr; directories add Lookup and List, files Open, symlinks
// Readlink, and nodes with extended attributes Xattrs. Nodes that take
// changes (all under plans/ today) opt into the interfaces of write.go,
// named after the operations, and say whether they are Writable and
// Uncached (changing behind the mount's back). Errors are the sentinels
// of node.go, repo's (repo.ErrCorrupt) and the model's (plan.ErrInvalid
// and the like), which the adapter maps to errnos.
//
// plans/ is plain files for ordinary tools: writes to plan.json go to a
// draft that the writing handle's close defines (refused, close fails and
// the old definition stays); editors' and sed's temporary files live in
// memory beside it and define the plan when renamed onto it. The files:
// plansdir.go (plans/ and each plan's state), plandir.go (plans/<name>/),
// planjson.go (plan.json), control.go (run, status, log). They are built
// from two blocks meant for every writable directory (pending snapshots
// next, DESIGN.md §5): memfile.go, a file held in memory with a commit
// hook for close, and memdir.go, a directory held in memory with a hook
// for renames.
//
// Node lifetime: the tree keeps no node it handed out. A node lives as
// long as the adapter holds it (the kernel's inode) and what it needs
// (its directory's decoded tree, the snapshot) as long as it does, so
// that memory follows what the kernel keeps, not what was ever browsed.
//
// Inode numbers are stable across lookups and remounts: a node's is the
// hash of its parent's number and its name, and the members of a hard-link
// group share one derived from the snapshot and their recorded device and
// inode. Listings are sorted (tree blobs are) and never iterate a map.
//
// Reads go through the shared chunk cache. A sequential reader of a file
// finds its next chunks prefetched; a reader going through a directory
// (the first open of one of its files is the sign) finds the files
// expected next loaded ahead in batches, in the order it is seen to take:
// by inode number, as cp -a sorts, or by name, as rsync and tar go.
// Subdirectories listed while their parent is being read start their own
// read-ahead at once; a mere listing (ls, find) loads no file data.
//
// Lock order: Repo.mu, then nothing; snapDir.mu and dirAhead.mu are never
// held together. Under plans/ no two locks are held at once (plansDir.mu,
// memTree.mu, memFile.mu, runHandle.mu). No lock is held while calling
// into the repository, the cache, the Plans model or a memFile's or
// memDir's hooks.
package tree
