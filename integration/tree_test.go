package integration

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// makeTree writes a source tree holding every file type and piece of
// metadata that backup must keep (DESIGN.md §1).
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	big := make([]byte, 12<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	write("plain.txt", []byte("hello, cairn\n"), 0o644)
	write("big.bin", big, 0o600)
	write("empty", nil, 0o644)
	write("sub/dir/deep.txt", bytes.Repeat([]byte("deep "), 10000), 0o640)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755|os.ModeSetuid)
	must(os.Chmod(filepath.Join(dir, "setuid"), 0o755|os.ModeSetuid))
	must(os.Mkdir(filepath.Join(dir, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sticky"), 0o777|os.ModeSticky))
	must(os.Symlink("plain.txt", filepath.Join(dir, "link")))
	must(os.Symlink("/nonexistent/target", filepath.Join(dir, "dangling")))
	must(os.Link(filepath.Join(dir, "plain.txt"), filepath.Join(dir, "sub/hardlink")))
	must(os.Link(filepath.Join(dir, "plain.txt"), filepath.Join(dir, "hardlink2")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 42))))
	must(os.Lchown(filepath.Join(dir, "plain.txt"), 1234, 5678))
	must(os.Lchown(filepath.Join(dir, "link"), 4321, 8765))
	must(unix.Lsetxattr(filepath.Join(dir, "plain.txt"), "user.comment", []byte("a comment"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "sub"), "user.dir", []byte{0, 1, 2, 255}, 0))
	must(unix.Lsetxattr(filepath.Join(dir, "big.bin"), "trusted.cairn", []byte("root only"), 0))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("head"), 0)
	must(err)
	_, err = f.WriteAt([]byte("tail"), 64<<20)
	must(err)
	must(f.Close())
	// Times with nanoseconds, atime distinct from mtime; directories last.
	var dirs []string
	i := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		setTimes(t, p, i)
		i++
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		setTimes(t, d, i)
		i++
	}
}

func setTimes(t *testing.T, p string, i int) {
	base := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC).Add(time.Duration(i) * time.Hour)
	ts := []unix.Timespec{
		unix.NsecToTimespec(base.Add(time.Minute + 7).UnixNano()), // atime
		unix.NsecToTimespec(base.UnixNano()),                      // mtime
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// entry is what compareTrees looks at for one path.
type entry struct {
	mode         uint32
	uid, gid     uint32
	size         int64
	mtime, atime unix.Timespec
	rdev         uint64
	nlink        uint64
	link         string
	xattrs       map[string]string
	sum          [32]byte
	blocks       int64
	ino          uint64
}

func scan(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, mtime: st.Mtim, atime: st.Atim,
			rdev: st.Rdev, nlink: uint64(st.Nlink), xattrs: xattrs(t, p), blocks: st.Blocks, ino: st.Ino}
		if fi.IsDir() {
			e.size, e.nlink, e.atime = 0, 0, unix.Timespec{} // reading a directory moves its atime
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			e.link, _ = os.Readlink(p)
			// Reading a symlink moves its atime (relatime), and no flag
			// prevents that; backup records the atime from before.
			e.atime = unix.Timespec{}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Content after all metadata, so reading does not disturb atimes.
	for rel, e := range out {
		if e.mode&unix.S_IFMT == unix.S_IFREG {
			// O_NOATIME: comparing must not change what it compares.
			f, err := os.OpenFile(filepath.Join(root, rel), os.O_RDONLY|unix.O_NOATIME, 0)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			e.sum = sha256.Sum256(data)
			out[rel] = e
		}
	}
	return out
}

func xattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	for errors.Is(err, unix.ERANGE) {
		buf = make([]byte, 2*len(buf))
		n, err = unix.Llistxattr(p, buf)
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil // a filesystem without xattrs has none to compare
	}
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	if n == 0 {
		return nil
	}
	m := map[string]string{}
	for _, name := range bytes.Split(buf[:n-1], []byte{0}) {
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, string(name), v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		m[string(name)] = string(v[:k])
	}
	return m
}

// compareOpt relaxes compareTrees where a copying tool, not cairn, loses
// something.
type compareOpt int

// atimeSeconds compares atimes to the second: rsync --atimes sends them
// without nanoseconds.
const atimeSeconds compareOpt = 1

// compareTrees fails the test on any difference that DESIGN.md §1 rules
// out: type, mode, owner, size, times, device numbers, link targets,
// xattrs, content, hard-link groups, and sparse files staying sparse.
func compareTrees(t *testing.T, want, got string, opts ...compareOpt) {
	t.Helper()
	w, g := scan(t, want), scan(t, got)
	for rel := range w {
		if _, ok := g[rel]; !ok {
			t.Errorf("%s: missing", rel)
		}
	}
	for rel := range g {
		if _, ok := w[rel]; !ok {
			t.Errorf("%s: unexpected", rel)
		}
	}
	wGroups, gGroups := map[uint64][]string{}, map[uint64][]string{}
	for rel, we := range w {
		ge, ok := g[rel]
		if !ok {
			continue
		}
		if we.mode&unix.S_IFMT == unix.S_IFREG && we.blocks*512 < we.size/4 && ge.blocks*512 > ge.size/2 {
			t.Errorf("%s: sparse file restored dense (%d blocks)", rel, ge.blocks)
		}
		if rel == "." {
			we.mode, ge.mode = 0, 0 // the target root is the restorer's
			we.mtime, ge.mtime = unix.Timespec{}, unix.Timespec{}
			we.xattrs, ge.xattrs = nil, nil
			we.uid, we.gid, ge.uid, ge.gid = 0, 0, 0, 0
		}
		if we.nlink > 1 {
			wGroups[we.ino] = append(wGroups[we.ino], rel)
			gGroups[ge.ino] = append(gGroups[ge.ino], rel)
		}
		if slices.Contains(opts, atimeSeconds) {
			we.atime.Nsec, ge.atime.Nsec = 0, 0
		}
		we.blocks, ge.blocks, we.ino, ge.ino = 0, 0, 0, 0
		if fmt.Sprint(we) != fmt.Sprint(ge) {
			t.Errorf("%s differs:\nwant %+v\ngot  %+v", rel, we, ge)
		}
	}
	norm := func(m map[uint64][]string) []string {
		var out []string
		for _, v := range m {
			slices.Sort(v)
			out = append(out, fmt.Sprint(v))
		}
		slices.Sort(out)
		return out
	}
	if a, b := norm(wGroups), norm(gGroups); !slices.Equal(a, b) {
		t.Errorf("hard-link groups differ: want %v, got %v", a, b)
	}
}
