// Package archiver backs up paths of the local filesystem into a
// repository: it walks the sources, reads and chunks files on a pool of
// workers (chunking, hashing, compressing and sealing run in the workers,
// so they scale with cores), saves tree blobs bottom-up, and writes the
// snapshot record last, after Flush has stored everything it references.
//
// Files unchanged since the parent snapshot (same type, size, mtime, ctime
// and inode) are not read again: their chunk lists are taken from the
// parent's trees. A file that cannot be read, vanishes, or changes while
// it is read is reported through Options.OnError and counted in the
// summary; the backup goes on.
package archiver
