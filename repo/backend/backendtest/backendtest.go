package backendtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Run runs the suite. newBackend must return a backend on fresh, empty
// storage that no other call shares; if the backend implements
// backend.Creator, Run calls Create itself before using it. Run closes
// every backend it gets when the test ends.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	s := suite{newBackend: newBackend}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"Copies", s.testCopies},
		{"RangedLoad", s.testRangedLoad},
		{"CreateOnly", s.testCreateOnly},
		{"Missing", s.testMissing},
		{"RemoveIdempotent", s.testRemoveIdempotent},
		{"List", s.testList},
		{"ListStops", s.testListStops},
		{"Config", s.testConfig},
		{"Concurrent", s.testConcurrent},
		{"ConcurrentSameName", s.testConcurrentSameName},
		{"InvalidHandles", s.testInvalidHandles},
		{"Cancelled", s.testCancelled},
		{"Closed", s.testClosed},
		{"Create", s.testCreate},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

type suite struct {
	newBackend func(t *testing.T) backend.Backend
}

// open returns a fresh, created backend that is closed when t ends.
func (s suite) open(t *testing.T) backend.Backend {
	t.Helper()
	be := s.fresh(t)
	if c, ok := be.(backend.Creator); ok {
		if err := c.Create(t.Context()); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	return be
}

// fresh returns a backend on fresh storage without calling Create.
func (s suite) fresh(t *testing.T) backend.Backend {
	t.Helper()
	be := s.newBackend(t)
	t.Cleanup(func() {
		if err := be.Close(); err != nil && !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return be
}

// randomData returns n deterministic pseudo-random bytes.
func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x636169726e))
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	return buf
}

// packName returns a content-style name (hex SHA-256) for i, spreading
// names over all pack prefixes the way real repositories do.
func packName(i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("cairn-backendtest-", i)))
	return hex.EncodeToString(sum[:])
}

func save(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(t.Context(), h, data); err != nil {
		t.Fatalf("Save(%v, %d bytes): %v", h, len(data), err)
	}
}

func load(t *testing.T, be backend.Backend, h backend.Handle, offset int64, length int) []byte {
	t.Helper()
	data, err := be.Load(t.Context(), h, offset, length)
	if err != nil {
		t.Fatalf("Load(%v, %d, %d): %v", h, offset, length, err)
	}
	return data
}

func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d bytes (contents differ)", what, len(got), len(want))
	}
}

func (s suite) testRoundTrip(t *testing.T) {
	be := s.open(t)
	sizes := []int{0, 1, 100, 4096, 5<<20 + 13}
	for i, size := range sizes {
		for _, typ := range []backend.FileType{backend.PackFile, backend.IndexFile, backend.SnapshotFile, backend.KeyFile, backend.LockFile} {
			if size > 1<<20 && typ != backend.PackFile {
				continue
			}
			h := backend.Handle{Type: typ, Name: packName(i)}
			data := randomData(uint64(i), size)
			save(t, be, h, data)
			mustEqual(t, fmt.Sprintf("Load(%v)", h), load(t, be, h, 0, 0), data)
			fi, err := be.Stat(t.Context(), h)
			if err != nil {
				t.Fatalf("Stat(%v): %v", h, err)
			}
			if fi.Size != int64(size) || fi.Name != h.Name {
				t.Fatalf("Stat(%v) = %+v, want name %q size %d", h, fi, h.Name, size)
			}
		}
	}
}

// testCopies checks that the backend keeps its own copy of saved data and
// hands out copies: buffers are reused by callers.
func (s suite) testCopies(t *testing.T) {
	be := s.open(t)
	h := backend.Handle{Type: backend.PackFile, Name: packName(1)}
	data := randomData(1, 1000)
	orig := bytes.Clone(data)
	save(t, be, h, data)
	clear(data)
	got := load(t, be, h, 0, 0)
	mustEqual(t, "Load after caller reused its buffer", got, orig)
	clear(got)
	mustEqual(t, "Load after caller changed a loaded slice", load(t, be, h, 0, 0), orig)
}

