package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Stats is a snapshot of a cache's counters.
//
// Every lookup through Get or GetOrLoad counts as exactly one hit or one
// miss, so Hits/(Hits+Misses) is the hit rate. A GetOrLoad miss either
// starts a load (counted in Loads), joins a load already under way, or
// returns early because its context was already done; Misses-Loads is thus
// the number of lookups that were spared a load of their own (or gave up
// before starting one).
type Stats struct {
	Hits      uint64 // lookups answered from the cache
	Misses    uint64 // lookups not found in the cache
	Loads     uint64 // loader calls started by GetOrLoad
	Filled    uint64 // keys Fill loaded ahead of their readers
	Evictions uint64 // entries dropped to stay within the byte budget
	Bytes     int64  // sum of len(value) over the cached entries
	Entries   int64  // number of cached entries
}

// Cache holds values of []byte keyed by K, bounded by the sum of len(value).
// It is safe for concurrent use; the zero value is not usable, call New.
//
// Concurrency: Cache has a single mutex, mu, and takes no other lock while
// holding it, so there is no lock order to get wrong. The LRU's eviction
// callback runs with mu held (every LRU call is made under mu) and touches
// only fields that mu guards. Loaders and other caller-supplied code never
// run with mu held.
type Cache[K comparable] struct {
	maxBytes int64 // immutable after New

	mu sync.Mutex
	// Guarded by mu.
	lru      *simplelru.LRU[K, []byte] // recency order; unbounded by count
	bytes    int64                     // sum of len(v) over lru
	inflight map[K]*flight             // loads under way, at most one per key
	stats    Stats                     // counters; Bytes and Entries filled in by Stats
}

// flight is one load shared by every GetOrLoad caller of its key that
// arrives while it runs.
type flight struct {
	done   chan struct{}      // closed once val and err are set
	cancel context.CancelFunc // cancels the loader's context; idempotent

	// Written once by the loading goroutine before done is closed; read by
	// waiters only after receiving from done.
	val []byte
	err error

	// Guarded by Cache.mu.
	waiters  int  // callers still waiting for the result
	attached bool // still in Cache.inflight; its result may enter the cache
}

// New returns a cache that holds at most maxBytes bytes of values. With
// maxBytes <= 0 nothing is cached, but GetOrLoad still shares loads.
func New[K comparable](maxBytes int64) *Cache[K] {
	c := &Cache[K]{
		maxBytes: maxBytes,
		inflight: make(map[K]*flight),
	}
	// The byte budget, not the entry count, bounds the cache, so the LRU's
	// own limit is set out of reach. The callback keeps bytes in step for
	// every way an entry leaves: eviction, Remove, replacement and Purge.
	lru, err := simplelru.NewLRU[K, []byte](math.MaxInt, func(_ K, v []byte) {
		c.bytes -= int64(len(v))
	})
	if err != nil {
		// NewLRU fails only for a non-positive size.
		panic(fmt.Sprintf("cache: %v", err))
	}
	c.lru = lru
	return c
}

// Get returns a cached value (read-only: callers must not modify it) and
// marks it as recently used.
func (c *Cache[K]) Get(k K) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.lru.Get(k)
	if ok {
		c.stats.Hits++
	} else {
		c.stats.Misses++
	}
	return v, ok
}

// Contains reports whether k is cached, without counting a lookup or
// marking it as used.
func (c *Cache[K]) Contains(k K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Contains(k)
}

// Add stores v under k, replacing any previous value, and evicts the least
// recently used entries until the cache is within its budget again. The
// cache keeps v: the caller must not modify it afterwards. A value larger
// than the whole budget is not cached (and any previous value of k is
// dropped, so the cache never serves an outdated one).
func (c *Cache[K]) Add(k K, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(k, v)
}

// addLocked is Add with c.mu held.
func (c *Cache[K]) addLocked(k K, v []byte) {
	// Remove first, so that the callback subtracts the old size:
	// simplelru's Add replaces a value without calling it.
	c.lru.Remove(k)
	size := int64(len(v))
	if c.maxBytes <= 0 || size > c.maxBytes {
		return
	}
	c.lru.Add(k, v)
	c.bytes += size
	for c.bytes > c.maxBytes {
		// Never removes v itself: it is the newest and fits on its own.
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
		c.stats.Evictions++
	}
}

