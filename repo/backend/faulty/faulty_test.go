package faulty_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/backendtest"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// TestSuite: without faults, faulty is a conforming backend.
func TestSuite(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backend.Backend {
		return faulty.New(mem.New(), faulty.Options{Seed: 1})
	})
}

// TestSuiteLatency: latency alone changes nothing but speed.
func TestSuiteLatency(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backend.Backend {
		return faulty.New(mem.New(), faulty.Options{Latency: time.Microsecond})
	})
}

func handle(i int) backend.Handle {
	return backend.Handle{Type: backend.PackFile, Name: fmt.Sprintf("%064x", i)}
}

// clock is a fake clock for the lags.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 4, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func list(t *testing.T, be backend.Backend, typ backend.FileType) map[string]int64 {
	t.Helper()
	got := make(map[string]int64)
	err := be.List(t.Context(), typ, func(fi backend.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			return fmt.Errorf("%q listed twice", fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s): %v", typ, err)
	}
	return got
}

func TestErrorRate(t *testing.T) {
	f := faulty.New(mem.New(), faulty.Options{ErrorRate: 1})
	ctx := t.Context()
	h := handle(1)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, backend.ErrTransient) {
			t.Errorf("%s with ErrorRate 1 = %v, want ErrTransient", op, err)
		}
	}
	check("Save", f.Save(ctx, h, []byte("data")))
	_, err := f.Load(ctx, h, 0, 0)
	check("Load", err)
	_, err = f.Stat(ctx, h)
	check("Stat", err)
	check("Remove", f.Remove(ctx, h))
	check("List", f.List(ctx, backend.PackFile, func(backend.FileInfo) error {
		t.Error("List called fn although it failed before doing anything")
		return nil
	}))
	check("Create", f.Create(ctx))
	if got := f.Injected(); got != 6 {
		t.Errorf("Injected() = %d, want 6", got)
	}

	// Faults come before doing anything: the Save stored nothing.
	f.SetErrorRate(0)
	if _, err := f.Stat(ctx, h); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat after failed Save = %v, want ErrNotExist", err)
	}
	if err := f.Save(ctx, h, []byte("data")); err != nil {
		t.Errorf("Save with ErrorRate 0: %v", err)
	}
	for op, want := range map[string]int{faulty.OpSave: 2, faulty.OpLoad: 1, faulty.OpStat: 2, faulty.OpRemove: 1, faulty.OpList: 1, faulty.OpCreate: 1} {
		if got := f.Calls(op); got != want {
			t.Errorf("Calls(%s) = %d, want %d", op, got, want)
		}
	}
	if err := f.Close(); err != nil || f.Calls(faulty.OpClose) != 1 {
		t.Errorf("Close = %v, Calls(close) = %d", err, f.Calls(faulty.OpClose))
	}
	if got := f.Injected(); got != 6 {
		t.Errorf("Injected() = %d after faults were turned off, want 6", got)
	}
}

func TestLostResponse(t *testing.T) {
	f := faulty.New(mem.New(), faulty.Options{LostResponseRate: 1})
	ctx := t.Context()
	h := handle(1)
	data := []byte("stored anyway")
	if err := f.Save(ctx, h, data); !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Save with LostResponseRate 1 = %v, want ErrTransient", err)
	}
	// Only Save and Remove lose responses.
	got, err := f.Load(ctx, h, 0, 0)
	if err != nil || string(got) != string(data) {
		t.Fatalf("Load after lost Save = %q, %v; want the object", got, err)
	}
	// A Save the inner backend refuses is reported as is.
	if err := f.Save(ctx, h, data); !errors.Is(err, backend.ErrExist) || errors.Is(err, backend.ErrTransient) {
		t.Fatalf("second Save = %v, want ErrExist only", err)
	}
	if err := f.Remove(ctx, h); !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Remove with LostResponseRate 1 = %v, want ErrTransient", err)
	}
	if _, err := f.Stat(ctx, h); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat after lost Remove = %v, want ErrNotExist", err)
	}
	if got := f.Injected(); got != 2 {
		t.Errorf("Injected() = %d, want 2", got)
	}
	f.SetLostResponseRate(0)
	if err := f.Save(ctx, h, data); err != nil {
		t.Errorf("Save with LostResponseRate 0: %v", err)
	}
}

func TestOnly(t *testing.T) {
	f := faulty.New(mem.New(), faulty.Options{ErrorRate: 1, Latency: time.Hour, Only: []string{faulty.OpLoad}})
	ctx := t.Context()
	h := handle(1)
	if err := f.Save(ctx, h, []byte("x")); err != nil {
		t.Fatalf("Save, not in Only: %v", err)
	}
	if _, err := f.Stat(ctx, h); err != nil {
		t.Fatalf("Stat, not in Only: %v", err)
	}
	// Load is affected: latency first, so cancel to get past it.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := f.Load(cctx, h, 0, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load, in Only, with an hour of latency = %v, want DeadlineExceeded", err)
	}

	defer func() {
		if recover() == nil {
			t.Error("New with an unknown operation in Only did not panic")
		}
	}()
	faulty.New(mem.New(), faulty.Options{Only: []string{"upload"}})
}

func TestLatency(t *testing.T) {
	const latency = 20 * time.Millisecond
	f := faulty.New(mem.New(), faulty.Options{Latency: latency})
	start := time.Now()
	if _, err := f.Stat(t.Context(), handle(1)); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat = %v", err)
	}
	if d := time.Since(start); d < latency {
		t.Errorf("Stat took %v, want at least %v", d, latency)
	}
}

