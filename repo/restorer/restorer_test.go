package restorer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testenv"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restorer"
)

const kib, mib = 1 << 10, 1 << 20

func isRoot() bool { return os.Geteuid() == 0 }

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func checkTimes(t *testing.T, p string, st *unix.Stat_t) {
	t.Helper()
	if got := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(); !got.Equal(mtime) {
		t.Errorf("%s: mtime %v, want %v", p, got, mtime)
	}
	if got := time.Unix(st.Atim.Sec, st.Atim.Nsec).UTC(); !got.Equal(atime) {
		t.Errorf("%s: atime %v, want %v", p, got, atime)
	}
}

func checkContent(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: content differs (%d bytes, want %d)", p, len(got), len(want))
	}
}

func restore(t *testing.T, b *builder, snap *repo.Snapshot, target string, opts restorer.Options) (restorer.Result, []pathErr) {
	t.Helper()
	var e errs
	opts.OnError = e.add
	res, err := restorer.Restore(context.Background(), b.r, snap, target, opts)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return res, e.get()
}

func noErrors(t *testing.T, res restorer.Result, list []pathErr) {
	t.Helper()
	for _, e := range list {
		t.Errorf("OnError(%s): %v", e.path, e.err)
	}
	if res.Errors != 0 {
		t.Errorf("Result.Errors = %d, want 0", res.Errors)
	}
}

