package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The rough edges a new user met (issue 17), each tested through the
// binary.

// TestRestoreIncludeTypoFailsFirst: an include that names nothing in the
// snapshot fails the restore (exit 1) before anything is created.
func TestRestoreIncludeTypoFailsFirst(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	e.ok("backup", src)
	target := filepath.Join(t.TempDir(), "target")
	r := e.run("restore", "latest", "--target", target, "--include", src+"/sub", "--include", src+"/nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, src+"/nosuch") || !strings.Contains(r.stderr, "not in the snapshot") {
		t.Fatalf("restore of a mistyped include: exit %d, stderr %q; want 1 naming %s/nosuch", r.code, r.stderr, src)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused restore created its target: %v", err)
	}
}

var countsRe = regexp.MustCompile(`(\d+) files?, (\d+) director(?:y|ies)`)

// TestBackupAndRestoreCountsAgree: the backup and the restore of one
// snapshot report the same numbers of files and directories (the
// directories leading to the source are not counted by either), in
// correct singulars and plurals.
func TestBackupAndRestoreCountsAgree(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "deeper", "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "b"), []byte("b"), 0o644)
	os.Symlink("a", filepath.Join(src, "link"))
	b := e.ok("backup", src)
	target := t.TempDir()
	rs := e.ok("restore", "latest", "--target", target)
	bm, rm := countsRe.FindStringSubmatch(b.stdout), countsRe.FindStringSubmatch(rs.stdout)
	if bm == nil || rm == nil || bm[0] != rm[0] {
		t.Fatalf("backup says %q, restore %q; want the same counts", b.stdout, rs.stdout)
	}
	if bm[0] != "3 files, 2 directories" {
		t.Errorf("backup counted %q, want 3 files (a, b, link), 2 directories (src, sub)", bm[0])
	}

	// Every kind of entry: hard links, devices, a FIFO, symlinks.
	full := filepath.Join(t.TempDir(), "full")
	makeTree(t, full)
	b = e.ok("backup", full)
	rs = e.ok("restore", "latest", "--target", t.TempDir())
	if bm, rm := countsRe.FindString(b.stdout), countsRe.FindString(rs.stdout); bm == "" || bm != rm {
		t.Errorf("backup of every kind says %q, restore %q; want the same counts", b.stdout, rs.stdout)
	}

	// One of each: singulars.
	one := filepath.Join(t.TempDir(), "one")
	os.Mkdir(one, 0o755)
	os.WriteFile(filepath.Join(one, "f"), []byte("f"), 0o644)
	e2 := newEnv(t)
	if r := e2.ok("backup", one); !strings.Contains(r.stdout, "1 file, 1 directory,") {
		t.Errorf("backup of one file in one directory says %q", r.stdout)
	}
	if r := e2.ok("snapshots"); !strings.HasSuffix(r.stdout, "\n1 snapshot\n") {
		t.Errorf("snapshots of one says %q, want 1 snapshot", r.stdout)
	}
	if r := e2.ok("check"); !strings.Contains(r.stdout, "checked 1 snapshot, ") || !strings.Contains(r.stdout, "0 errors, 0 warnings") {
		t.Errorf("check says %q", r.stdout)
	}
	if r := e2.ok("restore", "latest", "--target", t.TempDir()); !strings.Contains(r.stdout, "1 file, 1 directory,") {
		t.Errorf("restore of one file in one directory says %q", r.stdout)
	}
}

// TestSnapshotsJSONShape: tags and paths are always arrays, an empty plan
// is left out.
func TestSnapshotsJSONShape(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("f"), 0o644)
	e.ok("backup", src)
	e.ok("backup", "--tag", "x", src)
	r := e.ok("snapshots", "--json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("snapshots --json: %q", r.stdout)
	}
	for _, l := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(m["tags"], []byte("[")) || !bytes.HasPrefix(m["paths"], []byte("[")) {
			t.Errorf("tags %s, paths %s: want arrays", m["tags"], m["paths"])
		}
		if _, ok := m["plan"]; ok {
			t.Errorf("an ad-hoc snapshot has a plan: %s", l)
		}
	}
}

