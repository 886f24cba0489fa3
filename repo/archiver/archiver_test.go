package archiver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/mem"
	"github.com/cairn-backup/cairn/repo/chunker"
)

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), mem.New(), "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	rng.Read(b)
	return b
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lookup follows an absolute path through a snapshot's trees.
func lookup(t *testing.T, r *repo.Repository, snap *repo.Snapshot, path string) *repo.Node {
	t.Helper()
	tree, err := r.LoadTree(context.Background(), snap.Tree)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		n := tree.Find(p)
		if n == nil {
			t.Fatalf("%s: no %q in snapshot", path, p)
		}
		if i == len(parts)-1 {
			return n
		}
		tree, err = r.LoadTree(context.Background(), *n.Subtree)
		if err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

func content(t *testing.T, r *repo.Repository, n *repo.Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, id := range n.Content {
		b, err := r.LoadBlob(context.Background(), repo.DataBlob, id)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

func TestBackupRecordsTreeUnderAbsolutePaths(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	big := randBytes(1, 5<<20)
	write(t, dir+"/src/a.txt", []byte("hello"))
	write(t, dir+"/src/sub/big.bin", big)
	write(t, dir+"/src/empty", nil)
	os.Symlink("a.txt", dir+"/src/link")
	os.Link(dir+"/src/a.txt", dir+"/src/hard")
	unix.Mkfifo(dir+"/src/fifo", 0o600)
	write(t, dir+"/other.txt", []byte("other source"))
	if err := unix.Setxattr(dir+"/src/a.txt", "user.note", []byte("v1"), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}

	var mu sync.Mutex
	var problems []string
	snap, err := Backup(ctx, r, []string{dir + "/src", dir + "/other.txt"}, Options{
		OnError: func(p string, err error) { mu.Lock(); problems = append(problems, p+": "+err.Error()); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if got := content(t, r, lookup(t, r, snap, dir+"/src/sub/big.bin")); !bytes.Equal(got, big) {
		t.Fatal("big file content differs")
	}
	a := lookup(t, r, snap, dir+"/src/a.txt")
	if string(content(t, r, a)) != "hello" || a.Links != 2 {
		t.Fatalf("a.txt: %q links %d", content(t, r, a), a.Links)
	}
	if h := lookup(t, r, snap, dir+"/src/hard"); h.Inode != a.Inode {
		t.Fatal("hard link inode not recorded")
	}
	if l := lookup(t, r, snap, dir+"/src/link"); l.Type != repo.NodeSymlink || l.LinkTarget != "a.txt" {
		t.Fatalf("symlink %+v", l)
	}
	if f := lookup(t, r, snap, dir+"/src/fifo"); f.Type != repo.NodeFIFO {
		t.Fatalf("fifo %+v", f)
	}
	if string(content(t, r, lookup(t, r, snap, dir+"/other.txt"))) != "other source" {
		t.Fatal("file source missing")
	}
	var st unix.Stat_t
	unix.Lstat(dir+"/src/a.txt", &st)
	if a.MTime.UnixNano() != st.Mtim.Nano() {
		t.Fatal("mtime nanoseconds lost")
	}
	if snap.Summary.Files != 5 || snap.Summary.Bytes != uint64(len(big)+5+5+len("other source")) {
		t.Fatalf("summary %+v", snap.Summary)
	}
}

func TestRebackupReadsNothingUnchanged(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	for i := range 20 {
		write(t, filepath.Join(dir, "d", string(rune('a'+i))), randBytes(uint64(i), 1000))
	}
	first, err := Backup(ctx, r, []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir+"/d/a", []byte("changed"))
	var opened []string
	var mu sync.Mutex
	second, err := Backup(ctx, r, []string{dir}, Options{Parent: first, beforeOpen: func(p string) {
		mu.Lock()
		opened = append(opened, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(opened) != 1 || opened[0] != dir+"/d/a" {
		t.Fatalf("opened %v, want only the changed file", opened)
	}
	if second.Summary.Unchanged != 19 || second.Label == first.Label && second.Time.Equal(first.Time) {
		t.Fatalf("summary %+v", second.Summary)
	}
	if string(content(t, r, lookup(t, r, second, dir+"/d/a"))) != "changed" {
		t.Fatal("changed file not re-read")
	}
}

func TestVanishedFileReportedBackupGoesOn(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	write(t, dir+"/keep", []byte("keep"))
	write(t, dir+"/gone", []byte("gone"))
	var reported []string
	snap, err := Backup(ctx, r, []string{dir}, Options{
		beforeOpen: func(p string) {
			if strings.HasSuffix(p, "/gone") {
				os.Remove(p)
			}
		},
		OnError: func(p string, err error) { reported = append(reported, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(reported) != 1 || reported[0] != dir+"/gone" || snap.Summary.Unreadable != 1 {
		t.Fatalf("reported %v, summary %+v", reported, snap.Summary)
	}
	lookup(t, r, snap, dir+"/keep")
}

func TestMissingSourceIsAnError(t *testing.T) {
	_, err := Backup(context.Background(), newRepo(t), []string{"/does/not/exist"}, Options{})
	if !errors.Is(err, ErrSourceMissing) {
		t.Fatalf("got %v", err)
	}
}

func TestSparseFileStoresHolesAsZeroChunks(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	f, err := os.Create(dir + "/sparse")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), 40<<20)
	f.Close()
	snap, err := Backup(ctx, r, []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := lookup(t, r, snap, dir+"/sparse")
	got := content(t, r, n)
	if len(got) != 40<<20+3 || string(got[:5]) != "start" || string(got[40<<20:]) != "end" {
		t.Fatalf("sparse content wrong: %d bytes", len(got))
	}
	zero := repo.Hash(make([]byte, chunker.DefaultParams.Max))
	zeros := 0
	for _, id := range n.Content {
		if id == zero {
			zeros++
		}
	}
	if zeros < 3 {
		t.Fatalf("hole not stored as zero chunks (%d of %d)", zeros, len(n.Content))
	}
}

func TestFarTimesAreClampedToRecordable(t *testing.T) {
	for _, sec := range []int64{400000000000, -400000000000} {
		tm := recordable(unix.Timespec{Sec: sec})
		tr := &repo.Tree{Nodes: []*repo.Node{{Name: "f", Type: repo.NodeFile, MTime: tm}}}
		if _, err := repo.EncodeTree(tr); err != nil {
			t.Fatalf("time %d: %v", sec, err)
		}
	}
	if got := recordable(unix.Timespec{Sec: 1, Nsec: 5}); got.UnixNano() != 1e9+5 {
		t.Fatalf("ordinary time changed: %v", got)
	}
}

func TestSymlinkedAncestorIsFollowed(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/real/src/f", []byte("f"))
	os.Symlink("real", dir+"/alias")
	r := newRepo(t)
	snap, err := Backup(context.Background(), r, []string{dir + "/alias/src"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(content(t, r, lookup(t, r, snap, dir+"/alias/src/f"))) != "f" {
		t.Fatal("content")
	}
}

func TestUnchangedTreesAreReused(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	write(t, dir+"/a/b/c", []byte("c"))
	write(t, dir+"/a/d", []byte("d"))
	var prev *repo.Snapshot
	var trees []repo.ID
	for range 3 {
		s, err := Backup(ctx, r, []string{dir}, Options{Parent: prev})
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, s.Tree)
		prev = s
	}
	// Reading directories may move their atimes once (relatime); after
	// that nothing changes and the parent's trees are reused as they are.
	if trees[1] != trees[2] {
		t.Fatal("unchanged backup produced a new root tree")
	}
	write(t, dir+"/a/b/c", []byte("changed"))
	s, err := Backup(ctx, r, []string{dir}, Options{Parent: prev})
	if err != nil {
		t.Fatal(err)
	}
	if s.Tree == trees[2] || string(content(t, r, lookup(t, r, s, dir+"/a/b/c"))) != "changed" {
		t.Fatal("a change was not recorded")
	}
}
