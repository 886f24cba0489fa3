package integration

// The mount tests run `cairn mount` as a user does: in a separate process,
// waiting for its ready line rather than sleeping, then drive the tree with
// real tools (cp, rsync, find, stat, getfattr) and plain syscalls, and fail
// when a mount or a process is left behind (STYLE.md habit 10).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	mountReadyTimeout = 20 * time.Second // from start to the ready line
	mountExitTimeout  = 10 * time.Second // from unmount or signal to exit
	// A test still holding its mount after mountHungTimeout is stuck on a
	// FUSE request that never returns; the watchdog kills the server, which
	// makes every pending request fail, so the test fails instead of hanging.
	mountHungTimeout = 2 * time.Minute
	// newSnapshotTimeout bounds how long a new snapshot may take to appear:
	// the mount refreshes a listing older than 5 s when it is accessed.
	newSnapshotTimeout = 15 * time.Second
)

// readyLine is what a foreground mount prints on stderr once DIR is usable.
func readyLine(dir string) string { return "cairn: mounted at " + dir }

// mount is one `cairn mount` process in the foreground.
type mount struct {
	t              *testing.T
	dir            string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan struct{} // closed once the process has been waited for
	err            error         // cmd.Wait's result, valid once exited is closed
	stopped        bool
	watchdog       *time.Timer
	aborted        atomic.Bool // the watchdog killed the server (and failed the test)
}

// startMount runs `cairn mount DIR --repo R...` in the foreground and
// returns once it has printed its ready line and DIR is a FUSE mount. A
// cleanup unmounts it (if the test did not) and fails the test unless the
// process exits 0 within mountExitTimeout and leaves no mount behind.
func startMount(t *testing.T, dir, password string, repos ...string) *mount {
	t.Helper()
	return startMountFlags(t, dir, password, nil, repos...)
}

// startMountFlags is startMount with more flags for cairn mount.
func startMountFlags(t *testing.T, dir, password string, flags []string, repos ...string) *mount {
	t.Helper()
	args := append([]string{"mount", dir}, flags...)
	for _, r := range repos {
		args = append(args, "--repo", r)
	}
	m := &mount{t: t, dir: dir, exited: make(chan struct{})}
	m.cmd = exec.Command(cairnBin, args...)
	m.cmd.Env = mountEnv(password)
	m.cmd.Stdout = &m.stdout
	m.cmd.WaitDelay = 5 * time.Second
	// stderr goes through an os.Pipe that we read ourselves: the ready line
	// must be seen while the process runs, and Wait must not depend on it.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stderr = pw
	if err := m.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("starting cairn mount: %v", err)
	}
	pw.Close()
	ready := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer pr.Close()
		br := bufio.NewReader(pr)
		sent := false
		for {
			line, err := br.ReadString('\n')
			m.stderr.WriteString(line)
			if err != nil {
				return
			}
			if l := strings.TrimSuffix(line, "\n"); !sent && strings.HasPrefix(l, "cairn: mounted at ") {
				ready <- l
				sent = true
			}
		}
	}()
	go func() {
		m.err = m.cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(m.cleanup)

	select {
	case l := <-ready:
		if l != readyLine(dir) {
			t.Errorf("ready line %q, want exactly %q", l, readyLine(dir))
		}
	case <-m.exited:
		m.stopped = true
		select {
		case <-drained:
		case <-time.After(time.Second):
		}
		t.Fatalf("cairn %s exited (%v) without printing %q\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), m.err, readyLine(dir), m.stdout.String(), m.stderr.String())
	case <-time.After(mountReadyTimeout):
		m.cmd.Process.Kill()
		<-m.exited
		m.stopped = true
		unix.Unmount(dir, unix.MNT_DETACH)
		t.Fatalf("cairn %s printed no ready line within %v\nstderr so far: %s",
			strings.Join(args, " "), mountReadyTimeout, m.stderr.String())
	}
	switch mounts := mountsAt(dir); {
	case len(mounts) != 1:
		t.Fatalf("after the ready line, %d mounts at %s in /proc/self/mounts, want 1", len(mounts), dir)
	case !strings.HasPrefix(mounts[0], "fuse"):
		t.Errorf("%s is mounted with type %q, want fuse", dir, mounts[0])
	}
	m.watchdog = time.AfterFunc(mountHungTimeout, func() {
		t.Errorf("the mount at %s was still in use after %v: killing the server (a FUSE request that never returns?)\nstderr: %s",
			dir, mountHungTimeout, m.stderr.String())
		m.aborted.Store(true)
		m.cmd.Process.Kill()
		unix.Unmount(dir, unix.MNT_DETACH)
	})
	return m
}

// mountEnv is the environment of a mount process: ours without any CAIRN_
// variable, and the password in CAIRN_PASSWORD.
func mountEnv(password string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			env = append(env, kv)
		}
	}
	return append(env, "CAIRN_PASSWORD="+password)
}

// unmount ends the mount with umount(8), as a user would.
func (m *mount) unmount() {
	m.t.Helper()
	m.stop("umount "+m.dir, func() error { return command("umount", m.dir) })
}

// signal ends the mount by sending sig to its process.
func (m *mount) signal(sig syscall.Signal) {
	m.t.Helper()
	m.stop(sig.String(), func() error { return m.cmd.Process.Signal(sig) })
}

