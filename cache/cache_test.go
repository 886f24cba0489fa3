package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wait bounds how long a test waits for something that should happen at
// once; it only turns a hang into a failure and never paces a test.
const wait = 5 * time.Second

func val(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// waitFor polls cond until it holds or wait has passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waiters reports how many callers wait on the load of k under way (0 when
// there is none).
func waiters[K comparable](c *Cache[K], k K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.inflight[k]; ok {
		return f.waiters
	}
	return 0
}

// keys lists the cached keys from least to most recently used.
func keys[K comparable](c *Cache[K]) []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Keys()
}

// checkInvariants verifies that the byte count matches the entries and the
// budget.
func checkInvariants[K comparable](t *testing.T, c *Cache[K]) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum int64
	for _, v := range c.lru.Values() {
		sum += int64(len(v))
	}
	if sum != c.bytes {
		t.Errorf("bytes = %d, sum of values = %d", c.bytes, sum)
	}
	if c.bytes > max(c.maxBytes, 0) {
		t.Errorf("bytes = %d over budget %d", c.bytes, c.maxBytes)
	}
}

func TestEvictionByBytes(t *testing.T) {
	type op struct {
		kind string // "add", "get", "remove", "purge"
		key  string
		size int
	}
	tests := []struct {
		name      string
		max       int64
		ops       []op
		want      []string // cached keys, oldest first
		bytes     int64
		evictions uint64
	}{
		{
			name:  "fits",
			max:   10,
			ops:   []op{{"add", "a", 4}, {"add", "b", 6}},
			want:  []string{"a", "b"},
			bytes: 10,
		},
		{
			name:      "oldest goes first",
			max:       10,
			ops:       []op{{"add", "a", 4}, {"add", "b", 4}, {"add", "c", 4}},
			want:      []string{"b", "c"},
			bytes:     8,
			evictions: 1,
		},
		{
			name:      "get refreshes recency",
			max:       10,
			ops:       []op{{"add", "a", 4}, {"add", "b", 4}, {"get", "a", 0}, {"add", "c", 4}},
			want:      []string{"a", "c"},
			bytes:     8,
			evictions: 1,
		},
		{
			name:      "evicts as many as needed",
			max:       10,
			ops:       []op{{"add", "a", 3}, {"add", "b", 3}, {"add", "c", 3}, {"add", "d", 9}},
			want:      []string{"d"},
			bytes:     9,
			evictions: 3,
		},
		{
			name:  "replacing a value counts its new size",
			max:   10,
			ops:   []op{{"add", "a", 4}, {"add", "b", 4}, {"add", "a", 2}},
			want:  []string{"b", "a"},
			bytes: 6,
		},
		{
			name:      "growing a value evicts others",
			max:       10,
			ops:       []op{{"add", "a", 4}, {"add", "b", 4}, {"add", "a", 7}},
			want:      []string{"a"},
			bytes:     7,
			evictions: 1,
		},
		{
			name:  "oversized value not cached",
			max:   10,
			ops:   []op{{"add", "a", 4}, {"add", "big", 11}},
			want:  []string{"a"},
			bytes: 4,
		},
		{
			name:  "oversized replacement drops the old value",
			max:   10,
			ops:   []op{{"add", "a", 4}, {"add", "b", 4}, {"add", "a", 11}},
			want:  []string{"b"},
			bytes: 4,
		},
		{
			name:  "value of exactly the budget",
			max:   10,
			ops:   []op{{"add", "a", 10}},
			want:  []string{"a"},
			bytes: 10,
		},
		{
			name:  "empty values",
			max:   10,
			ops:   []op{{"add", "a", 0}, {"add", "b", 10}},
			want:  []string{"a", "b"},
			bytes: 10,
		},
		{
			name:  "zero budget caches nothing",
			max:   0,
			ops:   []op{{"add", "a", 0}, {"add", "b", 1}},
			want:  []string{},
			bytes: 0,
		},
		{
			name:  "remove",
			max:   10,
			ops:   []op{{"add", "a", 4}, {"add", "b", 4}, {"remove", "a", 0}, {"remove", "x", 0}},
			want:  []string{"b"},
			bytes: 4,
		},
		{
			name:  "purge",
			max:   10,
			ops:   []op{{"add", "a", 4}, {"add", "b", 4}, {"purge", "", 0}, {"add", "c", 1}},
			want:  []string{"c"},
			bytes: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[string](tt.max)
			for _, o := range tt.ops {
				switch o.kind {
				case "add":
					c.Add(o.key, val(o.size, o.key[0]))
				case "get":
					if _, ok := c.Get(o.key); !ok {
						t.Fatalf("Get(%q) missed", o.key)
					}
				case "remove":
					c.Remove(o.key)
				case "purge":
					c.Purge()
				default:
					t.Fatalf("unknown op %q", o.kind)
				}
				checkInvariants(t, c)
			}
			if got := keys(c); !slices.Equal(got, tt.want) {
				t.Errorf("keys = %q, want %q", got, tt.want)
			}
			s := c.Stats()
			if s.Bytes != tt.bytes || s.Entries != int64(len(tt.want)) || s.Evictions != tt.evictions {
				t.Errorf("Bytes, Entries, Evictions = %d, %d, %d; want %d, %d, %d",
					s.Bytes, s.Entries, s.Evictions, tt.bytes, len(tt.want), tt.evictions)
			}
			for _, k := range tt.want {
				v, ok := c.Get(k)
				if !ok || len(v) > 0 && v[0] != k[0] {
					t.Errorf("Get(%q) = %q, %v", k, v, ok)
				}
			}
		})
	}
}