// TestCancelled: a cancelled context wins over injected faults and has no
// effect, as on real storage.
func TestCancelled(t *testing.T) {
	f := faulty.New(mem.New(), faulty.Options{ErrorRate: 1, LostResponseRate: 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.Save(ctx, handle(1), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save = %v, want context.Canceled", err)
	}
	f.SetErrorRate(0)
	if _, err := f.Stat(t.Context(), handle(1)); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat after cancelled Save = %v", err)
	}
	if got := f.Injected(); got != 0 {
		t.Errorf("Injected() = %d, want 0", got)
	}
}

func TestListLag(t *testing.T) {
	c := newClock()
	f := faulty.New(mem.New(), faulty.Options{ListLag: time.Minute, Now: c.Now})
	ctx := t.Context()
	old, young := handle(1), handle(2)
	if err := f.Save(ctx, old, []byte("old")); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Minute)
	if err := f.Save(ctx, young, []byte("young")); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(ctx, backend.Handle{Type: backend.ConfigFile}, []byte("config")); err != nil {
		t.Fatal(err)
	}

	if got := list(t, f, backend.PackFile); len(got) != 1 || got[old.Name] != 3 {
		t.Errorf("List(data) during the lag = %v, want only %q", got, old.Name)
	}
	if got := list(t, f, backend.ConfigFile); len(got) != 0 {
		t.Errorf("List(config) during the lag = %v, want nothing", got)
	}
	// A process sees its own writes in Load and Stat at once.
	if data, err := f.Load(ctx, young, 0, 0); err != nil || string(data) != "young" {
		t.Errorf("Load of young object = %q, %v", data, err)
	}
	if fi, err := f.Stat(ctx, young); err != nil || fi.Size != 5 {
		t.Errorf("Stat of young object = %+v, %v", fi, err)
	}

	c.advance(59 * time.Second)
	if got := list(t, f, backend.PackFile); len(got) != 1 {
		t.Errorf("List(data) 59s after Save = %v, want the young object still hidden", got)
	}
	c.advance(time.Second)
	if got := list(t, f, backend.PackFile); len(got) != 2 || got[young.Name] != 5 {
		t.Errorf("List(data) after the lag = %v, want both objects", got)
	}
	if got := list(t, f, backend.ConfigFile); got["config"] != 6 {
		t.Errorf("List(config) after the lag = %v", got)
	}
}

func TestDeleteLag(t *testing.T) {
	c := newClock()
	f := faulty.New(mem.New(), faulty.Options{DeleteLag: time.Minute, Now: c.Now})
	ctx := t.Context()
	kept, gone := handle(1), handle(2)
	for _, h := range []backend.Handle{kept, gone} {
		if err := f.Save(ctx, h, []byte(h.Name[60:])); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Remove(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(ctx, gone); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := f.Remove(ctx, handle(3)); err != nil {
		t.Fatalf("Remove of a never-saved object: %v", err)
	}

	if got := list(t, f, backend.PackFile); len(got) != 2 || got[gone.Name] != 4 {
		t.Errorf("List(data) during the delete lag = %v, want the removed object still listed", got)
	}
	if _, err := f.Load(ctx, gone, 0, 0); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Load of removed object = %v, want ErrNotExist", err)
	}
	if _, err := f.Stat(ctx, gone); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat of removed object = %v, want ErrNotExist", err)
	}

	// A callback error stops the listing in the lagging part too.
	stop := errors.New("stop")
	calls := 0
	err := f.List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		calls++
		if fi.Name == gone.Name {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("List with a callback failing on the removed object = %v after %d calls", err, calls)
	}

	// Saved again within the lag: listed once, with its new size.
	c.advance(30 * time.Second)
	if err := f.Save(ctx, gone, []byte("again!")); err != nil {
		t.Fatal(err)
	}
	if got := list(t, f, backend.PackFile); len(got) != 2 || got[gone.Name] != 6 {
		t.Errorf("List(data) after re-Save = %v", got)
	}
	if err := f.Remove(ctx, gone); err != nil {
		t.Fatal(err)
	}
	c.advance(59 * time.Second)
	if got := list(t, f, backend.PackFile); len(got) != 2 {
		t.Errorf("List(data) 59s after Remove = %v, want it still listed", got)
	}
	c.advance(time.Second)
	if got := list(t, f, backend.PackFile); len(got) != 1 || got[kept.Name] == 0 {
		t.Errorf("List(data) after the delete lag = %v, want only %q", got, kept.Name)
	}
}

// faults runs a fixed sequence of calls and returns which of them failed.
func faults(t *testing.T, f *faulty.Backend) []int {
	t.Helper()
	ctx := t.Context()
	var failed []int
	note := func(i int, err error) {
		switch {
		case errors.Is(err, backend.ErrTransient):
			failed = append(failed, i)
		case err != nil && !errors.Is(err, backend.ErrExist) && !errors.Is(err, backend.ErrNotExist):
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for i := range 300 {
		h := handle(i % 40)
		switch i % 5 {
		case 0, 1:
			note(i, f.Save(ctx, h, []byte("x")))
		case 2:
			_, err := f.Load(ctx, h, 0, 0)
			note(i, err)
		case 3:
			note(i, f.Remove(ctx, h))
		case 4:
			note(i, f.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }))
		}
	}
	return failed
}

func TestDeterministic(t *testing.T) {
	opts := faulty.Options{Seed: 42, ErrorRate: 0.2, LostResponseRate: 0.3}
	a := faults(t, faulty.New(mem.New(), opts))
	b := faults(t, faulty.New(mem.New(), opts))
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	if len(a) < 50 || len(a) > 150 {
		t.Errorf("%d of 300 calls failed; the rates are off", len(a))
	}
	opts.Seed = 43
	if c := faults(t, faulty.New(mem.New(), opts)); slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same faults: %v", a)
	}
}
