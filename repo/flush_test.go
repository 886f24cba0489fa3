package repo_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// failingPacks wraps a backend and fails pack saves while fail is set.
type failingPacks struct {
	backend.Backend
	fail atomic.Bool
}

var errPackRefused = errors.New("pack refused")

func (f *failingPacks) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if h.Type == backend.PackFile && f.fail.Load() {
		return errPackRefused
	}
	return f.Backend.Save(ctx, h, data)
}

// Two callers save into one repository; an upload holding a blob of
// both fails. The error reaches both, not only the one whose Flush
// happened to collect it, and the blob is stored again by a later save.
func TestFlushSinceReportsFailuresToEveryCaller(t *testing.T) {
	ctx := context.Background()
	be := &failingPacks{Backend: mem.New()}
	r, err := repo.Init(ctx, be, "secret", repo.InitOptions{KDF: repo.TestKDF, PackSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	markA, markB := r.SaveMark(), r.SaveMark()
	data := randBytes(1, 1000)
	id := repo.Hash(data)
	if known, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil || known {
		t.Fatalf("first save: known %v, err %v", known, err)
	}
	// B deduplicates against A's pending blob.
	if known, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil || !known {
		t.Fatalf("second save: known %v, err %v; want a pending blob to count as known", known, err)
	}
	be.fail.Store(true)
	if err := r.FlushSince(ctx, markA); !errors.Is(err, errPackRefused) {
		t.Fatalf("A's flush: %v, want %v", err, errPackRefused)
	}
	if err := r.FlushSince(ctx, markB); !errors.Is(err, errPackRefused) {
		t.Fatalf("B's flush: %v, want the failure A's flush collected", err)
	}
	be.fail.Store(false)
	markC := r.SaveMark()
	if known, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil || known {
		t.Fatalf("save after the failure: known %v, err %v; want the blob stored again", known, err)
	}
	if err := r.FlushSince(ctx, markC); err != nil {
		t.Fatal(err)
	}
	if !r.HasBlob(id) {
		t.Fatal("blob not indexed after a successful flush")
	}
	got, err := r.LoadBlob(ctx, repo.DataBlob, id)
	if err != nil || string(got) != string(data) {
		t.Fatalf("load: %v", err)
	}
}

// One encoding serves two repositories: each stores and reads the blob.
func TestSaveEncodedIntoTwoRepositories(t *testing.T) {
	ctx := context.Background()
	a, _ := newRepo(t)
	b, _ := newRepo(t)
	data := bytes.Repeat([]byte("compressible "), 10000)
	id := repo.Hash(data)
	enc := a.EncodeBlob(data, nil)
	for _, r := range []*repo.Repository{a, b} {
		if known, err := r.SaveEncoded(ctx, repo.DataBlob, id, enc); err != nil || known {
			t.Fatalf("save: known %v, err %v", known, err)
		}
		if known, err := r.SaveEncoded(ctx, repo.DataBlob, id, enc); err != nil || !known {
			t.Fatalf("second save: known %v, err %v", known, err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := r.LoadBlob(ctx, repo.DataBlob, id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("load: %v", err)
		}
	}
}