func TestGetReturnsStoredSlice(t *testing.T) {
	c := New[int](100)
	v := []byte("chunk")
	c.Add(1, v)
	got, ok := c.Get(1)
	if !ok || &got[0] != &v[0] {
		t.Fatalf("Get returned %q, %v; want the stored slice itself", got, ok)
	}
	if _, ok := c.Get(2); ok {
		t.Fatal("Get(2) hit on an empty key")
	}
}

func TestGetOrLoadCachesResult(t *testing.T) {
	c := New[string](100)
	var calls atomic.Int32
	load := func(context.Context) ([]byte, error) {
		calls.Add(1)
		return []byte("data"), nil
	}
	for i := range 3 {
		v, err := c.GetOrLoad(t.Context(), "k", load)
		if err != nil || string(v) != "data" {
			t.Fatalf("call %d: GetOrLoad = %q, %v", i, v, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("loader called %d times, want 1", n)
	}
	if v, ok := c.Get("k"); !ok || string(v) != "data" {
		t.Errorf("Get after load = %q, %v", v, ok)
	}
}

func TestGetOrLoadOversizedNotCached(t *testing.T) {
	c := New[string](4)
	var calls atomic.Int32
	load := func(context.Context) ([]byte, error) {
		calls.Add(1)
		return val(5, 'x'), nil
	}
	for range 2 {
		v, err := c.GetOrLoad(t.Context(), "k", load)
		if err != nil || len(v) != 5 {
			t.Fatalf("GetOrLoad = %q, %v", v, err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("loader called %d times, want 2 (value too big to cache)", n)
	}
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("Entries, Bytes = %d, %d; want 0, 0", s.Entries, s.Bytes)
	}
}

func TestSingleFlight(t *testing.T) {
	const n = 16
	c := New[string](100)
	release := make(chan struct{})
	var calls atomic.Int32
	load := func(context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		return []byte("shared"), nil
	}

	var wg sync.WaitGroup
	results := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = c.GetOrLoad(t.Context(), "k", load) })
	}
	waitFor(t, "all callers to wait on the load", func() bool { return waiters(c, "k") == n })
	close(release)
	wg.Wait()

	if got := calls.Load(); got != 1 {
		t.Errorf("loader called %d times, want 1", got)
	}
	for i := range n {
		if errs[i] != nil || string(results[i]) != "shared" {
			t.Errorf("caller %d: %q, %v", i, results[i], errs[i])
		}
		if &results[i][0] != &results[0][0] {
			t.Errorf("caller %d got a different slice", i)
		}
	}
	s := c.Stats()
	if s.Loads != 1 || s.Misses != n || s.Hits != 0 {
		t.Errorf("Loads, Misses, Hits = %d, %d, %d; want 1, %d, 0", s.Loads, s.Misses, s.Hits, n)
	}
}

