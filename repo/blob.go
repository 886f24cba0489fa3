package repo

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// BlobType tells data chunks from tree blobs.
type BlobType uint8

// Blob types, as stored in pack headers and index files.
const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// A blob's sealed plaintext starts with one byte saying how the rest is
// stored.
const (
	blobRaw  = 0
	blobZstd = 1
)

var (
	encoderPool = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err)
		}
		return e
	}}
	decoder = func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<32))
		if err != nil {
			panic(err)
		}
		return d
	}()
)

// innerBlob returns what a blob seals: the marker byte, then zstd or raw
// data, built in scratch (grown if needed).
func (r *Repository) innerBlob(plain, scratch []byte) []byte {
	if r.settings.Compression == "zstd" && compressible(plain) {
		enc := encoderPool.Get().(*zstd.Encoder)
		buf := enc.EncodeAll(plain, append(scratch[:0], blobZstd))
		encoderPool.Put(enc)
		if len(buf) < len(plain)+1 {
			return buf
		}
		scratch = buf
	}
	buf := append(scratch[:0], blobRaw)
	return append(buf, plain...)
}

// compressible guesses from a sample whether compressing plain is worth
// it: random and already compressed data (media, archives) would cost a
// full zstd pass at the default level for nothing.
func compressible(plain []byte) bool {
	const sample = 16 << 10
	if len(plain) < 8*sample {
		return true
	}
	probe := probePool.Get().(*[]byte)
	defer probePool.Put(probe)
	enc := fastPool.Get().(*zstd.Encoder)
	out := enc.EncodeAll(plain[len(plain)/2:len(plain)/2+sample], (*probe)[:0])
	fastPool.Put(enc)
	*probe = out[:0]
	return len(out) < sample*15/16
}

var (
	fastPool = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err)
		}
		return e
	}}
	probePool = sync.Pool{New: func() any { b := make([]byte, 0, 20<<10); return &b }}
)

// scratchPool holds buffers for innerBlob.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// decodeBlob opens a stored blob and checks it against id.
func (r *Repository) decodeBlob(stored []byte, id ID, rawLen int) ([]byte, error) {
	inner, err := r.data.open(nil, stored, kindBlob)
	if err != nil {
		return nil, err
	}
	if len(inner) == 0 {
		return nil, fmt.Errorf("empty blob")
	}
	var plain []byte
	switch inner[0] {
	case blobRaw:
		plain = inner[1:]
	case blobZstd:
		plain, err = decoder.DecodeAll(inner[1:], make([]byte, 0, rawLen))
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown blob encoding %d", inner[0])
	}
	if Hash(plain) != id {
		return nil, fmt.Errorf("content does not match its id")
	}
	return plain, nil
}
