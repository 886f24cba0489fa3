package tree

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// packLoads counts the reads of pack data that reach the storage.
type packLoads struct {
	backend.Backend
	n atomic.Int64
}

func (p *packLoads) Load(ctx context.Context, h backend.Handle, off int64, length int) ([]byte, error) {
	if h.Type == backend.PackFile {
		p.n.Add(1)
	}
	return p.Backend.Load(ctx, h, off, length)
}

// aheadFixture is a snapshot of src/d holding files small files (distinct
// random contents) and a subdirectory sub of 10 more, read through a
// mount model with its own cache.
type aheadFixture struct {
	be       *packLoads
	rp       *Repo
	c        *cache.Cache[repo.ID]
	dir      *snapDir
	contents map[string][]byte
}

func newAheadFixture(t *testing.T, files int) *aheadFixture {
	t.Helper()
	ctx := context.Background()
	be := &packLoads{Backend: mem.New()}
	r, err := repo.Init(ctx, be, "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	contents := map[string][]byte{}
	rng := rand.NewChaCha8([32]byte{7})
	write := func(name string) {
		b := make([]byte, 3000)
		rng.Read(b)
		contents[name] = b
		if err := os.WriteFile(filepath.Join(src, "d", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(src, "d", "sub"), 0o755)
	for i := range files {
		write(fmt.Sprintf("f%03d", i))
	}
	for i := range 10 {
		write(fmt.Sprintf("sub/g%02d", i))
	}
	if _, err := archiver.Backup(ctx, r, []string{filepath.Join(src, "d")}, archiver.Options{Host: "h"}); err != nil {
		t.Fatal(err)
	}
	c := cache.New[repo.ID](64 << 20)
	rp := NewRepo(ctx, "main", r, c)
	root := NewRoot([]*Repo{rp}, nil)
	target, err := walk(t, root, "repos/main/snapshots/latest").(Symlink).Readlink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := walk(t, root, "repos/main/snapshots/"+target+filepath.Join(src, "d")).(*snapDir)
	be.n.Store(0)
	return &aheadFixture{be: be, rp: rp, c: c, dir: d, contents: contents}
}

// byIno lists the files of d in the order cp -a reads them: by inode
// number.
func byIno(t *testing.T, d *snapDir) []string {
	t.Helper()
	es, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	es = slices.DeleteFunc(es, func(e Entry) bool { return e.Mode != ModeFile })
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.Ino, b.Ino) })
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// read opens and reads one file of d (as a reader would, name relative to
// d) and checks its content.
func (fx *aheadFixture) read(t *testing.T, d *snapDir, prefix, name string) error {
	t.Helper()
	ctx := context.Background()
	n, err := d.Lookup(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := n.(File).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, 4096)
	k, err := h.ReadAt(ctx, buf, 0)
	if err != nil {
		return err
	}
	if want := fx.contents[prefix+name]; string(buf[:k]) != string(want) {
		t.Fatalf("%s: read %d bytes that differ from the source's %d", name, k, len(want))
	}
	return nil
}

func waitFilled(t *testing.T, c *cache.Cache[repo.ID], n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Filled < n || c.Stats().Entries < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("read-ahead loaded %d chunks, want at least %d", c.Stats().Filled, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCached waits until the chunks of the files names of d are cached.
func waitCached(t *testing.T, fx *aheadFixture, d *snapDir, names []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, name := range names {
		n, err := d.Lookup(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range n.(*snapFile).node.Content {
			for !fx.c.Contains(id) {
				if time.Now().After(deadline) {
					t.Fatalf("%s not loaded ahead of its reader", name)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// readAhead reads names of d in turn, each once the read-ahead has loaded
// it (it must, without its reader asking), and returns the cache misses
// of the reads.
func (fx *aheadFixture) readAhead(t *testing.T, d *snapDir, prefix string, names []string) uint64 {
	t.Helper()
	var misses uint64
	for _, name := range names {
		waitCached(t, fx, d, []string{name})
		before := fx.c.Stats().Misses
		if err := fx.read(t, d, prefix, name); err != nil {
			t.Fatal(err)
		}
		misses += fx.c.Stats().Misses - before
	}
	return misses
}

// Opening the first file of a directory, in cp -a's order, starts the
// read-ahead: each file after it is in the cache before it is opened, and
// the storage sees a few requests in all rather than one per file.
func TestReadAheadFollowsInodeOrder(t *testing.T) {
	fx := newAheadFixture(t, 100)
	order := byIno(t, fx.dir)
	if slices.IsSorted(order) {
		t.Fatal("inode order equals name order: the test would not tell them apart")
	}
	if err := fx.read(t, fx.dir, "", order[0]); err != nil {
		t.Fatal(err)
	}
	if m := fx.readAhead(t, fx.dir, "", order[1:]); m != 0 {
		t.Errorf("%d of %d reads after the first missed the cache", m, len(order)-1)
	}
	// One request for the first file, then one per batch (8, 16, 32,
	// 64 files: everything here sits in one pack, close together).
	if n := fx.be.n.Load(); n > 6 {
		t.Errorf("%d pack reads for %d files, want at most 6", n, len(order))
	}
}

// Files opened at random cost a small batch of read-ahead each, not a
// full one.
func TestReadAheadOfRandomOpens(t *testing.T) {
	fx := newAheadFixture(t, 150)
	order := byIno(t, fx.dir)
	opens := []int{140, 3, 77, 120, 40}
	for _, k := range opens {
		if err := fx.read(t, fx.dir, "", order[k]); err != nil {
			t.Fatal(err)
		}
	}
	// Each queued the next aheadStart files.
	for _, k := range opens {
		waitCached(t, fx, fx.dir, order[k+1:k+1+aheadStart])
	}
	fx.dir.ahead.mu.Lock()
	pos, batch := fx.dir.ahead.pos, fx.dir.ahead.batch
	fx.dir.ahead.mu.Unlock()
	if pos != 41+aheadStart || batch != aheadStart {
		t.Errorf("read-ahead queued up to %d in batches of %d, want %d and %d", pos, batch, 41+aheadStart, aheadStart)
	}
	if f, most := fx.c.Stats().Filled, uint64(len(opens)*aheadStart); f > most {
		t.Errorf("%d random opens loaded %d files ahead, want at most %d", len(opens), f, most)
	}
}

// A reader going by name (rsync, tar) switches the read-ahead to name
// order as soon as its reads leave inode order.
func TestReadAheadFollowsNameOrder(t *testing.T) {
	fx := newAheadFixture(t, 150) // more than a batch
	var names []string
	for i := range 150 {
		names = append(names, fmt.Sprintf("f%03d", i))
	}
	// Inode numbers hash the name, and names that differ in their last
	// byte often hash next to each other: read until the reads tell the
	// two orders apart.
	order := byIno(t, fx.dir)
	k := 1
	for k < len(names) && slices.Index(order, names[k]) == slices.Index(order, names[k-1])+1 {
		k++
	}
	for _, name := range names[:k+1] {
		if err := fx.read(t, fx.dir, "", name); err != nil {
			t.Fatal(err)
		}
	}
	fx.dir.ahead.mu.Lock()
	byName := fx.dir.ahead.byName
	fx.dir.ahead.mu.Unlock()
	if !byName {
		t.Fatalf("read-ahead still in inode order after %d files read by name", k+1)
	}
	if m := fx.readAhead(t, fx.dir, "", names[k+1:]); m != 0 {
		t.Errorf("%d of %d reads by name missed the cache", m, len(names)-k-1)
	}
}

// A subdirectory listed while its parent is being read starts its own
// read-ahead at once; one merely listed (find, ls -R) loads nothing.
func TestReadAheadOfSubdirectories(t *testing.T) {
	fx := newAheadFixture(t, 3)
	ctx := context.Background()
	sub, err := fx.dir.Lookup(ctx, "sub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.(Dir).List(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // nothing should start: give it the chance
	if s := fx.c.Stats(); s.Filled != 0 {
		t.Fatalf("listing alone loaded %d chunks", s.Filled)
	}

	if err := fx.read(t, fx.dir, "", byIno(t, fx.dir)[0]); err != nil {
		t.Fatal(err)
	}
	waitFilled(t, fx.c, 2)
	sub2, err := fx.dir.Lookup(ctx, "sub") // a fresh directory object, as after the kernel forgot it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub2.(Dir).List(ctx); err != nil {
		t.Fatal(err)
	}
	if m := fx.readAhead(t, sub2.(*snapDir), "sub/", byIno(t, sub2.(*snapDir))); m != 0 {
		t.Errorf("%d of 10 reads in the subdirectory missed the cache", m)
	}
}

// A damaged pack fails the reads it serves with a corruption error, never
// with wrong bytes, and the failures are not cached.
func TestReadAheadOfCorruptPack(t *testing.T) {
	fx := newAheadFixture(t, 20)
	ctx := context.Background()
	order := byIno(t, fx.dir) // the directory's own tree is still intact
	var packs []backend.FileInfo
	fx.be.List(ctx, backend.PackFile, func(fi backend.FileInfo) error { packs = append(packs, fi); return nil })
	for _, fi := range packs {
		h := backend.Handle{Type: backend.PackFile, Name: fi.Name}
		data, err := fx.be.Backend.Load(ctx, h, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(data)-100; i += 500 {
			data[i] ^= 0xff
		}
		fx.be.Remove(ctx, h)
		if err := fx.be.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range order {
		err := fx.read(t, fx.dir, "", name)
		var ce *repo.CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: read of a damaged pack gave %v, want a corruption error", name, err)
		}
	}
	if e := fx.c.Stats().Entries; e != 0 {
		t.Errorf("%d damaged chunks entered the cache", e)
	}
}
