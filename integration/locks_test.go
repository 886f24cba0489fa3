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
	"time"
)

// lockWait bounds how long a test waits for a lock to appear.
const lockWait = 2 * time.Minute

// lockObjects lists the lock objects of a local repository, leaving out
// the backend's temporary files.
func lockObjects(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	for _, n := range sortedNames(t, filepath.Join(repo, "locks")) {
		if !strings.HasPrefix(n, ".") {
			out = append(out, n)
		}
	}
	return out
}

// heldLock is a lock as repos/<name>/status shows it.
type heldLock struct {
	Exclusive bool `json:"exclusive"`
	PID       int  `json:"pid"`
	Stale     bool `json:"stale"`
}

// heldLocks reads the locks of repository name from the mount at dir.
func heldLocks(t *testing.T, dir, name string) []heldLock {
	t.Helper()
	path := filepath.Join(dir, "repos", name, "status")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Locks []heldLock `json:"locks"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return st.Locks
}

// waitLock waits for the repository to hold a lock object, polling often
// so that a short operation is seen too; it fails if exited closes first.
func waitLock(t *testing.T, repo, what string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(lockWait)
	for len(lockObjects(t, repo)) == 0 {
		select {
		case <-exited:
			t.Fatalf("%s ended without a lock under locks/ having been seen", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no lock under locks/ within %v", what, lockWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkHeld checks, through the mount, that the repository's one lock is
// a shared lock of process pid.
func checkHeld(t *testing.T, dir, name, repo string, pid int, what string) {
	t.Helper()
	if objs := lockObjects(t, repo); len(objs) != 1 {
		t.Errorf("during %s: %d objects under locks/, want 1", what, len(objs))
	}
	locks := heldLocks(t, dir, name)
	if len(locks) != 1 || locks[0].Exclusive || locks[0].Stale || locks[0].PID != pid {
		t.Errorf("during %s: repos/%s/status shows locks %+v, want one live shared lock of pid %d", what, name, locks, pid)
	}
}

// noLocks fails the test if the repository holds a lock object.
func noLocks(t *testing.T, repo, when string) {
	t.Helper()
	if objs := lockObjects(t, repo); len(objs) != 0 {
		t.Errorf("%s: %v under locks/, want none", when, objs)
	}
}

// startCairn starts the binary with the password in the environment and
// returns a channel closed when it has exited, and its result.
func startCairn(t *testing.T, password string, args ...string) (*exec.Cmd, <-chan struct{}, *result) {
	t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(os.Environ(), "CAIRN_PASSWORD="+password)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	res := &result{}
	go func() {
		defer close(exited)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			res.code = ee.ExitCode()
		} else if err != nil {
			res.code = -1
		}
		res.stdout, res.stderr = stdout.String(), stderr.String()
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-exited
		}
	})
	return cmd, exited, res
}

// TestMountIdleHoldsNoLock: a repository that is mounted and read holds
// no lock (DESIGN.md §7: reads take none, an idle mount holds none). Each
// operation that writes during the mount takes one shared lock for its
// duration and removes it after: a plan run in the mount (the mount's
// lock), `cairn backup --plan` and an ad-hoc `cairn backup` (their own).
// The runs are held in their after hook until a gate file exists; the
// ad-hoc backup is stopped with SIGSTOP once its lock shows.
func TestMountIdleHoldsNoLock(t *testing.T) {
	requireRoot(t)
	a, src := smallRepo(t)
	gate := filepath.Join(t.TempDir(), "gate")
	hook := "while [ ! -e " + gate + " ]; do sleep 0.05; done; rm -f " + gate
	plans := map[string]any{
		"held": map[string]any{"sources": []string{src}, "repos": []string{"local"}, "hooks": map[string]any{"after": []string{hook}}},
	}
	cfg := writeConfig(t, []planRepo{{name: "local", url: a.repo}}, plans, nil)
	dir := mountDir(t)
	m := startMountFlags(t, dir, a.password, []string{"--config", cfg})
	open := func() { // the gate of the after hook
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	latest := filepath.Join(dir, "repos", "local", "snapshots", "latest")
	tool(t, "", "find", latest+"/")
	if got := tool(t, "", "cat", filepath.Join(latest, src, "file")); got != "small\n" {
		t.Fatalf("read %q through the mount", got)
	}
	noLocks(t, a.repo, "mounted and read")
	if locks := heldLocks(t, dir, "local"); len(locks) != 0 {
		t.Fatalf("mounted and read: status shows locks %+v", locks)
	}

	// A plan run in the mount.
	prev := ""
	if s := readPlanStatus(t, dir, "held"); s.LastRun != nil {
		prev = s.LastRun.Started
	}
	tool(t, "", "sh", "-c", "echo > "+filepath.Join(dir, "plans", "held", "run"))
	waitLock(t, a.repo, "the plan run", m.exited)
	checkHeld(t, dir, "local", a.repo, m.cmd.Process.Pid, "the plan run in the mount")
	open()
	if s := waitRun(t, dir, "held", prev); s.LastRun.Result != "success" {
		t.Fatalf("the plan run: %+v", *s.LastRun)
	}
	noLocks(t, a.repo, "after the plan run")

	// cairn backup --plan, in a process of its own.
	cmd, exited, res := startCairn(t, a.password, "backup", "--plan", "held", "--config", cfg)
	waitLock(t, a.repo, "cairn backup --plan", exited)
	checkHeld(t, dir, "local", a.repo, cmd.Process.Pid, "cairn backup --plan")
	open()
	<-exited
	if res.code != 0 {
		t.Fatalf("cairn backup --plan: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	noLocks(t, a.repo, "after cairn backup --plan")

	// An ad-hoc cairn backup of enough data to be seen at work.
	big := t.TempDir()
	data := make([]byte, 64<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	if err := os.WriteFile(filepath.Join(big, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, exited, res = startCairn(t, a.password, "--repo", a.repo, "backup", big)
	waitLock(t, a.repo, "cairn backup", exited)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, dir, "local", a.repo, cmd.Process.Pid, "cairn backup")
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	<-exited
	if res.code != 0 {
		t.Fatalf("cairn backup: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	noLocks(t, a.repo, "after cairn backup")

	// The mount saw the new snapshots and still holds nothing.
	deadline := time.Now().Add(newSnapshotTimeout)
	for len(dirNames(t, filepath.Join(dir, "repos", "local", "snapshots"))) < 5 { // 4 snapshots and latest
		if time.Now().After(deadline) {
			t.Fatalf("the mount shows %v", dirNames(t, filepath.Join(dir, "repos", "local", "snapshots")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	noLocks(t, a.repo, "mounted and idle again")
	m.unmount()
}