// TestRepoByNameAndEnv: $CAIRN_REPOSITORY stands for --repo, and --repo
// takes the name of a configured repository.
func TestRepoByNameAndEnv(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	e.ok("backup", src)
	cfg := writeConfig(t, []planRepo{{name: "main", url: e.repo}}, nil, nil)
	run := func(env []string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(cairnBin, args...)
		cmd.Dir = t.TempDir() // no directory called main here
		cmd.Env = append(mountEnv(e.password), "CAIRN_CONFIG="+cfg)
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	for _, how := range []struct {
		name  string
		flags []string
		env   []string
	}{
		{"env path", nil, []string{"CAIRN_REPOSITORY=" + e.repo}},
		{"env name", nil, []string{"CAIRN_REPOSITORY=main"}},
		{"flag name", []string{"--repo", "main"}, nil},
	} {
		for _, args := range [][]string{
			{"snapshots"}, {"ls", "latest"}, {"restore", "latest", "--target", t.TempDir()}, {"check"}, {"unlock"},
			{"backup", src},
		} {
			out, code := run(how.env, append(how.flags, args...)...)
			if code != 0 {
				t.Errorf("%s: cairn %s: exit %d: %s", how.name, strings.Join(args, " "), code, out)
			}
			if args[0] == "ls" && !strings.Contains(out, src+"/f") {
				t.Errorf("%s: ls: %s", how.name, out)
			}
		}
	}
	if out, code := run(nil, "--repo", "nosuch", "snapshots"); code != 1 {
		t.Errorf("an unknown name: exit %d: %s", code, out)
	}
}

// TestLsLongModesAreLs: ls -l writes modes as GNU ls does.
func TestLsLongModesAreLs(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	if err := unix.Chmod(filepath.Join(src, "sub"), 0o2750); err != nil {
		t.Fatal(err)
	}
	e.ok("backup", src)
	r := e.ok("ls", "-l", "latest", src)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		fields := strings.Fields(line)
		p := fields[len(fields)-1]
		if i := slices.Index(fields, "->"); i > 0 {
			p = fields[i-1]
		}
		out, err := exec.Command("ls", "-ld", p).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimRight(strings.Fields(string(out))[0], ".+")
		if fields[0] != want {
			t.Errorf("%s: cairn ls -l %q, ls -l %q", p, fields[0], want)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("ls -l listed %d entries:\n%s", n, r.stdout)
	}
}

// TestMountPlanNamesAndLogLine: mkdir of a plan whose name a snapshot
// label cannot carry fails with EINVAL and leaves nothing; a run's log
// line on the mount's stderr has no empty field.
func TestMountPlanNamesAndLogLine(t *testing.T) {
	requireRoot(t)
	e, src := smallRepo(t)
	cfg := writeConfig(t, []planRepo{{name: "local", url: e.repo}}, nil, nil)
	dir := mountDir(t)
	m := startMountFlags(t, dir, e.password, []string{"--config", cfg})
	plans := filepath.Join(dir, "plans")
	for _, bad := range []string{"bad name", ".hidden", "a:b"} {
		if err := unix.Mkdir(filepath.Join(plans, bad), 0o755); err != unix.EINVAL {
			t.Errorf("mkdir plans/%q: %v, want EINVAL", bad, err)
		}
		cmd := exec.Command("mkdir", filepath.Join(plans, bad))
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Invalid argument") {
			t.Errorf("mkdir(1) plans/%q: %v: %s", bad, err, out)
		}
	}
	if got := dirNames(t, plans); len(got) != 0 {
		t.Fatalf("plans/ lists %v after refused mkdirs", got)
	}
	planDir := filepath.Join(plans, "src")
	tool(t, "", "mkdir", planDir)
	def := `{"sources": ["` + src + `"], "repos": ["local"]}`
	tool(t, "", "sh", "-c", "echo '"+def+"' > "+filepath.Join(planDir, "plan.json"))
	if s := runPlanInMount(t, dir, "src"); s.LastRun == nil || s.LastRun.Result != "success" {
		t.Fatalf("run: %+v", s)
	}
	m.unmount()
	log := m.stderr.String()
	if !strings.Contains(log, "cairn: plan src: done: success\n") {
		t.Errorf("the mount's log has no line %q:\n%s", "cairn: plan src: done: success", log)
	}
	if strings.Contains(log, " : ") || strings.Contains(log, "  ") {
		t.Errorf("the mount's log has an empty field:\n%s", log)
	}
}

// TestHelpNamesRealCommands: no help text sends the user to a command
// that does not exist (forget's and check's "prune", before prune did).
func TestHelpNamesRealCommands(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cairnBin, append(args, "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("cairn %v --help: %v\n%s", args, err, out)
		}
		return string(out)
	}
	top := help()
	_, list, _ := strings.Cut(top, "Available Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	commands := map[string]bool{}
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			commands[f[0]] = true
		}
	}
	if !commands["forget"] || !commands["check"] {
		t.Fatalf("cairn --help lists %v", commands)
	}
	// `cairn NAME` in prose, or an example line starting with it.
	mention := regexp.MustCompile("`cairn ([a-z-]+)|(?m)^\\s+cairn ([a-z-]+)")
	for c := range commands {
		if c == "completion" || c == "help" { // cobra's, with "cairn for the shell"
			continue
		}
		text := help(c)
		for _, m := range mention.FindAllStringSubmatch(text, -1) {
			name := m[1] + m[2]
			if !commands[name] {
				t.Errorf("cairn %s --help names %q, which cairn --help does not list", c, "cairn "+name)
			}
		}
		if strings.Contains(text, "prune") && !commands["prune"] {
			t.Errorf("cairn %s --help speaks of prune, which does not exist", c)
		}
	}
}
