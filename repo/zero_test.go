package repo_test

import (
	"testing"

	"github.com/cairn-backup/cairn/repo"
)

// The all-zero chunk rule: ids of zeros for every length, recognised
// without hashing for the lengths zero chunks have, and for any other
// length once it was met.
func TestZeroChunks(t *testing.T) {
	r, _ := newRepo(t)
	cp := r.Settings().Chunker
	for _, n := range []int{1, 4096, 100 << 10, cp.Min, cp.Max, 123457} {
		if got, want := repo.ZeroID(n), repo.Hash(make([]byte, n)); got != want {
			t.Errorf("ZeroID(%d) = %s, want %s", n, got.Short(), want.Short())
		}
		z := repo.Zeros(n)
		if len(z) != n || !repo.IsZero(z) {
			t.Errorf("Zeros(%d) has %d bytes, zero %v", n, len(z), repo.IsZero(z))
		}
	}
	for _, n := range []uint32{4096, 3 * 4096, uint32(cp.Min), uint32(cp.Max)} {
		if !r.IsZeroChunk(repo.Hash(make([]byte, n)), n) {
			t.Errorf("zero chunk of %d bytes not recognised", n)
		}
		if r.IsZeroChunk(repo.Hash([]byte("data")), n) {
			t.Errorf("data taken for a zero chunk of %d bytes", n)
		}
	}
	const odd = 98765
	id := repo.Hash(make([]byte, odd))
	if r.IsZeroChunk(id, odd) {
		t.Errorf("zeros of an odd length recognised before that length was met")
	}
	repo.ZeroID(odd)
	if !r.IsZeroChunk(id, odd) {
		t.Errorf("zeros of an odd length not recognised once met")
	}
	if b := append(make([]byte, 70<<10), 1); repo.IsZero(b) {
		t.Errorf("IsZero missed a byte past the first page")
	}
}
