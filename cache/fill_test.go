package cache

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestFillLoadsMissingKeysOnce(t *testing.T) {
	c := New[string](1 << 20)
	c.Add("b", val(3, 'B'))
	var got []string
	n := c.Fill(context.Background(), []string{"a", "b", "c"}, func(ctx context.Context, keys []string, put func(int, []byte, error)) {
		got = append(got, keys...)
		for i := len(keys) - 1; i >= 0; i-- { // any order
			put(i, val(4, keys[i][0]), nil)
		}
	})
	if n != 2 || !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("Fill loaded %d keys %v, want the two uncached ones [a c]", n, got)
	}
	for k, want := range map[string]byte{"a": 'a', "b": 'B', "c": 'c'} {
		v, ok := c.Get(k)
		if !ok || v[0] != want {
			t.Errorf("Get(%q) = %q, %v after Fill", k, v, ok)
		}
	}
	if s := c.Stats(); s.Filled != 2 || s.Loads != 0 {
		t.Errorf("stats %+v, want Filled 2 and no loads of GetOrLoad", s)
	}
	checkInvariants(t, c)
}

// A reader of a key that Fill is loading waits for Fill's result instead
// of loading it again.
func TestGetOrLoadJoinsFill(t *testing.T) {
	c := New[string](1 << 20)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan int)
	go func() {
		done <- c.Fill(context.Background(), []string{"x", "y"}, func(ctx context.Context, keys []string, put func(int, []byte, error)) {
			close(started)
			<-release
			put(0, []byte("from fill x"), nil)
			put(1, []byte("from fill y"), nil)
		})
	}()
	<-started
	var loads atomic.Int32
	res := make(chan []byte)
	go func() {
		v, err := c.GetOrLoad(context.Background(), "y", func(context.Context) ([]byte, error) {
			loads.Add(1)
			return []byte("own load"), nil
		})
		if err != nil {
			t.Error(err)
		}
		res <- v
	}()
	waitFor(t, "the reader to wait on the fill", func() bool { return waiters(c, "y") == 1 })
	close(release)
	if v := <-res; string(v) != "from fill y" || loads.Load() != 0 {
		t.Errorf("reader got %q with %d loads of its own, want Fill's value and none", v, loads.Load())
	}
	if n := <-done; n != 2 {
		t.Errorf("Fill loaded %d keys, want 2", n)
	}
	// A second Fill of keys now cached does nothing.
	if n := c.Fill(context.Background(), []string{"x", "y"}, func(context.Context, []string, func(int, []byte, error)) {
		t.Error("loader called for cached keys")
	}); n != 0 {
		t.Errorf("second Fill loaded %d keys", n)
	}
}

// A key the loader fails or never reports is not cached: the next reader
// loads it itself and gets the value.
func TestFillFailuresNotCached(t *testing.T) {
	c := New[string](1 << 20)
	c.Fill(context.Background(), []string{"bad", "skipped", "good"}, func(ctx context.Context, keys []string, put func(int, []byte, error)) {
		put(0, nil, errors.New("corrupt"))
		put(2, []byte("good"), nil)
		put(2, []byte("twice"), nil) // a second report is ignored
	})
	if v, ok := c.Get("good"); !ok || string(v) != "good" {
		t.Errorf("good = %q, %v", v, ok)
	}
	for _, k := range []string{"bad", "skipped"} {
		if _, ok := c.Get(k); ok {
			t.Errorf("%s cached after a failed fill", k)
		}
		v, err := c.GetOrLoad(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("loaded"), nil })
		if err != nil || string(v) != "loaded" {
			t.Errorf("GetOrLoad(%s) = %q, %v after a failed fill", k, v, err)
		}
	}
	checkInvariants(t, c)
}

// Waiters of a key whose fill did not report it get an error, and a
// panicking loader fails every key it left, without crashing.
func TestFillUnreportedAndPanic(t *testing.T) {
	c := New[string](1 << 20)
	for _, tc := range []struct {
		name string
		load func(put func(int, []byte, error))
		want string
	}{
		{"unreported", func(func(int, []byte, error)) {}, "did not load"},
		{"panic", func(func(int, []byte, error)) { panic("boom") }, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			go c.Fill(context.Background(), []string{tc.name}, func(ctx context.Context, keys []string, put func(int, []byte, error)) {
				close(started)
				<-release
				tc.load(put)
			})
			<-started
			errc := make(chan error)
			go func() {
				_, err := c.GetOrLoad(context.Background(), tc.name, func(context.Context) ([]byte, error) {
					return nil, errors.New("joined reader loaded on its own")
				})
				errc <- err
			}()
			waitFor(t, "the reader to wait on the fill", func() bool { return waiters(c, tc.name) == 1 })
			close(release)
			if err := <-errc; err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reader's error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// A reader that gives up leaves the fill running for the other keys.
func TestFillSurvivesCancelledWaiter(t *testing.T) {
	c := New[string](1 << 20)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	var fillCtxErr error
	go func() {
		defer close(done)
		c.Fill(context.Background(), []string{"a", "b"}, func(ctx context.Context, keys []string, put func(int, []byte, error)) {
			close(started)
			<-release
			fillCtxErr = ctx.Err()
			put(0, []byte("a"), nil)
			put(1, []byte("b"), nil)
		})
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := c.GetOrLoad(ctx, "a", func(context.Context) ([]byte, error) { return nil, errors.New("no") })
		errc <- err
	}()
	waitFor(t, "the reader to wait on the fill", func() bool { return waiters(c, "a") == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled reader got %v", err)
	}
	close(release)
	<-done
	if fillCtxErr != nil {
		t.Errorf("the fill's context was cancelled by a reader: %v", fillCtxErr)
	}
	if _, ok := c.Get("b"); !ok {
		t.Error("b not cached after the fill")
	}
	// a was detached when its last waiter left, so Fill's result for it
	// is not cached (a later reader loads it afresh).
	if _, ok := c.Get("a"); ok {
		t.Error("a cached though its flight was detached")
	}
}
