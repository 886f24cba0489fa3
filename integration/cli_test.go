package integration

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRoundTripKeepsEverything(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	e.ok("backup", src)
	target := t.TempDir()
	e.ok("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))

	// Restore twice into the same place works (files are replaced).
	e.ok("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))
}

func TestIncludeRestoresOnlyThatPath(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	e.ok("backup", src)
	target := t.TempDir()
	e.ok("restore", "latest", "--target", target, "--include", src+"/sub")
	if _, err := os.Stat(filepath.Join(target, src, "sub/dir/deep.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(target, src, "plain.txt")); !os.IsNotExist(err) {
		t.Fatalf("plain.txt restored without being included: %v", err)
	}
}

// TestRestoreRefusesForeignSymlinkTarget: a user plants
// shared/restore-here -> elsewhere; root's restore into
// shared/restore-here must not write into elsewhere. root's own symlink
// is followed.
func TestRestoreRefusesForeignSymlinkTarget(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "a.txt"), []byte("a"), 0o644)
	e.ok("backup", src)

	shared, elsewhere := t.TempDir(), t.TempDir()
	link := filepath.Join(shared, "restore-here")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	r := e.run("restore", "latest", "--target", link)
	if r.code != 1 {
		t.Errorf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{"restore: target " + link + " is a symlink owned by uid 12345 (-> " + elsewhere + ")", "refusing to follow it"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not say %q", r.stderr, want)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("restore wrote into the symlinked directory: %v", entries)
	}
	if entries, _ := os.ReadDir(shared); len(entries) != 1 {
		t.Errorf("restore wrote next to the symlink: %v", entries)
	}

	if err := os.Lchown(link, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.ok("restore", "latest", "--target", link)
	if b, err := os.ReadFile(filepath.Join(elsewhere, src, "sub", "a.txt")); err != nil || string(b) != "a" {
		t.Errorf("restore through root's symlink: %q, %v", b, err)
	}
}

func TestJSONOutputIsOnlyJSON(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(src, "gone"), []byte("b"), 0o644)
	r := e.ok("backup", "--json", src)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var last map[string]any
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("stdout line is not JSON: %q", l)
		}
	}
	if last["type"] != "summary" || last["files"].(float64) != 2 {
		t.Fatalf("last line %v", last)
	}
	r = e.ok("snapshots", "--json")
	var snap map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &snap); err != nil {
		t.Fatalf("snapshots --json: %q", r.stdout)
	}
	if !strings.HasSuffix(snap["label"].(string), "_"+hostname(t)) {
		t.Fatalf("label %v", snap["label"])
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestUnchangedRebackupAndLs(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	for i := range 50 {
		os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), []byte(strings.Repeat("x", i*100)), 0o644)
	}
	e.ok("backup", src)
	r := e.ok("backup", "--json", src)
	var sum map[string]any
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	json.Unmarshal([]byte(lines[len(lines)-1]), &sum)
	if sum["unchanged"].(float64) != 50 || sum["new_bytes"].(float64) != 0 {
		t.Fatalf("re-backup summary %v", sum)
	}
	ls := e.ok("ls", "latest")
	if !strings.Contains(ls.stdout, src+"/faa\n") || strings.Count(ls.stdout, src+"/f") != 50 {
		t.Fatalf("ls output lacks %s/faa or others:\n%s", src, ls.stdout)
	}
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t)
	e.password = "wrong"
	r := e.run("snapshots")
	if r.code != 1 || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestInitRefusesNonEmptyTarget(t *testing.T) {
	e := newEnv(t)
	if r := e.run("init"); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("second init: exit %d, %q", r.code, r.stderr)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious"), []byte("data"), 0o644)
	e2 := &env{t: t, repo: dir, password: "x"}
	if r := e2.run("init"); r.code != 1 {
		t.Fatalf("init into a non-empty directory: exit %d", r.code)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "precious")); string(b) != "data" {
		t.Fatal("init touched existing data")
	}
}

func TestMissingSource(t *testing.T) {
	e := newEnv(t)
	r := e.run("backup", "/no/such/path")
	if r.code != 1 || !strings.Contains(r.stderr, "/no/such/path") || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("exit %d, %q", r.code, r.stderr)
	}
}

