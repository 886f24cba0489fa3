package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
)

// snapshotLabels lists the repository's snapshots, oldest first, as
// `cairn snapshots --json` reports them.
func snapshotLabels(e *env) []string {
	e.t.Helper()
	r := e.ok("snapshots", "--json")
	var labels []string
	for _, line := range jsonLines(e.t, r.stdout) {
		labels = append(labels, line["label"].(string))
	}
	return labels
}

// jsonLines parses stdout that must hold JSON lines only.
func jsonLines(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stdout line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// labelsOf picks the labels of the events of one type.
func labelsOf(events []map[string]any, typ string) []string {
	var l []string
	for _, ev := range events {
		if ev["type"] == typ {
			l = append(l, ev["label"].(string))
		}
	}
	return l
}

// sortedNames lists a directory of the repository (snapshots, locks),
// sorted.
func sortedNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestForgetKeepLast(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	for _, l := range []string{"L1", "L2", "L3", "L4"} {
		os.WriteFile(filepath.Join(src, "changing"), []byte(l), 0o644)
		e.ok("backup", "--label", l, "--host", "H", src)
	}
	e.ok("backup", "--label", "O1", "--host", "other", src)
	before := sortedNames(t, filepath.Join(e.repo, "snapshots"))
	packs := sortedNames(t, filepath.Join(e.repo, "data"))

	// A dry run shows what would go and changes nothing, not even a lock.
	r := e.ok("forget", "--keep-last", "2", "--dry-run")
	for _, want := range []string{"would forget 2 of 5 snapshots", "L1", "L2", "last snapshot", "host H", "host other"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if after := sortedNames(t, filepath.Join(e.repo, "snapshots")); !slices.Equal(after, before) {
		t.Fatalf("dry run changed the snapshots: %v → %v", before, after)
	}
	if locks := sortedNames(t, filepath.Join(e.repo, "locks")); len(locks) != 0 {
		t.Fatalf("locks left: %v", locks)
	}
	r = e.ok("forget", "--keep-last", "2", "--dry-run", "--json")
	events := jsonLines(t, r.stdout)
	if got := labelsOf(events, "forget"); !slices.Equal(got, []string{"L2", "L1"}) {
		t.Fatalf("dry run would forget %v", got)
	}
	if sum := events[len(events)-1]; sum["type"] != "summary" || sum["dry_run"] != true || sum["forgotten"].(float64) != 2 {
		t.Fatalf("summary %v", sum)
	}
	if got := snapshotLabels(e); len(got) != 5 {
		t.Fatalf("after the dry run: %v", got)
	}

	// The policy applies per host (and plan and paths): the other host's
	// only snapshot stays.
	r = e.ok("forget", "--keep-last", "2", "--json")
	events = jsonLines(t, r.stdout)
	if got := labelsOf(events, "keep"); !slices.Equal(got, []string{"L4", "L3", "O1"}) {
		t.Fatalf("kept %v", got)
	}
	if got := labelsOf(events, "forget"); !slices.Equal(got, []string{"L2", "L1"}) {
		t.Fatalf("forgot %v", got)
	}
	for _, ev := range events {
		if ev["type"] == "keep" && !slices.Equal(ev["reasons"].([]any), []any{"last snapshot"}) {
			t.Fatalf("reasons %v", ev)
		}
	}
	if sum := events[len(events)-1]; sum["type"] != "summary" || sum["forgotten"].(float64) != 2 || sum["kept"].(float64) != 3 || sum["dry_run"] != false {
		t.Fatalf("summary %v", sum)
	}
	if r.stderr != "" {
		t.Fatalf("stderr under --json: %q", r.stderr)
	}
	if got := snapshotLabels(e); !slices.Equal(got, []string{"L3", "L4", "O1"}) {
		t.Fatalf("left %v", got)
	}
	// No prune: every pack is still there, nothing is dangling, and what
	// is left restores.
	if after := sortedNames(t, filepath.Join(e.repo, "data")); !slices.Equal(after, packs) {
		t.Fatalf("packs changed: %v → %v", packs, after)
	}
	e.ok("check", "--read-data")
	target := t.TempDir()
	e.ok("restore", "L3", "--target", target)
	if b, _ := os.ReadFile(filepath.Join(target, src, "changing")); string(b) != "L3" {
		t.Fatalf("restored %q", b)
	}
	if locks := sortedNames(t, filepath.Join(e.repo, "locks")); len(locks) != 0 {
		t.Fatalf("locks left: %v", locks)
	}

	// Without grouping, one policy for all: the two newest of any host.
	r = e.ok("forget", "--keep-last", "2", "--group-by", "")
	if !strings.Contains(r.stdout, "forgot 1 of 3 snapshots") || !strings.Contains(r.stdout, "cairn prune") {
		t.Fatalf("output:\n%s", r.stdout)
	}
	if got := snapshotLabels(e); !slices.Equal(got, []string{"L4", "O1"}) {
		t.Fatalf("left %v", got)
	}
	// Again: nothing to do.
	r = e.ok("forget", "--keep-last", "2", "--group-by", "")
	if !strings.Contains(r.stdout, "nothing to forget") {
		t.Fatalf("output:\n%s", r.stdout)
	}
}

func TestForgetRefusesBadPolicies(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	e.ok("backup", src)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"forget"}, "no policy"},
		{[]string{"forget", "--keep-last", "0"}, "the policy is empty"},
		{[]string{"forget", "--keep-daily", "-1"}, "--keep-daily: -1 is negative"},
		{[]string{"forget", "--keep-within", "2x"}, `--keep-within: invalid duration "2x"`},
		{[]string{"forget", "--keep-last", "1", "--plan", "home"}, "either --plan or --keep-*"},
		{[]string{"forget", "--keep-last", "1", "--group-by", "colour"}, `--group-by: unknown field "colour"`},
		{[]string{"forget", "--plan", "nope", "--config", filepath.Join(t.TempDir(), "none.json")}, `plan "nope" is not defined`},
	} {
		r := e.run(tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("cairn %v: exit %d, stderr %q; want 1 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if got := snapshotLabels(e); len(got) != 1 {
		t.Fatalf("snapshots %v", got)
	}
}

// runCairn runs the binary with exactly args (no --repo) and env.
func runCairn(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// addPlanSnapshots writes snapshot records of plan at the given times
// (RFC 3339), labelled plan@time, sharing the tree of the latest
// snapshot: what scheduled runs of a plan over some days leave. (The
// CLI cannot yet run a plan nor back up with a past time.)
func addPlanSnapshots(t *testing.T, e *env, planName, host string, times ...string) {
	t.Helper()
	ctx := t.Context()
	be, err := local.Open(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(ctx, be, e.password)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("%v %v", snaps, err)
	}
	base := snaps[len(snaps)-1]
	for _, ts := range times {
		tm, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			t.Fatal(err)
		}
		s := &repo.Snapshot{Label: planName + "@" + ts, Time: tm, Host: host, Plan: planName, Paths: base.Paths, Tree: base.Tree, Summary: base.Summary}
		if _, err := r.SaveSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestForgetPlanFromConfig(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	e.ok("backup", "--label", "adhoc", "--host", "H", src)
	addPlanSnapshots(t, e, "home", "H",
		"2026-01-01T12:00:00Z", "2026-01-02T08:00:00Z", "2026-01-02T20:00:00Z", "2026-01-03T09:00:00Z", "2026-01-03T21:00:00Z")
	addPlanSnapshots(t, e, "home", "laptop", "2026-01-01T12:00:00Z", "2026-01-01T13:00:00Z")
	addPlanSnapshots(t, e, "other", "H", "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z")

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "main.pass")
	os.WriteFile(pwFile, []byte(e.password+"\n"), 0o600)
	cfgFile := filepath.Join(dir, "config.json")
	cfg := `{
  "repos": {"main": {"url": "` + e.repo + `", "password_file": "` + pwFile + `"}},
  "plans": {
    "home":  {"sources": ["` + src + `"], "repos": ["main"], "schedule": "@daily",
              "retention": {"keep_daily": 2}},
    "other": {"sources": ["/etc"], "repos": ["main"], "retention": {"keep_last": 1}}
  }
}`
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	// The configured password file is used: the environment's is wrong.
	env := []string{"TZ=UTC", "CAIRN_PASSWORD=wrong", "CAIRN_CONFIG=" + cfgFile}

	r := runCairn(t, env, "forget", "--plan", "home", "--dry-run", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	events := jsonLines(t, r.stdout)
	// Days in UTC: the newest of January 3rd and 2nd; per host, so the
	// laptop keeps its own.
	if got := labelsOf(events, "keep"); !slices.Equal(got, []string{
		"home@2026-01-03T21:00:00Z", "home@2026-01-02T20:00:00Z",
		"home@2026-01-01T13:00:00Z", "home@2026-01-01T12:00:00Z", // laptop: its one day, and its oldest
	}) {
		t.Fatalf("would keep %v", got)
	}
	if got := labelsOf(events, "forget"); !slices.Equal(got, []string{
		"home@2026-01-03T09:00:00Z", "home@2026-01-02T08:00:00Z", "home@2026-01-01T12:00:00Z",
	}) {
		t.Fatalf("would forget %v", got)
	}
	if sum := events[len(events)-1]; sum["repo"] != "main" || sum["policy"] != "keep the 2 daily snapshots" {
		t.Fatalf("summary %v", sum)
	}
	if got := snapshotLabels(e); len(got) != 10 {
		t.Fatalf("the dry run changed something: %v", got)
	}

	// For real, with the configuration from --config and the repository
	// from the plan.
	r = runCairn(t, []string{"TZ=UTC", "CAIRN_PASSWORD=wrong", "CAIRN_CONFIG=/nonexistent"}, "forget", "--plan", "home", "--config", cfgFile)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"repository main (" + e.repo, "keep the 2 daily snapshots", "daily snapshot", "oldest daily snapshot", "forgot 3 of 7 snapshots of plan home"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	left := snapshotLabels(e)
	if want := []string{
		"home@2026-01-01T12:00:00Z", "other@2026-01-01T12:00:00Z", // the laptop's; the other plan's
		"home@2026-01-01T13:00:00Z", "other@2026-01-02T12:00:00Z", "home@2026-01-02T20:00:00Z",
		"home@2026-01-03T21:00:00Z", "adhoc",
	}; !slices.Equal(left, want) {
		t.Fatalf("left %v\nwant %v", left, want)
	}

	// --repo names a configured repository; the other plan's policy
	// touches only its own snapshots.
	r = runCairn(t, env, "forget", "--plan", "other", "--repo", "main", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := labelsOf(jsonLines(t, r.stdout), "forget"); !slices.Equal(got, []string{"other@2026-01-01T12:00:00Z"}) {
		t.Fatalf("forgot %v", got)
	}
	if got := snapshotLabels(e); len(got) != 6 || !slices.Contains(got, "adhoc") {
		t.Fatalf("left %v", got)
	}
	e.ok("check")

	// A plan whose repository has no usable password fails and says so.
	os.Remove(pwFile)
	r = runCairn(t, env, "forget", "--plan", "home")
	if r.code != 1 || !strings.Contains(r.stderr, "password_file") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	// An invalid configuration is named with its line and column.
	os.WriteFile(cfgFile, []byte(strings.Replace(cfg, `"keep_daily"`, `"keep_dayly"`, 1)), 0o600)
	r = runCairn(t, env, "forget", "--plan", "home")
	if r.code != 1 || !strings.Contains(r.stderr, "line 5, column 29: plans.home.retention.keep_dayly: unknown field") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
