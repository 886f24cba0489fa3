package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// recorder wraps a backend: it logs the loads of pack data (and, through
// note, what the test's callbacks see, in one sequence) and flips the
// byte at flip of the pack flipPack on the way out.
type recorder struct {
	backend.Backend

	mu       sync.Mutex // guards the fields below
	events   []string
	loads    []packLoad
	flipPack string
	flip     int64
}

type packLoad struct {
	pack        string
	off, length int64
}

func (rc *recorder) Load(ctx context.Context, h backend.Handle, off int64, n int) ([]byte, error) {
	b, err := rc.Backend.Load(ctx, h, off, n)
	if h.Type != backend.PackFile {
		return b, err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.loads = append(rc.loads, packLoad{h.Name, off, int64(n)})
	rc.events = append(rc.events, "load "+h.Name[:8])
	if err == nil && h.Name == rc.flipPack && rc.flip >= off && rc.flip < off+int64(len(b)) {
		b[rc.flip-off] ^= 0x40
	}
	return b, err
}

func (rc *recorder) note(e string) {
	rc.mu.Lock()
	rc.events = append(rc.events, e)
	rc.mu.Unlock()
}

func (rc *recorder) reset() {
	rc.mu.Lock()
	rc.events, rc.loads = nil, nil
	rc.mu.Unlock()
}

// loadFixture is a repository with three packs:
//
//	A: a0 a1 (10 KiB each), a 300 KiB blob nobody asks for, a2 a3
//	B: b0 b1
//	C: c0 c1
//
// of random (stored uncompressed) data.
type loadFixture struct {
	r     *repo.Repository
	be    *recorder
	mem   *mem.Backend
	blobs map[string]repo.ID
	plain map[repo.ID][]byte
}

func newLoadFixture(t *testing.T) *loadFixture {
	t.Helper()
	ctx := context.Background()
	m := mem.New()
	rc := &recorder{Backend: m}
	r, err := repo.Init(ctx, rc, "secret", repo.InitOptions{KDF: repo.TestKDF, PackSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fx := &loadFixture{r: r, be: rc, mem: m, blobs: map[string]repo.ID{}, plain: map[repo.ID][]byte{}}
	seed := uint64(100)
	save := func(name string, n int) {
		seed++
		data := randBytes(seed, n)
		id := repo.Hash(data)
		if _, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
		fx.blobs[name], fx.plain[id] = id, data
	}
	for _, group := range [][]string{{"a0", "a1", "gap", "a2", "a3"}, {"b0", "b1"}, {"c0", "c1"}} {
		for _, name := range group {
			n := 10 << 10
			if name == "gap" {
				n = 300 << 10
			}
			save(name, n)
		}
		if err := r.Flush(ctx); err != nil { // one pack per group
			t.Fatal(err)
		}
	}
	rc.reset()
	return fx
}

func (fx *loadFixture) ids(names ...string) []repo.ID {
	var ids []repo.ID
	for _, n := range names {
		ids = append(ids, fx.blobs[n])
	}
	return ids
}

func (fx *loadFixture) loc(t *testing.T, name string) repo.Location {
	t.Helper()
	loc, ok := fx.r.LookupBlob(fx.blobs[name])
	if !ok {
		t.Fatalf("%s not indexed", name)
	}
	return loc
}

type loaded struct {
	calls int
	plain []byte
	err   error
}

// load runs LoadBlobs and returns what fn got for each position.
func (fx *loadFixture) load(ctx context.Context, ids []repo.ID, opts repo.LoadOptions) (map[int]*loaded, error) {
	var mu sync.Mutex
	got := map[int]*loaded{}
	err := fx.r.LoadBlobs(ctx, ids, opts, func(i int, id repo.ID, plain []byte, err error) error {
		if id != ids[i] {
			return fmt.Errorf("fn(%d) got id %s, want %s", i, id.Short(), ids[i].Short())
		}
		fx.be.note(fmt.Sprint("fn ", i))
		mu.Lock()
		defer mu.Unlock()
		l := got[i]
		if l == nil {
			l = &loaded{}
			got[i] = l
		}
		l.calls++
		l.plain, l.err = plain, err
		return nil
	})
	return got, err
}

// checkAll fails unless fn was called once for each of ids, with the
// right plaintext, except for the positions in bad.
func (fx *loadFixture) checkAll(t *testing.T, ids []repo.ID, got map[int]*loaded, bad ...int) {
	t.Helper()
	for i, id := range ids {
		l := got[i]
		switch {
		case l == nil:
			t.Errorf("fn not called for %d", i)
		case l.calls != 1:
			t.Errorf("fn called %d times for %d", l.calls, i)
		case slicesContain(bad, i):
		case l.err != nil:
			t.Errorf("%d: %v", i, l.err)
		case !bytes.Equal(l.plain, fx.plain[id]):
			t.Errorf("%d: wrong plaintext", i)
		}
	}
}

func slicesContain(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Blobs close together in a pack are read with one request, gap
// included; a gap wider than Gap, or a range longer than MaxRange, starts
// another.
func TestLoadBlobsCoalesces(t *testing.T) {
	fx := newLoadFixture(t)
	ctx := context.Background()
	ids := fx.ids("a3", "a0", "a2", "a1")
	a0, a1, a2, a3 := fx.loc(t, "a0"), fx.loc(t, "a1"), fx.loc(t, "a2"), fx.loc(t, "a3")
	end := func(l repo.Location) int64 { return int64(l.Offset) + int64(l.Length) }
	pack := a0.Pack.String()
	for _, tc := range []struct {
		name  string
		opts  repo.LoadOptions
		loads []packLoad // in any order
	}{
		{"default gap", repo.LoadOptions{}, []packLoad{
			{pack, int64(a0.Offset), end(a1) - int64(a0.Offset)},
			{pack, int64(a2.Offset), end(a3) - int64(a2.Offset)},
		}},
		{"gap wide enough", repo.LoadOptions{Gap: 400 << 10}, []packLoad{
			{pack, int64(a0.Offset), end(a3) - int64(a0.Offset)},
		}},
		{"range too short", repo.LoadOptions{Gap: 400 << 10, MaxRange: 25 << 10}, []packLoad{
			{pack, int64(a0.Offset), end(a1) - int64(a0.Offset)},
			{pack, int64(a2.Offset), end(a3) - int64(a2.Offset)},
		}},
		{"touching", repo.LoadOptions{Gap: -1}, []packLoad{
			{pack, int64(a0.Offset), end(a1) - int64(a0.Offset)},
			{pack, int64(a2.Offset), end(a3) - int64(a2.Offset)},
		}},
		{"one blob a request", repo.LoadOptions{Gap: -1, MaxRange: 15 << 10}, []packLoad{
			{pack, int64(a0.Offset), int64(a0.Length)},
			{pack, int64(a1.Offset), int64(a1.Length)},
			{pack, int64(a2.Offset), int64(a2.Length)},
			{pack, int64(a3.Offset), int64(a3.Length)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx.be.reset()
			got, err := fx.load(ctx, ids, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			fx.checkAll(t, ids, got)
			fx.be.mu.Lock()
			loads := fx.be.loads
			fx.be.mu.Unlock()
			if len(loads) != len(tc.loads) {
				t.Fatalf("loads %v, want %v", loads, tc.loads)
			}
			for _, l := range tc.loads {
				if !containsLoad(loads, l) {
					t.Errorf("loads %v, want %v", loads, tc.loads)
				}
			}
		})
	}
}

func containsLoad(ls []packLoad, l packLoad) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// Ranges are read in the order of their first blob in ids; with Ranges
// 1, each only after every blob of the one before was handed over.
func TestLoadBlobsOrder(t *testing.T) {
	fx := newLoadFixture(t)
	ids := fx.ids("c1", "a0", "b0", "a1", "c0")
	got, err := fx.load(context.Background(), ids, repo.LoadOptions{Ranges: 1})
	if err != nil {
		t.Fatal(err)
	}
	fx.checkAll(t, ids, got)
	a, b, c := fx.loc(t, "a0").Pack.String()[:8], fx.loc(t, "b0").Pack.String()[:8], fx.loc(t, "c0").Pack.String()[:8]
	want := []string{"load " + c, "fn 0", "fn 4", "load " + a, "fn 1", "fn 3", "load " + b, "fn 2"}
	ev := strings.Join(fx.be.events, ", ")
	// Blobs of one range may be handed over in any order.
	ev = strings.ReplaceAll(strings.ReplaceAll(ev, "fn 4, fn 0", "fn 0, fn 4"), "fn 3, fn 1", "fn 1, fn 3")
	if ev != strings.Join(want, ", ") {
		t.Errorf("events\n\t%s\nwant\n\t%s", ev, strings.Join(want, ", "))
	}
}

// A missing pack fails its blobs with a corruption error naming the
// pack and the blob; the blobs of other packs load.
func TestLoadBlobsMissingPack(t *testing.T) {
	fx := newLoadFixture(t)
	ctx := context.Background()
	b := fx.loc(t, "b0")
	if err := fx.mem.Remove(ctx, repo.PackHandle(b.Pack)); err != nil {
		t.Fatal(err)
	}
	ids := fx.ids("a0", "b0", "c0", "b1")
	got, err := fx.load(ctx, ids, repo.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fx.checkAll(t, ids, got, 1, 3)
	for _, i := range []int{1, 3} {
		var ce *repo.CorruptError
		if err := got[i].err; !errors.As(err, &ce) || !errors.Is(err, repo.ErrCorrupt) || got[i].plain != nil {
			t.Fatalf("%d: got %v, want a corruption error", i, err)
		}
		if ce.Object != repo.PackHandle(b.Pack).String() || ce.Blob != ids[i] || !strings.Contains(ce.Error(), "pack is missing") {
			t.Errorf("%d: error %q names %s blob %s", i, ce, ce.Object, ce.Blob.Short())
		}
	}
}

// A read that returns less than the range fails the blobs beyond what it
// returned, and only those; so does a pack shorter than the range.
func TestLoadBlobsShortRead(t *testing.T) {
	fx := newLoadFixture(t)
	ctx := context.Background()
	a1 := fx.loc(t, "a1")
	ids := fx.ids("a0", "a1", "b0")
	short := repo.LoadOptions{ReadRange: func(ctx context.Context, pack repo.ID, start, end int64) ([]byte, error) {
		b, err := fx.mem.Load(ctx, repo.PackHandle(pack), start, int(end-start))
		if pack == a1.Pack {
			b = b[:int64(a1.Offset)-start+int64(a1.Length)/2] // a0 and half of a1
		}
		return b, err
	}}
	got, err := fx.load(ctx, ids, short)
	if err != nil {
		t.Fatal(err)
	}
	fx.checkAll(t, ids, got, 1)
	var ce *repo.CorruptError
	if err := got[1].err; !errors.As(err, &ce) || ce.Blob != ids[1] || ce.Object != repo.PackHandle(a1.Pack).String() || !strings.Contains(err.Error(), "read ") {
		t.Errorf("short read gave %v", err)
	}

	// The pack itself cut in the middle of c0.
	c0 := fx.loc(t, "c0")
	h := repo.PackHandle(c0.Pack)
	data, err := fx.mem.Load(ctx, h, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fx.mem.Remove(ctx, h)
	if err := fx.mem.Save(ctx, h, data[:c0.Offset+c0.Length/2]); err != nil {
		t.Fatal(err)
	}
	ids = fx.ids("c0", "b0")
	got, err = fx.load(ctx, ids, repo.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fx.checkAll(t, ids, got, 0)
	if err := got[0].err; !errors.As(err, &ce) || ce.Blob != ids[0] || ce.Object != h.String() || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated pack gave %v", err)
	}
}

// A blob that does not decode fails alone: the others of its range load.
func TestLoadBlobsDecodeErrorIsPerBlob(t *testing.T) {
	fx := newLoadFixture(t)
	a1 := fx.loc(t, "a1")
	fx.be.flipPack, fx.be.flip = a1.Pack.String(), int64(a1.Offset+a1.Length/2)
	ids := fx.ids("a0", "a1", "a2", "a3", "b0")
	got, err := fx.load(context.Background(), ids, repo.LoadOptions{Gap: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fx.checkAll(t, ids, got, 1)
	var ce *repo.CorruptError
	if err := got[1].err; !errors.As(err, &ce) || ce.Blob != ids[1] || ce.Object != repo.PackHandle(a1.Pack).String() {
		t.Errorf("damaged blob gave %v", err)
	}
	if n := len(fx.be.loads); n != 2 {
		t.Errorf("%d loads, want one per pack", n)
	}
}

// A blob the index does not know, a blob given twice, and a length that
// disagrees with the index.
func TestLoadBlobsUnknownTwiceAndWrongLength(t *testing.T) {
	fx := newLoadFixture(t)
	ctx := context.Background()
	ghost := repo.Hash([]byte("never saved"))
	ids := append(fx.ids("b0", "a0", "b0"), ghost)
	got, err := fx.load(ctx, ids, repo.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fx.checkAll(t, ids, got, 3)
	if err := got[3].err; !errors.Is(err, repo.ErrBlobNotFound) {
		t.Errorf("unknown blob gave %v", err)
	}
	if n := len(fx.be.loads); n != 2 {
		t.Errorf("%d loads for a0 and b0 (twice), want 2", n)
	}

	loc := fx.loc(t, "a0")
	loc.RawLength++
	got, err = fx.load(ctx, ids[1:2], repo.LoadOptions{Locate: func(int) (repo.Location, bool) { return loc, true }})
	if err != nil {
		t.Fatal(err)
	}
	if err := got[0].err; !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "the index says") {
		t.Errorf("wrong length gave %v", err)
	}
}

// A cancelled context stops the loading: LoadBlobs returns ctx.Err() and
// fn never sees the cancellation as a blob's failure.
func TestLoadBlobsCancelled(t *testing.T) {
	fx := newLoadFixture(t)
	ids := fx.ids("c0", "a0", "b0", "a2", "c1", "b1")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := fx.load(ctx, ids, repo.LoadOptions{})
	if !errors.Is(err, context.Canceled) || len(got) != 0 || len(fx.be.loads) != 0 {
		t.Errorf("cancelled before: err %v, %d calls, %d loads", err, len(got), len(fx.be.loads))
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	calls := 0
	err = fx.r.LoadBlobs(ctx, ids, repo.LoadOptions{Ranges: 1, Gap: -1}, func(i int, _ repo.ID, _ []byte, err error) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if err != nil {
			t.Errorf("fn(%d) got %v", i, err)
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during: err %v", err)
	}
	if calls == 0 || calls == len(ids) {
		t.Errorf("%d calls of %d after cancelling in the first", calls, len(ids))
	}

	// Cancelled while a range is read: the read fails with ctx's error,
	// which is not the blobs'.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	b := fx.loc(t, "b0").Pack
	opts := repo.LoadOptions{ReadRange: func(ctx context.Context, pack repo.ID, start, end int64) ([]byte, error) {
		if pack == b {
			cancel()
			return nil, fmt.Errorf("load: %w", ctx.Err())
		}
		return fx.mem.Load(ctx, repo.PackHandle(pack), start, int(end-start))
	}}
	for _, ids := range [][]repo.ID{ids, fx.ids("b0")} {
		got, err = fx.load(ctx, ids, opts)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled in a read of %d blobs: err %v", len(ids), err)
		}
		for i, l := range got {
			if l.err != nil {
				t.Errorf("fn(%d) got %v", i, l.err)
			}
		}
	}
}

// An error from fn stops the loading and is returned.
func TestLoadBlobsCallbackError(t *testing.T) {
	fx := newLoadFixture(t)
	ids := fx.ids("c0", "a0", "b0", "a2", "c1", "b1")
	stop := errors.New("stop")
	var mu sync.Mutex
	calls := 0
	err := fx.r.LoadBlobs(context.Background(), ids, repo.LoadOptions{Ranges: 1, Gap: -1}, func(int, repo.ID, []byte, error) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return stop
	})
	if err != stop || calls == len(ids) {
		t.Errorf("err %v after %d calls", err, calls)
	}
}
