package maint_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/maint"
)

// lockRetry takes a lock, trying again while a rival holds a conflicting
// one.
func lockRetry(ctx context.Context, t *testing.T, r *repo.Repository, exclusive bool) *repo.Lock {
	for {
		l, err := r.Lock(ctx, exclusive, repo.LockOptions{})
		if err == nil {
			return l
		}
		if !errors.Is(err, repo.ErrLocked) {
			t.Error(err)
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// Backups from long-lived processes (each keeps its repository open and
// its index in memory across runs, as a mount does) and forget+prune
// rounds from other processes run at once, with no grace period: only the
// locks and the reloading of the index keep them apart. Data that comes
// and goes (the same chunks reappear in later backups after the snapshots
// that held them were forgotten and their packs deleted) must never be
// lost: at the end every snapshot loads whole and check is clean.
func TestPruneConcurrentWithBackups(t *testing.T) {
	ctx := t.Context()
	root := filepath.Join(t.TempDir(), "repo")
	open := func() *repo.Repository {
		be, err := local.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		r, err := repo.Open(ctx, be, "secret")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	be, err := local.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if _, err := repo.Init(ctx, be, "secret", repo.InitOptions{KDF: repo.TestKDF, PackSize: 32 << 10}); err != nil {
		t.Fatal(err)
	}
	chunks := make([][]byte, 12)
	for i := range chunks {
		chunks[i] = randBytes(uint64(500+i), 6<<10)
	}

	const backupers, runs, prunes = 3, 12, 8
	var wg sync.WaitGroup
	for g := range backupers {
		wg.Go(func() {
			r := open()
			for i := range runs {
				l := lockRetry(ctx, t, r, false)
				if l == nil {
					return
				}
				lctx := l.Context()
				err := r.LoadIndex(lctx)
				var nodes []*repo.Node
				for j := range 3 {
					if err != nil {
						break
					}
					c := chunks[(g+i+j*5)%len(chunks)]
					u := randBytes(uint64(10000*g+100*i+j), 3<<10)
					ids := []repo.ID{repo.Hash(c), repo.Hash(u)}
					for k, data := range [][]byte{c, u} {
						if _, err = r.SaveBlob(lctx, repo.DataBlob, ids[k], data); err != nil {
							break
						}
					}
					nodes = append(nodes, file(fmt.Sprintf("f%d", j), ids...))
				}
				var tree repo.ID
				if err == nil {
					tree, err = r.SaveTree(lctx, &repo.Tree{Nodes: nodes})
				}
				if err == nil {
					err = r.Flush(lctx)
				}
				if err == nil {
					_, err = r.SaveSnapshot(lctx, &repo.Snapshot{Label: fmt.Sprintf("g%d-%02d", g, i), Time: time.Now(), Host: "h", Paths: []string{"/x"}, Tree: tree})
				}
				l.Unlock(ctx)
				if err != nil {
					t.Errorf("backup g%d-%02d: %v", g, i, err)
					return
				}
			}
		})
	}
	deleted, unmarked := 0, 0
	wg.Go(func() {
		for range prunes {
			r := open()
			l := lockRetry(ctx, t, r, true)
			if l == nil {
				return
			}
			snaps, err := r.Snapshots(l.Context())
			if err == nil && len(snaps) > 3 {
				err = maint.Forget(l.Context(), r, snaps[:len(snaps)-3])
			}
			if err == nil {
				var res *maint.PruneResult
				if res, err = maint.Prune(l.Context(), r, maint.PruneOptions{Grace: 0, RepackBelow: 0.5}); err == nil {
					deleted += res.Deleted
					unmarked += res.Unmarked
				}
			}
			l.Unlock(ctx)
			if err != nil {
				t.Errorf("prune: %v", err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("prunes deleted %d packs; %d marked packs were referenced again", deleted, unmarked)
	if deleted == 0 {
		t.Fatal("the prunes deleted nothing: the test tests nothing")
	}

	f := &fixture{t: t, root: root, r: open()}
	if err := f.r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.reachable()) == 0 {
		t.Fatal("nothing left")
	}
	if res := f.check(maint.CheckOptions{ReadData: true}); res.Errors != 0 {
		t.Fatalf("check: %+v", res)
	}
	// Two more prunes finish the work: nothing unreferenced is left.
	f.prune(maint.PruneOptions{RepackBelow: 0.5})
	f.prune(maint.PruneOptions{RepackBelow: 0.5})
	if res := f.check(maint.CheckOptions{ReadData: true}); res.Errors != 0 || res.Warnings != 0 {
		t.Fatalf("check after the last prunes: %+v", res)
	}
	f.reachable()
}