func (s suite) testRangedLoad(t *testing.T) {
	be := s.open(t)
	const size = 1000
	h := backend.Handle{Type: backend.PackFile, Name: packName(7)}
	data := randomData(7, size)
	save(t, be, h, data)

	good := []struct {
		offset int64
		length int
	}{
		{0, 0}, {0, size}, {0, 1}, {10, 0}, {10, 20}, {size - 10, 10},
		{size - 1, 0}, {size - 1, 1}, {size, 0},
	}
	for _, r := range good {
		end := int64(size)
		if r.length > 0 {
			end = r.offset + int64(r.length)
		}
		got := load(t, be, h, r.offset, r.length)
		mustEqual(t, fmt.Sprintf("Load(offset %d, length %d)", r.offset, r.length), got, data[r.offset:end])
	}

	bad := []struct {
		offset int64
		length int
	}{
		{0, size + 1}, {size - 10, 11}, {size, 1}, {size + 1, 0}, {size + 100, 5},
		{-1, 0}, {0, -1},
	}
	for _, r := range bad {
		got, err := be.Load(t.Context(), h, r.offset, r.length)
		if err == nil {
			t.Errorf("Load(offset %d, length %d) of %d bytes = %d bytes, want an error", r.offset, r.length, size, len(got))
			continue
		}
		if errors.Is(err, backend.ErrNotExist) || errors.Is(err, backend.ErrTransient) {
			t.Errorf("Load(offset %d, length %d): %v; a bad range must not look missing or transient", r.offset, r.length, err)
		}
	}

	empty := backend.Handle{Type: backend.PackFile, Name: packName(8)}
	save(t, be, empty, nil)
	if got := load(t, be, empty, 0, 0); len(got) != 0 {
		t.Errorf("Load of empty object = %d bytes", len(got))
	}
	if _, err := be.Load(t.Context(), empty, 0, 1); err == nil {
		t.Errorf("Load(0, 1) of empty object succeeded")
	}
}

func (s suite) testCreateOnly(t *testing.T) {
	be := s.open(t)
	for _, typ := range backend.FileTypes {
		h := backend.Handle{Type: typ, Name: packName(3)}
		first := randomData(3, 3000)
		save(t, be, h, first)
		for _, second := range [][]byte{randomData(4, 5000), randomData(5, 10), nil, first} {
			err := be.Save(t.Context(), h, second)
			if !errors.Is(err, backend.ErrExist) {
				t.Fatalf("second Save(%v) = %v, want ErrExist", h, err)
			}
		}
		mustEqual(t, fmt.Sprintf("Load(%v) after refused Saves", h), load(t, be, h, 0, 0), first)
		fi, err := be.Stat(t.Context(), h)
		if err != nil || fi.Size != int64(len(first)) {
			t.Fatalf("Stat(%v) = %+v, %v; want size %d", h, fi, err, len(first))
		}
	}
}

func (s suite) testMissing(t *testing.T) {
	be := s.open(t)
	for _, typ := range backend.FileTypes {
		h := backend.Handle{Type: typ, Name: packName(9)}
		if _, err := be.Load(t.Context(), h, 0, 0); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Load(%v) of missing object = %v, want ErrNotExist", h, err)
		}
		if _, err := be.Load(t.Context(), h, 10, 5); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("ranged Load(%v) of missing object = %v, want ErrNotExist", h, err)
		}
		if _, err := be.Stat(t.Context(), h); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("Stat(%v) of missing object = %v, want ErrNotExist", h, err)
		}
	}
}

