package repo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// suspend makes l look as if its process had been stopped for longer than
// GiveUpAfter: its last refresh back in the past.
func suspend(l *Lock) {
	l.mu.Lock()
	l.last = l.last.Add(-GiveUpAfter - time.Minute)
	l.mu.Unlock()
}

// TestLockRemovedWhileSuspendedStopsWrites: a holder that has not
// refreshed its lock for longer than GiveUpAfter (a suspended process)
// checks, before it saves a snapshot or an index, that its lock object
// still exists. If someone removed it meanwhile (`cairn unlock` took it
// as stale), nothing is saved, the error says why and the lock's context
// is cancelled with ErrLockLost; if it is there, the save goes on and the
// lock is refreshed (issue 14).
func TestLockRemovedWhileSuspendedStopsWrites(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, mem.New(), "pw", InitOptions{KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	snap := func() *Snapshot { return &Snapshot{Label: "x", Time: time.Now(), Paths: []string{"/"}} }

	// Still there: the save refreshes the lock and goes on.
	l, err := r.Lock(ctx, false, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := l.name
	suspend(l)
	if _, err := r.SaveSnapshot(ctx, snap()); err != nil {
		t.Fatalf("save with the lock object still there: %v", err)
	}
	locks, err := r.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 1 || locks[0].Name == first || l.Context().Err() != nil {
		t.Fatalf("after the check: locks %v (first %s), context %v; want one new lock, context live", locks, first, l.Context().Err())
	}

	// Removed: nothing saved, the lock lost.
	suspend(l)
	if err := r.removeLock(ctx, l.name); err != nil {
		t.Fatal(err)
	}
	_, err = r.SaveSnapshot(ctx, snap())
	if !errors.Is(err, ErrLockLost) {
		t.Fatalf("save after the lock was removed: %v, want ErrLockLost", err)
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, ErrLockLost) {
		t.Fatalf("lock context cause %v, want ErrLockLost", cause)
	}
	if _, err := r.saveIndex(ctx, nil); !errors.Is(err, ErrLockLost) {
		t.Fatalf("index save after the lock was lost: %v, want ErrLockLost", err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots, want only the one saved before the lock was removed", len(snaps))
	}
	if locks, _ := r.Locks(ctx); len(locks) != 0 {
		t.Fatalf("locks left after the lock was lost: %v", locks)
	}
	l.Unlock(ctx)
}

// TestLockRefreshNoticesRemoval: the background refresh, too, finds a lock
// object removed under it and cancels the lock's context.
func TestLockRefreshNoticesRemoval(t *testing.T) {
	ctx := context.Background()
	defer func(d time.Duration) { RefreshEvery = d }(RefreshEvery)
	RefreshEvery = 10 * time.Millisecond
	r, err := Init(ctx, mem.New(), "pw", InitOptions{KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(ctx, false, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	time.Sleep(50 * time.Millisecond) // refreshed a few times: still held
	if err := l.Context().Err(); err != nil {
		t.Fatalf("lock lost while refreshing normally: %v", context.Cause(l.Context()))
	}
	l.mu.Lock() // no refresh replaces the object while it is removed
	err = r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: l.name})
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lock removed under its holder: not noticed within 5s")
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, ErrLockLost) {
		t.Fatalf("cause %v, want ErrLockLost", cause)
	}
}