// stop ends the mount with end and fails the test unless the process then
// exits 0 within mountExitTimeout and the mount is gone.
func (m *mount) stop(how string, end func() error) {
	m.t.Helper()
	if m.stopped {
		return
	}
	m.stopped = true
	if m.watchdog != nil {
		m.watchdog.Stop()
	}
	if m.aborted.Load() {
		<-m.exited // killed: the watchdog has said what went wrong
		return
	}
	if err := end(); err != nil {
		m.t.Errorf("%s: %v (is a file or directory in the mount still open?)", how, err)
		unix.Unmount(m.dir, unix.MNT_DETACH)
	}
	select {
	case <-m.exited:
		if m.err != nil {
			m.t.Errorf("cairn mount ended with %v after %s, want exit 0\nstderr: %s", m.err, how, m.stderr.String())
		}
	case <-time.After(mountExitTimeout):
		m.t.Errorf("cairn mount still running %v after %s\nstderr: %s", mountExitTimeout, how, m.stderr.String())
		m.cmd.Process.Kill()
		<-m.exited
	}
	if n := len(mountsAt(m.dir)); n > 0 {
		m.t.Errorf("%s still mounted after %s and the end of the mount process", m.dir, how)
		for range n {
			unix.Unmount(m.dir, unix.MNT_DETACH)
		}
	}
}

func (m *mount) cleanup() {
	if m.watchdog != nil {
		m.watchdog.Stop()
	}
	m.unmount()
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mountsAt returns the filesystem types of everything mounted at dir,
// innermost last, from /proc/self/mounts.
func mountsAt(dir string) []string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		panic(err)
	}
	var types []string
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && unescapeMountField(f[1]) == dir {
			types = append(types, f[2])
		}
	}
	return types
}

