package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

func newRepo(t *testing.T) (*repo.Repository, backend.Backend) {
	t.Helper()
	be := mem.New()
	r, err := repo.Init(context.Background(), be, "secret", repo.InitOptions{KDF: repo.TestKDF, PackSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestBlobRoundTripAcrossReopen(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	blobs := map[repo.ID][]byte{}
	for i := range 50 {
		var data []byte
		if i%2 == 0 {
			data = randBytes(uint64(i), 10_000+i*97)
		} else {
			data = bytes.Repeat([]byte("compressible "), 1000+i)
		}
		id := repo.Hash(data)
		known, err := r.SaveBlob(ctx, repo.DataBlob, id, data)
		if err != nil || known {
			t.Fatalf("save %d: known=%v err=%v", i, known, err)
		}
		blobs[id] = data
	}
	// A duplicate is recognised, even before Flush.
	for id, data := range blobs {
		known, err := r.SaveBlob(ctx, repo.DataBlob, id, data)
		if err != nil || !known {
			t.Fatalf("duplicate not recognised: known=%v err=%v", known, err)
		}
		break
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	r2, err := repo.Open(ctx, be, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Index().Len() != len(blobs) {
		t.Fatalf("index has %d blobs, want %d", r2.Index().Len(), len(blobs))
	}
	if len(r2.Index().Packs()) < 2 {
		t.Fatalf("expected several packs with a 64 KiB pack size, got %d", len(r2.Index().Packs()))
	}
	for id, data := range blobs {
		got, err := r2.LoadBlob(ctx, repo.DataBlob, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("blob %s differs", id.Short())
		}
	}
	// Compression did something for the repetitive blobs.
	for id, data := range blobs {
		loc, _ := r2.LookupBlob(id)
		if bytes.HasPrefix(data, []byte("compressible")) && int(loc.Length) > len(data)/4 {
			t.Fatalf("compressible blob stored with %d bytes for %d", loc.Length, len(data))
		}
	}
}

func TestWrongPassword(t *testing.T) {
	ctx := context.Background()
	_, be := newRepo(t)
	_, err := repo.Open(ctx, be, "not the password")
	if !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("got %v, want ErrWrongPassword", err)
	}
}

func TestSeveralPasswords(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	if _, err := r.AddKey(ctx, "second", repo.TestKDF); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"secret", "second"} {
		r2, err := repo.Open(ctx, be, pw)
		if err != nil {
			t.Fatalf("open with %q: %v", pw, err)
		}
		if r2.ID() != r.ID() || r2.Settings() != r.Settings() {
			t.Fatal("reopened repository differs")
		}
	}
}

func TestInitRefusesExistingRepository(t *testing.T) {
	ctx := context.Background()
	_, be := newRepo(t)
	if _, err := repo.Init(ctx, be, "x", repo.InitOptions{KDF: repo.TestKDF}); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second init: %v", err)
	}
}

func TestOpenEmptyIsNoRepository(t *testing.T) {
	if _, err := repo.Open(context.Background(), mem.New(), "x"); !errors.Is(err, repo.ErrNoRepository) {
		t.Fatalf("got %v", err)
	}
}

// corrupting wraps a backend and flips a byte in every load of one object.
type corrupting struct {
	backend.Backend
	name string
}

func (c corrupting) Load(ctx context.Context, h backend.Handle, off int64, n int) ([]byte, error) {
	b, err := c.Backend.Load(ctx, h, off, n)
	if err == nil && h.Name == c.name && len(b) > 0 {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0x40
	}
	return b, err
}

func TestCorruptBlobNamesPackAndBlob(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	data := randBytes(7, 5000)
	id := repo.Hash(data)
	if _, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loc, _ := r.LookupBlob(id)
	r2, err := repo.Open(ctx, corrupting{be, loc.Pack.String()}, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = r2.LoadBlob(ctx, repo.DataBlob, id)
	var ce *repo.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("got %v, want a CorruptError", err)
	}
	if ce.Blob != id || ce.Object != repo.PackHandle(loc.Pack).String() {
		t.Fatalf("error names %s blob %s", ce.Object, ce.Blob.Short())
	}
}

func TestCorruptIndexAndSnapshotNamed(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	data := []byte("hello")
	if _, err := r.SaveBlob(ctx, repo.DataBlob, repo.Hash(data), data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sid, err := r.SaveSnapshot(ctx, &repo.Snapshot{Label: "x", Time: time.Now(), Paths: []string{"/x"}})
	if err != nil {
		t.Fatal(err)
	}
	var idxName string
	be.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error { idxName = fi.Name; return nil })

	r2, err := repo.Open(ctx, corrupting{be, idxName}, "secret")
	if err != nil {
		t.Fatal(err)
	}
	err = r2.LoadIndex(ctx)
	if !errors.Is(err, repo.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("index/"+idxName)) {
		t.Fatalf("index damage reported as %v", err)
	}
	r3, _ := repo.Open(ctx, corrupting{be, sid.String()}, "secret")
	_, err = r3.LoadSnapshot(ctx, sid)
	if !errors.Is(err, repo.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("snapshots/"+sid.String())) {
		t.Fatalf("snapshot damage reported as %v", err)
	}
}

func TestTreeEncodingDeterministicAndValidated(t *testing.T) {
	mk := func() *repo.Tree {
		sub := repo.Hash([]byte("x"))
		return &repo.Tree{Nodes: []*repo.Node{
			{Name: "b", Type: repo.NodeFile, MTime: time.Unix(1, 5).In(time.FixedZone("x", 3600)),
				Xattrs: []repo.Xattr{{Name: "user.z", Value: []byte("1")}, {Name: "user.a", Value: []byte("2")}}},
			{Name: "a", Type: repo.NodeDir, Subtree: &sub},
		}}
	}
	e1, err := repo.EncodeTree(mk())
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := repo.EncodeTree(mk())
	if !bytes.Equal(e1, e2) {
		t.Fatal("encoding not deterministic")
	}
	tr, err := repo.DecodeTree(e1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Nodes[0].Name != "a" || tr.Nodes[1].Xattrs[0].Name != "user.a" {
		t.Fatal("not sorted")
	}
	for _, bad := range []string{"..", ".", "a/b", ""} {
		if _, err := repo.EncodeTree(&repo.Tree{Nodes: []*repo.Node{{Name: bad, Type: repo.NodeFile}}}); !errors.Is(err, repo.ErrBadName) {
			t.Fatalf("name %q accepted", bad)
		}
		raw := []byte(`{"nodes":[{"name":"` + bad + `","type":"file"}]}`)
		if _, err := repo.DecodeTree(raw); err == nil {
			t.Fatalf("decode accepted name %q", bad)
		}
	}
}

func TestLocks(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	s1, err := r.Lock(ctx, false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.Lock(ctx, false, repo.LockOptions{})
	if err != nil {
		t.Fatalf("two shared locks conflict: %v", err)
	}
	if _, err := r.Lock(ctx, true, repo.LockOptions{}); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("exclusive lock taken over shared ones: %v", err)
	}
	s1.Unlock(ctx)
	s2.Unlock(ctx)
	x, err := r.Lock(ctx, true, repo.LockOptions{Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(ctx, false, repo.LockOptions{}); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("shared lock taken over an exclusive one: %v", err)
	}
	// Our own live lock is not stale, so unlock leaves it.
	if n, err := r.RemoveStaleLocks(ctx); err != nil || n != 0 {
		t.Fatalf("removed %d live locks (%v)", n, err)
	}
	x.Unlock(ctx)
	if locks, _ := r.Locks(ctx); len(locks) != 0 {
		t.Fatalf("%d locks left after unlock", len(locks))
	}
}

func TestLockRefreshReplacesObject(t *testing.T) {
	old := repo.RefreshEvery
	repo.RefreshEvery = 20 * time.Millisecond
	t.Cleanup(func() { repo.RefreshEvery = old })
	ctx := context.Background()
	r, _ := newRepo(t)
	l, err := r.Lock(ctx, false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.Locks(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, _ := r.Locks(ctx)
		if len(now) == 1 && now[0].Name != first[0].Name {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock never refreshed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFindSnapshotAndLabels(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	t0 := time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)
	for i, l := range []string{"b", "a"} {
		if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Label: l, Time: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := repo.FindSnapshot(snaps, "latest")
	if err != nil || latest.Label != "a" {
		t.Fatalf("latest = %v, %v", latest, err)
	}
	byPrefix, err := repo.FindSnapshot(snaps, latest.ID().String()[:8])
	if err != nil || byPrefix != latest {
		t.Fatalf("by prefix: %v", err)
	}
	if _, err := repo.FindSnapshot(snaps, "nope"); !errors.Is(err, repo.ErrNoSnapshot) {
		t.Fatal(err)
	}
	if l := repo.UniqueLabel(snaps, "a"); l != "a-2" {
		t.Fatalf("unique label %q", l)
	}
	if l := repo.LabelTime(t0); l != "2026-11-21T040000Z" {
		t.Fatalf("label time %q", l)
	}
}

func TestTreeKeepsNonUTF8NamesAndFarTimes(t *testing.T) {
	names := []string{"a\xff", "a\xfe", "plain", "emoji 😀", "\x80"}
	var tr repo.Tree
	for _, n := range names {
		tr.Nodes = append(tr.Nodes, &repo.Node{Name: n, Type: repo.NodeSymlink, LinkTarget: "t\xc3" + n,
			Xattrs: []repo.Xattr{{Name: "user.\xff", Value: []byte{0xff}}}})
	}
	enc, err := repo.EncodeTree(&tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := repo.DecodeTree(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != len(names) {
		t.Fatalf("%d nodes", len(got.Nodes))
	}
	for _, n := range got.Nodes {
		if n.LinkTarget != "t\xc3"+n.Name || n.Xattrs[0].Name != "user.\xff" {
			t.Fatalf("node %q: target %q xattr %q", n.Name, n.LinkTarget, n.Xattrs[0].Name)
		}
	}
	if got.Find("a\xff") == nil || got.Find("\x80") == nil {
		t.Fatal("raw names not found")
	}
}

// countingLoads counts loads that reach the storage.
type countingLoads struct {
	backend.Backend
	loads map[backend.FileType]int
}

func (c *countingLoads) Load(ctx context.Context, h backend.Handle, off int64, n int) ([]byte, error) {
	c.loads[h.Type]++
	return c.Backend.Load(ctx, h, off, n)
}

func TestLocalCacheServesMetadataAndTrees(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	tr := &repo.Tree{Nodes: []*repo.Node{{Name: "f", Type: repo.NodeFile}}}
	tid, err := r.SaveTree(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Label: "s", Tree: tid}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cnt := &countingLoads{Backend: be, loads: map[backend.FileType]int{}}
	for round := range 2 {
		r2, err := repo.Open(ctx, cnt, "secret")
		if err != nil {
			t.Fatal(err)
		}
		r2.UseLocalCache(dir)
		if err := r2.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		snaps, err := r2.Snapshots(ctx)
		if err != nil || len(snaps) != 1 {
			t.Fatal(snaps, err)
		}
		got, err := r2.LoadTree(ctx, snaps[0].Tree)
		if err != nil || got.Nodes[0].Name != "f" {
			t.Fatal(got, err)
		}
		if round == 1 && (cnt.loads[backend.IndexFile] != 1 || cnt.loads[backend.SnapshotFile] != 1 || cnt.loads[backend.PackFile] != 1) {
			t.Fatalf("second open downloaded again: %v", cnt.loads)
		}
	}
}

func TestSavedTreesAreCachedForTheNextBackup(t *testing.T) {
	ctx := context.Background()
	_, be := newRepo(t)
	dir := t.TempDir()
	cnt := &countingLoads{Backend: be, loads: map[backend.FileType]int{}}
	r, err := repo.Open(ctx, cnt, "secret")
	if err != nil {
		t.Fatal(err)
	}
	r.UseLocalCache(dir)
	tid, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "g", Type: repo.NodeFile}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if tr, err := r.LoadTree(ctx, tid); err != nil || tr.Nodes[0].Name != "g" {
		t.Fatal(tr, err)
	}
	if n := cnt.loads[backend.PackFile]; n != 0 {
		t.Fatalf("a tree saved by this process was downloaded again (%d pack loads)", n)
	}
}
