package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/backendtest"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
	"github.com/cairn-backup/cairn/repo/backend/mem"
	"github.com/cairn-backup/cairn/repo/backend/retry"
)

// fast are retry options for tests: many attempts, short waits.
var fast = retry.Options{Attempts: 30, Base: time.Millisecond, Max: 5 * time.Millisecond}

// TestSuiteOverFaulty runs the conformance suite through retry over a
// store where 20% of calls fail before doing anything and 20% of the Saves
// and Removes that succeed lose their response. A Save try then fails
// with probability 0.2 + 0.8·0.2 = 0.36, other tries with 0.2; 30 attempts
// leave 0.36^30 ≈ 5e-14 per operation, for a few thousand operations.
func TestSuiteOverFaulty(t *testing.T) {
	var seed atomic.Uint64
	backendtest.Run(t, func(*testing.T) backend.Backend {
		f := faulty.New(mem.New(), faulty.Options{Seed: seed.Add(1), ErrorRate: 0.2, LostResponseRate: 0.2})
		return retry.New(f, fast)
	})
}

// TestSuiteOverMem checks that retry is transparent over good storage,
// including a backend that is not a Creator.
func TestSuiteOverMem(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backend.Backend { return retry.New(mem.New(), fast) })
}

// TestSuiteFaultsExercised makes sure the faulty run above is not vacuous:
// with the same faults, retries and lost responses do happen.
func TestSuiteFaultsExercised(t *testing.T) {
	f := faulty.New(mem.New(), faulty.Options{Seed: 1, ErrorRate: 0.2, LostResponseRate: 0.2})
	var retries atomic.Int64
	opts := fast
	opts.OnRetry = func(string, backend.Handle, int, error) { retries.Add(1) }
	be := retry.New(f, opts)
	for i := range 200 {
		h := backend.Handle{Type: backend.PackFile, Name: fmt.Sprintf("%064x", i)}
		data := []byte(h.Name)
		if err := be.Save(t.Context(), h, data); err != nil {
			t.Fatalf("Save(%v): %v", h, err)
		}
		if got, err := be.Load(t.Context(), h, 0, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Load(%v) = %q, %v", h, got, err)
		}
		if err := be.Remove(t.Context(), h); err != nil {
			t.Fatalf("Remove(%v): %v", h, err)
		}
	}
	if f.Injected() < 100 || retries.Load() != int64(f.Injected()) {
		t.Fatalf("%d faults injected, %d retries; want many, and one retry per fault", f.Injected(), retries.Load())
	}
}

// fake wraps mem and lets a test replace the result of any call. before is
// called with the operation and its 1-based call number before the call is
// made; an error from it is returned without doing the call.
type fake struct {
	*mem.Backend
	before func(op string, n int) error

	mu    sync.Mutex
	calls map[string]int
}

func newFake(before func(op string, n int) error) *fake {
	return &fake{Backend: mem.New(), before: before, calls: make(map[string]int)}
}

func (f *fake) enter(op string) error {
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	f.mu.Unlock()
	if f.before == nil {
		return nil
	}
	return f.before(op, n)
}

func (f *fake) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fake) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := f.enter("save"); err != nil {
		return err
	}
	return f.Backend.Save(ctx, h, data)
}

func (f *fake) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	if err := f.enter("load"); err != nil {
		return nil, err
	}
	return f.Backend.Load(ctx, h, offset, length)
}

func (f *fake) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := f.enter("stat"); err != nil {
		return backend.FileInfo{}, err
	}
	return f.Backend.Stat(ctx, h)
}

func (f *fake) Remove(ctx context.Context, h backend.Handle) error {
	if err := f.enter("remove"); err != nil {
		return err
	}
	return f.Backend.Remove(ctx, h)
}

func (f *fake) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := f.enter("list"); err != nil {
		return err
	}
	return f.Backend.List(ctx, t, fn)
}