// unescapeMountField undoes the octal escapes (\040 for a space, ...) of
// /proc/self/mounts.
func unescapeMountField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountDir returns an empty directory to mount on, with symlinks resolved
// so that it matches /proc/self/mounts and the ready line.
func mountDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// command runs a program and returns an error with its output if it fails.
func command(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// tool runs a program in dir ("" for ours) and fails the test unless it
// succeeds; it returns the program's stdout.
func tool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// snapshot is one line of `cairn snapshots --json`.
type snapshot struct {
	ID    string   `json:"id"`
	Label string   `json:"label"`
	Host  string   `json:"host"`
	Paths []string `json:"paths"`
	Tags  []string `json:"tags"`
}

// snapshots lists e's repository, oldest first.
func (e *env) snapshots() []snapshot {
	e.t.Helper()
	var out []snapshot
	for line := range strings.SplitSeq(strings.TrimSpace(e.ok("snapshots", "--json").stdout), "\n") {
		if line == "" {
			continue
		}
		var s snapshot
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			e.t.Fatalf("snapshots --json: %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// latest returns e's newest snapshot.
func (e *env) latest() snapshot {
	e.t.Helper()
	s := e.snapshots()
	if len(s) == 0 {
		e.t.Fatal("no snapshots")
	}
	return s[len(s)-1]
}

// treeFixture is makeTree's tree, backed up once into a repository that
// the mount tests share: building it is most of a test's time, and they
// only read it (which leaves the source's file atimes alone: compareTrees
// reads with O_NOATIME).
type treeFixture struct {
	repo, password string
	src            string // the source, left in place
	snap           snapshot
}

var (
	sharedTreeOnce sync.Once
	sharedTree     *treeFixture
)

// sharedTreeFixture returns the shared fixture, building it in the first
// test that asks for it.
func sharedTreeFixture(t *testing.T) *treeFixture {
	t.Helper()
	requireRoot(t)
	sharedTreeOnce.Do(func() {
		// Next to the binary, which TestMain removes at the end.
		dir, err := os.MkdirTemp(filepath.Dir(cairnBin), "tree-")
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, repo: filepath.Join(dir, "repo"), password: "correct horse"}
		e.ok("init")
		src := filepath.Join(dir, "src")
		makeTree(t, src)
		e.ok("backup", src)
		sharedTree = &treeFixture{repo: e.repo, password: e.password, src: src, snap: e.latest()}
	})
	if sharedTree == nil {
		t.Fatal("building the shared backup of makeTree's tree failed in an earlier test")
	}
	return sharedTree
}

// mount mounts the fixture's repository on a new directory.
func (f *treeFixture) mount(t *testing.T) *mount {
	t.Helper()
	return startMount(t, mountDir(t), f.password, f.repo)
}

// in returns where the fixture's source shows in m: snapshots hold each
// source under its absolute path.
func (f *treeFixture) in(m *mount) string {
	return filepath.Join(snapshotsDir(m.dir, f.repo), f.snap.Label, f.src)
}

// snapshotsDir returns repos/<name>/snapshots of the repository at repo in
// the mount at dir.
func snapshotsDir(dir, repo string) string {
	return filepath.Join(dir, "repos", filepath.Base(repo), "snapshots")
}

// smallRepo is a new repository with one snapshot of src, a directory
// holding one small file, for the tests about the mount's life rather
// than its content.
func smallRepo(t *testing.T) (e *env, src string) {
	t.Helper()
	requireRoot(t)
	e = newEnv(t)
	src = t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("small\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("backup", src)
	return e, src
}

// TestMountCpReproducesSource copies a snapshot out of the mount with
// cp -a and finds the source exactly.
func TestMountCpReproducesSource(t *testing.T) {
	f := sharedTreeFixture(t)
	m := f.mount(t)
	dst := filepath.Join(t.TempDir(), "copy")
	// cp -a already means --preserve=all, but it silently skips xattrs it
	// fails to read or write (reduced diagnostics). Naming --preserve=xattr
	// again makes that an error, so a broken listxattr/getxattr fails with
	// cp's own message rather than only as a difference below.
	tool(t, "", "cp", "-a", "--preserve=xattr", f.in(m), dst)
	compareTrees(t, f.src, dst)
}

// TestMountRsyncReproducesSource copies a snapshot out with rsync.
func TestMountRsyncReproducesSource(t *testing.T) {
	f := sharedTreeFixture(t)
	m := f.mount(t)
	dst := filepath.Join(t.TempDir(), "copy")
	// -aHAX keeps modes, owners, mtimes, devices, symlinks, hard links,
	// ACLs and xattrs; -S writes holes as holes; -U keeps atimes, which
	// compareTrees compares and -a alone does not copy, but only to the
	// second (rsync sends atimes without nanoseconds, from any source).
	tool(t, "", "rsync", "-aHAXSU", f.in(m)+"/", dst+"/")
	compareTrees(t, f.src, dst, atimeSeconds)
}

// TestMountShowsRecordedMetadata looks at a snapshot in place: through
// compareTrees's syscalls, then through find, stat and getfattr, and the
// holes of the sparse file through SEEK_HOLE/SEEK_DATA.
func TestMountShowsRecordedMetadata(t *testing.T) {
	f := sharedTreeFixture(t)
	m := f.mount(t)
	root := f.in(m)

	compareTrees(t, f.src, root)

	want, got := findPaths(t, f.src), findPaths(t, root)
	if !slices.Equal(want, got) {
		t.Errorf("find lists different paths\nsource: %q\nmount:  %q", want, got)
	}

	// stat per path. Excluded, with the reason: directories' size (a
	// property of the filesystem's directory format) and link count (most
	// filesystems count subdirectories; the tree need not emulate it); the
	// atimes of directories and symlinks, which this test's own reading
	// (find, compareTrees) moves on the source after the backup recorded
	// them. ctime cannot be set, so it is never compared.
	wantStat, gotStat := statPaths(t, f.src, want), statPaths(t, root, want)
	for _, p := range want {
		if wantStat[p] != gotStat[p] {
			t.Errorf("stat %s:\nsource %s\nmount  %s", p, wantStat[p], gotStat[p])
		}
	}

	for _, c := range []struct{ file, opt, want string }{
		{"plain.txt", "-etext", `user.comment="a comment"`},
		{"big.bin", "-etext", `trusted.cairn="root only"`},
		{"sub", "-ehex", "user.dir=0x000102ff"},
	} {
		out := tool(t, root, "getfattr", "-d", "-m", "-", "-h", c.opt, c.file)
		if !strings.Contains(out, c.want) {
			t.Errorf("getfattr -d -m - %s %s does not show %s:\n%s", c.opt, c.file, c.want, out)
		}
	}

	// Hard links share an inode number, and nothing else shares one.
	inos := map[string][]string{}
	out := tool(t, root, "stat", append([]string{"-c", "%i %n"}, want...)...)
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		ino, name, _ := strings.Cut(line, " ")
		inos[ino] = append(inos[ino], name)
	}
	group := []string{"hardlink2", "plain.txt", "sub/hardlink"}
	found := false
	for ino, names := range inos {
		slices.Sort(names)
		switch {
		case slices.Equal(names, group):
			found = true
		case len(names) > 1:
			t.Errorf("inode %s is shared by %v, which are not hard links of each other", ino, names)
		}
	}
	if !found {
		t.Errorf("stat -c %%i: %v are hard links but do not share one inode number (inodes: %v)", group, inos)
	}

	checkHoles(t, filepath.Join(root, "sparse"))
}

// findPaths lists every path under root, relative to it, sorted.
func findPaths(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	for p := range strings.SplitSeq(tool(t, root, "find", ".", "-printf", `%P\n`), "\n") {
		if p == "" {
			p = "."
		}
		paths = append(paths, p)
	}
	paths = slices.Compact(slices.Sorted(slices.Values(paths)))
	return paths
}

// statPaths runs stat on paths under root and returns, per path, the
// fields that a snapshot must reproduce (see the caller for exclusions).
func statPaths(t *testing.T, root string, paths []string) map[string]string {
	t.Helper()
	out := tool(t, root, "stat", append([]string{"-c", "%n|%F|%a|%u|%g|%s|%.9Y|%.9X|%h|%t,%T"}, paths...)...)
	m := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		name, typ := f[0], f[1]
		if typ == "directory" {
			f[5], f[7], f[8] = "-", "-", "-" // size, atime, links
		}
		if typ == "symbolic link" {
			f[7] = "-" // atime
		}
		m[name] = strings.Join(f[1:], " ")
	}
	if len(m) != len(paths) {
		t.Fatalf("stat printed %d entries for %d paths:\n%s", len(m), len(paths), out)
	}
	return m
}

// checkHoles checks that makeTree's sparse file (4 bytes, a hole, 4 bytes
// at 64 MiB) reports its hole and takes little space.
func checkHoles(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 64<<20+4 {
		t.Fatalf("sparse: size %d, want %d", st.Size, 64<<20+4)
	}
	if st.Blocks*512 > st.Size/4 {
		t.Errorf("sparse: st_blocks %d (%d bytes) for a file that is nearly all hole", st.Blocks, st.Blocks*512)
	}
	data, err := unix.Seek(fd, 0, unix.SEEK_DATA)
	if err != nil || data != 0 {
		t.Errorf("sparse: lseek(0, SEEK_DATA) = %d, %v; want 0", data, err)
	}
	hole, err := unix.Seek(fd, 0, unix.SEEK_HOLE)
	if err != nil || hole <= 0 || hole > st.Size/2 {
		t.Fatalf("sparse: lseek(0, SEEK_HOLE) = %d, %v; want the hole after the first bytes (0 < hole <= %d)", hole, err, st.Size/2)
	}
	data, err = unix.Seek(fd, hole, unix.SEEK_DATA)
	if err != nil || data < st.Size/2 || data > 64<<20 {
		t.Errorf("sparse: lseek(%d, SEEK_DATA) = %d, %v; want the data at the end (%d <= data <= %d)", hole, data, err, st.Size/2, 64<<20)
	}
	if end, err := unix.Seek(fd, 64<<20, unix.SEEK_HOLE); err != nil || end != st.Size {
		t.Errorf("sparse: lseek(64 MiB, SEEK_HOLE) = %d, %v; want the end of the file, %d", end, err, st.Size)
	}
	// The hole reads as zeros and the tail as written.
	buf := make([]byte, 8)
	if _, err := unix.Pread(fd, buf, 32<<20); err != nil || !bytes.Equal(buf, make([]byte, 8)) {
		t.Errorf("sparse: 8 bytes at 32 MiB = %q, %v; want zeros", buf, err)
	}
	if n, err := unix.Pread(fd, buf, 64<<20); err != nil || string(buf[:n]) != "tail" {
		t.Errorf("sparse: bytes at 64 MiB = %q, %v; want \"tail\"", buf[:n], err)
	}
}

// TestMountIsReadOnly tries every kind of write inside a snapshot, with
// tools and with syscalls: each must fail with EROFS and change nothing.
func TestMountIsReadOnly(t *testing.T) {
	f := sharedTreeFixture(t)
	m := f.mount(t)
	root := f.in(m)
	snapRoot := filepath.Join(snapshotsDir(m.dir, f.repo), f.snap.Label)

	for _, c := range []struct {
		dir  string
		args []string
	}{
		{root, []string{"touch", "new"}},
		{root, []string{"touch", "-d", "2001-02-03", "plain.txt"}},
		{root, []string{"sh", "-c", "echo x > plain.txt"}},
		{root, []string{"sh", "-c", "echo x >> plain.txt"}},
		{root, []string{"mkdir", "newdir"}},
		{root, []string{"rm", "-f", "plain.txt"}},
		{root, []string{"rmdir", "sticky"}},
		{root, []string{"chmod", "600", "plain.txt"}},
		{root, []string{"chown", "1:1", "plain.txt"}},
		{root, []string{"mv", "plain.txt", "moved"}},
		{root, []string{"ln", "plain.txt", "hard"}},
		{root, []string{"ln", "-s", "plain.txt", "soft"}},
		{root, []string{"mkfifo", "newfifo"}},
		{root, []string{"truncate", "-s", "0", "plain.txt"}},
		{root, []string{"setfattr", "-n", "user.new", "-v", "1", "plain.txt"}},
		{root, []string{"setfattr", "-x", "user.comment", "plain.txt"}},
		{snapRoot, []string{"touch", "new"}},
		{snapRoot, []string{"mkdir", "newdir"}},
	} {
		cmd := exec.Command(c.args[0], c.args[1:]...)
		cmd.Dir = c.dir
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Read-only file system") {
			t.Errorf("%s (in %s): %v, %q; want a failure with \"Read-only file system\"",
				strings.Join(c.args, " "), c.dir, err, out)
		}
	}

	plain := filepath.Join(root, "plain.txt")
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"open O_WRONLY", func() error { return openClose(plain, os.O_WRONLY) }},
		{"open O_RDWR", func() error { return openClose(plain, os.O_RDWR) }},
		{"open O_TRUNC", func() error { return openClose(plain, os.O_WRONLY|os.O_TRUNC) }},
		{"open O_CREAT", func() error { return openClose(filepath.Join(root, "new"), os.O_WRONLY|os.O_CREATE) }},
		{"truncate", func() error { return os.Truncate(plain, 0) }},
		{"unlink", func() error { return unix.Unlink(plain) }},
		{"rmdir", func() error { return unix.Rmdir(filepath.Join(root, "sticky")) }},
		{"mkdir", func() error { return unix.Mkdir(filepath.Join(root, "d"), 0o755) }},
		{"rename", func() error { return unix.Rename(plain, filepath.Join(root, "moved")) }},
		{"link", func() error { return unix.Link(plain, filepath.Join(root, "hard")) }},
		{"symlink", func() error { return unix.Symlink("x", filepath.Join(root, "soft")) }},
		{"mknod", func() error { return unix.Mkfifo(filepath.Join(root, "fifo2"), 0o600) }},
		{"chmod", func() error { return unix.Chmod(plain, 0o600) }},
		{"lchown", func() error { return unix.Lchown(plain, 1, 1) }},
		{"utimes", func() error { return os.Chtimes(plain, time.Now(), time.Now()) }},
		{"setxattr", func() error { return unix.Lsetxattr(plain, "user.new", []byte("1"), 0) }},
		{"removexattr", func() error { return unix.Lremovexattr(plain, "user.comment") }},
	} {
		if err := c.do(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in a snapshot: %v, want EROFS", c.name, err)
		}
	}

	// Nothing changed.
	if b, err := os.ReadFile(plain); err != nil || string(b) != "hello, cairn\n" {
		t.Errorf("plain.txt after the writes: %q, %v", b, err)
	}
	for _, name := range []string{"new", "newdir", "moved", "hard", "soft", "newfifo", "d", "fifo2"} {
		if _, err := os.Lstat(filepath.Join(root, name)); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s after failed writes: %v, want ENOENT", name, err)
		}
	}
	compareTrees(t, f.src, root)
}

