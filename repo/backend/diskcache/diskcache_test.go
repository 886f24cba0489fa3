package diskcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/backendtest"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// counting counts loads that reach the inner backend.
type counting struct {
	backend.Backend
	loads int
}

func (c *counting) Load(ctx context.Context, h backend.Handle, off int64, n int) ([]byte, error) {
	c.loads++
	return c.Backend.Load(ctx, h, off, n)
}

func name(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return New(mem.New(), t.TempDir()) })
}

func TestServesVerifiedCopies(t *testing.T) {
	ctx := context.Background()
	inner := &counting{Backend: mem.New()}
	dir := t.TempDir()
	data := []byte("an index file")
	h := backend.Handle{Type: backend.IndexFile, Name: name(data)}
	if err := inner.Backend.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	b := New(inner, dir)
	for range 3 {
		got, err := b.Load(ctx, h, 0, 0)
		if err != nil || string(got) != string(data) {
			t.Fatalf("load: %q %v", got, err)
		}
	}
	if inner.loads != 1 {
		t.Fatalf("%d remote loads, want 1", inner.loads)
	}
	// A damaged copy is noticed and replaced.
	os.WriteFile(filepath.Join(dir, "index", h.Name), []byte("tampered"), 0o600)
	got, err := b.Load(ctx, h, 0, 0)
	if err != nil || string(got) != string(data) || inner.loads != 2 {
		t.Fatalf("damaged copy served: %q %v (%d loads)", got, err, inner.loads)
	}
	// Packs are never cached.
	ph := backend.Handle{Type: backend.PackFile, Name: name([]byte("pack"))}
	inner.Backend.Save(ctx, ph, []byte("pack"))
	b.Load(ctx, ph, 0, 0)
	b.Load(ctx, ph, 0, 0)
	if inner.loads != 4 {
		t.Fatalf("pack loads %d, want 4", inner.loads)
	}
	// A listing drops what the remote no longer has (removed by another
	// host), and keeps what it lists.
	kept := backend.Handle{Type: backend.IndexFile, Name: name([]byte("kept"))}
	if err := b.Save(ctx, kept, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	inner.Backend.Remove(ctx, h)
	var listed []string
	if err := b.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error {
		listed = append(listed, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != kept.Name {
		t.Fatalf("listed %v, want only %s", listed, kept.Name)
	}
	if _, err := os.Stat(filepath.Join(dir, "index", h.Name)); !os.IsNotExist(err) {
		t.Fatal("the copy of an object removed remotely is still cached after a listing")
	}
	if _, err := os.Stat(filepath.Join(dir, "index", kept.Name)); err != nil {
		t.Fatalf("the copy of a listed object was dropped: %v", err)
	}
}