var (
	pack  = backend.Handle{Type: backend.PackFile, Name: "0123456789abcdef"}
	other = backend.Handle{Type: backend.PackFile, Name: "fedcba9876543210"}
)

func transient(what string) error { return fmt.Errorf("%s: %w", what, backend.ErrTransient) }

func TestPermanentErrorsNotRetried(t *testing.T) {
	errs := []error{
		backend.ErrNotExist, backend.ErrExist, backend.ErrPermission,
		backend.ErrNoSpace, backend.ErrClosed,
		context.Canceled, context.DeadlineExceeded,
		errors.New("no sentinel at all"),
		// A permanent sentinel wins over ErrTransient.
		fmt.Errorf("throttled and refused: %w, %w", backend.ErrTransient, backend.ErrPermission),
		fmt.Errorf("gone: %w, %w", backend.ErrNotExist, backend.ErrTransient),
	}
	for _, want := range errs {
		for _, op := range []string{"save", "load", "stat", "remove", "list"} {
			t.Run(fmt.Sprintf("%s/%v", op, want), func(t *testing.T) {
				f := newFake(func(o string, _ int) error {
					if o == op {
						return want
					}
					return nil
				})
				opts := fast
				opts.OnRetry = func(op string, h backend.Handle, attempt int, err error) {
					t.Errorf("OnRetry(%s, %v, %d, %v) for a permanent error", op, h, attempt, err)
				}
				be := retry.New(f, opts)
				var err error
				switch op {
				case "save":
					err = be.Save(t.Context(), pack, []byte("x"))
				case "load":
					_, err = be.Load(t.Context(), pack, 0, 0)
				case "stat":
					_, err = be.Stat(t.Context(), pack)
				case "remove":
					err = be.Remove(t.Context(), pack)
				case "list":
					err = be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { return nil })
				}
				if !errors.Is(err, want) {
					t.Errorf("%s = %v, want %v", op, err, want)
				}
				if n := f.count(op); n != 1 {
					t.Errorf("inner %s called %d times, want 1", op, n)
				}
			})
		}
	}
}

func TestTransientRetried(t *testing.T) {
	for _, op := range []string{"save", "load", "stat", "remove", "list"} {
		t.Run(op, func(t *testing.T) {
			f := newFake(func(o string, n int) error {
				if o == op && n <= 3 {
					return transient(o)
				}
				return nil
			})
			if op != "save" {
				if err := f.Backend.Save(t.Context(), pack, []byte("data")); err != nil {
					t.Fatal(err)
				}
			}
			var attempts []int
			opts := fast
			opts.OnRetry = func(o string, h backend.Handle, attempt int, err error) {
				if o != op || !errors.Is(err, backend.ErrTransient) {
					t.Errorf("OnRetry(%s, %v, %d, %v)", o, h, attempt, err)
				}
				if o == "list" && h != (backend.Handle{Type: backend.PackFile}) || o != "list" && h != pack {
					t.Errorf("OnRetry handle %v", h)
				}
				attempts = append(attempts, attempt)
			}
			be := retry.New(f, opts)
			var err error
			switch op {
			case "save":
				err = be.Save(t.Context(), pack, []byte("data"))
			case "load":
				var got []byte
				got, err = be.Load(t.Context(), pack, 1, 2)
				if err == nil && string(got) != "at" {
					t.Errorf("Load = %q", got)
				}
			case "stat":
				var fi backend.FileInfo
				fi, err = be.Stat(t.Context(), pack)
				if err == nil && fi.Size != 4 {
					t.Errorf("Stat = %+v", fi)
				}
			case "remove":
				err = be.Remove(t.Context(), pack)
			case "list":
				var names []string
				err = be.List(t.Context(), backend.PackFile, func(fi backend.FileInfo) error {
					names = append(names, fi.Name)
					return nil
				})
				if !slices.Equal(names, []string{pack.Name}) {
					t.Errorf("List = %q", names)
				}
			}
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if n := f.count(op); n != 4 {
				t.Errorf("inner %s called %d times, want 4", op, n)
			}
			if !slices.Equal(attempts, []int{1, 2, 3}) {
				t.Errorf("OnRetry attempts %v, want [1 2 3]", attempts)
			}
		})
	}
}

