package fs

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/internal/testenv"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// Browsing many snapshots costs memory only while the kernel keeps their
// inodes: once it forgets them (here: drop_caches, elsewhere memory
// pressure), go-fuse drops their inodes and the nodes of the tree go with
// them (DESIGN.md §6).
func TestNodesReleasedOnForget(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "only root may make the kernel forget inodes (drop_caches)")
	}
	ctx := t.Context()
	r, err := repo.Init(ctx, mem.New(), "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a/x", "a/b/y", "a/b/z"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const snapshots = 20
	var labels []string
	for i := range snapshots {
		s, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "h", Label: fmt.Sprintf("s%02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		labels = append(labels, s.Label)
	}
	rp := tree.NewRepo(ctx, "main", r, cache.New[repo.ID](8<<20))
	mnt, m := mountRoot(t, tree.NewRoot([]*tree.Repo{rp}, nil))

	inos := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, l := range labels {
			dir := filepath.Join(mnt, "repos/main/snapshots", l, src)
			if b, err := os.ReadFile(filepath.Join(dir, "a/b/y")); err != nil || string(b) != "a/b/y" {
				t.Fatalf("%s: read %q, %v", l, b, err)
			}
			if _, err := os.ReadDir(filepath.Join(dir, "a")); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{filepath.Join(mnt, "repos/main/snapshots", l), filepath.Join(dir, "a/b/y")} {
				var st unix.Stat_t
				if err := unix.Stat(p, &st); err != nil {
					t.Fatal(err)
				}
				out[p] = st.Ino
			}
		}
		return out
	}
	before := inos()
	// Every inode below snapshots/ is the kernel's: track their adapter
	// nodes and the tree's nodes these hold.
	var live atomic.Int64
	n := snapshotInodes(m, func(in *gofuse.Inode) {
		nd := in.Operations().(*node)
		live.Add(2)
		runtime.AddCleanup(nd, func(struct{}) { live.Add(-1) }, struct{}{})
		runtime.SetFinalizer(nd.t, func(any) { live.Add(-1) }) // any type of node
	})
	// Per snapshot at least its root, the directories of src's path, a,
	// b and y.
	if min := snapshots * (strings.Count(src, "/") + 4); n < min {
		t.Fatalf("%d inodes below snapshots/ after browsing %d snapshots, want at least %d", n, snapshots, min)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		// Writing drop_caches evicts every unused dentry and inode; the
		// kernel then sends FORGET for ours.
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		left := snapshotInodes(m, func(*gofuse.Inode) {})
		if left == 0 && live.Load() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after drop_caches %d of %d inodes below snapshots/ are still held, %d of their adapter and tree nodes alive", left, n, live.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Looked up again, every node has the number it had.
	if after := inos(); !maps.Equal(before, after) {
		t.Fatalf("inode numbers changed after the kernel forgot them:\n%v\n%v", before, after)
	}
}

// snapshotInodes calls fn on every inode go-fuse holds below
// repos/main/snapshots of m and returns how many there are.
func snapshotInodes(m *Mounted, fn func(*gofuse.Inode)) int {
	in := m.root.EmbeddedInode()
	for _, name := range []string{"repos", "main", "snapshots"} {
		if in = in.GetChild(name); in == nil {
			return 0
		}
	}
	seen := map[*gofuse.Inode]bool{} // hard links have several parents
	var walk func(*gofuse.Inode)
	walk = func(in *gofuse.Inode) {
		for _, c := range in.Children() {
			if !seen[c] {
				seen[c] = true
				fn(c)
				walk(c)
			}
		}
	}
	walk(in)
	return len(seen)
}
