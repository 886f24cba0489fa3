package tree

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

type fixture struct {
	r    *repo.Repository
	src  string
	big  []byte
	snap *repo.Snapshot
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, mem.New(), "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	big := make([]byte, 5<<20+12345)
	rand.NewChaCha8([32]byte{9}).Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o640)
	os.Mkdir(filepath.Join(src, "dir"), 0o750)
	os.WriteFile(filepath.Join(src, "dir", "small"), []byte("small"), 0o644)
	os.Link(filepath.Join(src, "dir", "small"), filepath.Join(src, "hard"))
	os.Symlink("dir/small", filepath.Join(src, "link"))
	f, _ := os.Create(filepath.Join(src, "sparse"))
	f.WriteAt([]byte("x"), 20<<20)
	f.Close()
	snap, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{r: r, src: src, big: big, snap: snap}
}

func (fx *fixture) root(t *testing.T) (Dir, *Repo) {
	rp := NewRepo(context.Background(), "main", fx.r, cache.New[repo.ID](64<<20))
	return NewRoot([]*Repo{rp}, nil), rp
}

// walk follows a slash-separated path from d.
func walk(t *testing.T, d Dir, path string) Node {
	t.Helper()
	var n Node = d
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		dir, ok := n.(Dir)
		if !ok {
			t.Fatalf("%s: %q is not a directory", path, part)
		}
		var err error
		if n, err = dir.Lookup(context.Background(), part); err != nil {
			t.Fatalf("%s: lookup %q: %v", path, part, err)
		}
	}
	return n
}

