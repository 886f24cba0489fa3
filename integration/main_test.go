package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo/backend/s3/miniotest"
)

// cairnBin is the binary under test, built once by TestMain.
var cairnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // tests also run the binary as an unprivileged user
	cairnBin = filepath.Join(dir, "cairn")
	args := []string{"build", "-o", cairnBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/cairn")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cairn:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if err := miniotest.Stop(); err != nil { // if a test started it
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// env is a test's repository and password.
type env struct {
	t        *testing.T
	repo     string
	password string
	extra    []string // extra environment
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, repo: filepath.Join(t.TempDir(), "repo"), password: "correct horse"}
	e.ok("init")
	return e
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runAs(nil, args...)
}

func (e *env) runAs(setup func(*exec.Cmd), args ...string) result {
	e.t.Helper()
	cmd := exec.Command(cairnBin, append([]string{"--repo", e.repo}, args...)...)
	cmd.Env = append(os.Environ(), "CAIRN_PASSWORD="+e.password)
	cmd.Env = append(cmd.Env, e.extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if setup != nil {
		setup(cmd)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("cairn %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs cairn and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration tests need root (CI runs as root)")
	}
}
