package repo_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/repo"
)

// TestConcurrentSavesStoreABlobOnce: goroutines saving the same blobs
// while packs fill and upload (so blobs move from pending to the index
// under them) store each blob once: exactly one save of it reports it new.
func TestConcurrentSavesStoreABlobOnce(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t) // 64 KiB packs: many uploads
	const blobs, savers = 300, 4
	data := make([][]byte, blobs)
	for i := range data {
		data[i] = randBytes(uint64(i), 8<<10)
	}
	var mu sync.Mutex
	stored := make(map[repo.ID]int)
	var wg sync.WaitGroup
	for s := range savers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range data {
				b := data[(k+s*blobs/savers)%blobs] // each saver starts elsewhere
				id := repo.Hash(b)
				known, err := r.SaveBlob(ctx, repo.DataBlob, id, b)
				if err != nil {
					t.Error(err)
					return
				}
				if !known {
					mu.Lock()
					stored[id]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("blob %v stored %d times", id.Short(), n)
		}
	}
	if len(stored) != blobs {
		t.Errorf("%d blobs stored, want %d", len(stored), blobs)
	}
}