func TestSingleFlightPerKey(t *testing.T) {
	c := New[int](1000)
	release := make(chan struct{})
	var calls [4]atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 * 8 {
		k := i % 4
		wg.Go(func() {
			v, err := c.GetOrLoad(t.Context(), k, func(context.Context) ([]byte, error) {
				calls[k].Add(1)
				<-release
				return []byte{byte(k)}, nil
			})
			if err != nil || len(v) != 1 || v[0] != byte(k) {
				t.Errorf("key %d: %v, %v", k, v, err)
			}
		})
	}
	waitFor(t, "all callers to wait", func() bool {
		for k := range 4 {
			if waiters(c, k) != 8 {
				return false
			}
		}
		return true
	})
	close(release)
	wg.Wait()
	for k := range 4 {
		if n := calls[k].Load(); n != 1 {
			t.Errorf("key %d loaded %d times, want 1", k, n)
		}
	}
}

func TestLoaderErrorNotCached(t *testing.T) {
	c := New[string](100)
	errBoom := errors.New("boom")
	release := make(chan struct{})
	var calls atomic.Int32
	failing := func(context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		return nil, errBoom
	}

	// Every waiter of the failing load sees its error.
	const n = 4
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.GetOrLoad(t.Context(), "k", failing); !errors.Is(err, errBoom) {
				t.Errorf("GetOrLoad error = %v, want %v", err, errBoom)
			}
		})
	}
	waitFor(t, "all callers to wait", func() bool { return waiters(c, "k") == n })
	close(release)
	wg.Wait()

	if _, ok := c.Get("k"); ok {
		t.Fatal("failed load left a cached value")
	}
	// The next call loads again and succeeds.
	v, err := c.GetOrLoad(t.Context(), "k", func(context.Context) ([]byte, error) {
		calls.Add(1)
		return []byte("ok"), nil
	})
	if err != nil || string(v) != "ok" {
		t.Fatalf("retry: %q, %v", v, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("loader called %d times, want 2", n)
	}
}

func TestLoaderPanicBecomesError(t *testing.T) {
	c := New[string](100)
	_, err := c.GetOrLoad(t.Context(), "k", func(context.Context) ([]byte, error) {
		panic("corrupt chunk")
	})
	if err == nil || !strings.Contains(err.Error(), "corrupt chunk") {
		t.Fatalf("GetOrLoad error = %v, want the panic as an error", err)
	}
	v, err := c.GetOrLoad(t.Context(), "k", func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(v) != "ok" {
		t.Fatalf("after panic: %q, %v", v, err)
	}
}

func TestCancelledWaiterReturnsPromptly(t *testing.T) {
	c := New[string](100)
	release := make(chan struct{})
	started := make(chan context.Context, 1)
	var calls atomic.Int32
	load := func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		started <- ctx
		<-release
		return []byte("value"), ctx.Err()
	}

	// The first caller starts the load, so the loader's context derives
	// from the one being cancelled.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx, "k", load)
		firstErr <- err
	}()
	loadCtx := <-started

	const others = 3
	var wg sync.WaitGroup
	for i := range others {
		wg.Go(func() {
			v, err := c.GetOrLoad(t.Context(), "k", load)
			if err != nil || string(v) != "value" {
				t.Errorf("waiter %d: %q, %v", i, v, err)
			}
		})
	}
	waitFor(t, "all callers to wait", func() bool { return waiters(c, "k") == 1+others })

	cancel()
	select {
	case err := <-firstErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller got %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("cancelled caller did not return while the load was held")
	}
	if err := loadCtx.Err(); err != nil {
		t.Fatalf("loader context cancelled with waiters left: %v", err)
	}
	if got := waiters(c, "k"); got != others {
		t.Errorf("waiters = %d, want %d", got, others)
	}

	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("loader called %d times, want 1", n)
	}
	if v, ok := c.Get("k"); !ok || string(v) != "value" {
		t.Errorf("value not cached after the shared load: %q, %v", v, ok)
	}
}