func (s suite) testRemoveIdempotent(t *testing.T) {
	be := s.open(t)
	for _, typ := range backend.FileTypes {
		h := backend.Handle{Type: typ, Name: packName(11)}
		save(t, be, h, []byte("remove me"))
		for i := range 2 {
			if err := be.Remove(t.Context(), h); err != nil {
				t.Fatalf("Remove(%v) #%d: %v", h, i+1, err)
			}
		}
		if _, err := be.Stat(t.Context(), h); !errors.Is(err, backend.ErrNotExist) {
			t.Fatalf("Stat(%v) after Remove = %v, want ErrNotExist", h, err)
		}
		// The name is free again.
		save(t, be, h, []byte("again"))
		mustEqual(t, "Load after re-Save", load(t, be, h, 0, 0), []byte("again"))
	}
	never := backend.Handle{Type: backend.PackFile, Name: packName(12)}
	if err := be.Remove(t.Context(), never); err != nil {
		t.Fatalf("Remove(%v) of never-saved object: %v", never, err)
	}
}

// listAll returns t's listing as a name → size map, failing on duplicates.
func listAll(t *testing.T, be backend.Backend, typ backend.FileType) map[string]int64 {
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

func (s suite) testList(t *testing.T) {
	be := s.open(t)
	for _, typ := range backend.FileTypes {
		if got := listAll(t, be, typ); len(got) != 0 {
			t.Fatalf("List(%s) of empty repository = %v", typ, got)
		}
	}

	want := make(map[backend.FileType]map[string]int64)
	for _, typ := range backend.FileTypes {
		want[typ] = make(map[string]int64)
	}
	add := func(h backend.Handle, size int) {
		save(t, be, h, randomData(uint64(size), size))
		name := h.Name
		if h.Type == backend.ConfigFile {
			name = "config"
		}
		want[h.Type][name] = int64(size)
	}

	// Enough packs that every two-hex-digit prefix is likely used, plus
	// names a prefix-sharded layout must still handle.
	for i := range 600 {
		add(backend.Handle{Type: backend.PackFile, Name: packName(i)}, i%97)
	}
	add(backend.Handle{Type: backend.PackFile, Name: "zz-not-hex"}, 5)
	add(backend.Handle{Type: backend.PackFile, Name: "AB"}, 6)
	for i := range 20 {
		add(backend.Handle{Type: backend.IndexFile, Name: packName(1000 + i)}, 100+i)
		add(backend.Handle{Type: backend.SnapshotFile, Name: packName(2000 + i)}, 200+i)
	}
	add(backend.Handle{Type: backend.KeyFile, Name: packName(3000)}, 300)
	add(backend.Handle{Type: backend.KeyFile, Name: "second-key"}, 301)
	add(backend.Handle{Type: backend.LockFile, Name: packName(4000)}, 400)
	add(backend.Handle{Type: backend.ConfigFile}, 500)

	for _, typ := range backend.FileTypes {
		got := listAll(t, be, typ)
		if len(got) != len(want[typ]) {
			t.Errorf("List(%s) returned %d objects, want %d", typ, len(got), len(want[typ]))
		}
		for name, size := range want[typ] {
			gotSize, ok := got[name]
			switch {
			case !ok:
				t.Errorf("List(%s) is missing %q", typ, name)
			case gotSize != size:
				t.Errorf("List(%s): %q has size %d, want %d", typ, name, gotSize, size)
			}
		}
		for name := range got {
			if _, ok := want[typ][name]; !ok {
				t.Errorf("List(%s) returned unexpected %q", typ, name)
			}
		}
	}

	// Removed objects leave the listing (this backend's own deletes).
	gone := backend.Handle{Type: backend.PackFile, Name: packName(0)}
	if err := be.Remove(t.Context(), gone); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, ok := listAll(t, be, backend.PackFile)[gone.Name]; ok {
		t.Errorf("List(data) still returns removed %q", gone.Name)
	}
}

func (s suite) testListStops(t *testing.T) {
	be := s.open(t)
	for i := range 10 {
		save(t, be, backend.Handle{Type: backend.SnapshotFile, Name: packName(i)}, []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := be.List(t.Context(), backend.SnapshotFile, func(backend.FileInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List with failing callback = %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Fatalf("List called fn %d times after it failed, want 1", calls)
	}
}

func (s suite) testConfig(t *testing.T) {
	be := s.open(t)
	data := []byte("the one config")
	save(t, be, backend.Handle{Type: backend.ConfigFile}, data)
	// Config handles are equal whatever their name.
	for _, name := range []string{"", "config", "other"} {
		h := backend.Handle{Type: backend.ConfigFile, Name: name}
		mustEqual(t, fmt.Sprintf("Load(config named %q)", name), load(t, be, h, 0, 0), data)
		fi, err := be.Stat(t.Context(), h)
		if err != nil || fi.Size != int64(len(data)) || fi.Name != "config" {
			t.Fatalf("Stat(config named %q) = %+v, %v", name, fi, err)
		}
	}
	if err := be.Save(t.Context(), backend.Handle{Type: backend.ConfigFile, Name: "other"}, []byte("x")); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second config Save = %v, want ErrExist", err)
	}
	mustEqual(t, "config after refused Save", load(t, be, backend.Handle{Type: backend.ConfigFile}, 5, 3), data[5:8])
	if err := be.Remove(t.Context(), backend.Handle{Type: backend.ConfigFile}); err != nil {
		t.Fatalf("Remove(config): %v", err)
	}
	if _, err := be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile}); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat(config) after Remove = %v, want ErrNotExist", err)
	}
}

