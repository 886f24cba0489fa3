package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testenv"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// newRepoOn creates a repository on be; from, if set, lends its chunker.
func newRepoOn(t testing.TB, be backend.Backend, from *repo.Repository) *repo.Repository {
	t.Helper()
	opts := repo.InitOptions{KDF: repo.TestKDF, PackSize: 1 << 20}
	if from != nil {
		st := from.Settings()
		opts.ChunkerFrom = &st
	}
	r, err := repo.Init(context.Background(), be, "pw", opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// manySource writes files taking every read path: small ones, ones cut in
// memory, one streamed through the chunker (longer than Max) and a sparse
// one. It returns the number of regular files.
func manySource(t *testing.T, dir string) int {
	t.Helper()
	write(t, dir+"/small/a", []byte("hello"))
	write(t, dir+"/small/empty", nil)
	for i := range 8 {
		write(t, fmt.Sprintf("%s/small/%d", dir, i), randBytes(uint64(i), 3000+i))
	}
	write(t, dir+"/mid/3m", randBytes(20, 3<<20))
	write(t, dir+"/mid/copy", randBytes(20, 3<<20)) // deduplicated
	write(t, dir+"/big/stream", randBytes(21, 19<<20+12345))
	f, err := os.Create(dir + "/big/sparse")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(randBytes(22, 100<<10), 0)
	f.WriteAt(randBytes(23, 9<<20), 20<<20)
	f.Close()
	os.Symlink("small/a", dir+"/link")
	return 14
}

// readLog records every read of file data, through Options.onRead.
type readLog struct {
	mu    sync.Mutex
	reads map[string][][2]int64 // path: [offset, length]
}

func newReadLog() *readLog { return &readLog{reads: map[string][][2]int64{}} }

func (l *readLog) hook(path string, off, n int64) {
	l.mu.Lock()
	l.reads[path] = append(l.reads[path], [2]int64{off, n})
	l.mu.Unlock()
}

func (l *readLog) total() (n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rs := range l.reads {
		for _, r := range rs {
			n += r[1]
		}
	}
	return n
}

// checkOnce fails unless every data byte of every regular file below dir
// was read exactly once (holes are not read at all).
func (l *readLog) checkOnce(t *testing.T, dir string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, _ := d.Info()
		var st unix.Stat_t
		unix.Stat(p, &st)
		rs := slices.Clone(l.reads[p])
		sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
		var sum, end int64
		for _, r := range rs {
			if r[0] < end {
				t.Errorf("%s: bytes at %d read twice", p, r[0])
			}
			end = r[0] + r[1]
			sum += r[1]
		}
		// A file without holes is read whole; a sparse one at most its
		// allocated blocks' worth.
		if allocated := st.Blocks * 512; allocated >= fi.Size() && sum != fi.Size() {
			t.Errorf("%s: read %d bytes of %d", p, sum, fi.Size())
		} else if sum > allocated || sum == 0 && fi.Size() > 0 {
			t.Errorf("%s: read %d bytes, %d allocated", p, sum, allocated)
		}
		return nil
	})
}

// compareSource checks that snapshot snap of r records the tree at dir
// exactly: the same names, types, symlink targets and file contents.
func compareSource(t *testing.T, r *repo.Repository, snap *repo.Snapshot, dir string) {
	t.Helper()
	var walk func(path string, tree *repo.Tree)
	walk = func(path string, tree *repo.Tree) {
		ents, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != len(tree.Nodes) {
			t.Errorf("%s: %d entries, snapshot has %d", path, len(ents), len(tree.Nodes))
		}
		for _, e := range ents {
			p := path + "/" + e.Name()
			n := tree.Find(e.Name())
			if n == nil {
				t.Errorf("%s: missing from the snapshot", p)
				continue
			}
			switch {
			case e.IsDir():
				sub, err := r.LoadTree(context.Background(), *n.Subtree)
				if err != nil {
					t.Fatal(err)
				}
				walk(p, sub)
			case e.Type().IsRegular():
				want, _ := os.ReadFile(p)
				if got := content(t, r, n); !bytes.Equal(got, want) || n.Size != uint64(len(want)) {
					t.Errorf("%s: content differs (%d bytes, size %d; want %d)", p, len(got), n.Size, len(want))
				}
			case e.Type()&os.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				if n.Type != repo.NodeSymlink || n.LinkTarget != target {
					t.Errorf("%s: symlink recorded as %+v", p, n)
				}
			}
		}
	}
	node := lookup(t, r, snap, dir)
	tree, err := r.LoadTree(context.Background(), *node.Subtree)
	if err != nil {
		t.Fatal(err)
	}
	walk(dir, tree)
}