// TestRestore restores one snapshot holding every kind of entry and checks
// each against what was recorded.
func TestRestore(t *testing.T) {
	b := newBuilder(t)

	big := b.random(3*mib + 12345)
	small := []byte("hello, world\n")
	linked := b.random(100 * kib)
	xdata := []byte("with xattrs")

	// 8 MiB: 64 KiB of data, zero chunks, 64 KiB of data, a zero tail.
	sparse := make([]byte, 8*mib)
	copy(sparse, b.random(64*kib))
	copy(sparse[5*mib:], b.random(64*kib))
	sparseNode := b.file("sparse", sparse, 64*kib)

	hard1 := b.file("hard1", linked, 64*kib)
	hard2 := b.file("hard2", linked, 64*kib)
	for _, n := range []*repo.Node{hard1, hard2} {
		n.Inode, n.Device, n.Links = 7, 42, 2
	}

	xfile := b.file("xattrs", xdata, mib)
	xfile.Xattrs = []repo.Xattr{{Name: "user.foo", Value: []byte("bar")}, {Name: "user.empty", Value: []byte{}}}

	fifo := b.special("fifo", repo.NodeFIFO, 0o640, 0)
	suid := b.file("suid", small, mib)
	suid.Mode = 0o4755
	sgid := b.file("sgid", small, mib)
	sgid.Mode = 0o2710
	var rootOnly []*repo.Node
	if isRoot() {
		// A non-root owner could not write into it, or clean it up.
		closed := b.dir("closed", b.file("secret", small, mib))
		closed.Mode = 0o500
		suid.UID, suid.GID = 1234, 5678
		sgid.UID, sgid.GID = 1234, 5678
		null := b.special("null", repo.NodeCharDev, 0o666, unix.Mkdev(1, 3))
		loop := b.special("loop9", repo.NodeDev, 0o660, unix.Mkdev(7, 9))
		fifo.Xattrs = []repo.Xattr{{Name: "trusted.fifo", Value: []byte("f")}}
		owned := b.file("owned", small, mib)
		owned.UID, owned.GID = 1234, 5678
		rootOnly = []*repo.Node{null, loop, owned, closed}
	}
	sock := b.special("sock", repo.NodeSocket, 0o755, 0)

	block := b.random(64 * kib)
	repeat := bytes.Repeat(block, 4)
	docs := b.dir("docs",
		b.file("a.txt", small, mib),
		b.file("caf\xe9", small, mib), // names are bytes, not UTF-8
		b.file("repeat", repeat, 64*kib),
		b.symlink("link", "../big.bin"),
		b.symlink("abs", "/etc/passwd"),
		b.symlink("raw", "\xff\xfe/x"),
		b.dir("sub", hard2),
	)
	docs.Mode = 0o750
	sticky := b.dir("tmp", b.file("f", small, mib))
	sticky.Mode = 0o1777

	alice := b.dir("alice", append([]*repo.Node{
		b.file("big.bin", big, 256*kib),
		b.file("empty", nil, mib),
		docs, hard1, sparseNode, xfile, fifo, suid, sgid, sock, sticky,
	}, rootOnly...)...)
	snap := b.snapshot(b.dir("home", alice))
	// Zero chunks are recognised by their id and never decoded: damage to
	// the stored zero chunk goes unnoticed.
	b.corrupt(repo.Hash(make([]byte, 64*kib)))

	target := t.TempDir()
	var progress []restorer.Progress
	res, list := restore(t, b, snap, target, restorer.Options{Progress: func(p restorer.Progress) { progress = append(progress, p) }})
	noErrors(t, res, list)

	home := filepath.Join(target, "home", "alice")
	at := func(p string) string { return filepath.Join(home, p) }

	// Metadata first: reading contents would move atimes.
	for _, p := range []string{"big.bin", "empty", "docs", "docs/a.txt", "docs/link", "docs/sub", "docs/sub/hard2", "hard1", "sparse", "xattrs", "fifo", "suid", "tmp", "."} {
		checkTimes(t, p, lstat(t, at(p)))
	}
	modes := map[string]uint32{
		"big.bin": unix.S_IFREG | 0o644, "docs": unix.S_IFDIR | 0o750, "fifo": unix.S_IFIFO | 0o640,
		"suid": unix.S_IFREG | 0o4755, "sgid": unix.S_IFREG | 0o2710, "tmp": unix.S_IFDIR | 0o1777,
		"docs/link": unix.S_IFLNK | 0o777,
	}
	if isRoot() {
		checkTimes(t, "closed", lstat(t, at("closed")))
		modes["closed"] = unix.S_IFDIR | 0o500
	}
	for p, want := range modes {
		if got := lstat(t, at(p)).Mode; got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	if isRoot() {
		for _, p := range []string{"suid", "sgid", "owned"} {
			if st := lstat(t, at(p)); st.Uid != 1234 || st.Gid != 5678 {
				t.Errorf("%s: owner %d:%d, want 1234:5678", p, st.Uid, st.Gid)
			}
		}
		st := lstat(t, at("null"))
		if st.Mode != unix.S_IFCHR|0o666 || st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("null: mode %o rdev %x", st.Mode, st.Rdev)
		}
		st = lstat(t, at("loop9"))
		if st.Mode != unix.S_IFBLK|0o660 || st.Rdev != unix.Mkdev(7, 9) {
			t.Errorf("loop9: mode %o rdev %x", st.Mode, st.Rdev)
		}
		buf := make([]byte, 16)
		if n, err := unix.Lgetxattr(at("fifo"), "trusted.fifo", buf); err != nil || string(buf[:n]) != "f" {
			t.Errorf("fifo xattr: %q, %v", buf[:n], err)
		}
	}

	st1, st2 := lstat(t, at("hard1")), lstat(t, at("docs/sub/hard2"))
	if st1.Ino != st2.Ino || st1.Nlink != 2 {
		t.Errorf("hard links: inodes %d and %d, nlink %d", st1.Ino, st2.Ino, st1.Nlink)
	}
	st := lstat(t, at("sparse"))
	if st.Size != 8*mib || st.Blocks*512 > 512*kib {
		t.Errorf("sparse: size %d, %d bytes allocated", st.Size, st.Blocks*512)
	}
	if _, err := os.Lstat(at("sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket: %v, want not restored", err)
	}
	for p, want := range map[string]string{"docs/link": "../big.bin", "docs/abs": "/etc/passwd", "docs/raw": "\xff\xfe/x"} {
		if got, err := os.Readlink(at(p)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %q", p, got, err, want)
		}
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(at("xattrs"), "user.foo", buf); err != nil || string(buf[:n]) != "bar" {
		t.Errorf("xattr user.foo: %q, %v", buf[:n], err)
	}
	if n, err := unix.Lgetxattr(at("xattrs"), "user.empty", buf); err != nil || n != 0 {
		t.Errorf("xattr user.empty: %d bytes, %v", n, err)
	}

	checkContent(t, at("big.bin"), big)
	checkContent(t, at("empty"), nil)
	checkContent(t, at("docs/a.txt"), small)
	checkContent(t, at("docs/caf\xe9"), small)
	checkContent(t, at("docs/repeat"), repeat)
	checkContent(t, at("hard1"), linked)
	checkContent(t, at("docs/sub/hard2"), linked)
	checkContent(t, at("sparse"), sparse)
	checkContent(t, at("xattrs"), xdata)
	checkContent(t, at("docs/link"), big) // through the restored symlink

	wantFiles, wantDirs := uint64(16), uint64(5)
	wantBytes := uint64(len(big) + 5*len(small) + len(repeat) + 2*len(linked) + len(sparse) + len(xdata))
	if isRoot() {
		wantFiles += 4 // null, loop9, owned, closed/secret
		wantDirs++
		wantBytes += 2 * uint64(len(small))
	}
	if res.Files != wantFiles || res.Dirs != wantDirs {
		t.Errorf("result %+v, want %d files and %d dirs", res, wantFiles, wantDirs)
	}
	if res.Bytes != wantBytes {
		t.Errorf("result bytes %d, want %d", res.Bytes, wantBytes)
	}
	if len(progress) == 0 {
		t.Fatal("no progress reported")
	}
	last := progress[len(progress)-1]
	if last.Files != last.TotalFiles || last.TotalFiles != wantFiles+1 || last.Bytes != wantBytes || last.TotalBytes != wantBytes {
		t.Errorf("last progress %+v, want %d files (with the socket), %d bytes", last, wantFiles+1, wantBytes)
	}

	// Restoring again over the result replaces everything and changes
	// nothing.
	res, list = restore(t, b, snap, target, restorer.Options{})
	noErrors(t, res, list)
	checkTimes(t, "docs", lstat(t, at("docs")))
	checkContent(t, at("big.bin"), big)
	if st := lstat(t, at("hard1")); st.Nlink != 2 {
		t.Errorf("second restore: hard1 has %d links", st.Nlink)
	}
}

func TestOwnerByName(t *testing.T) {
	if !isRoot() {
		testenv.Skip(t, "needs root")
	}
	b := newBuilder(t)
	n := b.file("f", []byte("x"), mib)
	n.UID, n.GID, n.User, n.Group = 1234, 5678, "root", "root"
	snap := b.snapshot(n)

	for _, numeric := range []bool{false, true} {
		target := t.TempDir()
		res, list := restore(t, b, snap, target, restorer.Options{NumericOwner: numeric})
		noErrors(t, res, list)
		st := lstat(t, filepath.Join(target, "f"))
		want := uint32(0)
		if numeric {
			want = 1234
		}
		if st.Uid != want {
			t.Errorf("NumericOwner=%v: uid %d, want %d", numeric, st.Uid, want)
		}
	}
}

func TestIncludes(t *testing.T) {
	b := newBuilder(t)
	docs := b.dir("docs", b.file("a", []byte("a"), mib), b.dir("deep", b.file("b", []byte("b"), mib)))
	alice := b.dir("alice", docs, b.file("other", []byte("o"), mib), b.dir("music", b.file("song", []byte("s"), mib)))
	alice.Mode = 0o711
	snap := b.snapshot(
		b.dir("home", alice, b.dir("bob", b.file("x", []byte("x"), mib))),
		b.dir("etc", b.file("passwd", []byte("p"), mib)),
	)

	// Includes that name nothing fail the restore before anything is
	// created, even the target.
	target := filepath.Join(t.TempDir(), "target")
	_, err := restorer.Restore(context.Background(), b.r, snap, target, restorer.Options{
		Includes: []string{"/home/alice/docs", "etc/passwd/", "/home/nobody", "/etc/passwd/below"},
		OnError:  func(p string, err error) { t.Errorf("OnError(%s, %v)", p, err) },
	})
	var ie *restorer.IncludeError
	if !errors.As(err, &ie) || !errors.Is(err, restorer.ErrNotInSnapshot) ||
		!slices.Equal(ie.Paths, []string{"/home/nobody", "/etc/passwd/below"}) {
		t.Fatalf("Restore with missing includes: %v, want an IncludeError naming /home/nobody and /etc/passwd/below", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target after a refused restore: %v, want nothing created", err)
	}

	var last restorer.Progress
	res, list := restore(t, b, snap, target, restorer.Options{
		Includes: []string{"/home/alice/docs", "etc/passwd/"},
		Progress: func(p restorer.Progress) { last = p },
	})
	noErrors(t, res, list)
	st := lstat(t, filepath.Join(target, "home/alice"))
	if st.Mode&0o7777 != 0o711 {
		t.Errorf("ancestor mode %o, want 711", st.Mode&0o7777)
	}
	checkTimes(t, "home/alice", st)
	for _, p := range []string{"home/alice/docs/a", "home/alice/docs/deep/b", "etc/passwd"} {
		if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
			t.Error(err)
		}
	}
	for _, p := range []string{"home/alice/other", "home/alice/music", "home/bob"} {
		if _, err := os.Lstat(filepath.Join(target, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want not restored", p, err)
		}
	}
	if res.Files != 3 || res.Dirs != 5 {
		t.Errorf("result %+v, want 3 files, 5 dirs", res)
	}
	if last.TotalFiles != 3 || last.Files != 3 || last.TotalBytes != 3 {
		t.Errorf("progress %+v, want 3 files of 3 bytes", last)
	}
}

// TestCorrupt damages one blob; the file holding it is reported, naming
// the blob, and removed, and everything else is restored.
func TestCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk int // several chunks are read with one ranged load, one alone
	}{{"range", 64 * kib}, {"single", mib}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t)
			good1, good2 := b.random(300*kib), b.random(300*kib)
			bad := b.file("bad", b.random(300*kib), tc.chunk)
			snap := b.snapshot(b.dir("data", b.file("a", good1, tc.chunk), bad, b.file("z", good2, tc.chunk)))
			victim := bad.Content[len(bad.Content)/2]
			b.corrupt(victim)

			target := t.TempDir()
			res, list := restore(t, b, snap, target, restorer.Options{})
			if len(list) != 1 || res.Errors != 1 {
				t.Fatalf("errors %v (count %d), want one", list, res.Errors)
			}
			e := list[0]
			if e.path != "/data/bad" || !errors.Is(e.err, repo.ErrCorrupt) || !strings.Contains(e.err.Error(), victim.Short()) {
				t.Errorf("OnError(%s, %v), want /data/bad with a corrupt error naming blob %s", e.path, e.err, victim.Short())
			}
			var ce *repo.CorruptError
			if !errors.As(e.err, &ce) || ce.Blob != victim {
				t.Errorf("error %v does not name the blob", e.err)
			}
			if _, err := os.Lstat(filepath.Join(target, "data/bad")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("partial file left behind: %v", err)
			}
			checkContent(t, filepath.Join(target, "data/a"), good1)
			checkContent(t, filepath.Join(target, "data/z"), good2)
			if res.Files != 2 {
				t.Errorf("result %+v, want 2 files", res)
			}
		})
	}
}

