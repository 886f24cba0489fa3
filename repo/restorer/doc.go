// Package restorer writes a snapshot, or chosen parts of it, back into a
// directory on the local filesystem: `cairn restore` and nothing else.
//
// The snapshot's root holds each source under its absolute path, so
// restoring into T recreates T/home/alice/... (DESIGN.md §1).
//
// # How a restore runs
//
// One goroutine (the walker) walks the trees depth-first in name order,
// creating directories as it goes and queueing every other entry for a
// bounded pool of workers, which create files, symlinks, device nodes and
// FIFOs in parallel. The queue is bounded, so memory stays bounded whatever
// the snapshot's size: the walker holds the trees of the path it is on, each
// worker one file's reads (at most maxRange bytes of a pack at a time), the
// process decodes one chunk per core at most (repo.LoadBlobs), and two
// byte-bounded caches hold tree blobs and the chunks of one-chunk files
// (single-flight, so files sharing a chunk load it once).
//
// A file's chunks are written with pwrite at their offsets, as they are
// decoded. They are loaded with Repository.LoadBlobs, which fetches runs
// of chunks that lie close together in one pack with one ranged load. A
// chunk of zeros is never written: Repository.IsZeroChunk knows it by id
// and length (so it is not even loaded), and a loaded chunk that turns out
// to be zeros is skipped as well; the file is then truncated to its
// recorded size, so holes of the source are holes again. Every blob is
// verified on load.
//
// Metadata is applied after content, in the order that makes it stick:
// owner (by user and group name when this system knows them, unless
// NumericOwner, else by the recorded ids), then mode (chown clears setuid
// and setgid), then extended attributes, then atime and mtime with
// nanoseconds (ctime cannot be set). A directory gets its metadata only
// after everything inside it is done, which reference counts on directories
// arrange: the mtime of a directory would move with each entry created in
// it. Owners that cannot be set because the restore does not run as root
// are left as they are, silently, like tar does.
//
// Hard links: entries with Links > 1 and the same (Device, Inode) are one
// file. The first of them in walk order restores the content; the others
// wait until it is complete and are linked to it with linkat, relative to
// its directory (reopened from the target, one component at a time and
// refusing symlinks, if that directory is already finished). A name whose
// first name failed fails too.
//
// Sockets are not restored (a socket file without its process is useless)
// and not reported.
//
// # What is already in the target
//
// An existing directory where the snapshot has one is reused. Any other
// existing entry in the way of a snapshot entry is removed first and then
// created anew: a regular file is never truncated in place (it may be a hard
// link to a file outside the restore), and a symlink is replaced, never
// followed. An existing directory where the snapshot has a non-directory is
// removed only when empty; otherwise that entry fails.
//
// # Security (DESIGN.md §8)
//
// The target itself is resolved one component at a time from the root (or
// the working directory) by descriptors, because root restores into paths
// that other users can change: a symlink on the way is followed only if
// it is owned by root or by the effective user, like the kernel's
// fs.protected_symlinks; any other fails the restore before anything is
// created, with a SymlinkError naming the link, its owner and what it
// points to. A symlink's owner and contents are read through one
// descriptor of the link, and each step opens with O_NOFOLLOW from the
// directory reached so far, so a component swapped after its check is
// never followed. Missing directories of the target are created (mode
// 0700) only once the whole path is resolved.
//
// Everything is created relative to directory descriptors the restorer
// opened itself (openat, mkdirat, symlinkat, mknodat, linkat), and every
// directory is opened with O_NOFOLLOW|O_DIRECTORY, so no symlink, whether
// it is in the snapshot or was in the target before, leads out of the
// target. Directories created by the restore stay mode 0700 until their own
// metadata is applied. Entries whose name fails repo.ValidName are
// rejected (a tree that holds one fails to decode as a whole and that
// directory is reported).
//
// # Errors
//
// Restore returns an error only for what stops the whole restore: an
// include names nothing in the snapshot (an *IncludeError, found before
// anything is created, so a typo leaves no empty directories behind), the
// target cannot be created, the root tree cannot be read, or ctx is done.
// Everything else is reported to Options.OnError with the entry's path
// inside the snapshot (e.g. "/home/alice/a.txt") and counted in
// Result.Errors; the restore goes on. A file whose data cannot be read
// (a missing or damaged blob) is removed again, so that nothing silently
// partial stays behind.
//
// # Concurrency
//
// The walker alone touches the hard-link table;
// workers touch only their job. Directory reference counts are atomic and
// whichever goroutine drops the last reference applies that directory's
// metadata and closes it. OnError calls are serialised; Progress is called
// from one goroutine at a time.
package restorer
