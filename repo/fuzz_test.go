package repo

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// The decoders of everything read from storage must reject garbage with
// an error, never panic, and accept what the encoders write.

func FuzzDecodeTree(f *testing.F) {
	sub := Hash([]byte("sub"))
	good, _ := EncodeTree(&Tree{Nodes: []*Node{
		{Name: "a\xff", Type: NodeFile, Content: []ID{Hash([]byte("x"))}, MTime: time.Unix(1, 2)},
		{Name: "d", Type: NodeDir, Subtree: &sub, Xattrs: []Xattr{{Name: "user.x", Value: []byte{1}}}},
	}})
	f.Add(good)
	f.Add([]byte(`{"nodes":[{"name":"..","type":"file"}]}`))
	f.Add([]byte(`{"nodes":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTree(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes, and is safe to restore.
		for _, n := range tr.Nodes {
			if ValidName(n.Name) != nil {
				t.Fatalf("decoded invalid name %q", n.Name)
			}
		}
		if _, err := EncodeTree(tr); err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex([]IndexPack{{ID: Hash([]byte("p")), Blobs: []PackBlob{{Type: DataBlob, ID: Hash([]byte("b")), Offset: 0, Length: 40, RawLength: 12}}}}))
	f.Add([]byte("CIDX\x01\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		packs, err := decodeIndex(data)
		if err != nil {
			return
		}
		if again := encodeIndex(packs); !bytes.Equal(again, data) {
			t.Fatalf("index does not round-trip")
		}
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	f.Add(encodePackHeader([]PackBlob{{Type: TreeBlob, ID: Hash([]byte("t")), Length: 100, RawLength: 50}}), int64(100))
	f.Add([]byte{1, 2, 0, 0, 0, 0}, int64(5))
	f.Fuzz(func(t *testing.T, data []byte, dataLen int64) {
		blobs, err := decodePackHeader(data, dataLen)
		if err != nil {
			return
		}
		var end int64
		for _, b := range blobs {
			if int64(b.Offset) != end {
				t.Fatalf("offsets not contiguous")
			}
			end += int64(b.Length)
		}
		if end != dataLen {
			t.Fatalf("header covers %d of %d bytes", end, dataLen)
		}
	})
}

// FuzzOpenConfig feeds arbitrary config objects to Open.
func FuzzOpenConfig(f *testing.F) {
	be := mem.New()
	if _, err := Init(context.Background(), be, "pw", InitOptions{KDF: TestKDF}); err != nil {
		f.Fatal(err)
	}
	good, _ := be.Load(context.Background(), backend.Handle{Type: backend.ConfigFile}, 0, 0)
	f.Add(good)
	f.Add([]byte(`{"format":"cairn","version":99}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := mem.New()
		ctx := context.Background()
		b.Create(ctx)
		b.Save(ctx, backend.Handle{Type: backend.ConfigFile}, data)
		be.List(ctx, backend.KeyFile, func(fi backend.FileInfo) error {
			k, _ := be.Load(ctx, backend.Handle{Type: backend.KeyFile, Name: fi.Name}, 0, 0)
			return b.Save(ctx, backend.Handle{Type: backend.KeyFile, Name: fi.Name}, k)
		})
		Open(ctx, b, "pw") // must not panic
	})
}
