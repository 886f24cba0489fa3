package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// store is a repository on a mem backend, behind a faulty one that
// injects nothing until told to, and a Source that counts its opens.
type store struct {
	mem    *mem.Backend
	be     *faulty.Backend
	opens  atomic.Int32
	closed atomic.Bool
}

func newStore(t *testing.T) *store {
	t.Helper()
	s := &store{mem: mem.New()}
	s.be = faulty.New(s.mem, faulty.Options{Only: []string{faulty.OpSave}})
	if _, err := repo.Init(t.Context(), s.mem, "pw", repo.InitOptions{KDF: repo.TestKDF}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *store) source(key string) Source {
	return Source{Key: key, Open: func(ctx context.Context) (*repo.Repository, error) {
		s.opens.Add(1)
		time.Sleep(10 * time.Millisecond) // let concurrent callers pile up
		return repo.Open(ctx, closeNoter{s.be, &s.closed}, "pw")
	}}
}

type closeNoter struct {
	backend.Backend
	closed *atomic.Bool
}

// Close notes the call and leaves the store open, for the test to look.
func (c closeNoter) Close() error { c.closed.Store(true); return nil }

// locks lists the lock objects in the store.
func (s *store) locks(t *testing.T) []string {
	t.Helper()
	var names []string
	err := s.mem.List(context.Background(), backend.LockFile, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestGetSharesOneRepositoryPerKey(t *testing.T) {
	ctx := t.Context()
	a, b := newStore(t), newStore(t)
	p := New()
	defer p.Close(ctx)
	got := make([]*repo.Repository, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			e, err := p.Get(ctx, a.source("/a"))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = e.Repo()
		})
	}
	wg.Wait()
	for _, r := range got[1:] {
		if r != got[0] {
			t.Fatal("one key gave two repositories")
		}
	}
	if n := a.opens.Load(); n != 1 {
		t.Fatalf("opened %d times", n)
	}
	eb, err := p.Get(ctx, b.source("/b"))
	if err != nil {
		t.Fatal(err)
	}
	if eb.Repo() == got[0] {
		t.Fatal("two keys share a repository")
	}
	if locks := a.locks(t); len(locks) != 0 {
		t.Fatalf("an open repository holds locks %v", locks)
	}
}

func TestGetRetriesAFailedOpen(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	p := New()
	defer p.Close(ctx)
	fail := Source{Key: "/s", Open: func(ctx context.Context) (*repo.Repository, error) {
		return nil, errors.New("unreachable")
	}}
	if _, err := p.Get(ctx, fail); err == nil {
		t.Fatal("a failing open succeeded")
	}
	if _, err := p.Get(ctx, s.source("/s")); err != nil {
		t.Fatalf("the failure was kept: %v", err)
	}
}

// TestLockPerOperation: an operation's shared lock exists while it runs
// and is gone after Release, while the repository stays open.
func TestLockPerOperation(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	p := New()
	defer p.Close(ctx)
	e, err := p.Get(ctx, s.source("/s"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		op, err := e.Lock(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(s.locks(t)); n != 1 {
			t.Fatalf("%d locks during the operation, want 1", n)
		}
		info, err := e.Repo().Locks(ctx)
		if err != nil || len(info) != 1 || info[0].Exclusive {
			t.Fatalf("locks %v, %v; want one shared", info, err)
		}
		op.Release()
		op.Release()
		if n := len(s.locks(t)); n != 0 {
			t.Fatalf("%d locks after the operation", n)
		}
		if op.Context().Err() == nil {
			t.Fatal("the operation's context outlives Release")
		}
	}
	if s.closed.Load() {
		t.Fatal("releasing an operation closed the repository")
	}
}

// TestConcurrentOperationsShareOneLock: shared operations running at once
// hold one lock object, removed when the last one ends.
func TestConcurrentOperationsShareOneLock(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	p := New()
	defer p.Close(ctx)
	e, err := p.Get(ctx, s.source("/s"))
	if err != nil {
		t.Fatal(err)
	}
	ops := make([]*Op, 8)
	var wg sync.WaitGroup
	for i := range ops {
		wg.Go(func() {
			op, err := e.Lock(ctx, false)
			if err != nil {
				t.Error(err)
				return
			}
			ops[i] = op
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := len(s.locks(t)); n != 1 {
		t.Fatalf("%d lock objects for %d concurrent operations, want 1", n, len(ops))
	}
	for _, op := range ops[1:] {
		op.Release()
	}
	if n := len(s.locks(t)); n != 1 || ops[0].Context().Err() != nil {
		t.Fatalf("one operation left: %d locks, context %v", n, ops[0].Context().Err())
	}
	ops[0].Release()
	if n := len(s.locks(t)); n != 0 {
		t.Fatalf("%d locks after every operation ended", n)
	}
	// A cancelled caller does not start or keep a lock.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Lock(cctx, false); err == nil {
		t.Fatal("a cancelled caller got a lock")
	}
	if n := len(s.locks(t)); n != 0 {
		t.Fatalf("%d locks after a cancelled Lock", n)
	}
}

// TestExclusiveOperation: an exclusive operation waits the settle time,
// conflicts with the process's own shared operations both ways, and holds
// its lock only while it runs.
func TestExclusiveOperation(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	p := New()
	defer p.Close(ctx)
	src := s.source("/s")
	src.Settle = 100 * time.Millisecond
	e, err := p.Get(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := e.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Lock(ctx, true); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("exclusive during a shared operation: %v, want ErrLocked", err)
	}
	shared.Release()
	start := time.Now()
	excl, err := e.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < src.Settle {
		t.Errorf("the exclusive lock was taken after %v, before the settle time", d)
	}
	if info, _ := e.Repo().Locks(ctx); len(info) != 1 || !info[0].Exclusive {
		t.Fatalf("locks %v, want one exclusive", info)
	}
	if _, err := e.Lock(ctx, false); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("shared during an exclusive operation: %v, want ErrLocked", err)
	}
	excl.Release()
	if n := len(s.locks(t)); n != 0 {
		t.Fatalf("%d locks after the exclusive operation", n)
	}
}

// TestLostLockCancelsItsOperations: when refreshing fails too long, every
// operation sharing the lock is cancelled with ErrLockLost, and the next
// operation takes a new lock.
func TestLostLockCancelsItsOperations(t *testing.T) {
	every, giveUp := repo.RefreshEvery, repo.GiveUpAfter
	repo.RefreshEvery, repo.GiveUpAfter = 10*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { repo.RefreshEvery, repo.GiveUpAfter = every, giveUp })
	ctx := t.Context()
	s := newStore(t)
	p := New()
	e, err := p.Get(ctx, s.source("/s"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	s.be.SetErrorRate(1) // every save fails: the refresh too
	for _, op := range []*Op{a, b} {
		select {
		case <-op.Context().Done():
			if cause := context.Cause(op.Context()); !errors.Is(cause, repo.ErrLockLost) {
				t.Fatalf("cancelled with %v, want ErrLockLost", cause)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the operation went on without its lock")
		}
	}
	s.be.SetErrorRate(0)
	c, err := e.Lock(ctx, false)
	if err != nil {
		t.Fatalf("a new operation after the loss: %v", err)
	}
	select {
	case <-c.Context().Done():
		t.Fatalf("the new operation joined the lost lock: %v", context.Cause(c.Context()))
	case <-time.After(100 * time.Millisecond):
	}
	for _, op := range []*Op{a, b, c} {
		op.Release()
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	p := New()
	e, err := p.Get(ctx, s.source("/s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Lock(ctx, false); err != nil { // never released
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.closed.Load() {
		t.Fatal("Close left the storage open")
	}
	if n := len(s.locks(t)); n != 0 {
		t.Fatalf("%d locks after Close", n)
	}
	if _, err := p.Get(ctx, s.source("/s")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
