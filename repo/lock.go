package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Lock timing (DESIGN.md §7). A lock not refreshed for StaleAfter is
// ignored and may be removed; holders refresh every RefreshEvery; a holder
// that could not refresh for GiveUpAfter stops its operation, well before
// others may take the lock as stale.
var (
	StaleAfter   = 30 * time.Minute
	RefreshEvery = 5 * time.Minute
	GiveUpAfter  = 20 * time.Minute
)

// ErrLocked: another process holds a lock that conflicts.
var ErrLocked = errors.New("repository is locked")

// ErrLockLost: the lock could not be refreshed in time; the operation was
// stopped so that nobody takes the lock as stale under it.
var ErrLockLost = errors.New("repository lock could not be refreshed")

// LockInfo is the content of a lock object.
type LockInfo struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	User      string    `json:"user,omitempty"`
	PID       int       `json:"pid"`
	Nonce     string    `json:"nonce"` // makes every lock object's name unique
	Name      string    `json:"-"`     // object name
}

func (l LockInfo) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock by %s@%s pid %d, refreshed %s", kind, l.User, l.Host, l.PID, l.Time.Local().Format(time.DateTime))
}

// Stale reports whether the lock may be ignored: not refreshed for
// StaleAfter, or held by a process of this host that no longer exists.
func (l LockInfo) Stale(now time.Time) bool {
	if now.Sub(l.Time) > StaleAfter {
		return true
	}
	host, _ := os.Hostname()
	if l.Host == host && l.PID > 0 {
		err := syscall.Kill(l.PID, 0)
		return errors.Is(err, syscall.ESRCH)
	}
	return false
}

// LockOptions tune locking for slow stores.
type LockOptions struct {
	// Settle is how long to wait after writing our lock object before
	// listing rivals, so that an eventually consistent store shows locks
	// written at about the same time (0 for local storage).
	Settle time.Duration
}

// Lock is a held repository lock. Its context is cancelled with cause
// ErrLockLost if refreshing fails for GiveUpAfter, or if the lock object
// turns out to have been removed by someone else (a process suspended
// past the stale time whose lock `cairn unlock` removed meanwhile).
type Lock struct {
	repo      *Repository
	exclusive bool
	ctx       context.Context
	cancel    context.CancelCauseFunc
	done      chan struct{}

	// mu guards the fields below. Unlike other mutexes of the package it
	// is held across the I/O of a refresh, so that a refresh and a check
	// before a write (verify) never interleave: a check must not stat an
	// object that a concurrent refresh has just replaced.
	mu   sync.Mutex
	name string
	last time.Time // when the lock object was last written (monotonic and wall)
}

// errLockRemoved: refreshing found the lock object gone.
var errLockRemoved = errors.New("lock object removed")

// SetSettle says how long listings of the repository's storage may lag
// behind writes (DESIGN.md §7): exclusive locks and the label check of
// SaveSnapshotUnique wait that long before listing rivals.
func (r *Repository) SetSettle(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settle = d
}

// Settle is the time SetSettle set (0 by default).
func (r *Repository) Settle() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.settle
}

// Context is cancelled when the lock is lost or released.
func (l *Lock) Context() context.Context { return l.ctx }

// Lock takes a shared or exclusive lock. Shared locks conflict only with
// exclusive ones. It refreshes the lock in the background until Unlock.
func (r *Repository) Lock(ctx context.Context, exclusive bool, opts LockOptions) (*Lock, error) {
	written := time.Now()
	name, err := r.writeLock(ctx, exclusive)
	if err != nil {
		return nil, err
	}
	if opts.Settle > 0 {
		select {
		case <-time.After(opts.Settle):
		case <-ctx.Done():
			r.removeLock(context.WithoutCancel(ctx), name)
			return nil, ctx.Err()
		}
	}
	rivals, err := r.Locks(ctx)
	if err != nil {
		r.removeLock(context.WithoutCancel(ctx), name)
		return nil, err
	}
	now := time.Now()
	for _, l := range rivals {
		if l.Name == name || l.Stale(now) {
			continue
		}
		if exclusive || l.Exclusive {
			r.removeLock(context.WithoutCancel(ctx), name)
			return nil, fmt.Errorf("%w: %v", ErrLocked, l)
		}
	}
	lctx, cancel := context.WithCancelCause(ctx)
	l := &Lock{repo: r, exclusive: exclusive, ctx: lctx, cancel: cancel, name: name, last: written, done: make(chan struct{})}
	r.mu.Lock()
	if r.held == nil {
		r.held = make(map[*Lock]struct{})
	}
	r.held[l] = struct{}{}
	r.mu.Unlock()
	go l.refreshLoop()
	return l, nil
}

func (r *Repository) writeLock(ctx context.Context, exclusive bool) (string, error) {
	host, user := hostUser()
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	info := LockInfo{Time: time.Now().UTC(), Exclusive: exclusive, Host: host, User: user, PID: os.Getpid(), Nonce: hex.EncodeToString(nonce)}
	plain, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	id, err := saveObject(ctx, r.be, backend.LockFile, r.data.seal(nil, plain, kindLock))
	if err != nil {
		return "", fmt.Errorf("write lock: %w", err)
	}
	return id.String(), nil
}

func (r *Repository) removeLock(ctx context.Context, name string) error {
	return r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: name})
}

