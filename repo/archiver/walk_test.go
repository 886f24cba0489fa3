package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
)

// walkTree calls fn for every node of snapshot snap with its path.
func walkTree(t *testing.T, r *repo.Repository, id repo.ID, dir string, fn func(path string, n *repo.Node)) {
	t.Helper()
	tree, err := r.LoadTree(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tree.Nodes {
		p := dir + "/" + n.Name
		fn(p, n)
		if n.Type == repo.NodeDir && n.Subtree != nil {
			walkTree(t, r, *n.Subtree, p, fn)
		}
	}
}

// TestSwappedDirectoryNeverLeaksOutside races directory/symlink swaps
// (renameat2 RENAME_EXCHANGE, as an unprivileged owner of part of the tree
// can do) against backups of the tree: no snapshot may hold a file of the
// directory the symlinks point to, outside the source (issue 18).
func TestSwappedDirectoryNeverLeaksOutside(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("root-only secret contents")
	write(t, dir+"/secret/private", secret)
	const pairs = 32
	for i := range pairs {
		d := fmt.Sprintf("%s/src/user%d", dir, i)
		for j := range 3 { // a listing long enough to race against
			write(t, fmt.Sprintf("%s/D/mine%02d", d, j), []byte("mine"))
		}
		if err := os.Symlink(dir+"/secret", d+"/L"); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var swaps atomic.Int64
	var wg sync.WaitGroup
	// Two swappers, one a core, each going round half of the pairs.
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i = (i + 2) % pairs {
				d := fmt.Sprintf("%s/src/user%d", dir, i)
				if err := unix.Renameat2(unix.AT_FDCWD, d+"/D", unix.AT_FDCWD, d+"/L", unix.RENAME_EXCHANGE); err != nil {
					t.Error(err)
					return
				}
				swaps.Add(1)
			}
		}()
	}

	r := newRepo(t)
	var snaps []*repo.Snapshot
	var changed atomic.Int64
	for range 30 {
		s, err := Backup(ctx, r, []string{dir + "/src"}, Options{OnError: func(p string, err error) {
			if errors.Is(err, ErrChanged) {
				changed.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	cancel()
	wg.Wait()
	if swaps.Load() < 1000 {
		t.Fatalf("only %d swaps raced the backups", swaps.Load())
	}
	leaks := 0
	for _, s := range snaps {
		walkTree(t, r, s.Tree, "", func(p string, n *repo.Node) {
			if n.Name == "private" {
				leaks++
				t.Errorf("snapshot %s holds %s, a file from outside the source", s.Label, p)
				return
			}
			if n.Type == repo.NodeFile && bytes.Equal(content(t, r, n), secret) {
				leaks++
				t.Errorf("snapshot %s holds the secret's contents at %s", s.Label, p)
			}
		})
	}
	t.Logf("%d swaps, %d backups, %d entries reported changed, %d leaks", swaps.Load(), len(snaps), changed.Load(), leaks)
}

// TestReplacedDirectoryIsReported checks that a directory replaced between
// its parent's listing and its opening is named as changed, not read.
func TestReplacedDirectoryIsReported(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/src/D/f", []byte("f"))
	write(t, dir+"/other/g", []byte("g"))
	var fd int
	fd, err := unix.Open(dir+"/src", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Lstat(dir+"/src/D", &st); err != nil {
		t.Fatal(err)
	}
	// Now D becomes a symlink, then another directory.
	os.Rename(dir+"/src/D", dir+"/src/old")
	os.Symlink(dir+"/other", dir+"/src/D")
	if _, _, err := openDir(fd, "D", &st); !errors.Is(err, ErrChanged) {
		t.Fatalf("symlink in place of the directory: %v, want ErrChanged", err)
	}
	os.Remove(dir + "/src/D")
	os.Rename(dir+"/other", dir+"/src/D")
	if _, _, err := openDir(fd, "D", &st); !errors.Is(err, ErrChanged) {
		t.Fatalf("another directory: %v, want ErrChanged", err)
	}
}

// TestUntrustedLinkOnTheWayIsRefused: a symlink on the way to a source
// that another user owns is not followed; root's is.
func TestUntrustedLinkOnTheWayIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (to give a symlink another owner); CI runs as root")
	}
	dir := t.TempDir()
	write(t, dir+"/real/src/f", []byte("f"))
	os.Symlink("real", dir+"/alias")
	if err := os.Lchown(dir+"/alias", 12345, 12345); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	_, err := Backup(context.Background(), r, []string{dir + "/alias/src"}, Options{})
	if !errors.Is(err, ErrUntrustedLink) {
		t.Fatalf("backup through another user's symlink: %v, want ErrUntrustedLink", err)
	}
	if err := os.Lchown(dir+"/alias", 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(context.Background(), r, []string{dir + "/alias/src"}, Options{}); err != nil {
		t.Fatalf("through root's own symlink: %v", err)
	}
}

// TestSourceBelowSymlinkInsideSource: backing up A and A/lnk/sub, where
// lnk is a symlink, keeps sub (under the path lnk leads to) instead of
// dropping it because A is a source (issue 18).
func TestSourceBelowSymlinkInsideSource(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/A/a", []byte("a"))
	write(t, dir+"/elsewhere/sub/s", []byte("s"))
	os.Symlink(dir+"/elsewhere", dir+"/A/lnk")
	r := newRepo(t)
	snap, err := Backup(context.Background(), r, []string{dir + "/A", dir + "/A/lnk/sub"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l := lookup(t, r, snap, dir+"/A/lnk"); l.Type != repo.NodeSymlink {
		t.Fatalf("A/lnk recorded as %+v", l)
	}
	if string(content(t, r, lookup(t, r, snap, dir+"/A/a"))) != "a" {
		t.Fatal("A/a")
	}
	real, _ := filepath.EvalSymlinks(dir + "/elsewhere")
	if string(content(t, r, lookup(t, r, snap, real+"/sub/s"))) != "s" {
		t.Fatalf("sub not backed up under its real path %s; paths %v", real, snap.Paths)
	}

	// A link that leads back inside A adds nothing: its target is there.
	os.Symlink("a-dir", dir+"/A/back")
	write(t, dir+"/A/a-dir/x", []byte("x"))
	snap, err = Backup(context.Background(), r, []string{dir + "/A", dir + "/A/back/x"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Paths) != 1 {
		t.Fatalf("paths %v, want A alone", snap.Paths)
	}
}
