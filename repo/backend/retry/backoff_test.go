package retry

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := New(nil, Options{Base: 100 * time.Millisecond, Max: 3 * time.Second})
	caps := []time.Duration{100, 200, 400, 800, 1600, 3000, 3000, 3000}
	for i, ceiling := range caps {
		attempt := i + 1
		ceiling *= time.Millisecond
		var most time.Duration
		for range 2000 {
			d := b.backoff(attempt)
			if d < 0 || d >= ceiling {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", attempt, d, ceiling)
			}
			most = max(most, d)
		}
		// Full jitter: the whole range is used.
		if most < ceiling*9/10 {
			t.Errorf("backoff(%d) never above %v of a %v cap", attempt, most, ceiling)
		}
	}
	// No overflow with a huge Max and many attempts.
	huge := New(nil, Options{Base: time.Second, Max: 1 << 62})
	for attempt := 1; attempt < 200; attempt++ {
		if d := huge.backoff(attempt); d < 0 {
			t.Fatalf("backoff(%d) = %v", attempt, d)
		}
	}
}

func TestDefaults(t *testing.T) {
	b := New(nil, Options{})
	if b.opts.Attempts != DefaultAttempts || b.opts.Base != DefaultBase || b.opts.Max != DefaultMax {
		t.Fatalf("defaults = %+v", b.opts)
	}
}