func openClose(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// TestMountParallelReads reads one 12 MiB file from 8 goroutines at once.
func TestMountParallelReads(t *testing.T) {
	f := sharedTreeFixture(t)
	m := f.mount(t)
	readInParallel(t, filepath.Join(f.in(m), "big.bin"), filepath.Join(f.src, "big.bin"))
}

// TestMountLargeReadsQuiet reads a file with 1 MiB reads, which the
// mount's 4 MiB read-ahead turns into 1 MiB FUSE READs, and checks that
// the mount prints nothing but its ready line meanwhile (go-fuse logged
// every reply too large to splice).
func TestMountLargeReadsQuiet(t *testing.T) {
	f := sharedTreeFixture(t)
	m := f.mount(t)
	path := filepath.Join(f.in(m), "big.bin")
	if out, err := exec.Command("dd", "if="+path, "of=/dev/null", "bs=1M").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, out)
	}
	if out, err := exec.Command("cmp", path, filepath.Join(f.src, "big.bin")).CombinedOutput(); err != nil {
		t.Fatalf("cmp: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(m.stderr.String()), strings.TrimSpace(readyLine(m.dir)); got != want {
		t.Errorf("the mount printed %q while reading, want only %q", got, want)
	}
}

// TestMountSmallCache reads in parallel through a chunk cache smaller
// than the file, so that chunks are evicted and loaded again while other
// readers wait for them; the status counts the cache's misses.
func TestMountSmallCache(t *testing.T) {
	f := sharedTreeFixture(t)
	m := startMountFlags(t, mountDir(t), f.password, []string{"--cache-size", "3MiB"}, f.repo)
	readInParallel(t, filepath.Join(f.in(m), "big.bin"), filepath.Join(f.src, "big.bin"))
	status := readStatus(t, filepath.Join(m.dir, "repos", "repo", "status"))
	cache, _ := status["cache"].(map[string]any)
	if misses, _ := cache["misses"].(float64); misses < 2 {
		t.Errorf("status after reading 12 MiB through a 3 MiB cache: cache %v, want misses >= 2", status["cache"])
	}
}

