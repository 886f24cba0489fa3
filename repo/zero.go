package repo

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// Chunks of zeros. The archiver stores a sparse file's holes as chunks of
// zero bytes: a hole is cut at the chunker's maximum size, and what
// remains is, like the hole, a multiple of the block size. Runs of zeros
// inside data are cut at the chunker's minimum or maximum size. Readers
// know such a chunk by its id and length without loading it: the mount
// reads it as zeros and counts it as a hole, restore leaves a hole.

// zeroBlock is the block size holes are made of (that of the common
// filesystems; a hole of another filesystem is found all the same, by
// the restorer after loading it).
const zeroBlock = 4096

// maxZeroIDs bounds the lengths whose zero ids are kept.
const maxZeroIDs = 4096

var (
	zeroIDs   sync.Map // uint32 length → ID of that many zero bytes
	zeroCount atomic.Int32

	zeroBuf atomic.Pointer[[]byte] // the longest zero slice handed out yet
	zeroMu  sync.Mutex             // serialises growing zeroBuf
)

// zeroPage is a read-only page of zeros for hashing and comparing.
var zeroPage [64 << 10]byte

// ZeroID returns the id of n zero bytes. It is computed once per length
// (without allocating n bytes) and remembered, so IsZeroChunk knows that
// length from then on.
func ZeroID(n int) ID {
	if z, ok := zeroIDs.Load(uint32(n)); ok {
		return z.(ID)
	}
	h := sha256.New()
	for left := n; left > 0; {
		k := min(left, len(zeroPage))
		h.Write(zeroPage[:k])
		left -= k
	}
	var id ID
	h.Sum(id[:0])
	if zeroCount.Load() < maxZeroIDs {
		if _, loaded := zeroIDs.LoadOrStore(uint32(n), id); !loaded {
			zeroCount.Add(1)
		}
	}
	return id
}

// IsZeroChunk reports whether the chunk id of n bytes is all zeros. It
// hashes (once per length) only for the lengths zero chunks have: a
// multiple of the block size, the repository's minimum or maximum chunk
// size, or a length that ZeroID was asked about before.
func (r *Repository) IsZeroChunk(id ID, n uint32) bool {
	if z, ok := zeroIDs.Load(n); ok {
		return z.(ID) == id
	}
	cp := r.settings.Chunker
	if n == 0 || (n%zeroBlock != 0 && int(n) != cp.Min && int(n) != cp.Max) {
		return false
	}
	return ZeroID(int(n)) == id
}

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:k], zeroPage[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// Zeros returns n zero bytes. The slice is shared: read-only.
func Zeros(n int) []byte {
	if n <= len(zeroPage) {
		return zeroPage[:n]
	}
	if b := zeroBuf.Load(); b != nil && len(*b) >= n {
		return (*b)[:n]
	}
	zeroMu.Lock()
	defer zeroMu.Unlock()
	if b := zeroBuf.Load(); b != nil && len(*b) >= n {
		return (*b)[:n]
	}
	b := make([]byte, n)
	zeroBuf.Store(&b)
	return b
}