// TestUnreadableFileNamedBackupGoesOn runs the backup as an unprivileged
// user, for whom a mode-000 file is unreadable.
func TestUnreadableFileNamedBackupGoesOn(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	src := filepath.Join(base, "src")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "readable"), []byte("ok"), 0o644)
	os.WriteFile(filepath.Join(src, "secret"), []byte("no"), 0o000)
	// The repository must be writable by that user.
	filepath.Walk(filepath.Dir(e.repo), func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, 65534, 65534) })
	os.Chmod(filepath.Dir(e.repo), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(e.repo)), 0o755) // the test's own temp dir
	asNobody := func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		c.Dir = "/"
	}
	r := e.runAs(asNobody, "backup", src)
	if r.code != 3 || !strings.Contains(r.stderr, filepath.Join(src, "secret")) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	target := t.TempDir()
	e.ok("restore", "latest", "--target", target)
	if b, err := os.ReadFile(filepath.Join(target, src, "readable")); err != nil || string(b) != "ok" {
		t.Fatalf("readable file not in the snapshot: %v", err)
	}
}

func TestCorruptPackFailsOnlyItsFiles(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	victimData := make([]byte, 300<<10)
	rand.NewChaCha8([32]byte{2}).Read(victimData) // incompressible: its pack is the largest
	os.WriteFile(filepath.Join(src, "victim"), victimData, 0o644)
	e.ok("backup", src)
	// A second file in a second backup lands in a separate pack.
	os.WriteFile(filepath.Join(src, "survivor"), []byte("survivor"), 0o644)
	e.ok("backup", src)

	// Damage the data pack of the first backup: the largest pack.
	var packs []string
	filepath.Walk(filepath.Join(e.repo, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			packs = append(packs, p)
		}
		return nil
	})
	var victim string
	var size int64
	for _, p := range packs {
		if fi, _ := os.Stat(p); fi.Size() > size {
			victim, size = p, fi.Size()
		}
	}
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 100)
	f.Close()

	target := t.TempDir()
	r := e.run("restore", "latest", "--target", target)
	if r.code != 3 || !strings.Contains(r.stderr, filepath.Join(src, "victim")) || !strings.Contains(r.stderr, filepath.Base(victim)) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(target, src, "survivor")); string(b) != "survivor" {
		t.Fatal("the undamaged file was not restored")
	}
	c := e.run("check", "--read-data")
	if c.code != 1 || !strings.Contains(c.stdout+c.stderr, filepath.Base(victim)) {
		t.Fatalf("check --read-data: exit %d\n%s%s", c.code, c.stdout, c.stderr)
	}
}

// TestFullDisk backs up into a repository on a small tmpfs: the backup
// fails with a clear message and the repository still checks clean.
func TestFullDisk(t *testing.T) {
	requireRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	e := &env{t: t, repo: filepath.Join(mnt, "repo"), password: "pw"}
	e.ok("init")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "small"), []byte("fits"), 0o644)
	e.ok("backup", src)

	big := make([]byte, 16<<20)
	rand.NewChaCha8([32]byte{1}).Read(big) // incompressible
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	r := e.run("backup", src)
	if r.code != 1 || !strings.Contains(r.stderr, "no space") {
		t.Fatalf("backup on a full disk: exit %d, %q", r.code, r.stderr)
	}
	c := e.run("check")
	if c.code != 0 {
		t.Fatalf("check after full disk: exit %d\n%s%s", c.code, c.stdout, c.stderr)
	}
	// Nothing half-written is visible: one snapshot, and no temp files.
	s := e.ok("snapshots", "--json")
	if n := strings.Count(strings.TrimSpace(s.stdout), "\n") + 1; n != 1 {
		t.Fatalf("%d snapshots after the failed backup", n)
	}
	filepath.Walk(e.repo, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", p)
		}
		return nil
	})
	// No stale lock left behind either.
	if _, err := os.ReadDir(filepath.Join(e.repo, "locks")); err == nil {
		if entries, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(entries) != 0 {
			t.Errorf("%d locks left", len(entries))
		}
	}
}

func TestUnlockRemovesOnlyStaleLocks(t *testing.T) {
	e := newEnv(t)
	r := e.ok("unlock", "--json")
	if !strings.Contains(r.stdout, `"removed":0`) {
		t.Fatalf("unlock: %s", r.stdout)
	}
}

// TestRepositoryIsPrivate: after init and a backup, no object of a local
// repository is readable by other users (a copied key file could be
// guessed offline), whatever the umask; a repository shared with its group
// by chmod -R g+rX stays so as it grows (issue 18).
func TestRepositoryIsPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	e.ok("backup", src)
	checkModes := func(fileMode, dirMode os.FileMode) int {
		n := 0
		filepath.Walk(e.repo, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			want := fileMode
			if fi.IsDir() {
				want = dirMode
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
			}
			n++
			return nil
		})
		return n
	}
	if n := checkModes(0o600, 0o700); n < 260 {
		t.Fatalf("only %d entries in the repository", n)
	}

	if out, err := exec.Command("chmod", "-R", "g+rX", e.repo).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v: %s", err, out)
	}
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("grown"), 0o644)
	e.ok("backup", src)
	checkModes(0o640, 0o750)
}