func TestDeadlineNotPassedToLoader(t *testing.T) {
	c := New[string](100)
	type key struct{}
	ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), key{}, "trace-1"), time.Hour)
	defer cancel()
	_, err := c.GetOrLoad(ctx, "k", func(ctx context.Context) ([]byte, error) {
		if _, ok := ctx.Deadline(); ok {
			t.Error("loader context has the caller's deadline")
		}
		if got := ctx.Value(key{}); got != "trace-1" {
			t.Errorf("loader context value = %v, want the caller's", got)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAllWaitersCancelledCancelsLoader(t *testing.T) {
	c := New[string](100)
	started := make(chan struct{})
	loaderErr := make(chan error, 1)
	load := func(ctx context.Context) ([]byte, error) {
		close(started)
		<-ctx.Done()
		loaderErr <- ctx.Err()
		return []byte("late"), ctx.Err()
	}

	const n = 3
	ctxs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	for i := range n {
		ctxs[i], cancels[i] = context.WithCancel(t.Context())
		defer cancels[i]()
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.GetOrLoad(ctxs[i], "k", load)
			errs <- err
		}()
	}
	<-started
	waitFor(t, "all callers to wait", func() bool { return waiters(c, "k") == n })

	for i := range n {
		cancels[i]()
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("caller error = %v, want context.Canceled", err)
			}
		case <-time.After(wait):
			t.Fatal("cancelled caller did not return")
		}
		if i < n-1 {
			select {
			case err := <-loaderErr:
				t.Fatalf("loader cancelled (%v) with %d waiters left", err, n-1-i)
			default:
			}
		}
	}
	select {
	case err := <-loaderErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("loader context error = %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("loader context not cancelled after every waiter left")
	}

	// A new caller does not join the abandoned load: it starts its own.
	v, err := c.GetOrLoad(t.Context(), "k", func(context.Context) ([]byte, error) { return []byte("fresh"), nil })
	if err != nil || string(v) != "fresh" {
		t.Fatalf("after abandoned load: %q, %v", v, err)
	}
	if s := c.Stats(); s.Loads != 2 {
		t.Errorf("Loads = %d, want 2", s.Loads)
	}
}

func TestAlreadyCancelledContext(t *testing.T) {
	c := New[string](100)
	c.Add("cached", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	if v, err := c.GetOrLoad(ctx, "cached", nil); err != nil || string(v) != "x" {
		t.Errorf("hit with a done context = %q, %v; want the cached value", v, err)
	}
	_, err := c.GetOrLoad(ctx, "missing", func(context.Context) ([]byte, error) {
		t.Error("loader called for a caller that had already given up")
		return nil, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("miss with a done context: %v, want context.Canceled", err)
	}
	if s := c.Stats(); s.Loads != 0 {
		t.Errorf("Loads = %d, want 0", s.Loads)
	}
}

func TestRemoveDetachesLoad(t *testing.T) {
	for _, tt := range []struct {
		name   string
		remove func(c *Cache[string])
	}{
		{"Remove", func(c *Cache[string]) { c.Remove("k") }},
		{"Purge", func(c *Cache[string]) { c.Purge() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := New[string](100)
			release := make(chan struct{})
			done := make(chan []byte, 1)
			go func() {
				v, err := c.GetOrLoad(t.Context(), "k", func(context.Context) ([]byte, error) {
					<-release
					return []byte("old"), nil
				})
				if err != nil {
					t.Error(err)
				}
				done <- v
			}()
			waitFor(t, "the caller to wait", func() bool { return waiters(c, "k") == 1 })

			tt.remove(c)
			// A caller after the removal starts its own load.
			v, err := c.GetOrLoad(t.Context(), "k", func(context.Context) ([]byte, error) { return []byte("new"), nil })
			if err != nil || string(v) != "new" {
				t.Fatalf("GetOrLoad after %s = %q, %v", tt.name, v, err)
			}
			close(release)
			// The detached load still answers its own caller but does not
			// overwrite the newer value.
			if v := <-done; string(v) != "old" {
				t.Errorf("detached load returned %q", v)
			}
			if v, ok := c.Get("k"); !ok || string(v) != "new" {
				t.Errorf("cached = %q, %v; want \"new\"", v, ok)
			}
		})
	}
}

func TestStats(t *testing.T) {
	c := New[string](10)
	ctx := t.Context()
	ok := func(v []byte) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return v, nil }
	}
	fail := func(context.Context) ([]byte, error) { return nil, errors.New("fail") }

	c.Get("a")                              // miss
	c.Add("a", val(4, 'a'))                 //
	c.Get("a")                              // hit
	c.GetOrLoad(ctx, "a", ok(nil))          // hit
	c.GetOrLoad(ctx, "b", ok(val(4, 'b')))  // miss, load
	c.GetOrLoad(ctx, "b", ok(nil))          // hit
	c.GetOrLoad(ctx, "c", fail)             // miss, load
	c.GetOrLoad(ctx, "c", ok(val(4, 'c')))  // miss, load, evicts a
	c.GetOrLoad(ctx, "d", ok(val(11, 'd'))) // miss, load, too big
	c.Get("a")                              // miss

	want := Stats{Hits: 3, Misses: 6, Loads: 4, Evictions: 1, Bytes: 8, Entries: 2}
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
	c.Purge()
	want.Bytes, want.Entries = 0, 0
	if got := c.Stats(); got != want {
		t.Errorf("after Purge: Stats = %+v\nwant    %+v", got, want)
	}
}

// TestConcurrent hammers the cache from many goroutines, for the race
// detector and the byte accounting.
func TestConcurrent(t *testing.T) {
	const (
		workers = 8
		ops     = 2000
		nkeys   = 64
	)
	c := New[int](1000)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				k := r.IntN(nkeys)
				want := byte(k)
				switch r.IntN(10) {
				case 0:
					c.Add(k, val(k*3, want))
				case 1:
					c.Remove(k)
				case 2:
					if v, ok := c.Get(k); ok && len(v) > 0 && v[0] != want {
						t.Errorf("Get(%d) = wrong value", k)
					}
				case 3:
					ctx, cancel := context.WithCancel(t.Context())
					if r.IntN(2) == 0 {
						cancel()
					}
					c.GetOrLoad(ctx, k, func(context.Context) ([]byte, error) { return val(k*3, want), nil })
					cancel()
				default:
					v, err := c.GetOrLoad(t.Context(), k, func(context.Context) ([]byte, error) {
						if k%7 == 0 {
							return nil, fmt.Errorf("key %d unreadable", k)
						}
						return val(k*3, want), nil
					})
					if err == nil && (len(v) != k*3 || len(v) > 0 && v[0] != want) {
						t.Errorf("GetOrLoad(%d) = wrong value", k)
					}
				}
			}
		})
		if w == workers/2 {
			c.Purge()
		}
	}
	wg.Wait()
	checkInvariants(t, c)
	s := c.Stats()
	if s.Hits+s.Misses == 0 || s.Loads > s.Misses {
		t.Errorf("implausible stats %+v", s)
	}
	waitFor(t, "loads to finish", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.inflight) == 0
	})
}

func BenchmarkGetHit(b *testing.B) {
	c := New[int](1 << 20)
	c.Add(1, val(1024, 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(1); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetOrLoadParallel mixes hits, shared loads and evictions: the
// working set is twice the cache.
func BenchmarkGetOrLoadParallel(b *testing.B) {
	const (
		nkeys = 1024
		size  = 4096
	)
	c := New[int](nkeys / 2 * size)
	chunk := val(size, 7)
	load := func(context.Context) ([]byte, error) { return chunk, nil }
	ctx := b.Context()
	var seed atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 2))
		for pb.Next() {
			if _, err := c.GetOrLoad(ctx, r.IntN(nkeys), load); err != nil {
				b.Error(err)
				return
			}
		}
	})
	s := c.Stats()
	b.ReportMetric(float64(s.Hits)/float64(s.Hits+s.Misses), "hit-rate")
}
