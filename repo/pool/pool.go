package pool

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// ErrClosed: the pool was closed.
var ErrClosed = errors.New("repository pool closed")

// Source says how to open one repository of a pool.
type Source struct {
	// Key identifies the store: its canonical location
	// (location.Location.Key). Sources with one Key share a repository.
	Key string
	// Settle is how long an exclusive lock waits for rival locks to show
	// in the store's listings (DESIGN.md §7).
	Settle time.Duration
	// Open opens the repository (its index loaded, if its users need
	// it). It runs at most once at a time per Key.
	Open func(ctx context.Context) (*repo.Repository, error)
}

// Pool holds the open repositories of a process. It is safe for
// concurrent use.
type Pool struct {
	mu      sync.Mutex // guards the fields below
	entries map[string]*Entry
	closed  bool
}

// New returns an empty pool.
func New() *Pool {
	return &Pool{entries: map[string]*Entry{}}
}

// Entry is one open repository of a pool.
type Entry struct {
	key    string
	settle time.Duration
	ready  chan struct{} // closed when the open has ended; r and err are set then
	r      *repo.Repository
	err    error

	mu     sync.Mutex  // guards shared
	shared *sharedLock // the shared lock of the operations running now, if any
}

// sharedLock is one shared lock object and the operations holding it.
type sharedLock struct {
	ready  chan struct{} // closed when taking it has ended; lock and err are set then
	lock   *repo.Lock
	err    error
	unlock context.Context // for removing the lock object: not cancelled
	users  int             // guarded by Entry.mu
}

// Get returns the entry of src.Key, opening it with src.Open on first
// use. Concurrent callers wait for one open; if it fails, each gets its
// error and the next Get tries again.
func (p *Pool) Get(ctx context.Context, src Source) (*Entry, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := p.entries[src.Key]
	if !ok {
		e = &Entry{key: src.Key, settle: src.Settle, ready: make(chan struct{})}
		p.entries[src.Key] = e
	}
	p.mu.Unlock()
	if !ok {
		e.r, e.err = src.Open(ctx)
		if e.err == nil && src.Settle > 0 {
			e.r.SetSettle(src.Settle) // for the label check of new snapshots too
		}
		if e.err != nil {
			p.mu.Lock()
			delete(p.entries, src.Key)
			p.mu.Unlock()
		}
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// Close ends the pool: locks still held are released and every
// repository's storage is closed. Operations should have ended.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = nil
	p.mu.Unlock()
	var errs []error
	for _, e := range entries {
		<-e.ready
		if e.err != nil {
			continue
		}
		e.mu.Lock()
		s := e.shared
		e.shared = nil
		e.mu.Unlock()
		if s != nil {
			<-s.ready
			if s.lock != nil {
				errs = append(errs, s.lock.Unlock(ctx))
			}
		}
		errs = append(errs, e.r.Backend().Close())
	}
	return errors.Join(errs...)
}

// Repo is the open repository. Holding it takes no lock: reading needs
// none; writing needs an operation's lock (Lock).
func (e *Entry) Repo() *repo.Repository { return e.r }

// Key is the entry's Source.Key.
func (e *Entry) Key() string { return e.key }

// Lock takes a lock for one operation, shared or exclusive, and returns
// the operation. A shared operation joins the shared lock that other
// operations of the process hold, if any; an exclusive one takes its own
// after the settle time and fails with repo.ErrLocked while any other
// lock is held, this process's included. The operation's context, derived
// from ctx, is cancelled with cause repo.ErrLockLost if the lock is lost.
// Release ends the operation.
func (e *Entry) Lock(ctx context.Context, exclusive bool) (*Op, error) {
	if exclusive {
		l, err := e.r.Lock(ctx, true, repo.LockOptions{Settle: e.settle})
		if err != nil {
			return nil, err
		}
		unlock := context.WithoutCancel(ctx)
		return newOp(ctx, l.Context(), func() { l.Unlock(unlock) }), nil
	}
	s, err := e.joinShared(ctx)
	if err != nil {
		return nil, err
	}
	return newOp(ctx, s.lock.Context(), func() { e.leave(s) }), nil
}

// joinShared returns the shared lock, taking it if no operation holds
// one (or the one held was lost), with the caller counted as a user.
func (e *Entry) joinShared(ctx context.Context) (*sharedLock, error) {
	e.mu.Lock()
	s := e.shared
	if s != nil && s.lost() {
		s = nil // its users go on until they notice; new ones take a new lock
	}
	take := s == nil
	if take {
		s = &sharedLock{ready: make(chan struct{}), unlock: context.WithoutCancel(ctx)}
		e.shared = s
	}
	s.users++
	e.mu.Unlock()

	if take {
		// Not tied to ctx: the lock outlives this operation while others
		// share it.
		s.lock, s.err = e.r.Lock(context.WithoutCancel(ctx), false, repo.LockOptions{})
		if s.err != nil {
			e.mu.Lock()
			if e.shared == s {
				e.shared = nil
			}
			e.mu.Unlock()
		}
		close(s.ready)
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
	}
	if err := context.Cause(ctx); err != nil {
		e.leave(s)
		return nil, err
	}
	if s.err != nil {
		e.leave(s)
		return nil, s.err
	}
	return s, nil
}

// lost reports whether the lock was taken and has been lost since.
// The caller holds Entry.mu.
func (s *sharedLock) lost() bool {
	select {
	case <-s.ready:
		return s.lock != nil && s.lock.Context().Err() != nil
	default:
		return false
	}
}

// leave ends one user's share of s; the last one removes the lock.
func (e *Entry) leave(s *sharedLock) {
	e.mu.Lock()
	s.users--
	last := s.users == 0
	if last && e.shared == s {
		e.shared = nil
	}
	e.mu.Unlock()
	if last && s.lock != nil {
		s.lock.Unlock(s.unlock)
	}
}

// Op is one operation holding a lock.
type Op struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stop    func() bool
	once    sync.Once
	release func()
}

func newOp(ctx, lockCtx context.Context, release func()) *Op {
	octx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(lockCtx, func() { cancel(context.Cause(lockCtx)) })
	return &Op{ctx: octx, cancel: cancel, stop: stop, release: release}
}

// Context is the operation's context: cancelled when the lock is lost
// (cause repo.ErrLockLost), when the context given to Lock is, and on
// Release.
func (o *Op) Context() context.Context { return o.ctx }

// Release ends the operation and gives up its share of the lock. Calling
// it again does nothing.
func (o *Op) Release() {
	o.once.Do(func() {
		o.stop()
		o.cancel(nil)
		o.release()
	})
}
