package restorer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/restorer"
)

// countingLoads counts the loads of pack data.
type countingLoads struct {
	backend.Backend
	n atomic.Int64
}

func (c *countingLoads) Load(ctx context.Context, h backend.Handle, off int64, length int) ([]byte, error) {
	if h.Type == backend.PackFile {
		c.n.Add(1)
	}
	return c.Backend.Load(ctx, h, off, length)
}

// TestWindowedRestore restores many small files, as from remote storage:
// identical content with far fewer requests than files.
func TestWindowedRestore(t *testing.T) {
	b := newBuilder(t)
	var files []*restoreFile
	var nodes []*repo.Node
	for i := range 200 {
		data := b.random(100 + i*37)
		nodes = append(nodes, b.file(fmt.Sprintf("f%03d", i), data, 1<<20))
		files = append(files, &restoreFile{name: fmt.Sprintf("f%03d", i), data: data})
	}
	big := b.random(3 << 20)
	nodes = append(nodes, b.file("big", big, 256<<10))
	snap := b.snapshot(b.dir("d", nodes...))

	for _, window := range []int{0, 64 << 10} {
		t.Run(fmt.Sprint("window=", window), func(t *testing.T) {
			cnt := &countingLoads{Backend: b.r.Backend()}
			r := reopen(t, b, cnt)
			target := t.TempDir()
			var e errs
			if _, err := restorer.Restore(context.Background(), r, snap, target, restorer.Options{Window: window, OnError: e.add}); err != nil {
				t.Fatal(err)
			}
			if got := e.get(); len(got) > 0 {
				t.Fatal(got)
			}
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(target, "d", f.name))
				if err != nil || !bytes.Equal(got, f.data) {
					t.Fatalf("%s differs (%v)", f.name, err)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(target, "d", "big")); !bytes.Equal(got, big) {
				t.Fatal("big differs")
			}
			if window > 0 && cnt.n.Load() > 80 {
				t.Fatalf("%d pack loads for 201 files with windows", cnt.n.Load())
			}
			t.Logf("window %d: %d pack loads", window, cnt.n.Load())
		})
	}
}

// reopen opens b's repository through be, index loaded.
func reopen(t *testing.T, b *builder, be backend.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

type restoreFile struct {
	name string
	data []byte
}