// GetOrLoad returns the value cached under k or, on a miss, the result of
// load, which it then caches unless load failed. Concurrent callers for one
// key share a single call of load (single-flight) and receive the same
// slice, which is read-only.
//
// load runs in its own goroutine with a context that keeps the values of
// the ctx of the caller that started it but not its cancellation or
// deadline; that context is cancelled once every caller waiting for the
// load has returned. A caller whose ctx is done returns ctx.Err() at once,
// without disturbing the others. An error from load is returned to the
// callers of that load and not cached, so the next call loads again. A
// panic in load is returned as an error rather than crashing the process
// (a crashed mount leaves a dead mount point behind).
func (c *Cache[K]) GetOrLoad(ctx context.Context, k K, load func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if v, ok := c.lru.Get(k); ok {
		c.stats.Hits++
		c.mu.Unlock()
		return v, nil
	}
	c.stats.Misses++
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	f, ok := c.inflight[k]
	if !ok {
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel, attached: true}
		c.inflight[k] = f
		c.stats.Loads++
		go c.run(lctx, k, f, load)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody wants the result any more. Detach the flight so that
			// a later caller starts a fresh load instead of joining one
			// that is being cancelled.
			f.cancel()
			c.detachLocked(k, f)
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// run calls load for flight f of key k and publishes its result.
func (c *Cache[K]) run(ctx context.Context, k K, f *flight, load func(context.Context) ([]byte, error)) {
	v, err := callLoad(ctx, load)

	c.mu.Lock()
	// Storing and detaching in one critical section means a new caller
	// finds either the cached value or no flight, never a stale flight.
	if f.attached {
		c.detachLocked(k, f)
		if err == nil {
			c.addLocked(k, v)
		}
	}
	f.val, f.err = v, err
	c.mu.Unlock()

	close(f.done)
	f.cancel() // release the context's resources
}

// callLoad calls load, turning a panic into an error.
func callLoad(ctx context.Context, load func(context.Context) ([]byte, error)) (v []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("cache: loader panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return load(ctx)
}

// detachLocked removes f from c.inflight if it is still there, so that its
// result will not enter the cache. c.mu must be held.
func (c *Cache[K]) detachLocked(k K, f *flight) {
	if f.attached {
		delete(c.inflight, k)
		f.attached = false
	}
}

// Fill loads the keys that are neither cached nor being loaded with one
// call of load, ahead of their readers: while it runs, GetOrLoad callers of
// those keys wait for its result instead of loading on their own. load gets
// the keys to load, in the order given, and reports each result with put(i,
// value, err) as soon as it has it, in any order and from any goroutine
// (before load returns); a key it never reports
// fails with an error. Fill runs load in the calling goroutine under ctx,
// whose cancellation no waiting caller changes, and returns how many keys
// it handed to load.
func (c *Cache[K]) Fill(ctx context.Context, keys []K, load func(ctx context.Context, keys []K, put func(i int, v []byte, err error))) int {
	c.mu.Lock()
	var todo []K
	var flights []*flight
	for _, k := range keys {
		if c.lru.Contains(k) {
			continue
		}
		if _, ok := c.inflight[k]; ok {
			continue
		}
		// The flight's cancel is a no-op: waiters that give up detach
		// their key but do not stop the loads of the others.
		f := &flight{done: make(chan struct{}), cancel: func() {}, attached: true}
		c.inflight[k] = f
		todo = append(todo, k)
		flights = append(flights, f)
	}
	c.stats.Filled += uint64(len(todo))
	c.mu.Unlock()
	if len(todo) == 0 {
		return 0
	}

	put := func(i int, v []byte, err error) {
		c.mu.Lock() // also guards flights: put may be called concurrently
		f := flights[i]
		if f == nil {
			c.mu.Unlock()
			return // reported already
		}
		flights[i] = nil
		if f.attached {
			c.detachLocked(todo[i], f)
			if err == nil {
				c.addLocked(todo[i], v)
			}
		}
		f.val, f.err = v, err
		c.mu.Unlock()
		close(f.done)
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				err := fmt.Errorf("cache: loader panicked: %v\n%s", r, debug.Stack())
				for i := range flights {
					put(i, nil, err)
				}
			}
		}()
		load(ctx, todo, put)
	}()
	for i := range flights {
		put(i, nil, errNotFilled)
	}
	return len(todo)
}

// errNotFilled is the result of a key that Fill's loader did not report.
var errNotFilled = errors.New("cache: the loader did not load this key")

// Stats returns the current counters.
func (c *Cache[K]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes = c.bytes
	s.Entries = int64(c.lru.Len())
	return s
}

// Remove drops the value cached under k, if any. A load of k under way is
// detached: its callers still get its result, but the result is not cached
// and later callers start a new load.
func (c *Cache[K]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(k)
	if f, ok := c.inflight[k]; ok {
		c.detachLocked(k, f)
	}
}

// Purge drops every cached value and detaches every load under way, as
// Remove does for one key. The counters are kept.
func (c *Cache[K]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
	for k, f := range c.inflight {
		c.detachLocked(k, f)
	}
}
