package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
)

// Many writers, slow stores and locks that hold (issue 14), through the
// binary: labels unique under concurrency, --json on both streams, the
// faulty+ test location, a suspended backup that lost its lock, the log
// of a background mount.

// faultyURL is the repository at path behind the fault injector.
func faultyURL(path, params string) string { return "faulty+" + path + "?" + params }

// strictJSONLines parses every line of s as a JSON object and fails the
// test on any other line.
func strictJSONLines(t *testing.T, stream, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if line == "" && s == "" {
			break
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s line %d is not a JSON object: %q", stream, i+1, line)
		}
		if _, ok := v["type"].(string); !ok {
			t.Fatalf("%s line %d has no type: %q", stream, i+1, line)
		}
		out = append(out, v)
	}
	return out
}

// TestConcurrentBackupsGetDistinctLabels starts 15 `cairn backup`
// processes at the start of one second on one repository behind the
// fault injector (2 s list and delete lag, 1% transient errors, 0.5%
// lost responses): all succeed, and the 15 snapshots have 15 distinct
// labels, each of them the usual <time>_<host> or that with a suffix.
func TestConcurrentBackupsGetDistinctLabels(t *testing.T) {
	e := newEnv(t)
	concurrentBackups(t, e, func(i int) string {
		return faultyURL(e.repo, fmt.Sprintf("listlag=2s&deletelag=2s&errors=0.01&lost=0.005&seed=%d", i+1))
	})
}

// TestConcurrentBackupsOnFaultyMinIO: the same on MinIO behind the fault
// injector.
func TestConcurrentBackupsOnFaultyMinIO(t *testing.T) {
	e, _ := s3Env(t)
	concurrentBackups(t, e, func(i int) string {
		return faultyURL(e.repo, fmt.Sprintf("listlag=2s&deletelag=2s&errors=0.01&lost=0.005&seed=%d", i+1))
	})
}