func TestGivesUp(t *testing.T) {
	f := newFake(func(string, int) error { return transient("always") })
	retries := 0
	be := retry.New(f, retry.Options{Attempts: 4, Base: time.Microsecond, OnRetry: func(string, backend.Handle, int, error) { retries++ }})
	_, err := be.Load(t.Context(), pack, 0, 0)
	if !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Load = %v, want ErrTransient after the last attempt", err)
	}
	if n := f.count("load"); n != 4 || retries != 3 {
		t.Fatalf("inner Load called %d times with %d retries, want 4 and 3", n, retries)
	}

	once := retry.New(f, retry.Options{Attempts: 1})
	if err := once.Remove(t.Context(), pack); !errors.Is(err, backend.ErrTransient) || f.count("remove") != 1 {
		t.Fatalf("Remove with Attempts 1 = %v after %d calls", err, f.count("remove"))
	}
}

// TestSaveLostResponse: the object is stored, the response lost; the retry
// finds the name taken by our own bytes and Save succeeds.
func TestSaveLostResponse(t *testing.T) {
	f := faulty.New(mem.New(), faulty.Options{LostResponseRate: 1, Only: []string{faulty.OpSave}})
	var retried []string
	opts := fast
	opts.OnRetry = func(op string, _ backend.Handle, _ int, _ error) { retried = append(retried, op) }
	be := retry.New(f, opts)
	data := []byte("pack bytes")
	if err := be.Save(t.Context(), pack, data); err != nil {
		t.Fatalf("Save after lost response: %v", err)
	}
	if got := f.Calls(faulty.OpSave); got != 2 {
		t.Errorf("inner Save called %d times, want 2", got)
	}
	if got := f.Injected(); got != 1 {
		t.Errorf("%d faults injected, want 1", got)
	}
	if !slices.Equal(retried, []string{"save"}) {
		t.Errorf("retried %v, want [save]", retried)
	}
	if got, err := be.Load(t.Context(), pack, 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Load = %q, %v", got, err)
	}

	// Same for Remove: the retry of a done Remove succeeds.
	// Every Remove loses its response until the first retry.
	f2 := faulty.New(mem.New(), faulty.Options{LostResponseRate: 1, Only: []string{faulty.OpRemove}})
	opts2 := fast
	opts2.OnRetry = func(string, backend.Handle, int, error) { f2.SetLostResponseRate(0) }
	be2 := retry.New(f2, opts2)
	if err := be2.Save(t.Context(), pack, data); err != nil {
		t.Fatal(err)
	}
	if err := be2.Remove(t.Context(), pack); err != nil {
		t.Fatalf("Remove after lost response: %v", err)
	}
	if n := f2.Calls(faulty.OpRemove); n != 2 {
		t.Errorf("inner Remove called %d times, want 2", n)
	}
	if _, err := be2.Stat(t.Context(), pack); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat after Remove = %v", err)
	}
}

// TestSaveLostRace: our first try fails before doing anything while a rival
// stores different bytes under the name; the retry's ErrExist is the
// rival's object and must be reported.
func TestSaveLostRace(t *testing.T) {
	var f *fake
	f = newFake(func(op string, n int) error {
		if op == "save" && n == 1 {
			if err := f.Backend.Save(context.Background(), pack, []byte("rival")); err != nil {
				return err
			}
			return transient("save")
		}
		return nil
	})
	be := retry.New(f, fast)
	if err := be.Save(t.Context(), pack, []byte("ours")); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("Save that lost the race = %v, want ErrExist", err)
	}
	if got, _ := be.Load(t.Context(), pack, 0, 0); string(got) != "rival" {
		t.Fatalf("stored %q, want the rival's", got)
	}
}