// readInParallel reads path from 8 goroutines at once, through one shared
// descriptor (pread) and through descriptors of their own (read after
// seek), at random and sequential positions, and compares with source.
func readInParallel(t *testing.T, path, source string) {
	t.Helper()
	want, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(want))
	shared, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()

	check := func(g int, what string, off int64, got []byte) bool {
		if exp := want[off : off+int64(len(got))]; !bytes.Equal(got, exp) {
			i := 0
			for i < len(got) && got[i] == exp[i] {
				i++
			}
			t.Errorf("reader %d: %s of %d bytes at %d differs from the source first at byte %d", g, what, len(got), off, off+int64(i))
			return false
		}
		return true
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			var r io.ReaderAt = shared
			if g%2 == 1 {
				own, err := os.Open(path)
				if err != nil {
					t.Error(err)
					return
				}
				defer own.Close()
				r = own
				// Sequential reads from a position of its own, with read(2).
				start := size * int64(g) / 8
				if _, err := own.Seek(start, io.SeekStart); err != nil {
					t.Error(err)
					return
				}
				buf := make([]byte, 128<<10+g*4096+17)
				for off := start; off < size; {
					n, err := io.ReadFull(own, buf[:min(int64(len(buf)), size-off)])
					if err != nil {
						t.Errorf("reader %d: sequential read at %d: %v", g, off, err)
						return
					}
					if !check(g, "sequential read", off, buf[:n]) {
						return
					}
					off += int64(n)
				}
			}
			// Random reads with pread(2), some crossing the end.
			for range 60 {
				off := rng.Int64N(size)
				n := 1 + rng.IntN(300<<10)
				buf := make([]byte, n)
				got, err := r.ReadAt(buf, off)
				wantN := min(int64(n), size-off)
				if int64(got) != wantN || (err != nil && !(err == io.EOF && off+int64(n) > size)) {
					t.Errorf("reader %d: ReadAt(%d bytes at %d) = %d, %v; want %d", g, n, off, got, err, wantN)
					return
				}
				if !check(g, "ReadAt", off, buf[:got]) {
					return
				}
			}
			if n, err := r.ReadAt(make([]byte, 10), size); n != 0 || err != io.EOF {
				t.Errorf("reader %d: ReadAt at the end = %d, %v; want 0, EOF", g, n, err)
			}
		})
	}
	wg.Wait()
}

