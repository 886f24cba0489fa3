package fs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/fs/tree/treetest"
	"github.com/cairn-backup/cairn/internal/testenv"
)

const (
	homePlan    = "{\"sources\": [\"/home/alice\"], \"repos\": [\"local\"]}\n"
	srvPlan     = "{\n  \"sources\": [\"/srv\"],\n  \"repos\": [\"offsite\"]\n}\n"
	invalidPlan = "{\"sources\": [\"relative/path\"], \"repos\": [\"local\"]}\n"
)

// mountPlans mounts a tree with no repositories over p, and unmounts it
// when the test ends, failing if the mount is left behind.
func mountPlans(t *testing.T, p tree.Plans) string {
	t.Helper()
	dir, _ := mountRoot(t, tree.NewRoot(nil, p))
	return dir
}

// mountRoot mounts root, and unmounts it when the test ends, failing if
// the mount is left behind.
func mountRoot(t *testing.T, root tree.Dir) (string, *Mounted) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.Skip(t, "no /dev/fuse")
	}
	dir := t.TempDir()
	m, err := Mount(dir, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		info, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(info, []byte(" "+dir+" ")) {
			exec.Command("umount", "-l", dir).Run()
			t.Errorf("%s is still mounted", dir)
		}
	})
	return dir, m
}

// inDir is a command that runs name with args in dir. The shell changes
// directory after exec: with exec.Cmd.Dir the forked child would chdir
// into the mount before exec, while the Go runtime can stop the world
// waiting for the forking thread, and the server of this same process
// then never answers the child's lookup.
func inDir(dir, name string, args ...string) *exec.Cmd {
	return exec.Command("sh", append([]string{"-c", `cd "$0" && exec "$@"`, dir, name}, args...)...)
}

// sh runs a shell command in dir and returns its combined output.
func sh(t *testing.T, dir, cmd string) (string, error) {
	t.Helper()
	out, err := inDir(dir, "sh", "-c", cmd).CombinedOutput()
	return string(out), err
}

func mustSh(t *testing.T, dir, cmd string) string {
	t.Helper()
	out, err := sh(t, dir, cmd)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Skip(t, name+" is not installed")
	}
}