func (s suite) testConcurrent(t *testing.T) {
	be := s.open(t)
	const workers, perWorker = 16, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := w*perWorker + i
				h := backend.Handle{Type: backend.PackFile, Name: packName(n)}
				data := randomData(uint64(n), 1000+n*37)
				if err := be.Save(t.Context(), h, data); err != nil {
					errs <- fmt.Errorf("Save(%v): %w", h, err)
					return
				}
				// Read our own and a neighbour's objects while others write.
				got, err := be.Load(t.Context(), h, 0, 0)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("Load(%v) = %d bytes, %v; want own write", h, len(got), err)
					return
				}
				other := backend.Handle{Type: backend.PackFile, Name: packName((n + perWorker) % (workers * perWorker))}
				if _, err := be.Load(t.Context(), other, 0, 0); err != nil && !errors.Is(err, backend.ErrNotExist) {
					errs <- fmt.Errorf("Load(%v): %w", other, err)
					return
				}
				if _, err := be.Stat(t.Context(), other); err != nil && !errors.Is(err, backend.ErrNotExist) {
					errs <- fmt.Errorf("Stat(%v): %w", other, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := listAll(t, be, backend.PackFile); len(got) != workers*perWorker {
		t.Errorf("List(data) after concurrent saves: %d objects, want %d", len(got), workers*perWorker)
	}
}

// testConcurrentSameName races Saves of one name: exactly one wins, the
// others get ErrExist, and the stored object is the winner's, whole.
func (s suite) testConcurrentSameName(t *testing.T) {
	be := s.open(t)
	const racers = 8
	for round := range 5 {
		h := backend.Handle{Type: backend.LockFile, Name: packName(round)}
		datas := make([][]byte, racers)
		for i := range datas {
			datas[i] = randomData(uint64(round*racers+i), 64<<10+i)
		}
		results := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() { results[i] = be.Save(t.Context(), h, datas[i]) })
		}
		wg.Wait()

		winner := -1
		for i, err := range results {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: Saves %d and %d of %v both succeeded", round, winner, i, h)
			case err == nil:
				winner = i
			case !errors.Is(err, backend.ErrExist):
				t.Fatalf("round %d: losing Save = %v, want ErrExist", round, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no Save of %v succeeded", round, h)
		}
		mustEqual(t, fmt.Sprintf("round %d: stored object", round), load(t, be, h, 0, 0), datas[winner])
	}
}