// concurrentBackups runs 15 backups of one source at once, the i-th into
// url(i), and checks that all succeed with JSON lines on both streams,
// that e's repository then has 15 snapshots with distinct labels, and
// that it checks clean.
func concurrentBackups(t *testing.T, e *env, url func(i int) string) {
	src := t.TempDir()
	for i := range 20 {
		os.WriteFile(filepath.Join(src, fmt.Sprint("f", i)), []byte(strings.Repeat(fmt.Sprint(i), 1000)), 0o644)
	}
	const n = 15
	// Start together, at the beginning of a second, so that the labels'
	// times are the same.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(cairnBin, "--repo", url(i), "backup", "--json", src)
			cmd.Env = append(os.Environ(), "CAIRN_PASSWORD="+e.password)
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			results[i] = result{out.String(), errb.String(), code}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("backup %d: exit %d\nstderr: %s", i, r.code, r.stderr)
		}
		strictJSONLines(t, fmt.Sprint("backup ", i, " stdout"), r.stdout)
		if r.stderr != "" {
			strictJSONLines(t, fmt.Sprint("backup ", i, " stderr"), r.stderr)
		}
	}
	labels := snapshotLabels(e)
	if len(labels) != n {
		t.Fatalf("%d snapshots, want %d: %v", len(labels), n, labels)
	}
	seen := map[string]bool{}
	times := map[string]int{}
	pattern := regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d{6}Z)_` + regexp.QuoteMeta(hostname(t)) + `(-[0-9a-f]{8,}|-\d+)?$`)
	for _, l := range labels {
		if seen[l] {
			t.Errorf("label %s is shared", l)
		}
		seen[l] = true
		m := pattern.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("label %q is not <time>_<host>[-suffix]", l)
			continue
		}
		times[m[1]]++
	}
	clashes := 0
	for _, c := range times {
		clashes = max(clashes, c)
	}
	if clashes < 2 {
		t.Logf("no two backups started in the same second (%v): the race was not exercised", times)
	}
	t.Logf("labels: %v", labels)
	e.ok("check", "--read-data")
}

// TestSharedLabelIsAnError: in a repository where two snapshots share a
// label (as older versions could leave), naming that label is an error
// listing both ids, for ls and restore alike; an id still selects each.
func TestSharedLabelIsAnError(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	e.ok("backup", "--label", "shared", src)
	// The fixture: a second record with the same label, written the way
	// an older cairn could (no label check).
	ctx := context.Background()
	be, err := local.Open(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, e.password)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %v, %v", snaps, err)
	}
	twin := *snaps[0]
	twin.Time = twin.Time.Add(time.Second)
	id2, err := r.SaveSnapshot(ctx, &twin)
	be.Close()
	if err != nil {
		t.Fatal(err)
	}
	id1 := snaps[0].ID()
	for _, args := range [][]string{{"ls", "shared"}, {"restore", "shared", "--target", t.TempDir()}} {
		res := e.run(args...)
		if res.code != 1 {
			t.Errorf("cairn %v: exit %d, want 1\nstdout: %s", args, res.code, res.stdout)
		}
		for _, id := range []repo.ID{id1, id2} {
			if !strings.Contains(res.stderr, id.String()[:16]) {
				t.Errorf("cairn %v: stderr does not name candidate %s: %s", args, id.Short(), res.stderr)
			}
		}
	}
	for _, id := range []repo.ID{id1, id2} {
		e.ok("ls", id.String()[:12])
	}
}

// TestJSONStreamsUnderFaults backs up through a store failing one call in
// five under --json: the backup succeeds, and both stdout and stderr are
// JSON objects line by line, the retries among them.
func TestJSONStreamsUnderFaults(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	for i := range 30 {
		os.WriteFile(filepath.Join(src, fmt.Sprint("f", i)), []byte(strings.Repeat(fmt.Sprint(i), 5000)), 0o644)
	}
	url := faultyURL(e.repo, "errors=0.2&lost=0.1&listlag=1s&deletelag=1s&seed=3")
	cmd := exec.Command(cairnBin, "--repo", url, "backup", "--json", src)
	cmd.Env = append(os.Environ(), "CAIRN_PASSWORD="+e.password)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("backup: %v\nstderr: %s", err, errb.String())
	}
	stdout := strictJSONLines(t, "stdout", out.String())
	stderr := strictJSONLines(t, "stderr", errb.String())
	if last := stdout[len(stdout)-1]; last["type"] != "summary" {
		t.Errorf("last stdout line %v, want the summary", last)
	}
	retries := 0
	for _, v := range stderr {
		if v["type"] == "retry" {
			retries++
			if v["op"] == nil || v["attempt"] == nil || v["error"] == nil {
				t.Errorf("retry line without op, attempt or error: %v", v)
			}
		}
	}
	if retries == 0 {
		t.Fatalf("no retry reported on stderr under 20%% faults:\n%s", errb.String())
	}
	// The same under a failing command: the error is JSON too.
	res := e.run("--json", "ls", "no-such-snapshot")
	if res.code != 1 {
		t.Fatalf("ls of a missing snapshot: exit %d", res.code)
	}
	strictJSONLines(t, "stderr of a failure", res.stderr)
}

// TestSuspendedBackupNoticesLostLock: a backup stopped (SIGSTOP) for
// longer than the stale time, whose lock `cairn unlock` removed from
// another shell meanwhile, stops when resumed: non-zero exit, a message
// about the lock, no snapshot (the stale time shortened to 3 s with
// $CAIRN_LOCK_STALE).
func TestSuspendedBackupNoticesLostLock(t *testing.T) {
	e := newEnv(t)
	e.extra = []string{"CAIRN_LOCK_STALE=3s"}
	src := t.TempDir()
	for i := range 20 {
		os.WriteFile(filepath.Join(src, fmt.Sprint("f", i)), []byte(strings.Repeat(fmt.Sprint(i), 3000)), 0o644)
	}
	// Slow storage, so that the backup is still running when its lock shows.
	url := faultyURL(e.repo, "latency=300ms")
	cmd := exec.Command(cairnBin, "--repo", url, "backup", src)
	cmd.Env = append(os.Environ(), "CAIRN_PASSWORD="+e.password, "CAIRN_LOCK_STALE=3s")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
	})
	deadline := time.Now().Add(lockWait)
	for len(lockObjects(t, e.repo)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no lock within the wait")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // past the stale time
	u := e.ok("unlock")
	if !strings.Contains(u.stdout, "removed 1") {
		t.Fatalf("unlock did not remove the suspended backup's lock: %s", u.stdout)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the resumed backup did not end within a minute")
	}
	if err == nil {
		t.Fatalf("the resumed backup exited 0 although its lock was removed\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "lock") {
		t.Errorf("stderr does not say the lock was lost: %s", stderr.String())
	}
	if labels := snapshotLabels(e); len(labels) != 0 {
		t.Errorf("snapshots after the lost lock: %v, want none", labels)
	}
	if locks := lockObjects(t, e.repo); len(locks) != 0 {
		t.Errorf("locks left: %v", locks)
	}
	t.Logf("stderr: %s", stderr.String())
}

// TestBackgroundMountKeepsLog: `cairn mount --background` says where it
// logs, by default under $XDG_STATE_HOME/cairn/, and the log gets the
// mount's lines, the error of a corrupt pack read through the mount
// among them; --log FILE chooses the file.
func TestBackgroundMountKeepsLog(t *testing.T) {
	e, src := smallRepo(t)
	state := t.TempDir()
	explicit := filepath.Join(t.TempDir(), "sub", "mount.log")
	for _, c := range []struct {
		name  string
		flags []string
		want  string // log file; "" is under state
	}{
		{"default", nil, ""},
		{"--log", []string{"--log", explicit}, explicit},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := mountDir(t)
			args := append([]string{"mount", dir, "--repo", e.repo, "--background"}, c.flags...)
			cmd := exec.Command(cairnBin, args...)
			cmd.Env = append(mountEnv(e.password), "XDG_STATE_HOME="+state)
			cmd.WaitDelay = 3 * time.Second
			t.Cleanup(func() {
				if len(mountsAt(dir)) > 0 {
					command("umount", dir)
				}
				for _, pid := range processesWith(dir) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			outb, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("mount --background: %v\n%s", err, outb)
			}
			logFile := c.want
			if logFile == "" {
				matches, _ := filepath.Glob(filepath.Join(state, "cairn", "*.log"))
				if len(matches) != 1 {
					t.Fatalf("log files under %s/cairn: %v, want 1", state, matches)
				}
				logFile = matches[0]
			}
			if !strings.Contains(string(outb), "logging to "+logFile) {
				t.Errorf("start message %q does not name the log %s", outb, logFile)
			}
			if fi, err := os.Stat(logFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("log %s: %v, %v", logFile, fi, err)
			}
			// A corrupt pack: reading the file through the mount fails,
			// and the log says why.
			packs, _ := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
			saved := make([][]byte, len(packs))
			for i, p := range packs {
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				saved[i] = make([]byte, 4)
				f.ReadAt(saved[i], 10)
				f.WriteAt([]byte("XXXX"), 10)
				f.Close()
			}
			defer func() { // the packs as they were, for the next subtest
				for i, p := range packs {
					if f, err := os.OpenFile(p, os.O_RDWR, 0); err == nil {
						f.WriteAt(saved[i], 10)
						f.Close()
					}
				}
			}()
			label := e.latest().Label
			_, rerr := os.ReadFile(filepath.Join(snapshotsDir(dir, e.repo), label, src, "file"))
			if rerr == nil {
				t.Log("read of a corrupt file succeeded (cached?)")
			}
			if err := command("umount", dir); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(mountExitTimeout)
			for len(processesWith(dir)) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			b, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "mounted at "+dir) {
				t.Errorf("log %s lacks the ready line:\n%s", logFile, b)
			}
			if rerr != nil && !strings.Contains(string(b), "data/") {
				t.Errorf("read failed (%v) but the log names no pack:\n%s", rerr, b)
			}
			t.Logf("log:\n%s", b)
		})
	}
}

// TestWithLock: `cairn with-lock` holds a lock while its command runs
// (the command sees it under locks/) and removes it after, passing the
// command's output through; a failing command fails it; a command that
// runs longer than the stale time keeps a fresh lock; and when the lock
// is lost under it (its object removed from the repository), the command
// gets SIGTERM and cairn exits 1 saying the lock was lost.
func TestWithLock(t *testing.T) {
	e := newEnv(t)
	locks := filepath.Join(e.repo, "locks")
	r := e.ok("with-lock", "--", "sh", "-c", "ls "+locks+" | grep -vc '^\\.'")
	if strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("locks seen by the command: %q, want 1", r.stdout)
	}
	noLocks(t, e.repo, "after with-lock")
	if r := e.run("with-lock", "--exclusive", "false"); r.code != 1 {
		t.Errorf("with-lock false: exit %d, want 1", r.code)
	}

	// A command that outlasts the stale time: the lock is refreshed, so
	// unlock from another shell finds nothing stale to remove.
	e.extra = []string{"CAIRN_LOCK_STALE=2s"}
	long := make(chan result, 1)
	go func() { long <- e.run("with-lock", "--", "sleep", "5") }()
	time.Sleep(3500 * time.Millisecond)
	if u := e.ok("unlock"); !strings.Contains(u.stdout, "removed 0") {
		t.Errorf("unlock while with-lock refreshes: %s", u.stdout)
	}
	if r := <-long; r.code != 0 {
		t.Errorf("with-lock sleep 5 under a 2 s stale time: exit %d\n%s", r.code, r.stderr)
	}

	// The lock lost: refreshed every 0.5 s, it notices the removal.
	e.extra = []string{"CAIRN_LOCK_STALE=3s"}
	marker := filepath.Join(t.TempDir(), "terminated")
	script := fmt.Sprintf(`trap 'echo TERM > %s; exit 0' TERM; while :; do sleep 0.05; done`, marker)
	done := make(chan result, 1)
	go func() {
		done <- e.runAs(func(c *exec.Cmd) {
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			t.Cleanup(func() { // a failed test leaves no loop running
				if c.Process != nil {
					syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				}
			})
		}, "with-lock", "--", "sh", "-c", script)
	}()
	deadline := time.Now().Add(lockWait)
	for len(lockObjects(t, e.repo)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no lock within the wait")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, l := range lockObjects(t, e.repo) {
		os.Remove(filepath.Join(locks, l))
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("with-lock still running a minute after its lock was removed")
	}
	if res.code != 1 || !strings.Contains(res.stderr, "lock") || !strings.Contains(res.stderr, "SIGTERM") {
		t.Errorf("exit %d, stderr %q; want 1 and a message about the lock", res.code, res.stderr)
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "TERM" {
		t.Errorf("the command did not get SIGTERM: %v", err)
	}
	noLocks(t, e.repo, "after the lost lock")
}