func attr(t *testing.T, n Node) Attr {
	t.Helper()
	a, err := n.Attr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLayoutAndListings(t *testing.T) {
	fx := newFixture(t)
	root, _ := fx.root(t)
	ctx := context.Background()
	names := func(d Dir) []string {
		es, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	if got := names(root); !slices.Equal(got, []string{"README.txt", "plans", "repos"}) {
		t.Fatalf("root lists %v", got)
	}
	if got := names(walk(t, root, "repos/main").(Dir)); !slices.Equal(got, []string{"snapshots", "status"}) {
		t.Fatalf("repo lists %v", got)
	}
	snaps := walk(t, root, "repos/main/snapshots").(Dir)
	if got := names(snaps); !slices.Equal(got, []string{fx.snap.Label, "latest"}) {
		t.Fatalf("snapshots lists %v", got)
	}
	target, _ := walk(t, root, "repos/main/snapshots/latest").(Symlink).Readlink(ctx)
	if target != fx.snap.Label {
		t.Fatalf("latest -> %q", target)
	}
	inner := walk(t, root, "repos/main/snapshots/"+fx.snap.Label+fx.src).(Dir)
	if got := names(inner); !slices.Equal(got, []string{"big", "dir", "hard", "link", "sparse"}) {
		t.Fatalf("source dir lists %v", got)
	}
	if _, err := inner.Lookup(ctx, "nope"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing name: %v", err)
	}
	a := attr(t, walk(t, inner, "dir"))
	if a.Mode != ModeDir|0o750 {
		t.Fatalf("dir mode %o", a.Mode)
	}
}

func TestFileReadsAndAttributes(t *testing.T) {
	fx := newFixture(t)
	root, _ := fx.root(t)
	ctx := context.Background()
	base := "repos/main/snapshots/" + fx.snap.Label + fx.src
	f := walk(t, root, base+"/big").(File)
	a := attr(t, f)
	if a.Size != uint64(len(fx.big)) || a.Mode != ModeFile|0o640 {
		t.Fatalf("big: size %d mode %o", a.Size, a.Mode)
	}
	h, err := f.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Out of order, across chunk boundaries, and past the end.
	for _, off := range []int64{3 << 20, 0, 1<<20 - 7, int64(len(fx.big)) - 100, 2 << 20} {
		buf := make([]byte, 300_000)
		n, err := h.ReadAt(ctx, buf, off)
		if err != nil {
			t.Fatal(err)
		}
		want := fx.big[off:min(off+int64(len(buf)), int64(len(fx.big)))]
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("read at %d differs", off)
		}
	}
	if n, _ := h.ReadAt(ctx, make([]byte, 10), int64(len(fx.big))); n != 0 {
		t.Fatal("read past the end returned data")
	}

	hard, small := attr(t, walk(t, root, base+"/hard")), attr(t, walk(t, root, base+"/dir/small"))
	if hard.Ino != small.Ino || hard.Nlink != 2 {
		t.Fatalf("hard links: inos %d %d, nlink %d", hard.Ino, small.Ino, hard.Nlink)
	}
	if l, _ := walk(t, root, base+"/link").(Symlink).Readlink(ctx); l != "dir/small" {
		t.Fatalf("link -> %q", l)
	}

	sparse := walk(t, root, base+"/sparse")
	sa := attr(t, sparse)
	if sa.Size != 20<<20+1 || sa.Blocks*512 > 2<<20 {
		t.Fatalf("sparse: size %d, blocks %d", sa.Size, sa.Blocks)
	}
	data, err := sparse.(Seeker).Seek(ctx, 0, true)
	if err != nil || data < 8<<20 {
		t.Fatalf("SEEK_DATA from 0 = %d, %v: the leading hole was not seen", data, err)
	}
	hole, err := sparse.(Seeker).Seek(ctx, 0, false)
	if err != nil || hole != 0 {
		t.Fatalf("SEEK_HOLE from 0 = %d, %v", hole, err)
	}
	sh, _ := sparse.(File).Open(ctx)
	tail := make([]byte, 4)
	n, _ := sh.ReadAt(ctx, tail, 20<<20-3)
	if !bytes.Equal(tail[:n], []byte{0, 0, 0, 'x'}) {
		t.Fatalf("sparse tail %v", tail[:n])
	}
}

func TestInodesStableAcrossRoots(t *testing.T) {
	fx := newFixture(t)
	r1, _ := fx.root(t)
	r2, _ := fx.root(t)
	for _, p := range []string{"repos/main", "repos/main/snapshots/latest", "repos/main/snapshots/" + fx.snap.Label + fx.src + "/dir/small"} {
		if a, b := attr(t, walk(t, r1, p)).Ino, attr(t, walk(t, r2, p)).Ino; a != b || a < 2 {
			t.Fatalf("%s: inode %d then %d", p, a, b)
		}
	}
}

func TestNewSnapshotsAppear(t *testing.T) {
	old := RefreshAfter
	RefreshAfter = 0
	t.Cleanup(func() { RefreshAfter = old })
	fx := newFixture(t)
	root, _ := fx.root(t)
	ctx := context.Background()
	snaps := walk(t, root, "repos/main/snapshots").(Dir)
	latest := walk(t, root, "repos/main/snapshots/latest").(Symlink)
	time.Sleep(10 * time.Millisecond) // a later label
	second, err := archiver.Backup(ctx, fx.r, []string{fx.src}, archiver.Options{Host: "h", Label: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snaps.Lookup(ctx, second.Label); err != nil {
		t.Fatalf("new snapshot not visible: %v", err)
	}
	if target, _ := latest.Readlink(ctx); target != "second" {
		t.Fatalf("latest still -> %q", target)
	}
}

func TestStatusAndSnapshotXattr(t *testing.T) {
	fx := newFixture(t)
	root, _ := fx.root(t)
	ctx := context.Background()
	h, err := walk(t, root, "repos/main/status").(File).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(io.NewSectionReader(readerAt{ctx, h}, 0, 1<<20))
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("status %q: %v", data, err)
	}
	if st.Snapshots != 1 || st.StoredBytes == 0 || st.OriginalBytes != fx.snap.Summary.Bytes || st.DedupRatio <= 0 {
		t.Fatalf("status %+v", st)
	}
	for _, field := range []string{`"dedup_ratio":`, `"hit_rate":`} {
		_, rest, _ := bytes.Cut(data, []byte(field))
		num, _, _ := bytes.Cut(rest, []byte(","))
		if _, frac, ok := bytes.Cut(num, []byte(".")); ok && len(frac) > 3 {
			t.Errorf("status %s%s: more than three decimals", field, num)
		}
	}
	xs, err := walk(t, root, "repos/main/snapshots/"+fx.snap.Label).(Xattrer).Xattrs(ctx)
	if err != nil || len(xs) != 1 || xs[0].Name != SnapshotXattr {
		t.Fatalf("xattrs %v %v", xs, err)
	}
	var info map[string]any
	json.Unmarshal(xs[0].Value, &info)
	if info["id"] != fx.snap.ID().String() || info["files"].(float64) != float64(fx.snap.Summary.Files) {
		t.Fatalf("snapshot xattr %v", info)
	}
}

type readerAt struct {
	ctx context.Context
	h   Handle
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.h.ReadAt(r.ctx, p, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// The tree keeps no node it handed out: once the adapter drops them (the
// kernel forgot their inodes), a snapshot's nodes, the trees they decoded
// and their read-ahead state are garbage, however many snapshots were
// browsed (DESIGN.md §6).
func TestNodesReleasedWhenDropped(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, mem.New(), "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("data"), 0o644)
	const snapshots = 8
	var labels []string
	for i := range snapshots {
		s, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "h", Label: fmt.Sprintf("s%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		labels = append(labels, s.Label)
	}
	rp := NewRepo(ctx, "main", r, cache.New[repo.ID](1<<20))
	root := NewRoot([]*Repo{rp}, nil)

	var live atomic.Int64
	browse := func(label string) {
		d := walk(t, root, "repos/main/snapshots/"+label).(*snapDir)
		f := walk(t, d, src+"/a/b/f").(*snapFile)
		h, err := f.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(io.NewSectionReader(readerAt{ctx, h}, 0, 1<<20)); string(got) != "data" {
			t.Fatalf("%s: read %q", label, got)
		}
		h.Close()
		live.Add(2)
		runtime.AddCleanup(d, func(struct{}) { live.Add(-1) }, struct{}{})
		runtime.AddCleanup(f, func(struct{}) { live.Add(-1) }, struct{}{})
	}
	for _, l := range labels {
		browse(l)
	}
	for deadline := time.Now().Add(10 * time.Second); live.Load() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d snapshot nodes still alive after the last reference to them went", live.Load(), 2*snapshots)
		}
		runtime.GC()
	}
	runtime.KeepAlive(root)
}