func (s suite) testInvalidHandles(t *testing.T) {
	be := s.open(t)
	bad := []backend.Handle{
		{Type: backend.PackFile, Name: ""},
		{Type: backend.SnapshotFile, Name: ""},
		{Type: backend.PackFile, Name: "ab/cdef"},
		{Type: backend.IndexFile, Name: "a/b"},
		{Type: backend.KeyFile, Name: "../config"},
		{Type: backend.LockFile, Name: ".."},
		{Type: backend.IndexFile, Name: "."},
		{Type: backend.PackFile, Name: "a"},
		{Type: "bogus", Name: packName(1)},
		{Type: "", Name: packName(1)},
	}
	for _, h := range bad {
		if err := be.Save(t.Context(), h, []byte("x")); err == nil {
			t.Errorf("Save(%q/%q) succeeded", h.Type, h.Name)
		}
		if _, err := be.Load(t.Context(), h, 0, 0); err == nil {
			t.Errorf("Load(%q/%q) succeeded", h.Type, h.Name)
		}
		if _, err := be.Stat(t.Context(), h); err == nil {
			t.Errorf("Stat(%q/%q) succeeded", h.Type, h.Name)
		}
		if err := be.Remove(t.Context(), h); err == nil {
			t.Errorf("Remove(%q/%q) succeeded", h.Type, h.Name)
		}
	}
	for _, typ := range []backend.FileType{"bogus", "", "data/ab"} {
		if err := be.List(t.Context(), typ, func(backend.FileInfo) error { return nil }); err == nil {
			t.Errorf("List(%q) succeeded", typ)
		}
	}
	// Nothing above may have created an object.
	for _, typ := range backend.FileTypes {
		if got := listAll(t, be, typ); len(got) != 0 {
			t.Errorf("List(%s) after invalid calls = %v", typ, got)
		}
	}
}

func (s suite) testCancelled(t *testing.T) {
	be := s.open(t)
	kept := backend.Handle{Type: backend.SnapshotFile, Name: packName(1)}
	save(t, be, kept, []byte("kept"))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	h := backend.Handle{Type: backend.SnapshotFile, Name: packName(2)}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled context = %v, want context.Canceled", op, err)
		}
	}
	check("Save", be.Save(ctx, h, []byte("data")))
	_, err := be.Load(ctx, kept, 0, 0)
	check("Load", err)
	_, err = be.Stat(ctx, kept)
	check("Stat", err)
	check("Remove", be.Remove(ctx, kept))
	check("List", be.List(ctx, backend.SnapshotFile, func(backend.FileInfo) error { return nil }))

	if _, err := be.Stat(t.Context(), h); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat after cancelled Save = %v, want ErrNotExist", err)
	}
	mustEqual(t, "Load after cancelled Remove", load(t, be, kept, 0, 0), []byte("kept"))
}

func (s suite) testClosed(t *testing.T) {
	be := s.open(t)
	h := backend.Handle{Type: backend.IndexFile, Name: packName(1)}
	save(t, be, h, []byte("index"))
	if err := be.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, backend.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
	check("Save", be.Save(t.Context(), backend.Handle{Type: backend.IndexFile, Name: packName(2)}, []byte("x")))
	_, err := be.Load(t.Context(), h, 0, 0)
	check("Load", err)
	_, err = be.Stat(t.Context(), h)
	check("Stat", err)
	check("Remove", be.Remove(t.Context(), h))
	check("List", be.List(t.Context(), backend.IndexFile, func(backend.FileInfo) error { return nil }))
	check("Close", be.Close())
	if c, ok := be.(backend.Creator); ok {
		check("Create", c.Create(t.Context()))
	}
	if be.Location() == "" {
		t.Errorf("Location() is empty")
	}
}

// testCreate covers backend.Creator: Create on fresh storage works and the
// result is usable; Create on storage holding an object fails.
func (s suite) testCreate(t *testing.T) {
	be := s.fresh(t)
	c, ok := be.(backend.Creator)
	if !ok {
		t.Skipf("%T does not implement backend.Creator", be)
	}
	if err := c.Create(t.Context()); err != nil {
		t.Fatalf("Create on fresh storage: %v", err)
	}
	h := backend.Handle{Type: backend.ConfigFile}
	save(t, be, h, []byte("config"))
	if err := c.Create(t.Context()); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("Create on storage holding an object = %v, want ErrExist", err)
	}
	mustEqual(t, "config after refused Create", load(t, be, h, 0, 0), []byte("config"))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Create(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with cancelled context = %v, want context.Canceled", err)
	}
}