// TestMountShowsNewSnapshots backs up while mounted: the new snapshot,
// latest and the status follow without a remount.
func TestMountShowsNewSnapshots(t *testing.T) {
	e, src := smallRepo(t)
	first := e.latest()
	m := startMount(t, mountDir(t), e.password, e.repo)
	snaps := snapshotsDir(m.dir, e.repo)
	if names := dirNames(t, snaps); !slices.Equal(names, []string{first.Label, "latest"}) {
		t.Fatalf("snapshots/ lists %v, want [%s latest]", names, first.Label)
	}
	if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("backup", src)
	next := e.latest()
	if next.Label == first.Label {
		t.Fatalf("second backup has the label of the first, %s", next.Label)
	}
	start := time.Now()
	var names []string
	var latest, content string
	var status map[string]any
	for {
		names = dirNames(t, snaps)
		latest, _ = os.Readlink(filepath.Join(snaps, "latest"))
		b, _ := os.ReadFile(filepath.Join(snaps, "latest", src, "new.txt"))
		content = string(b)
		status = readStatus(t, filepath.Join(filepath.Dir(snaps), "status"))
		if slices.Contains(names, next.Label) && latest == next.Label && content == "new\n" && status["snapshots"] == 2.0 {
			break
		}
		if time.Since(start) > newSnapshotTimeout {
			t.Fatalf("%v after a backup, the mount shows snapshots/ %v (want %s in it), latest -> %q (want %s), "+
				"latest%s/new.txt %q, status snapshots %v (want 2)",
				newSnapshotTimeout, names, next.Label, latest, next.Label, src, content, status["snapshots"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the new snapshot showed after %v", time.Since(start).Round(time.Millisecond))
	if want := []string{first.Label, next.Label, "latest"}; !slices.Equal(names, want) {
		t.Errorf("snapshots/ lists %v, want %v", names, want)
	}
	// The first snapshot is untouched by the new one.
	if _, err := os.Lstat(filepath.Join(snaps, first.Label, src, "new.txt")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("the first snapshot shows new.txt: %v", err)
	}
}

// dirNames lists a directory, in the order the mount gives.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// readStatus reads and parses a repository's status file.
func readStatus(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var status map[string]any
	if err := json.Unmarshal(b, &status); err != nil {
		t.Fatalf("%s is not a JSON object: %v\n%s", path, err, b)
	}
	return status
}

// TestMountInodesStable reads inode numbers, makes the kernel forget its
// dentries and inodes, reads them again, then remounts and reads them
// once more: all three must agree.
func TestMountInodesStable(t *testing.T) {
	f := sharedTreeFixture(t)
	dir := mountDir(t)
	rels := []string{"README.txt", "repos", "repos/repo", "repos/repo/status", "repos/repo/snapshots",
		"repos/repo/snapshots/latest", "repos/repo/snapshots/" + f.snap.Label}
	for _, p := range []string{"", "plain.txt", "sub/hardlink", "big.bin", "sub", "sub/dir/deep.txt", "link", "fifo", "null", "sparse"} {
		rels = append(rels, filepath.Join("repos/repo/snapshots", f.snap.Label, f.src, p))
	}
	inos := func() map[string]uint64 {
		t.Helper()
		out := map[string]uint64{}
		for _, rel := range rels {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, rel), &st); err != nil {
				t.Fatal(err)
			}
			out[rel] = st.Ino
		}
		return out
	}
	compare := func(when string, a, b map[string]uint64) {
		t.Helper()
		for _, rel := range rels {
			if a[rel] != b[rel] {
				t.Errorf("%s: inode of %s changed from %d to %d", when, rel, a[rel], b[rel])
			}
		}
	}

	m := startMount(t, dir, f.password, f.repo)
	first := inos()
	// Writing 2 to drop_caches frees unused dentries and inodes, so the
	// kernel forgets them (FUSE_FORGET) and looks them up again.
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	compare("after the kernel forgot them", first, inos())
	m.unmount()
	startMount(t, dir, f.password, f.repo)
	compare("after a remount", first, inos())
}

// TestMountRefusesMountedDir mounts twice on one directory: the second is
// refused and the first goes on serving.
func TestMountRefusesMountedDir(t *testing.T) {
	e, _ := smallRepo(t)
	m := startMount(t, mountDir(t), e.password, e.repo)
	cmd := exec.Command(cairnBin, "mount", m.dir, "--repo", e.repo)
	cmd.Env = mountEnv(e.password)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != 1 || !strings.Contains(stderr.String(), "already") {
			t.Errorf("second mount on %s: exit %d, stderr %q; want exit 1 and a message saying it is already mounted",
				m.dir, code, stderr.String())
		}
	case <-time.After(mountReadyTimeout):
		t.Errorf("second mount on %s is still running after %v, want it refused; stderr %q", m.dir, mountReadyTimeout, stderr.String())
		cmd.Process.Kill()
		<-done
		if n := len(mountsAt(m.dir)); n > 1 {
			unix.Unmount(m.dir, unix.MNT_DETACH) // the stacked one, on top
		}
	}
	if n := len(mountsAt(m.dir)); n != 1 {
		t.Errorf("%d mounts at %s, want 1", n, m.dir)
	}
	select {
	case <-m.exited:
		t.Fatalf("the first mount exited: %v\nstderr: %s", m.err, m.stderr.String())
	default:
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "README.txt")); err != nil || len(b) == 0 {
		t.Errorf("the first mount after the refused one: README.txt %d bytes, %v", len(b), err)
	}
}

