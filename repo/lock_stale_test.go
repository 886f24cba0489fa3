package repo

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// deadPID returns the pid of a process of this host that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestLockStaleness: a lock is stale once not refreshed for StaleAfter,
// measured with the caller's clock, or at once when its process on this
// host is gone; a live process's lock, here or elsewhere, is not (issue 19).
func TestLockStaleness(t *testing.T) {
	host, _ := os.Hostname()
	t0 := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	foreign := LockInfo{Time: t0, Host: "elsewhere.example", PID: os.Getpid()}
	for _, c := range []struct {
		name  string
		lock  LockInfo
		now   time.Time
		stale bool
	}{
		{"fresh, another host", foreign, t0.Add(time.Minute), false},
		{"just under the stale time", foreign, t0.Add(StaleAfter - time.Second), false},
		{"just over the stale time", foreign, t0.Add(StaleAfter + time.Second), true},
		{"a day old", foreign, t0.Add(24 * time.Hour), true},
		{"live process here", LockInfo{Time: t0, Host: host, PID: os.Getpid()}, t0.Add(time.Minute), false},
		{"dead process here", LockInfo{Time: t0, Host: host, PID: deadPID(t)}, t0.Add(time.Minute), true},
		{"same pid, another host", LockInfo{Time: t0, Host: "elsewhere.example", PID: deadPID(t)}, t0.Add(time.Minute), false},
	} {
		if got := c.lock.Stale(c.now); got != c.stale {
			t.Errorf("%s: stale %v, want %v", c.name, got, c.stale)
		}
	}
}

// TestRemoveStaleLocksRemovesOnlyStale puts lock objects of every kind in
// a repository: unlock removes the old one, the dead process's and the
// garbage, and keeps the fresh foreign one and the live one; an exclusive
// lock ignores the stale ones and is refused while a live one remains.
func TestRemoveStaleLocksRemovesOnlyStale(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, mem.New(), "pw", InitOptions{KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	put := func(info LockInfo) string {
		plain, err := json.Marshal(info)
		if err != nil {
			t.Fatal(err)
		}
		id, err := saveObject(ctx, r.be, backend.LockFile, r.data.seal(nil, plain, kindLock))
		if err != nil {
			t.Fatal(err)
		}
		return id.String()
	}
	old := put(LockInfo{Time: now.Add(-StaleAfter - time.Minute), Host: "elsewhere.example", PID: 7, Nonce: "a"})
	dead := put(LockInfo{Time: now, Host: host, PID: deadPID(t), Nonce: "b"})
	garbage, err := saveObject(ctx, r.be, backend.LockFile, []byte("not a lock"))
	if err != nil {
		t.Fatal(err)
	}
	live := put(LockInfo{Time: now, Host: "elsewhere.example", PID: 7, Nonce: "c"})

	// The live one blocks an exclusive lock...
	if _, err := r.Lock(ctx, true, LockOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock beside a fresh foreign one: %v, want ErrLocked", err)
	}
	n, err := r.RemoveStaleLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	locks, err := r.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, l := range locks {
		left[l.Name] = true
	}
	if n != 3 || len(locks) != 1 || !left[live] {
		t.Fatalf("removed %d, left %v; want old %s, dead %s and garbage %s removed and %s kept", n, left, old, dead, garbage, live)
	}
	// ...the stale ones do not.
	if err := r.removeLock(ctx, live); err != nil {
		t.Fatal(err)
	}
	put(LockInfo{Time: now.Add(-2 * StaleAfter), Host: "elsewhere.example", PID: 7, Nonce: "d"})
	x, err := r.Lock(ctx, true, LockOptions{})
	if err != nil {
		t.Fatalf("exclusive lock beside a stale one: %v", err)
	}
	x.Unlock(ctx)
}
