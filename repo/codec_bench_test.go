package repo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The per-chunk costs of a backup and of a read, one stage at a time, on
// a 1 MiB chunk (about the chunker's average): hashing, compression
// (compressible text and random data, which the probe sends through
// raw), sealing, and the whole decode of a stored blob. MB/s counts
// plaintext bytes.

const benchChunk = 1 << 20

// benchData returns a chunk of random bytes and one of log-like text.
func benchData() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, benchChunk)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text bytes.Buffer
	for i := 0; text.Len() < benchChunk; i++ {
		fmt.Fprintf(&text, "%012d level=%d took=%.4fms id=%08x backup restore snapshot\n", i, rng.IntN(5), rng.Float64()*100, rng.Uint32())
	}
	return map[string][]byte{"random": random, "text": text.Bytes()[:benchChunk]}
}

func benchRepository(b *testing.B) *Repository {
	b.Helper()
	s, err := newSealer(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	return &Repository{settings: Settings{Compression: "zstd"}, data: s}
}

func BenchmarkHash(b *testing.B) {
	data := benchData()["random"]
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Hash(data)
	}
}

func BenchmarkCompress(b *testing.B) {
	r := benchRepository(b)
	chunks := benchData()
	for _, name := range []string{"text", "random"} {
		data := chunks[name]
		b.Run(name, func(b *testing.B) {
			var scratch []byte
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				scratch = r.innerBlob(data, scratch)
			}
			b.ReportMetric(float64(len(scratch))/float64(len(data)), "ratio")
		})
	}
}

func BenchmarkSeal(b *testing.B) {
	r := benchRepository(b)
	data := benchData()["random"]
	dst := make([]byte, 0, len(data)+Overhead)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.data.seal(dst[:0], data, kindBlob)
	}
}

// BenchmarkDecodeBlob is what a restore or a read through the mount pays
// per blob once it has the bytes: open, decompress, verify the hash.
func BenchmarkDecodeBlob(b *testing.B) {
	r := benchRepository(b)
	chunks := benchData()
	for _, name := range []string{"text", "random"} {
		data := chunks[name]
		stored := r.data.seal(nil, r.innerBlob(data, nil), kindBlob)
		id := Hash(data)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := r.decodeBlob(stored, id, len(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
