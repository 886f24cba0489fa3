package maint_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/maint"
)

// errCrash stands for the process dying.
var errCrash = errors.New("crashed")

// crashing lets the first n writes and removals through and fails every
// one after, as if the process had been killed there.
type crashing struct {
	backend.Backend
	mu  sync.Mutex
	n   int // writes and removals still allowed; -1: no limit
	ops int
}

func (c *crashing) allow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops++
	if c.n < 0 {
		return true
	}
	if c.n == 0 {
		return false
	}
	c.n--
	return true
}

func (c *crashing) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if !c.allow() {
		return errCrash
	}
	return c.Backend.Save(ctx, h, data)
}

func (c *crashing) Remove(ctx context.Context, h backend.Handle) error {
	if !c.allow() {
		return errCrash
	}
	return c.Backend.Remove(ctx, h)
}

// A prune that stops after any number of its writes and removals leaves a
// repository that checks without errors and whose snapshots load whole,
// and the next prunes finish the work.
func TestPruneCrashAnywhere(t *testing.T) {
	// The prune under test deletes the two packs an earlier prune marked
	// (snap-2's own), marks snap-1's dead packs, compacts the index,
	// rewrites the marks and repacks the sparse packs that hold the little
	// of snap-1 that snap-3 keeps (/etc).
	setup := func() (*fixture, []repo.ID) {
		f := newFixture(t)
		f.forget(f.snap2)
		f.prune(maint.PruneOptions{})
		f.forget(f.snap1)
		etc := f.tree(file("hosts", f.data([]byte("127.0.0.1 localhost\n"))))
		f.flush()
		f.snapshot("snap-3", f.tree(dir("etc", etc)))
		f.flush()
		return f, f.reachable()
	}
	opts := maint.PruneOptions{RepackBelow: 0.9}
	run := func(f *fixture, n int) (int, error) {
		be, err := local.Open(f.root)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		cb := &crashing{Backend: be, n: n}
		r, err := repo.Open(t.Context(), cb, "secret")
		if err != nil {
			t.Fatal(err)
		}
		_, err = maint.Prune(t.Context(), r, opts)
		return cb.ops, err
	}

	f, _ := setup()
	total, err := run(f, -1)
	if err != nil {
		t.Fatal(err)
	}
	if total < 10 {
		t.Fatalf("the prune under test made only %d writes and removals", total)
	}
	for n := range total {
		f, want := setup()
		if _, err := run(f, n); !errors.Is(err, errCrash) {
			t.Fatalf("crash after %d of %d: prune returned %v", n, total, err)
		}
		if res := f.check(maint.CheckOptions{ReadData: true}); res.Errors != 0 {
			t.Fatalf("crash after %d of %d: check: %+v", n, total, res)
		}
		if got := f.reachable(); !slices.Equal(got, want) {
			t.Fatalf("crash after %d of %d: reachable blobs changed", n, total)
		}
		f.prune(opts)
		f.prune(opts)
		if res := f.check(maint.CheckOptions{ReadData: true}); res.Errors != 0 || res.Warnings != 0 {
			t.Fatalf("crash after %d of %d, then two prunes: check: %+v", n, total, res)
		}
		if got := f.reachable(); !slices.Equal(got, want) {
			t.Fatalf("crash after %d of %d, then two prunes: reachable blobs changed", n, total)
		}
	}
	t.Logf("crashed after each of %d writes and removals", total)
}