func TestMissingBlob(t *testing.T) {
	b := newBuilder(t)
	n := b.file("lost", []byte("x"), mib)
	missing := repo.Hash([]byte("never saved"))
	n.Content = append(n.Content, missing)
	snap := b.snapshot(n, b.file("kept", []byte("k"), mib))

	target := t.TempDir()
	res, list := restore(t, b, snap, target, restorer.Options{})
	if len(list) != 1 || list[0].path != "/lost" || !errors.Is(list[0].err, repo.ErrBlobNotFound) || !strings.Contains(list[0].err.Error(), missing.Short()) {
		t.Fatalf("errors %v, want /lost with ErrBlobNotFound naming %s", list, missing.Short())
	}
	if res.Errors != 1 || res.Files != 1 {
		t.Errorf("result %+v", res)
	}
	if _, err := os.Lstat(filepath.Join(target, "lost")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lost: %v, want not created", err)
	}
}

// TestHardLinkGroups: names of one inode in several directories become
// one file, whatever the number of workers; a name whose siblings are not
// restored stands alone.
func TestHardLinkGroups(t *testing.T) {
	b := newBuilder(t)
	var dirs []*repo.Node
	contents := make(map[uint64][]byte)
	for d := range 3 {
		var files []*repo.Node
		for g := range 20 {
			ino := uint64(5000 + g)
			if contents[ino] == nil {
				contents[ino] = b.random(1000 + g)
			}
			n := b.file(fmt.Sprintf("g%02d", g), contents[ino], mib)
			n.Inode, n.Links = ino, 3
			files = append(files, n)
		}
		dirs = append(dirs, b.dir(fmt.Sprintf("d%d", d), files...))
	}
	snap := b.snapshot(dirs...)
	for _, workers := range []int{1, 3, 64} {
		target := t.TempDir()
		res, list := restore(t, b, snap, target, restorer.Options{Workers: workers})
		noErrors(t, res, list)
		for g := range 20 {
			name := fmt.Sprintf("g%02d", g)
			first := lstat(t, filepath.Join(target, "d0", name))
			for d := range 3 {
				p := filepath.Join(target, fmt.Sprintf("d%d", d), name)
				if st := lstat(t, p); st.Ino != first.Ino || st.Nlink != 3 {
					t.Errorf("workers %d: %s: inode %d (want %d), nlink %d", workers, p, st.Ino, first.Ino, st.Nlink)
				}
				checkContent(t, p, contents[uint64(5000+g)])
			}
		}
	}

	target := t.TempDir()
	res, list := restore(t, b, snap, target, restorer.Options{Includes: []string{"/d1/g03"}})
	noErrors(t, res, list)
	if st := lstat(t, filepath.Join(target, "d1/g03")); st.Nlink != 1 || res.Files != 1 {
		t.Errorf("lone name: nlink %d, result %+v", st.Nlink, res)
	}
}