// TestSaveExistFirstAttempt: ErrExist on the first try is reported, even
// when the stored bytes are ours.
func TestSaveExistFirstAttempt(t *testing.T) {
	data := []byte("same bytes")

	// Already stored: found by the look before the upload.
	f := newFake(nil)
	if err := f.Backend.Save(t.Context(), pack, data); err != nil {
		t.Fatal(err)
	}
	be := retry.New(f, fast)
	if err := be.Save(t.Context(), pack, data); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("Save of a stored object = %v, want ErrExist", err)
	}
	if n := f.count("save"); n != 0 {
		t.Errorf("inner Save called %d times for a stored object, want 0", n)
	}

	// Stored between the look and the first try.
	var f2 *fake
	f2 = newFake(func(op string, n int) error {
		if op == "save" && n == 1 {
			return f2.Backend.Save(context.Background(), pack, data)
		}
		return nil
	})
	be2 := retry.New(f2, fast)
	if err := be2.Save(t.Context(), pack, data); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("Save refused on its first try = %v, want ErrExist", err)
	}
	if n := f2.count("save"); n != 1 {
		t.Errorf("inner Save called %d times, want 1", n)
	}

	// A transient failure before an existing object is found does not make
	// it ours: the look before the upload sees it.
	f3 := faulty.New(mem.New(), faulty.Options{ErrorRate: 1})
	be3 := retry.New(f3, retry.Options{Attempts: 50, Base: time.Microsecond, Max: time.Microsecond})
	f3.SetErrorRate(0)
	if err := be3.Save(t.Context(), other, data); err != nil {
		t.Fatal(err)
	}
	f3.SetErrorRate(0.5)
	if err := be3.Save(t.Context(), other, data); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second Save of identical bytes through faults = %v, want ErrExist", err)
	}
}

// TestSaveVerifyTransient: reading the object back after an uncertain try
// may itself fail transiently; Save keeps trying.
func TestSaveVerifyTransient(t *testing.T) {
	var f *fake
	f = newFake(func(op string, n int) error {
		switch {
		case op == "save" && n == 1:
			if err := f.Backend.Save(context.Background(), pack, []byte("ours")); err != nil {
				return err
			}
			return transient("lost response")
		case op == "load" && n <= 2:
			return transient("load")
		}
		return nil
	})
	be := retry.New(f, fast)
	if err := be.Save(t.Context(), pack, []byte("ours")); err != nil {
		t.Fatalf("Save = %v", err)
	}
	if s, l := f.count("save"), f.count("load"); s != 4 || l != 3 {
		t.Errorf("inner Save, Load called %d, %d times, want 4, 3", s, l)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	f := newFake(func(string, int) error { return transient("down") })
	retried := make(chan struct{}, 1)
	be := retry.New(f, retry.Options{
		Attempts: 100, Base: time.Hour, Max: time.Hour,
		OnRetry: func(string, backend.Handle, int, error) {
			select {
			case retried <- struct{}{}:
			default:
			}
		},
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := be.Load(ctx, pack, 0, 0)
		done <- err
	}()
	<-retried
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Load = %v, want context.Canceled", err)
		}
		if errors.Is(err, backend.ErrTransient) {
			t.Errorf("Load = %v wraps ErrTransient; an outer retry would retry it", err)
		}
	case <-time.After(10 * time.Second):
		// The backoff is an hour: only the cancel can end it sooner.
		t.Fatal("Load still waiting 10s after cancel")
	}
	if n := f.count("load"); n != 1 {
		t.Errorf("inner Load called %d times, want 1", n)
	}

	// A deadline ends the wait the same way.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if err := be.Remove(ctx2, pack); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Remove = %v, want DeadlineExceeded", err)
	}
}

