// Package chunker splits byte streams into content-defined chunks with
// FastCDC (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
// Chunking Approach for Data Deduplication", USENIX ATC 2016, and the
// extended version in IEEE TPDS 2020): a gear rolling hash, the first Min
// bytes of every chunk skipped without hashing, and normalized chunking with
// two masks. It owns only the boundary function and the streaming buffer;
// hashing, compressing and storing the chunks belong to package repo.
//
// The boundaries are part of the repository format (docs/FORMAT.md copies
// this comment): two repositories with the same seed and Params cut every
// input at exactly the same places, which is what lets a new repository
// reuse another's seed so that deduplication carries over between them.
// The golden test in chunker_test.go guards the definition below; changing
// any of it is a format change.
//
// # Gear table
//
// Each repository has a 32-byte random seed. Its gear table is 256 unsigned
// 64-bit integers; for i = 0, 1, …, 255:
//
//	gear[i] = uint64 little endian of the first 8 bytes of SHA-256(seed || byte(i))
//
// that is, the SHA-256 digest of the 33-byte message made of the 32 seed
// bytes followed by the single byte i, of which digest bytes 0..7 are read
// as a little-endian integer (digest byte 0 is the least significant).
//
// # Masks
//
// Params.Avg is a power of two, Avg = 2^b. Normalized chunking uses level 2
// of the paper: a hard mask with b+2 one bits before the normal size (Avg)
// and an easy mask with b-2 one bits from there on. Both masks are runs of
// one bits whose highest bit is bit 62 (bit 63 is never used, which lets an
// implementation roll two bytes at a time with masks shifted left by one):
//
//	maskS = (2^(b+2) - 1) << (61 - b)   // bits 62 down to 61-b
//	maskL = (2^(b-2) - 1) << (65 - b)   // bits 62 down to 65-b
//
// The gear hash shifts left, so its high bits depend on the most bytes (bit
// k depends on the last k+1 bytes); masking high bits gives each test a
// window of more than 40 bytes with the default parameters.
//
// # Boundary function
//
// Let data be the rest of the stream (everything after the previous
// boundary) and n = min(len(data), Max). If n <= Min the chunk is data[:n].
// Otherwise, with all arithmetic modulo 2^64:
//
//	fp = 0
//	for i = Min; i < n; i++:
//	    fp = (fp << 1) + gear[data[i]]
//	    mask = maskS if i < Avg else maskL
//	    if fp & mask == 0: the chunk is data[:i+1]; stop
//	if no boundary was found, the chunk is data[:n]
//
// So the byte that completes a matching hash is the last byte of its chunk,
// the hash restarts from zero at offset Min of every chunk, a chunk is never
// longer than Max, and only the last chunk of a stream may be shorter than
// Min (it is shorter than Min only when fewer than Min bytes remain).
//
// With the default parameters (Min = Avg/2, Max = 8·Avg) the mean chunk
// length on random data is about 1.19·Avg: Min + E[length beyond Min] under
// the two probabilities 2^-(b+2) and 2^-(b-2). A run of one repeated byte
// value drives the hash to a constant (the fixed point -gear[v]), so such a
// run is cut into Max-long chunks, except for the rare seed where that
// constant happens to match a mask.
//
// # Streaming
//
// A Chunker holds one buffer of Max bytes plus a read block (1 MiB, or Max
// when that is smaller), reads it with io.ReadFull semantics, hashes every
// byte at most once even when a chunk straddles a refill, and moves only a
// chunk's unconsumed prefix to the front of the buffer when the block no
// longer fits. Chunks are returned as slices of that buffer, so a Chunker is
// meant to be reused (Reset) by one goroutine; a Table is read-only and
// shared by all of a repository's chunkers.
//
// A Multi splits one stream for several tables at once (a backup into
// repositories of different seeds reads each source byte once): all its
// splitters cut in one buffer of the largest Max plus a block, each finding
// the boundaries a Chunker with its table finds, and the buffer is refilled
// only when none of them can cut another chunk from it.
package chunker