// Locks lists the lock objects. Locks removed while listing are skipped.
// A lock that does not decrypt was not written by any key holder (they all
// share the master key): it is garbage, reported as stale so that it never
// blocks the repository and unlock removes it.
func (r *Repository) Locks(ctx context.Context) ([]LockInfo, error) {
	var names []backend.FileInfo
	err := r.be.List(ctx, backend.LockFile, func(fi backend.FileInfo) error {
		names = append(names, fi)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	var out []LockInfo
	for _, fi := range names {
		data, err := r.be.Load(ctx, backend.Handle{Type: backend.LockFile, Name: fi.Name}, 0, 0)
		if errors.Is(err, backend.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load lock %s: %w", fi.Name, err)
		}
		var info LockInfo
		plain, err := r.data.open(nil, data, kindLock)
		if err == nil {
			err = json.Unmarshal(plain, &info)
		}
		if err != nil {
			info = LockInfo{Host: "?", Time: time.Time{}} // zero time: stale
		}
		info.Name = fi.Name
		out = append(out, info)
	}
	return out, nil
}

// RemoveStaleLocks removes locks that are stale and returns how many.
func (r *Repository) RemoveStaleLocks(ctx context.Context) (int, error) {
	locks, err := r.Locks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for _, l := range locks {
		if !l.Stale(now) {
			continue
		}
		if err := r.removeLock(ctx, l.Name); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// refreshLoop replaces the lock object every RefreshEvery: a new object
// first, then the old one removed, so the lock never disappears.
func (l *Lock) refreshLoop() {
	defer close(l.done)
	retry := RefreshEvery
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(retry):
		}
		l.mu.Lock()
		err := l.refreshLocked(context.WithoutCancel(l.ctx))
		if err != nil {
			err = l.failedLocked(err)
		}
		l.mu.Unlock()
		if err != nil && l.ctx.Err() != nil {
			return
		}
		retry = RefreshEvery
		if err != nil {
			retry = min(RefreshEvery, 30*time.Second)
		}
	}
}

// refreshLocked writes a new lock object and removes the old one, having
// checked that the old one is still there: if it is gone, someone removed
// it (unlock took it as stale, e.g. while this process was suspended), a
// rival may have taken the repository since, and the lock is lost
// (errLockRemoved). The caller holds l.mu.
func (l *Lock) refreshLocked(ctx context.Context) error {
	written := time.Now()
	name, err := l.repo.writeLock(ctx, l.exclusive)
	if err != nil {
		return err
	}
	// The new object first, then the check: if the old one is found, the
	// lock was never absent.
	_, err = l.repo.be.Stat(ctx, backend.Handle{Type: backend.LockFile, Name: l.name})
	if err != nil {
		_ = l.repo.removeLock(ctx, name)
		if errors.Is(err, backend.ErrNotExist) {
			return errLockRemoved
		}
		return fmt.Errorf("check lock: %w", err)
	}
	old := l.name
	l.name, l.last = name, written
	_ = l.repo.removeLock(ctx, old)
	return nil
}

// failedLocked decides what a failed refresh means: a removed lock object
// or a lock not refreshed for GiveUpAfter is lost, which cancels the
// lock's context with cause ErrLockLost and returns that cause; other
// failures are returned as they are, to be tried again. The caller holds
// l.mu.
func (l *Lock) failedLocked(err error) error {
	since := l.sinceLastLocked()
	switch {
	case errors.Is(err, errLockRemoved) && since > GiveUpAfter:
		err = fmt.Errorf("%w: the lock object was removed by another process while this one had not refreshed it for %v (was the process suspended?); stopped before writing anything more", ErrLockLost, since.Round(time.Second))
	case errors.Is(err, errLockRemoved):
		err = fmt.Errorf("%w: the lock object was removed by another process; stopped before writing anything more", ErrLockLost)
	case since > GiveUpAfter:
		err = fmt.Errorf("%w for %v: %v", ErrLockLost, since.Round(time.Second), err)
	default:
		return err
	}
	l.cancel(err)
	return err
}

// sinceLastLocked is the time since the lock object was last written: the
// longer of the monotonic and the wall clock's readings, since the
// monotonic clock stops while the machine sleeps. The caller holds l.mu.
func (l *Lock) sinceLastLocked() time.Duration {
	return max(time.Since(l.last), time.Now().Round(0).Sub(l.last.Round(0)))
}

// verify is called before writing an object that others could prune once
// they take the lock as stale (an index, a snapshot). A lock refreshed
// within GiveUpAfter is fine. An older one (the process was suspended, or
// refreshing has been failing) is refreshed now, which checks that its
// object is still there; if that fails the lock is lost and verify returns
// an error wrapping ErrLockLost.
func (l *Lock) verify(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		if cause := context.Cause(l.ctx); errors.Is(cause, ErrLockLost) {
			return cause
		}
		return nil // released: the caller's own business
	}
	if l.sinceLastLocked() <= GiveUpAfter {
		return nil
	}
	if err := l.refreshLocked(ctx); err != nil {
		return l.failedLocked(err) // past GiveUpAfter: always lost
	}
	return nil
}

// verifyLocks verifies every lock this process holds on r (Lock.verify).
func (r *Repository) verifyLocks(ctx context.Context) error {
	r.mu.Lock()
	held := make([]*Lock, 0, len(r.held))
	for l := range r.held {
		held = append(held, l)
	}
	r.mu.Unlock()
	for _, l := range held {
		if err := l.verify(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Unlock stops refreshing and removes the lock object.
func (l *Lock) Unlock(ctx context.Context) error {
	l.cancel(nil)
	<-l.done
	l.repo.mu.Lock()
	delete(l.repo.held, l)
	l.repo.mu.Unlock()
	l.mu.Lock()
	name := l.name
	l.mu.Unlock()
	return l.repo.removeLock(ctx, name)
}