func TestPlansThroughMount(t *testing.T) {
	p := treetest.NewPlans(map[string]string{"home": homePlan})
	mnt := mountPlans(t, p)
	plans := filepath.Join(mnt, "plans")
	work := filepath.Join(plans, "work")
	def := func() string {
		t.Helper()
		d, err := p.Definition("work")
		if err != nil {
			t.Fatal(err)
		}
		return string(d)
	}
	// check that plan.json shows want through the mount, size included.
	check := func(want string) {
		t.Helper()
		if got := def(); got != want {
			t.Fatalf("definition %q, want %q", got, want)
		}
		if got := mustSh(t, work, "cat plan.json"); got != want {
			t.Fatalf("cat plan.json: %q, want %q", got, want)
		}
		if got := mustSh(t, work, "stat -c %s plan.json"); strings.TrimSpace(got) != strconv.Itoa(len(want)) {
			t.Fatalf("stat size %s, want %d", got, len(want))
		}
	}
	// lsWork is plans/work's listing, dot files included.
	lsWork := func() []string {
		t.Helper()
		return strings.Fields(mustSh(t, work, "ls -A"))
	}
	controls := []string{"log", "plan.json", "run", "status"}

	t.Run("ls and mkdir", func(t *testing.T) {
		if got := mustSh(t, mnt, "ls"); got != "README.txt\nplans\nrepos\n" {
			t.Fatalf("ls: %q", got)
		}
		if !strings.Contains(mustSh(t, mnt, "cat README.txt"), "plans/<plan>/plan.json") {
			t.Fatal("README.txt does not describe plans/")
		}
		mustSh(t, plans, "mkdir work")
		if got := mustSh(t, plans, "ls"); got != "home\nwork\n" {
			t.Fatalf("ls plans: %q", got)
		}
		if out, err := sh(t, plans, "mkdir work"); err == nil || !strings.Contains(out, "File exists") {
			t.Fatalf("second mkdir: %v %s", err, out)
		}
		if got := lsWork(); !slices.Equal(got, controls) {
			t.Fatalf("ls plans/work: %v", got)
		}
		check(treetest.Template)
		mustSh(t, work, "test -w plan.json && test -w . && test -w run")
		if _, err := sh(t, mnt, "test -w README.txt"); err == nil {
			t.Fatal("README.txt is writable")
		}
	})

	t.Run("echo", func(t *testing.T) {
		mustSh(t, work, "echo '"+strings.TrimSuffix(homePlan, "\n")+"' > plan.json")
		check(homePlan)
		needTool(t, "bash")
		mustSh(t, work, `bash -c 'printf "%s" "$0" > plan.json' '`+srvPlan+`'`)
		check(srvPlan)
	})

	t.Run("cp", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "plan.json")
		os.WriteFile(src, []byte(homePlan), 0o644)
		mustSh(t, work, "cp "+src+" plan.json")
		check(homePlan)
		os.WriteFile(src, []byte(invalidPlan), 0o644)
		out, err := sh(t, work, "cp "+src+" plan.json")
		if err == nil || !strings.Contains(out, "Invalid argument") {
			t.Fatalf("cp of an invalid plan: %v %q", err, out)
		}
		check(homePlan)
		var st struct {
			LastError string `json:"last_error"`
		}
		if err := json.Unmarshal([]byte(mustSh(t, work, "cat status")), &st); err != nil || !strings.Contains(st.LastError, "line 1, column") {
			t.Fatalf("status: %+v %v", st, err)
		}
	})

	t.Run("tee", func(t *testing.T) {
		mustSh(t, work, "printf '%s' '"+srvPlan+"' | tee plan.json > /dev/null")
		check(srvPlan)
		// Appending keeps it valid JSON only if nothing is added.
		out, err := sh(t, work, "echo '{}' | tee -a plan.json")
		if err == nil || !strings.Contains(out, "Invalid argument") {
			t.Fatalf("tee -a: %v %q", err, out)
		}
		check(srvPlan)
	})

	t.Run("sed -i", func(t *testing.T) {
		mustSh(t, work, "sed -i 's|/srv|/opt|' plan.json")
		check(strings.Replace(srvPlan, "/srv", "/opt", 1))
		if got := lsWork(); !slices.Equal(got, controls) {
			t.Fatalf("sed left %v", got)
		}
		out, err := sh(t, work, "sed -i 's|/opt|opt|' plan.json")
		if err == nil || !strings.Contains(out, "Invalid argument") {
			t.Fatalf("sed -i making an invalid plan: %v %q", err, out)
		}
		check(strings.Replace(srvPlan, "/srv", "/opt", 1))
		// sed removes its refused temporary itself.
		if got := lsWork(); !slices.Equal(got, controls) {
			t.Fatalf("after a refused sed: %v", got)
		}
	})

	t.Run("truncate and misuse", func(t *testing.T) {
		if out, err := sh(t, work, "truncate -s 0 plan.json"); err == nil || !strings.Contains(out, "Invalid argument") {
			t.Fatalf("truncate: %v %q", err, out)
		}
		mustSh(t, work, "touch plan.json")
		if out, err := sh(t, work, "echo x > status"); err == nil || !strings.Contains(out, "ermission denied") {
			t.Fatalf("write to status: %v %q", err, out)
		}
		if out, err := sh(t, work, "mv plan.json elsewhere"); err == nil {
			t.Fatalf("mv plan.json: %q", out)
		}
		if out, err := sh(t, work, "mkdir sub"); err == nil || !strings.Contains(out, "not permitted") {
			t.Fatalf("mkdir in a plan: %v %q", err, out)
		}
		if out, err := sh(t, mnt, "mkdir x"); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Fatalf("mkdir in the root: %v %q", err, out)
		}
		if out, err := sh(t, mnt, "echo x > README.txt"); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Fatalf("write to README.txt: %v %q", err, out)
		}
		check(strings.Replace(srvPlan, "/srv", "/opt", 1))
	})

	t.Run("status and run", func(t *testing.T) {
		var st struct {
			Plan  string `json:"plan"`
			State string `json:"state"`
			Runs  int    `json:"runs"`
		}
		if err := json.Unmarshal([]byte(mustSh(t, work, "cat status")), &st); err != nil || st.Plan != "work" || st.State != "idle" {
			t.Fatalf("status %+v %v", st, err)
		}
		if got := mustSh(t, work, "cat run"); got != "idle\n" {
			t.Fatalf("cat run: %q", got)
		}
		if p.Runs("work") != 0 {
			t.Fatal("cat run started a run")
		}
		mustSh(t, work, "echo > run")
		if n := p.Runs("work"); n != 1 {
			t.Fatalf("%d runs after echo > run", n)
		}
		mustSh(t, work, "echo now | tee run >/dev/null")
		if n := p.Runs("work"); n != 2 {
			t.Fatalf("%d runs after tee", n)
		}
		if err := json.Unmarshal([]byte(mustSh(t, work, "cat status")), &st); err != nil || st.Runs != 2 {
			t.Fatalf("status %+v %v", st, err)
		}
		if got := mustSh(t, work, "cat log"); strings.Count(got, "\n") != 2 {
			t.Fatalf("log: %q", got)
		}
		p.SetRunning("work", true)
		if got := mustSh(t, work, "cat run"); got != "running\n" {
			t.Fatalf("cat run: %q", got)
		}
		if out, err := sh(t, plans, "rmdir work"); err == nil || !strings.Contains(out, "busy") {
			t.Fatalf("rmdir of a running plan: %v %q", err, out)
		}
		p.SetRunning("work", false)
	})

	t.Run("vim", func(t *testing.T) {
		needTool(t, "vim")
		before := strings.Replace(srvPlan, "/srv", "/opt", 1)
		c := inDir(work, "vim", "-E", "-s", "-N", "-u", "NONE", "-c", `%s/\/opt/\/vim/`, "-c", "wq", "plan.json")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("vim: %v %s", err, out)
		}
		check(strings.Replace(before, "/opt", "/vim", 1))
		if got := lsWork(); !slices.Equal(got, controls) {
			t.Fatalf("vim left %v", got)
		}
	})

	t.Run("nano", func(t *testing.T) {
		needTool(t, "nano")
		needTool(t, "script")
		before := def()
		// Type a space at the start (still valid JSON), write out
		// (^O, Enter) and exit (^X), on a terminal made by script(1).
		c := inDir(work, "script", "-qec", "nano --ignorercfiles plan.json", "/dev/null")
		c.Env = append(os.Environ(), "TERM=xterm")
		stdin, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out screen
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// Each key once nano shows it is ready for it: its help line,
		// the modified mark, the file name prompt, the "Wrote" message.
		for _, step := range []struct{ await, keys string }{
			{"Exit", " "}, {"Modified", "\x0f"}, {"File Name to Write", "\r"}, {"Wrote", "\x18"},
		} {
			if !out.await(step.await, 10*time.Second) {
				c.Process.Kill()
				t.Fatalf("nano never showed %q:\n%q", step.await, out.String())
			}
			stdin.Write([]byte(step.keys))
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("nano: %v\n%q", err, out.String())
			}
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
			t.Fatalf("nano did not finish:\n%q", out.String())
		}
		check(" " + before)
		if got := lsWork(); !slices.Equal(got, controls) {
			t.Fatalf("nano left %v", got)
		}
	})

	t.Run("rm -r", func(t *testing.T) {
		mustSh(t, work, "echo scratch > notes.tmp")
		mustSh(t, plans, "rm -r work")
		if got := mustSh(t, plans, "ls"); got != "home\n" {
			t.Fatalf("ls plans after rm -r: %q", got)
		}
		if _, err := sh(t, plans, "test -e work"); err == nil {
			t.Fatal("work still exists")
		}
		// Made behind the mount's back, it shows at once: the failed
		// lookup before left no negative entry in the kernel.
		if _, err := sh(t, plans, "test -e later"); err == nil {
			t.Fatal("later exists before it was made")
		}
		if err := p.Create("later"); err != nil {
			t.Fatal(err)
		}
		mustSh(t, plans, "test -d later && cat later/plan.json > /dev/null")
		if got := mustSh(t, plans, "ls"); got != "home\nlater\n" {
			t.Fatalf("ls plans: %q", got)
		}
	})
}

// As root the mount widens the kernel's read-ahead window, so that a
// sequential reader keeps several chunks loading at once.
func TestMountSetsReadAhead(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "only root may set a file system's read-ahead")
	}
	dir := mountPlans(t, treetest.NewPlans(nil))
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(readAheadKB) {
		t.Errorf("%s = %s, want %d", p, got, readAheadKB)
	}
}

// screen collects a terminal program's output for a test to wait on.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
	at  int // await looks for text after this offset
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// await reports whether text appears in the output after what the last
// successful await saw, within d.
func (s *screen) await(text string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		i := strings.Index(s.buf.String()[s.at:], text)
		if i >= 0 {
			s.at += i + len(text)
		}
		s.mu.Unlock()
		if i >= 0 {
			return true
		}
	}
	return false
}