// flakyList fails its first listings after passing some names to fn, in a
// different order each time.
type flakyList struct {
	*mem.Backend
	mu    sync.Mutex
	calls int
}

func (f *flakyList) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	var all []backend.FileInfo
	if err := f.Backend.List(ctx, t, func(fi backend.FileInfo) error {
		all = append(all, fi)
		return nil
	}); err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b backend.FileInfo) int { return cmpName(a, b) * (1 - 2*(n%2)) })
	for i, fi := range all {
		if n <= 3 && i == 3*n {
			return transient("connection reset mid-listing")
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

func cmpName(a, b backend.FileInfo) int {
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

func TestListRestartsWithoutDuplicates(t *testing.T) {
	f := &flakyList{Backend: mem.New()}
	want := make(map[string]bool)
	for i := range 20 {
		h := backend.Handle{Type: backend.IndexFile, Name: fmt.Sprintf("%064x", i)}
		if err := f.Save(t.Context(), h, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		want[h.Name] = true
	}
	be := retry.New(f, fast)
	got := make(map[string]int)
	err := be.List(t.Context(), backend.IndexFile, func(fi backend.FileInfo) error {
		got[fi.Name]++
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if f.calls != 4 {
		t.Errorf("inner List called %d times, want 4", f.calls)
	}
	for name, n := range got {
		if n != 1 || !want[name] {
			t.Errorf("fn called %d times for %q", n, name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fn saw %d names, want %d", len(got), len(want))
	}
}

// TestListCallbackErrorNotRetried: fn's error ends the listing even when it
// wraps ErrTransient (it is the caller's, not the store's).
func TestListCallbackErrorNotRetried(t *testing.T) {
	f := newFake(nil)
	for _, h := range []backend.Handle{pack, other} {
		if err := f.Backend.Save(t.Context(), h, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	be := retry.New(f, fast)
	mine := transient("callback's own backend call")
	calls := 0
	err := be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error {
		calls++
		return mine
	})
	if !errors.Is(err, mine) {
		t.Fatalf("List = %v, want the callback's error", err)
	}
	if calls != 1 || f.count("list") != 1 {
		t.Fatalf("fn called %d times, inner List %d times; want 1 and 1", calls, f.count("list"))
	}
}

// noCreator hides mem's Create.
type noCreator struct{ backend.Backend }

func TestCreate(t *testing.T) {
	if err := retry.New(mem.New(), fast).Create(t.Context()); err != nil {
		t.Errorf("Create over mem: %v", err)
	}
	err := retry.New(noCreator{mem.New()}, fast).Create(t.Context())
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Create over a non-Creator = %v, want ErrUnsupported", err)
	}

	// Create is retried like the rest.
	f := faulty.New(mem.New(), faulty.Options{ErrorRate: 1, Only: []string{faulty.OpCreate}})
	be := retry.New(f, retry.Options{Attempts: 5, Base: time.Microsecond, OnRetry: func(op string, _ backend.Handle, attempt int, _ error) {
		if op != "create" {
			t.Errorf("OnRetry op %q", op)
		}
		if attempt == 2 {
			f.SetErrorRate(0)
		}
	}})
	if err := be.Create(t.Context()); err != nil {
		t.Errorf("Create with transient faults: %v", err)
	}
	if n := f.Calls(faulty.OpCreate); n != 3 {
		t.Errorf("inner Create called %d times, want 3", n)
	}
}

func TestContentNamedSaveSkipsTheLook(t *testing.T) {
	ctx := context.Background()
	inner := faulty.New(mem.New(), faulty.Options{})
	b := retry.New(inner, retry.Options{ContentNamed: true})
	h := backend.Handle{Type: backend.IndexFile, Name: "abcd"}
	if err := b.Save(ctx, h, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := inner.Calls(faulty.OpStat); n != 0 {
		t.Fatalf("%d stats before a content-named save", n)
	}
	if err := b.Save(ctx, h, []byte("x")); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second save on the first try: %v", err)
	}
}
