package maint_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/maint"
)

// fixture is a small repository on the local backend with two snapshots,
// written blob by blob (no archiver): snap-1 holds /etc/hosts and
// /home/ann/{notes.txt,photo.jpg,link}; snap-2 adds /home/ann/new.bin and
// shares /etc with snap-1. Each snapshot's blobs went into their own
// Flush, so there are two index files. Packs are 64 KiB and data chunks
// 20 KiB of random bytes, so the photo spreads over several packs.
type fixture struct {
	t     *testing.T
	root  string
	r     *repo.Repository
	photo []repo.ID // chunks of /home/ann/photo.jpg
	snap1 repo.ID
	snap2 repo.ID
	index []string // index file names, in the order of the Flushes
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "repo")}
	be, err := local.Open(f.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	f.r, err = repo.Init(ctx, be, "secret", repo.InitOptions{KDF: repo.TestKDF, PackSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}

	for i := range 6 {
		f.photo = append(f.photo, f.data(randBytes(uint64(i), 20<<10)))
	}
	notes := f.data(bytes.Repeat([]byte("remember the milk\n"), 200))
	hosts := f.data([]byte("127.0.0.1 localhost\n"))
	etc := f.tree(file("hosts", hosts))
	ann := f.tree(file("notes.txt", notes), file("photo.jpg", f.photo...),
		&repo.Node{Name: "link", Type: repo.NodeSymlink, Mode: 0o777, LinkTarget: "photo.jpg"})
	root := f.tree(dir("etc", etc), dir("home", f.tree(dir("ann", ann))))
	f.flush()
	f.snap1 = f.snapshot("snap-1", root)

	added := f.data(randBytes(100, 30<<10))
	ann2 := f.tree(file("new.bin", added), file("notes.txt", notes), file("photo.jpg", f.photo...))
	root2 := f.tree(dir("etc", etc), dir("home", f.tree(dir("ann", ann2))))
	f.flush()
	f.snap2 = f.snapshot("snap-2", root2)
	return f
}

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func (f *fixture) data(plain []byte) repo.ID {
	f.t.Helper()
	id := repo.Hash(plain)
	if _, err := f.r.SaveBlob(f.t.Context(), repo.DataBlob, id, plain); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) tree(nodes ...*repo.Node) repo.ID {
	f.t.Helper()
	id, err := f.r.SaveTree(f.t.Context(), &repo.Tree{Nodes: nodes})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func file(name string, content ...repo.ID) *repo.Node {
	return &repo.Node{Name: name, Type: repo.NodeFile, Mode: 0o644, Content: content, MTime: time.Unix(1e9, 0)}
}

func dir(name string, subtree repo.ID) *repo.Node {
	return &repo.Node{Name: name, Type: repo.NodeDir, Mode: 0o755, Subtree: &subtree, MTime: time.Unix(1e9, 0)}
}

// flush stores everything saved so far and records the new index file.
func (f *fixture) flush() {
	f.t.Helper()
	before := f.names("index")
	if err := f.r.Flush(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	for _, n := range f.names("index") {
		if !slices.Contains(before, n) {
			f.index = append(f.index, n)
		}
	}
}

func (f *fixture) snapshot(label string, root repo.ID) repo.ID {
	f.t.Helper()
	id, err := f.r.SaveSnapshot(f.t.Context(), &repo.Snapshot{
		Label: label, Time: time.Now(), Host: "test", Paths: []string{"/etc", "/home"}, Tree: root,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// names lists the object files of one kind (index, snapshots, keys).
func (f *fixture) names(kind string) []string {
	f.t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.root, kind))
	if err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// packOf returns the pack holding a blob and the pack's file.
func (f *fixture) packOf(blob repo.ID) (repo.Location, string) {
	f.t.Helper()
	loc, ok := f.r.LookupBlob(blob)
	if !ok {
		f.t.Fatalf("blob %s not indexed", blob.Short())
	}
	name := loc.Pack.String()
	return loc, filepath.Join(f.root, "data", name[:2], name)
}

// flipByte inverts one byte of a stored file in place.
func (f *fixture) flipByte(path string, off int64) {
	f.t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, off); err != nil {
		f.t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, off); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) packCount() int {
	f.t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(f.root, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// check runs Check and verifies that the result agrees with itself and
// with what OnProblem saw.
func (f *fixture) check(opts maint.CheckOptions) maint.CheckResult {
	f.t.Helper()
	var (
		mu   sync.Mutex
		seen []maint.Problem
	)
	opts.OnProblem = func(p maint.Problem) {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	}
	res, err := maint.Check(f.t.Context(), f.r, opts)
	if err != nil {
		f.t.Fatalf("check: %v", err)
	}
	if !slices.Equal(seen, res.Problems) {
		f.t.Errorf("OnProblem saw %v, result has %v", seen, res.Problems)
	}
	var errs, warns int
	for _, p := range res.Problems {
		switch p.Severity {
		case maint.SeverityError:
			errs++
		case maint.SeverityWarning:
			warns++
		default:
			f.t.Errorf("problem with severity %q: %v", p.Severity, p)
		}
	}
	if errs != res.Errors || warns != res.Warnings {
		f.t.Errorf("counts %d errors, %d warnings; problems hold %d and %d", res.Errors, res.Warnings, errs, warns)
	}
	return res
}

// want fails unless res has a problem of severity on object (and blob, if
// not empty) whose message contains every one of words.
func want(t *testing.T, res maint.CheckResult, severity, object, blob string, words ...string) {
	t.Helper()
	for _, p := range res.Problems {
		if p.Severity != severity || p.Object != object || (blob != "" && p.Blob != blob) {
			continue
		}
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(p.Message, w) }) {
			return
		}
	}
	t.Errorf("no %s on %s (blob %q) saying %q; problems:\n%s", severity, object, blob, words, dump(res))
}

func dump(res maint.CheckResult) string {
	var b strings.Builder
	for _, p := range res.Problems {
		b.WriteString("\t" + p.String() + "\n")
	}
	return b.String()
}

func packObject(id repo.ID) string { return "data/" + id.String() }

func TestCheckClean(t *testing.T) {
	f := newFixture(t)
	packs := f.packCount()
	if packs < 4 {
		t.Fatalf("fixture has %d packs; want several", packs)
	}
	for _, opts := range []maint.CheckOptions{{}, {ReadData: true}} {
		res := f.check(opts)
		if len(res.Problems) != 0 {
			t.Fatalf("%+v: problems in a clean repository:\n%s", opts, dump(res))
		}
		// Trees: etc, home and ann of each snapshot, two roots; etc shared.
		if res.Packs != packs || res.Indexes != 2 || res.Snapshots != 2 || res.Trees != 7 || res.Blobs != f.r.Index().Len() {
			t.Errorf("%+v: counts %+v; want %d packs, 2 indexes, 2 snapshots, 7 trees, %d blobs", opts, res, packs, f.r.Index().Len())
		}
		wantRead := 0
		if opts.ReadData {
			wantRead = packs
		}
		if res.PacksRead != wantRead {
			t.Errorf("%+v: read %d packs, want %d", opts, res.PacksRead, wantRead)
		}
	}
}

func TestCheckReadDataSubset(t *testing.T) {
	f := newFixture(t)
	packs := f.packCount()
	for _, tc := range []struct {
		frac float64
		read int
	}{
		{0.001, 1},
		{0.5, int(math.Ceil(float64(packs) / 2))},
		{1, packs},
	} {
		res := f.check(maint.CheckOptions{ReadDataSubset: tc.frac})
		if res.PacksRead != tc.read || len(res.Problems) != 0 {
			t.Errorf("subset %v: read %d packs, want %d; problems:\n%s", tc.frac, res.PacksRead, tc.read, dump(res))
		}
	}
	for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := maint.Check(t.Context(), f.r, maint.CheckOptions{ReadDataSubset: bad}); err == nil {
			t.Errorf("subset %v accepted", bad)
		}
	}
}

// A pack whose index was never written (a crash between the two, a full
// disk) is normal: a warning, not an error.
func TestCheckUnreferencedPack(t *testing.T) {
	f := newFixture(t)
	orphan := f.data(randBytes(200, 5000))
	f.flush()
	loc, _ := f.packOf(orphan)
	if err := os.Remove(filepath.Join(f.root, "index", f.index[len(f.index)-1])); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []maint.CheckOptions{{}, {ReadData: true}} {
		res := f.check(opts)
		if res.Errors != 0 || res.Warnings != 1 {
			t.Fatalf("%+v: want exactly one warning:\n%s", opts, dump(res))
		}
		want(t, res, maint.SeverityWarning, packObject(loc.Pack), "", "unreferenced pack", "`cairn prune`")
		if opts.ReadData && res.PacksRead != f.packCount()-1 {
			t.Errorf("read %d packs, want the %d indexed ones", res.PacksRead, f.packCount()-1)
		}
	}
}

func TestCheckTruncatedPack(t *testing.T) {
	for _, tc := range []struct {
		name string
		size func(loc repo.Location, size int64) int64
		file bool // the photo itself loses data
	}{
		{"last byte", func(_ repo.Location, size int64) int64 { return size - 1 }, false},
		{"inside a blob", func(loc repo.Location, _ int64) int64 { return int64(loc.Offset + loc.Length/2) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			chunk := f.photo[len(f.photo)-1]
			loc, path := f.packOf(chunk)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, tc.size(loc, fi.Size())); err != nil {
				t.Fatal(err)
			}
			res := f.check(maint.CheckOptions{})
			want(t, res, maint.SeverityError, packObject(loc.Pack), "", "truncated")
			if tc.file {
				// The two snapshots have different trees for ann, so
				// each reports the photo.
				for _, s := range []repo.ID{f.snap1, f.snap2} {
					want(t, res, maint.SeverityError, "snapshots/"+s.String(), chunk.Short(), "/home/ann/photo.jpg", "truncated")
				}
			} else if res.Errors != 1 {
				t.Errorf("want only the truncated pack:\n%s", dump(res))
			}
			// Reading data does not read the truncated pack again.
			read := f.check(maint.CheckOptions{ReadData: true})
			if read.PacksRead != f.packCount()-1 || read.Errors != res.Errors {
				t.Errorf("read data: read %d of %d packs, errors %d (structure alone %d):\n%s",
					read.PacksRead, f.packCount(), read.Errors, res.Errors, dump(read))
			}
		})
	}
}

// A flipped byte keeps the size: only reading the data finds it, and names
// the damaged blob.
func TestCheckFlippedByte(t *testing.T) {
	f := newFixture(t)
	chunk := f.photo[2]
	loc, path := f.packOf(chunk)
	f.flipByte(path, int64(loc.Offset+loc.Length/2))

	if res := f.check(maint.CheckOptions{}); len(res.Problems) != 0 {
		t.Fatalf("structure check found problems:\n%s", dump(res))
	}
	for _, opts := range []maint.CheckOptions{{ReadData: true}, {ReadDataSubset: 1}} {
		res := f.check(opts)
		want(t, res, maint.SeverityError, packObject(loc.Pack), "", "pack content does not match its name")
		want(t, res, maint.SeverityError, packObject(loc.Pack), chunk.Short(), "damaged data blob")
		if res.Errors != 2 || res.Warnings != 0 {
			t.Errorf("%+v: want exactly the two errors:\n%s", opts, dump(res))
		}
	}
}

func TestCheckDamagedIndex(t *testing.T) {
	garbage := randBytes(7, 300)
	for _, tc := range []struct {
		name   string
		damage func(f *fixture) string // returns the damaged index's name
		words  []string
	}{
		{"flipped byte", func(f *fixture) string {
			name := f.index[1]
			f.flipByte(filepath.Join(f.root, "index", name), 40)
			return name
		}, []string{"damaged index file", "does not match its name"}},
		{"not sealed by this repository", func(f *fixture) string {
			name := repo.Hash(garbage).String()
			if err := os.WriteFile(filepath.Join(f.root, "index", name), garbage, 0o644); err != nil {
				t.Fatal(err)
			}
			return name
		}, []string{"damaged index file", "authentication failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			name := tc.damage(f)
			res := f.check(maint.CheckOptions{})
			want(t, res, maint.SeverityError, "index/"+name, "", tc.words...)
			// The other index file still counts: snap-1 is intact.
			for _, p := range res.Problems {
				if strings.Contains(p.Message, `"snap-1"`) {
					t.Errorf("snap-1 affected by the other index: %v", p)
				}
			}
		})
	}
}

func TestCheckDamagedSnapshot(t *testing.T) {
	f := newFixture(t)
	f.flipByte(filepath.Join(f.root, "snapshots", f.snap1.String()), 20)
	res := f.check(maint.CheckOptions{})
	want(t, res, maint.SeverityError, "snapshots/"+f.snap1.String(), "", "damaged snapshot record")
	if res.Errors != 1 || res.Warnings != 0 {
		t.Errorf("want exactly one error:\n%s", dump(res))
	}
	if res.Snapshots != 2 || res.Trees != 4 {
		t.Errorf("counts %+v; want 2 snapshots and snap-2's 4 trees walked", res)
	}
}

func TestCheckDamagedKey(t *testing.T) {
	f := newFixture(t)
	keys := f.names("keys")
	fh, err := os.OpenFile(filepath.Join(f.root, "keys", keys[0]), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("\n")
	fh.Close()
	res := f.check(maint.CheckOptions{})
	want(t, res, maint.SeverityError, "keys/"+keys[0], "", "does not match its name")
	if res.Errors != 1 {
		t.Errorf("want exactly one error:\n%s", dump(res))
	}
}

func TestCheckMissingPack(t *testing.T) {
	f := newFixture(t)
	chunk := f.photo[0]
	loc, path := f.packOf(chunk)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res := f.check(maint.CheckOptions{ReadData: true})
	want(t, res, maint.SeverityError, packObject(loc.Pack), "", "pack is missing")
	for _, s := range []repo.ID{f.snap1, f.snap2} {
		want(t, res, maint.SeverityError, "snapshots/"+s.String(), chunk.Short(), "/home/ann/photo.jpg", "missing")
	}
	if res.PacksRead != f.packCount() {
		t.Errorf("read %d packs, want the %d still stored", res.PacksRead, f.packCount())
	}
}

func TestCheckMissingTreePack(t *testing.T) {
	f := newFixture(t)
	snaps, err := f.r.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	loc, path := f.packOf(snaps[0].Tree)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res := f.check(maint.CheckOptions{})
	want(t, res, maint.SeverityError, packObject(loc.Pack), "", "pack is missing")
	want(t, res, maint.SeverityError, packObject(loc.Pack), snaps[0].Tree.Short(), `"snap-1"`, ": /: tree cannot be loaded")
}

// A tree may name blobs the index does not have (a bug, or an index
// file lost): the error names the snapshot, the path and the blob.
func TestCheckBlobNotInIndex(t *testing.T) {
	f := newFixture(t)
	ghost := repo.Hash([]byte("never saved"))
	noTree := repo.Hash([]byte("no such tree"))
	ann := f.tree(file("ghost.txt", f.photo[0], ghost), file("mixup", f.tree()))
	root := f.tree(dir("home", f.tree(dir("ann", ann))), dir("lost", noTree))
	f.flush()
	snap := f.snapshot("snap-ghost", root)

	res := f.check(maint.CheckOptions{ReadData: true})
	obj := "snapshots/" + snap.String()
	want(t, res, maint.SeverityError, obj, ghost.Short(), `"snap-ghost"`, "/home/ann/ghost.txt", "not in the index")
	want(t, res, maint.SeverityError, obj, noTree.Short(), `"snap-ghost"`, "/lost", "not in the index")
	want(t, res, maint.SeverityError, obj, "", "/home/ann/mixup", "indexed as a tree blob")
	if res.Errors != 3 || res.Warnings != 0 {
		t.Errorf("want exactly three errors:\n%s", dump(res))
	}
}

// The header of a pack must list exactly what the index places in it.
func TestCheckHeaderDisagrees(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	changed, dropped := f.photo[1], f.photo[2]
	target, _ := f.packOf(changed)
	if loc, _ := f.packOf(dropped); loc.Pack != target.Pack {
		t.Fatalf("chunks 1 and 2 of the photo are in different packs")
	}
	fake := repo.Hash([]byte("fake"))

	// Rewrite the index: one entry altered, one dropped, one invented.
	var packs []repo.IndexPack
	for _, name := range f.index {
		id, _ := repo.ParseID(name)
		p, err := f.r.LoadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		packs = append(packs, p...)
		if err := os.Remove(filepath.Join(f.root, "index", name)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range packs {
		p := &packs[i]
		if p.ID != target.Pack {
			continue
		}
		var blobs []repo.PackBlob
		for _, b := range p.Blobs {
			switch b.ID {
			case changed:
				b.RawLength++
				fb := b
				fb.ID = fake
				blobs = append(blobs, fb)
			case dropped:
				continue
			}
			blobs = append(blobs, b)
		}
		p.Blobs = blobs
	}
	if _, err := f.r.SaveIndexFile(ctx, packs); err != nil {
		t.Fatal(err)
	}

	obj := packObject(target.Pack)
	res := f.check(maint.CheckOptions{ReadData: true})
	want(t, res, maint.SeverityError, obj, changed.Short(), "the index has", "raw length")
	want(t, res, maint.SeverityError, obj, dropped.Short(), "in the pack header but in no index")
	want(t, res, maint.SeverityError, obj, fake.Short(), "indexed in this pack but not in its header")
	want(t, res, maint.SeverityError, obj, fake.Short(), "damaged data blob", "does not match its id")
	for _, p := range res.Problems {
		if strings.Contains(p.Message, "does not match its name") {
			t.Errorf("the pack itself is intact: %v", p)
		}
	}
}

func TestCheckCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := maint.Check(ctx, f.r, maint.CheckOptions{ReadData: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled check returned %v", err)
	}
}

// Check needs nothing loaded beforehand: a freshly opened repository,
// whose in-memory index is empty, checks the same.
func TestCheckFreshlyOpened(t *testing.T) {
	f := newFixture(t)
	be, err := local.Open(f.root)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(t.Context(), be, "secret")
	if err != nil {
		t.Fatal(err)
	}
	res, err := maint.Check(t.Context(), r, maint.CheckOptions{ReadData: true})
	if err != nil || len(res.Problems) != 0 || res.Trees != 7 || res.PacksRead != f.packCount() {
		t.Fatalf("check: %v %+v", err, res)
	}
	if r.Index().Len() != 0 {
		t.Errorf("check loaded the repository's index")
	}
}