// TestHardLinkSourceFails: the names linked to a file that failed fail too.
func TestHardLinkSourceFails(t *testing.T) {
	b := newBuilder(t)
	h1 := b.file("h1", b.random(10*kib), mib)
	h2 := b.file("h2", b.random(10*kib), mib)
	for _, n := range []*repo.Node{h1, h2} {
		n.Inode, n.Links = 99, 2
	}
	snap := b.snapshot(h1, h2)
	b.corrupt(h1.Content[0])
	res, list := restore(t, b, snap, t.TempDir(), restorer.Options{})
	if res.Errors != 2 || len(list) != 2 || list[0].path != "/h1" || list[1].path != "/h2" {
		t.Errorf("result %+v, errors %v; want h1 and h2 reported", res, list)
	}
}

// TestBadNames: a tree naming ".." (or anything else that could escape)
// is rejected; the rest of the snapshot is restored.
func TestBadNames(t *testing.T) {
	b := newBuilder(t)
	payload := b.file("..", []byte("escaped"), mib)
	slash := b.file("x/y", []byte("escaped"), mib)
	snap := b.snapshot(
		b.rawDir("evil", payload),
		b.rawDir("evil2", slash),
		b.file("ok", []byte("ok"), mib),
	)
	parent := t.TempDir()
	target := filepath.Join(parent, "t")
	res, list := restore(t, b, snap, target, restorer.Options{})
	if len(list) != 2 || res.Errors != 2 {
		t.Fatalf("errors %v, want 2", list)
	}
	for _, e := range list {
		if !errors.Is(e.err, repo.ErrBadName) || !strings.HasPrefix(e.path, "/evil") {
			t.Errorf("OnError(%s, %v), want a bad name error for /evil*", e.path, e.err)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil || len(entries) != 1 {
		t.Errorf("%s holds %v (%v), want only the target", parent, entries, err)
	}
	if _, err := os.Lstat(filepath.Join(target, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("x: %v", err)
	}
	checkContent(t, filepath.Join(target, "ok"), []byte("ok"))

	// A bad root tree stops the restore.
	b2 := newBuilder(t)
	evil := b2.rawDir("root", b2.file("..", []byte("x"), mib))
	snap2 := b2.save(*evil.Subtree)
	_, err = restorer.Restore(context.Background(), b2.r, snap2, t.TempDir(), restorer.Options{})
	if !errors.Is(err, repo.ErrBadName) {
		t.Errorf("bad root tree: %v, want ErrBadName", err)
	}
}

// TestExistingSymlinks: symlinks already in the target are replaced,
// never followed, and an existing hard link is not written through.
func TestExistingSymlinks(t *testing.T) {
	b := newBuilder(t)
	snap := b.snapshot(
		b.dir("home", b.dir("alice", b.file("passwd", []byte("restored"), mib))),
		b.dir("srv", b.file("victim", []byte("restored"), mib), b.file("shared", []byte("restored"), mib)),
	)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(target, "home")))         // a directory symlink
	must(os.Mkdir(filepath.Join(target, "srv"), 0o755))              //
	must(os.Symlink(victim, filepath.Join(target, "srv", "victim"))) // a file symlink
	must(os.Link(victim, filepath.Join(target, "srv", "shared")))    // a hard link

	res, list := restore(t, b, snap, target, restorer.Options{})
	noErrors(t, res, list)
	if st := lstat(t, filepath.Join(target, "home")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("home is still not a directory: mode %o", st.Mode)
	}
	checkContent(t, filepath.Join(target, "home/alice/passwd"), []byte("restored"))
	checkContent(t, filepath.Join(target, "srv/victim"), []byte("restored"))
	checkContent(t, filepath.Join(target, "srv/shared"), []byte("restored"))
	checkContent(t, victim, []byte("original"))
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("restore wrote into the symlinked directory: %v", entries)
	}
}