// TestMountStops ends a foreground mount each way a user can: the process
// exits 0 and the directory is empty again.
func TestMountStops(t *testing.T) {
	e, _ := smallRepo(t)
	for _, c := range []struct {
		name string
		stop func(m *mount)
	}{
		{"SIGTERM", func(m *mount) { m.signal(syscall.SIGTERM) }},
		{"SIGINT", func(m *mount) { m.signal(syscall.SIGINT) }},
		{"umount", func(m *mount) { m.unmount() }},
		{"fusermount3", func(m *mount) {
			m.stop("fusermount3 -u", func() error { return command("fusermount3", "-u", m.dir) })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := startMount(t, mountDir(t), e.password, e.repo)
			if _, err := os.ReadFile(filepath.Join(m.dir, "README.txt")); err != nil {
				t.Fatal(err)
			}
			c.stop(m)
			if names := dirNames(t, m.dir); len(names) != 0 {
				t.Errorf("after the mount ended, %s holds %v", m.dir, names)
			}
		})
	}
}

// TestMountTree checks the generated parts of the tree with two
// repositories: README.txt, repos/, status, the snapshot listing, latest,
// the snapshot xattr, and ENOENT for what does not exist.
func TestMountTree(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("cairn "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("backup", src)
	e.ok("backup", "--tag", "second", src)
	second := &env{t: t, repo: filepath.Join(t.TempDir(), "second"), password: e.password}
	second.ok("init")
	second.ok("backup", src)
	m := startMount(t, mountDir(t), e.password, e.repo, second.repo)

	if b, err := os.ReadFile(filepath.Join(m.dir, "README.txt")); err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Errorf("README.txt: %q, %v; want help text", b, err)
	}
	if names := dirNames(t, m.dir); !slices.Contains(names, "README.txt") || !slices.Contains(names, "repos") {
		t.Errorf("the root lists %v, want README.txt and repos among them", names)
	}
	if names := dirNames(t, filepath.Join(m.dir, "repos")); !slices.Equal(names, []string{"repo", "second"}) {
		t.Errorf("repos/ lists %v, want [repo second]", names)
	}

	for _, r := range []*env{e, second} {
		snaps := r.snapshots()
		name := filepath.Base(r.repo)
		status := readStatus(t, filepath.Join(m.dir, "repos", name, "status"))
		if status["snapshots"] != float64(len(snaps)) {
			t.Errorf("repos/%s/status: snapshots %v, want %d", name, status["snapshots"], len(snaps))
		}
		for _, k := range []string{"stored_bytes", "original_bytes", "dedup_ratio"} {
			if v, ok := status[k].(float64); !ok || v <= 0 {
				t.Errorf("repos/%s/status: %s = %v, want a positive number", name, k, status[k])
			}
		}
		if cache, ok := status["cache"].(map[string]any); !ok {
			t.Errorf("repos/%s/status: cache = %v, want an object", name, status["cache"])
		} else {
			for _, k := range []string{"hits", "misses"} {
				if _, ok := cache[k].(float64); !ok {
					t.Errorf("repos/%s/status: cache.%s = %v, want a number", name, k, cache[k])
				}
			}
		}
		if _, ok := status["locks"]; !ok {
			t.Errorf("repos/%s/status has no locks: %v", name, status)
		}

		dir := snapshotsDir(m.dir, r.repo)
		var want []string
		for _, s := range snaps {
			want = append(want, s.Label)
		}
		want = append(want, "latest")
		if names := dirNames(t, dir); !slices.Equal(names, want) {
			t.Errorf("repos/%s/snapshots lists %v, want %v", name, names, want)
		}
		if l, err := os.Readlink(filepath.Join(dir, "latest")); err != nil || l != snaps[len(snaps)-1].Label {
			t.Errorf("repos/%s/snapshots/latest -> %q, %v; want %s", name, l, err, snaps[len(snaps)-1].Label)
		}
		for _, s := range snaps {
			checkSnapshotXattr(t, filepath.Join(dir, s.Label), s, src)
			if b, err := os.ReadFile(filepath.Join(dir, s.Label, src, "a")); err != nil || len(b) != 6000 {
				t.Errorf("%s/a in the mount: %d bytes, %v", filepath.Join(dir, s.Label, src), len(b), err)
			}
		}
	}

	snap := filepath.Join(snapshotsDir(m.dir, e.repo), e.latest().Label)
	for _, p := range []string{
		filepath.Join(m.dir, "nope"),
		filepath.Join(m.dir, "repos", "nope"),
		filepath.Join(m.dir, "repos", "repo", "nope"),
		filepath.Join(snapshotsDir(m.dir, e.repo), "nope"),
		filepath.Join(snapshotsDir(m.dir, e.repo), "2020-01-01T000000Z_nope"),
		filepath.Join(snap, "nope"),
		filepath.Join(snap, src, "nope"),
		filepath.Join(snap, src, "nope", "deeper"),
	} {
		if _, err := os.Lstat(p); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("lstat %s: %v, want ENOENT", p, err)
		}
		if _, err := os.Open(p); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("open %s: %v, want ENOENT", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(snap, src, "a", "x")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("lstat below a file: %v, want ENOTDIR", err)
	}
	out, err := exec.Command("cat", filepath.Join(snap, src, "nope")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No such file or directory") {
		t.Errorf("cat of a missing file: %v, %q", err, out)
	}
}