func backupMany(t *testing.T, targets []Target, paths []string, opts Options) []Result {
	t.Helper()
	res, err := BackupMany(context.Background(), targets, paths, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(targets) {
		t.Fatalf("%d results for %d targets", len(res), len(targets))
	}
	return res
}

func TestBackupManySameSeed(t *testing.T) {
	dir := t.TempDir()
	files := manySource(t, dir)
	a := newRepoOn(t, mem.New(), nil)
	b := newRepoOn(t, mem.New(), a)
	log := newReadLog()
	var final Progress
	res := backupMany(t, []Target{{Repo: a}, {Repo: b, Label: "b-label"}}, []string{dir}, Options{
		onRead:   log.hook,
		Progress: func(p Progress) { final = p },
		OnError:  func(p string, err error) { t.Errorf("%s: %v", p, err) },
	})
	log.checkOnce(t, dir)
	for i, r := range []*repo.Repository{a, b} {
		if res[i].Err != nil {
			t.Fatalf("target %d: %v", i, res[i].Err)
		}
		compareSource(t, r, res[i].Snapshot, dir)
	}
	sa, sb := res[0].Snapshot, res[1].Snapshot
	if sa.Tree != sb.Tree {
		t.Error("one seed, one source: the trees differ")
	}
	if sb.Label != "b-label" || sa.Label == sb.Label {
		t.Errorf("labels %q, %q", sa.Label, sb.Label)
	}
	if sa.Summary.Files != uint64(files) || sa.Summary.Files != sb.Summary.Files ||
		sa.Summary.Bytes != sb.Summary.Bytes || sa.Summary.NewBytes != sb.Summary.NewBytes || sa.Summary.NewBytes == 0 {
		t.Errorf("summaries %+v, %+v", sa.Summary, sb.Summary)
	}
	if final.Files != uint64(files) || final.Bytes != sa.Summary.Bytes || final.NewBytes != sa.Summary.NewBytes+sb.Summary.NewBytes {
		t.Errorf("final progress %+v, summary %+v", final, sa.Summary)
	}
	for i, r := range []*repo.Repository{a, b} {
		if snaps, err := r.Snapshots(context.Background()); err != nil || len(snaps) != 1 {
			t.Errorf("repository %d: %d snapshots, %v", i, len(snaps), err)
		}
	}
}

func TestBackupManyDifferentSeeds(t *testing.T) {
	dir := t.TempDir()
	manySource(t, dir)
	a := newRepoOn(t, mem.New(), nil)
	b := newRepoOn(t, mem.New(), nil)
	c := newRepoOn(t, mem.New(), a) // a's seed: a and c share the chunking
	log := newReadLog()
	res := backupMany(t, []Target{{Repo: a}, {Repo: b}, {Repo: c}}, []string{dir}, Options{onRead: log.hook})
	log.checkOnce(t, dir)
	for i, r := range []*repo.Repository{a, b, c} {
		if res[i].Err != nil {
			t.Fatalf("target %d: %v", i, res[i].Err)
		}
		compareSource(t, r, res[i].Snapshot, dir)
	}
	na := lookup(t, a, res[0].Snapshot, dir+"/big/stream")
	nb := lookup(t, b, res[1].Snapshot, dir+"/big/stream")
	if slices.Equal(na.Content, nb.Content) {
		t.Error("different seeds cut the streamed file alike")
	}
	if res[0].Snapshot.Tree == res[1].Snapshot.Tree || res[0].Snapshot.Tree != res[2].Snapshot.Tree {
		t.Error("trees should differ between seeds and agree within one")
	}
}

func TestBackupManyUnchangedReadsNothing(t *testing.T) {
	dir := t.TempDir()
	files := manySource(t, dir)
	a := newRepoOn(t, mem.New(), nil)
	b := newRepoOn(t, mem.New(), nil)
	first := backupMany(t, []Target{{Repo: a}, {Repo: b}}, []string{dir}, Options{})
	log := newReadLog()
	var opened atomic.Int64
	second := backupMany(t, []Target{{Repo: a, Parent: first[0].Snapshot}, {Repo: b, Parent: first[1].Snapshot}}, []string{dir},
		Options{onRead: log.hook, beforeOpen: func(string) { opened.Add(1) }})
	if opened.Load() != 0 || log.total() != 0 {
		t.Errorf("unchanged re-backup opened %d files, read %d bytes", opened.Load(), log.total())
	}
	for i, r := range []*repo.Repository{a, b} {
		s := second[i].Snapshot
		if second[i].Err != nil || s.Summary.Unchanged != uint64(files) || s.Summary.NewBytes != 0 {
			t.Fatalf("target %d: %v %+v", i, second[i].Err, s.Summary)
		}
		compareSource(t, r, s, dir)
	}

	// A new repository beside one with a parent: each file is read once,
	// for the new one only.
	c := newRepoOn(t, mem.New(), nil)
	write(t, dir+"/small/a", []byte("changed"))
	log = newReadLog()
	third := backupMany(t, []Target{{Repo: a, Parent: second[0].Snapshot}, {Repo: c}}, []string{dir}, Options{onRead: log.hook})
	log.checkOnce(t, dir)
	if u := third[0].Snapshot.Summary.Unchanged; u != uint64(files-1) {
		t.Errorf("repository with a parent: %d unchanged, want %d", u, files-1)
	}
	if u := third[1].Snapshot.Summary.Unchanged; u != 0 {
		t.Errorf("new repository: %d unchanged", u)
	}
	for i, r := range []*repo.Repository{a, c} {
		compareSource(t, r, third[i].Snapshot, dir)
	}
}

// A repository whose writes fail is dropped; the other gets a complete
// snapshot.
func TestBackupManyFailingTargetOthersGoOn(t *testing.T) {
	dir := t.TempDir()
	manySource(t, dir)
	good := newRepoOn(t, mem.New(), nil)
	fb := faulty.New(mem.New(), faulty.Options{Only: []string{faulty.OpSave}})
	bad := newRepoOn(t, fb, good)
	fb.SetErrorRate(1)
	res := backupMany(t, []Target{{Repo: bad}, {Repo: good}}, []string{dir}, Options{})
	if res[0].Err == nil || !errors.Is(res[0].Err, backend.ErrTransient) || res[0].Snapshot != nil {
		t.Fatalf("failing repository: %+v", res[0])
	}
	if res[1].Err != nil {
		t.Fatal(res[1].Err)
	}
	compareSource(t, good, res[1].Snapshot, dir)
	// Dropped at its first failure, not fed the remaining ~30 packs.
	if n := fb.Calls(faulty.OpSave); n > 10 {
		t.Errorf("%d saves into the failed repository", n)
	}

	// When every repository fails, that is every result.
	fb2 := faulty.New(mem.New(), faulty.Options{Only: []string{faulty.OpSave}})
	bad2 := newRepoOn(t, fb2, nil)
	fb2.SetErrorRate(1)
	res = backupMany(t, []Target{{Repo: bad}, {Repo: bad2}}, []string{dir}, Options{})
	if res[0].Err == nil || res[1].Err == nil {
		t.Fatalf("results %+v", res)
	}
	if _, err := Backup(context.Background(), bad2, []string{dir}, Options{}); err == nil {
		t.Fatal("Backup into a failing repository succeeded")
	}
}

func TestSkipPaths(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/src/keep", []byte("keep"))
	write(t, dir+"/src/mnt/secret", []byte("secret"))
	write(t, dir+"/src/sub/mnt", []byte("a file of the same name elsewhere"))
	// Reached through a symlinked ancestor, the skipped path is still
	// recognised (by its parent directory's inode).
	os.Symlink(".", dir+"/alias")
	for _, source := range []string{dir + "/src", dir + "/alias/src"} {
		r := newRepo(t)
		var mu sync.Mutex
		var opened []string
		snap, err := Backup(context.Background(), r, []string{source}, Options{
			SkipPaths:  []string{dir + "/src/mnt"},
			beforeOpen: func(p string) { mu.Lock(); opened = append(opened, p); mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		tree, _ := r.LoadTree(context.Background(), *lookup(t, r, snap, source).Subtree)
		if tree.Find("mnt") != nil || tree.Find("keep") == nil {
			t.Errorf("%s: skipped path recorded", source)
		}
		lookup(t, r, snap, source+"/sub/mnt")
		for _, p := range opened {
			if filepath.Base(p) == "secret" {
				t.Errorf("%s: opened %s", source, p)
			}
		}
	}
	_, err := Backup(context.Background(), newRepo(t), []string{dir + "/src/mnt/secret"}, Options{SkipPaths: []string{dir + "/src/mnt"}})
	if err == nil {
		t.Error("a source inside a skipped path was accepted")
	}
}

// A proc filesystem mounted inside the source is recorded as an empty
// directory, its mount point, and not walked.
func TestSkipVirtualRecordsMountPointEmpty(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/src/file", []byte("data"))
	if err := os.Mkdir(dir+"/src/proc", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("proc", dir+"/src/proc", "proc", 0, ""); err != nil {
		testenv.Skip(t, fmt.Sprintf("cannot mount proc (needs root): %v", err))
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir+"/src/proc", unix.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	r := newRepo(t)
	snap, err := Backup(context.Background(), r, []string{dir + "/src"}, Options{SkipVirtual: true})
	if err != nil {
		t.Fatal(err)
	}
	n := lookup(t, r, snap, dir+"/src/proc")
	if n.Type != repo.NodeDir {
		t.Fatalf("mount point recorded as %+v", n)
	}
	tree, err := r.LoadTree(context.Background(), *n.Subtree)
	if err != nil || len(tree.Nodes) != 0 {
		t.Fatalf("mount point recorded with %d entries (%v)", len(tree.Nodes), err)
	}
	if string(content(t, r, lookup(t, r, snap, dir+"/src/file"))) != "data" {
		t.Fatal("the rest of the source is missing")
	}
}