// TestExistingDirectory: a directory where the snapshot has a file is
// replaced when empty and reported when not.
func TestExistingDirectory(t *testing.T) {
	b := newBuilder(t)
	snap := b.snapshot(b.file("empty", []byte("e"), mib), b.file("full", []byte("f"), mib))
	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(target, "full", "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, list := restore(t, b, snap, target, restorer.Options{})
	if res.Errors != 1 || len(list) != 1 || list[0].path != "/full" || !errors.Is(list[0].err, unix.ENOTEMPTY) {
		t.Errorf("result %+v, errors %v; want /full reported", res, list)
	}
	checkContent(t, filepath.Join(target, "empty"), []byte("e"))
	if _, err := os.Stat(filepath.Join(target, "full", "keep")); err != nil {
		t.Errorf("user data removed: %v", err)
	}
}

// TestXattrFailure: an xattr that cannot be set is reported; the entry is
// restored anyway.
func TestXattrFailure(t *testing.T) {
	b := newBuilder(t)
	l := b.symlink("l", "t")
	l.Xattrs = []repo.Xattr{{Name: "user.nope", Value: []byte("x")}} // user.* is refused on symlinks
	f := b.file("f", []byte("f"), mib)
	f.Xattrs = []repo.Xattr{{Name: "bogus.ns", Value: []byte("x")}, {Name: "user.ok", Value: []byte("y")}}
	snap := b.snapshot(l, f)
	target := t.TempDir()
	res, list := restore(t, b, snap, target, restorer.Options{})
	if res.Errors != 2 || len(list) != 2 || res.Files != 2 {
		t.Fatalf("result %+v, errors %v; want 2 restored, 2 errors", res, list)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(target, "f"), "user.ok", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("user.ok: %q, %v", buf[:n], err)
	}
	checkTimes(t, "l", lstat(t, filepath.Join(target, "l")))
}

func TestCancel(t *testing.T) {
	b := newBuilder(t)
	snap := b.snapshot(b.file("f", []byte("f"), mib))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := restorer.Restore(ctx, b.r, snap, t.TempDir(), restorer.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}

	// Cancelled in the middle: returns promptly with the context's error.
	b = newBuilder(t)
	var files []*repo.Node
	for i := range 200 {
		files = append(files, b.file(fmt.Sprintf("f%03d", i), b.random(20*kib), mib))
	}
	snap = b.snapshot(b.dir("d", files...))
	ctx, cancel = context.WithCancel(context.Background())
	var once sync.Once
	_, err := restorer.Restore(ctx, b.r, snap, t.TempDir(), restorer.Options{
		Progress: func(p restorer.Progress) {
			if p.Files > 0 {
				once.Do(cancel)
			}
		},
		OnError: func(p string, err error) { t.Errorf("OnError(%s, %v) after cancel", p, err) },
	})
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
}

func TestTargetNotCreatable(t *testing.T) {
	b := newBuilder(t)
	snap := b.snapshot(b.file("f", []byte("f"), mib))
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := restorer.Restore(context.Background(), b.r, snap, filepath.Join(file, "sub"), restorer.Options{}); err == nil {
		t.Error("restore under a regular file succeeded")
	}
}

func BenchmarkRestore(b *testing.B) {
	bl := newBuilder(b)
	var dirs []*repo.Node
	var total int64
	for d := range 10 {
		var files []*repo.Node
		for f := range 30 {
			size := 4*kib + bl.rnd.IntN(60*kib)
			files = append(files, bl.file(fmt.Sprintf("f%02d", f), bl.random(size), mib))
			total += int64(size)
		}
		files = append(files, bl.file("big", bl.random(2*mib), 512*kib))
		total += 2 * mib
		dirs = append(dirs, bl.dir(fmt.Sprintf("d%02d", d), files...))
	}
	snap := bl.snapshot(bl.dir("data", dirs...))
	base := b.TempDir()
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		target := filepath.Join(base, fmt.Sprintf("r%d", i))
		res, err := restorer.Restore(context.Background(), bl.r, snap, target, restorer.Options{})
		if err != nil || res.Errors != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkRestoreLargeFile restores one file of 64 MiB in 1 MiB chunks,
// half of them compressible: the decoding of a single file's chunks.
func BenchmarkRestoreLargeFile(b *testing.B) {
	bl := newBuilder(b)
	data := bl.random(64 * mib)
	for i := 0; i < len(data); i += 2 * mib {
		for k := i; k < i+mib; k++ {
			data[k] = 'a' + data[k]%4
		}
	}
	snap := bl.snapshot(bl.file("big", data, mib))
	base := b.TempDir()
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		target := filepath.Join(base, fmt.Sprintf("r%d", i))
		res, err := restorer.Restore(context.Background(), bl.r, snap, target, restorer.Options{})
		if err != nil || res.Errors != 0 {
			b.Fatal(res, err)
		}
		b.StopTimer()
		os.RemoveAll(target)
		b.StartTimer()
	}
}

// TestZeroChunksFoundAfterLoadingStayHoles: a chunk of zeros of a length
// the restorer cannot recognise by its id (not a block multiple, not the
// chunker's minimum or maximum) is loaded, found to be zeros, and left as
// a hole rather than written (issue 19).
func TestZeroChunksFoundAfterLoadingStayHoles(t *testing.T) {
	b := newBuilder(t)
	const odd = 64*kib + 7 // a length no other test uses: the zero ids are process-wide
	data := make([]byte, 12*odd)
	copy(data, b.random(odd))
	copy(data[11*odd:], b.random(odd))
	snap := b.snapshot(b.file("zeros", data, odd))
	target := t.TempDir()
	restore(t, b, snap, target, restorer.Options{})
	p := filepath.Join(target, "zeros")
	checkContent(t, p, data)
	if st := lstat(t, p); st.Blocks*512 > 4*odd {
		t.Errorf("%d bytes allocated for %d bytes of data in a file of %d: the zero chunks were written", st.Blocks*512, 2*odd, st.Size)
	}
}