// checkSnapshotXattr checks the user.cairn.snapshot xattr of a snapshot's
// directory against what `cairn snapshots` says of it.
func checkSnapshotXattr(t *testing.T, dir string, s snapshot, src string) {
	t.Helper()
	const name = "user.cairn.snapshot"
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(dir, buf)
	if err != nil || !slices.Contains(strings.Split(string(buf[:n]), "\x00"), name) {
		t.Errorf("listxattr %s: %q, %v; want %s among them", dir, buf[:n], err, name)
	}
	size, err := unix.Lgetxattr(dir, name, nil)
	if err != nil {
		t.Errorf("getxattr %s %s: %v", dir, name, err)
		return
	}
	val := make([]byte, size)
	if n, err = unix.Lgetxattr(dir, name, val); err != nil {
		t.Errorf("getxattr %s %s: %v", dir, name, err)
		return
	}
	var x struct {
		ID    string    `json:"id"`
		Time  time.Time `json:"time"`
		Host  string    `json:"host"`
		Paths []string  `json:"paths"`
		Tags  []string  `json:"tags"`
		Files *int64    `json:"files"`
		Bytes *int64    `json:"bytes"`
	}
	if err := json.Unmarshal(val[:n], &x); err != nil {
		t.Errorf("%s of %s is not the JSON expected: %v\n%s", name, dir, err, val[:n])
		return
	}
	if x.ID != s.ID || x.Host != s.Host || x.Time.IsZero() || !slices.Equal(x.Paths, []string{src}) ||
		!slices.Equal(x.Tags, s.Tags) || x.Files == nil || *x.Files < 1 || x.Bytes == nil || *x.Bytes < 6000 {
		t.Errorf("%s of %s = %s\nwant id %s, host %s, paths [%s], tags %v, a time, files >= 1, bytes >= 6000",
			name, dir, val[:n], s.ID, s.Host, src, s.Tags)
	}
}

// TestMountAllowOther: without --allow-other only the user who mounted
// gets in; with it, other users do, and the kernel applies the recorded
// modes to them.
func TestMountAllowOther(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	base := t.TempDir()
	// Traversable by nobody, here and so in the snapshot.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(base, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"public": 0o644, "secret": 0o600} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	e.ok("backup", src)
	label := e.latest().Label
	asNobody := func(name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	openMountDir := func() string {
		dir := mountDir(t)
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	m := startMount(t, openMountDir(), e.password, e.repo)
	if out, err := asNobody("ls", m.dir); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("without --allow-other, nobody lists %s: %v, %q; want Permission denied", m.dir, err, out)
	}
	m.unmount()

	m = startMountFlags(t, openMountDir(), e.password, []string{"--allow-other"}, e.repo)
	in := filepath.Join(snapshotsDir(m.dir, e.repo), label, src)
	if out, err := asNobody("cat", filepath.Join(m.dir, "README.txt"), filepath.Join(in, "public")); err != nil || !strings.HasSuffix(out, "public\n") {
		t.Errorf("with --allow-other, nobody reads README.txt and a 0644 file: %v, %q", err, out)
	}
	if out, err := asNobody("cat", filepath.Join(in, "secret")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("with --allow-other, nobody reads a 0600 file of root's: %v, %q; want Permission denied", err, out)
	}
}

// TestMountBackground starts a mount with --background: the command
// returns once the tree is usable, and umount ends the daemon it left.
func TestMountBackground(t *testing.T) {
	e, _ := smallRepo(t)
	dir := mountDir(t)
	cmd := exec.Command(cairnBin, "mount", dir, "--repo", e.repo, "--background")
	cmd.Env = mountEnv(e.password)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A daemon that keeps the command's stdout or stderr open would hang
	// `out=$(cairn mount --background ...)`; WaitDelay turns that into
	// ErrWaitDelay instead of a hang here.
	cmd.WaitDelay = 3 * time.Second
	t.Cleanup(func() {
		// Whatever happened, leave no mount and no daemon behind.
		if len(mountsAt(dir)) > 0 {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
		for _, pid := range processesWith(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if errors.Is(err, exec.ErrWaitDelay) {
			t.Errorf("cairn mount --background exited 0 but its daemon keeps the command's stdout/stderr open")
		} else if err != nil {
			t.Fatalf("cairn mount --background: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
	case <-time.After(mountReadyTimeout):
		cmd.Process.Kill()
		t.Fatalf("cairn mount --background did not return within %v\nstderr: %s", mountReadyTimeout, stderr.String())
	}

	// Ready means ready: no waiting here.
	if n := len(mountsAt(dir)); n != 1 {
		t.Fatalf("after --background returned, %d mounts at %s, want 1", n, dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "README.txt")); err != nil || len(b) == 0 {
		t.Errorf("README.txt right after --background returned: %d bytes, %v", len(b), err)
	}
	label := e.latest().Label
	if names := dirNames(t, snapshotsDir(dir, e.repo)); !slices.Contains(names, label) {
		t.Errorf("snapshots/ right after --background returned: %v, want %s in it", names, label)
	}
	daemons := processesWith(dir)
	if len(daemons) == 0 {
		t.Errorf("no process with %s in its command line while mounted", dir)
	}

	if err := command("umount", dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(mountExitTimeout)
	for len(processesWith(dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := processesWith(dir); len(left) > 0 {
		t.Errorf("processes %v still running %v after umount", left, mountExitTimeout)
	}
	if n := len(mountsAt(dir)); n != 0 {
		t.Errorf("%s still mounted after umount", dir)
	}
}

// processesWith returns the live processes (not zombies) whose command
// line has arg as one of its arguments.
func processesWith(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie
		}
		if slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			pids = append(pids, pid)
		}
	}
	return pids
}
