package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// planWait bounds how long a test waits for a plan's run to end.
const planWait = 2 * time.Minute

// planRepo is one repository of a test configuration.
type planRepo struct {
	name string
	url  string
	env  *env // for the CLI's view of it; nil for a broken one
}

// writeConfig writes a configuration file of repos and plans (plans as
// raw JSON objects) and returns its path.
func writeConfig(t *testing.T, repos []planRepo, plans map[string]any, extraRepos map[string]any) string {
	t.Helper()
	rs := map[string]any{}
	for _, r := range repos {
		rs[r.name] = map[string]any{"url": r.url}
	}
	for k, v := range extraRepos {
		rs[k] = v
	}
	doc := map[string]any{"repos": rs}
	if plans != nil {
		doc["plans"] = plans
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// planStatus is what the tests read of plans/<name>/status.
type planStatus struct {
	State           string `json:"state"`
	Defined         bool   `json:"defined"`
	DefinitionError string `json:"definition_error"`
	LastError       string `json:"last_error"`
	NextRun         string `json:"next_run"`
	LastRun         *struct {
		Started string `json:"started"`
		Result  string `json:"result"`
		Error   string `json:"error"`
		Repos   []struct {
			Repo      string `json:"repo"`
			OK        bool   `json:"ok"`
			Label     string `json:"label"`
			Error     string `json:"error"`
			Forgotten int    `json:"forgotten"`
		} `json:"repos"`
	} `json:"last_run"`
}

func readPlanStatus(t *testing.T, dir, plan string) planStatus {
	t.Helper()
	path := filepath.Join(dir, "plans", plan, "status")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s planStatus
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", path, err, b)
	}
	return s
}

// runPlan writes plans/<plan>/run with the shell, as a user would, and
// waits for the run it starts to end; it returns the final status.
func runPlanInMount(t *testing.T, dir, plan string) planStatus {
	t.Helper()
	before := readPlanStatus(t, dir, plan)
	prev := ""
	if before.LastRun != nil {
		prev = before.LastRun.Started
	}
	tool(t, "", "sh", "-c", "echo > "+filepath.Join(dir, "plans", plan, "run"))
	return waitRun(t, dir, plan, prev)
}

// waitRun polls the plan's status until a run that started after prev
// (a last_run.started value, "" for none) has ended.
func waitRun(t *testing.T, dir, plan, prev string) planStatus {
	t.Helper()
	deadline := time.Now().Add(planWait)
	for {
		s := readPlanStatus(t, dir, plan)
		if s.State == "idle" && s.LastRun != nil && s.LastRun.Started != prev {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("plan %s: no run ended within %v; status %+v", plan, planWait, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// planSnapshots lists the snapshot labels of plan in the mounted repository.
func planSnapshots(t *testing.T, dir, repoName, plan string) []string {
	t.Helper()
	var out []string
	for _, n := range dirNames(t, snapshotsDir(dir, repoName)) {
		if strings.HasSuffix(n, "_"+plan) || strings.Contains(n, "_"+plan+"-") {
			out = append(out, n)
		}
	}
	return out
}

// TestPlansThroughTheMount defines a plan with mkdir and echo, edits it
// with tee, sed -i and cp (an invalid cp refused, the old definition
// kept), runs it by writing run, and finds one snapshot of it in each of
// its two repositories, a local one and one on MinIO sharing its chunker
// seed, both identical to the source.
func TestPlansThroughTheMount(t *testing.T) {
	requireRoot(t)
	a, src := smallRepo(t)
	b, _ := s3Env(t)
	// b was made by s3Env; a second S3 repository copies a's seed.
	bs := &env{t: t, repo: b.repo + "-seeded", password: a.password}
	bs.ok("init", "--chunker-from", a.repo)
	cfg := writeConfig(t, []planRepo{{name: "local", url: a.repo}, {name: "offsite", url: bs.repo}}, nil, nil)
	dir := mountDir(t)
	m := startMountFlags(t, dir, a.password, []string{"--config", cfg})
	plans := filepath.Join(dir, "plans")
	planDir := filepath.Join(plans, "home")

	tool(t, "", "mkdir", planDir)
	if got := dirNames(t, plans); !slices.Equal(got, []string{"home"}) {
		t.Fatalf("plans/ lists %v after mkdir", got)
	}
	if got := dirNames(t, planDir); !slices.Equal(got, []string{"log", "plan.json", "run", "status"}) {
		t.Fatalf("plans/home lists %v", got)
	}
	if s := readPlanStatus(t, dir, "home"); s.Defined {
		t.Fatalf("a new plan is defined already: %+v", s)
	}
	def := `{"sources": ["` + src + `"], "repos": ["local", "offsite"], "tags": ["first"]}`
	tool(t, "", "sh", "-c", "echo '"+def+"' > "+filepath.Join(planDir, "plan.json"))
	if s := readPlanStatus(t, dir, "home"); !s.Defined || s.DefinitionError != "" {
		t.Fatalf("after echo: %+v", s)
	}
	saved, err := os.ReadFile(cfg)
	if err != nil || !strings.Contains(string(saved), `"home"`) || !strings.Contains(string(saved), `"first"`) {
		t.Fatalf("the configuration file does not hold the plan: %v\n%s", err, saved)
	}

	// tee, then sed -i (temporary file renamed over plan.json).
	def2 := `{"sources": ["` + src + `"], "repos": ["local", "offsite"], "tags": ["second"]}`
	tee := exec.Command("tee", filepath.Join(planDir, "plan.json"))
	tee.Stdin = strings.NewReader(def2 + "\n")
	if out, err := tee.CombinedOutput(); err != nil {
		t.Fatalf("tee: %v: %s", err, out)
	}
	tool(t, "", "sed", "-i", "s/second/third/", filepath.Join(planDir, "plan.json"))
	got := tool(t, "", "cat", filepath.Join(planDir, "plan.json"))
	if !strings.Contains(got, `"third"`) || strings.Contains(got, `"second"`) {
		t.Fatalf("plan.json after sed -i:\n%s", got)
	}

	// An invalid definition: cp fails with EINVAL, status names the line
	// and column, the old definition stays.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{\n  \"sources\": [\""+src+"\"],\n  \"repos\": [\"local\"],\n  \"retention\": {\"keep_dayly\": 3}\n}\n"), 0o644)
	out, err := exec.Command("cp", bad, filepath.Join(planDir, "plan.json")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Invalid argument") {
		t.Fatalf("cp of an invalid plan: %v, output %q; want a failure with Invalid argument", err, out)
	}
	s := readPlanStatus(t, dir, "home")
	if !strings.Contains(s.DefinitionError, "line 4") || !strings.Contains(s.DefinitionError, "keep_dayly") {
		t.Fatalf("status definition_error %q, want the line and the field", s.DefinitionError)
	}
	if got2 := tool(t, "", "cat", filepath.Join(planDir, "plan.json")); got2 != got {
		t.Fatalf("plan.json changed by a refused definition:\n%s\nwas:\n%s", got2, got)
	}

	if r := tool(t, "", "cat", filepath.Join(planDir, "run")); r != "idle\n" {
		t.Fatalf("run reads %q before a run, want idle", r)
	}
	s = runPlanInMount(t, dir, "home")
	if s.LastRun.Result != "success" || len(s.LastRun.Repos) != 2 {
		t.Fatalf("run: %+v", *s.LastRun)
	}
	for _, rn := range []string{"local", "offsite"} {
		labels := planSnapshots(t, dir, rn, "home")
		if len(labels) != 1 {
			t.Fatalf("repos/%s has snapshots %v of plan home, want 1", rn, labels)
		}
		snap := filepath.Join(snapshotsDir(dir, rn), labels[0])
		if out, err := exec.Command("diff", "-r", "--no-dereference", src, snap+src).CombinedOutput(); err != nil {
			t.Fatalf("diff -r against the snapshot in %s: %v\n%s", rn, err, out)
		}
	}
	log := tool(t, "", "cat", filepath.Join(planDir, "log"))
	for _, want := range []string{`"event":"start"`, `"event":"snapshot"`, `"event":"done"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}

	tool(t, "", "rm", "-r", planDir)
	if got := dirNames(t, plans); len(got) != 0 {
		t.Fatalf("plans/ lists %v after rm -r", got)
	}
	if saved, _ := os.ReadFile(cfg); strings.Contains(string(saved), `"home"`) {
		t.Fatalf("the configuration file still holds the removed plan:\n%s", saved)
	}
	m.unmount()
}

// TestPlanFailuresAndHooks: a repository that cannot be opened is
// reported while the other gets its snapshot; a failing before hook
// cancels its run; after hooks see the plan, repository and snapshot.
func TestPlanFailuresAndHooks(t *testing.T) {
	requireRoot(t)
	a, src := smallRepo(t)
	notRepo := t.TempDir() // an empty directory: no repository
	hookOut := filepath.Join(t.TempDir(), "after.txt")
	plans := map[string]any{
		"partial": map[string]any{"sources": []string{src}, "repos": []string{"local", "broken"},
			"hooks": map[string]any{"after": []string{`echo "$CAIRN_PLAN $CAIRN_REPO $CAIRN_SNAPSHOT $CAIRN_STATUS" >> ` + hookOut}}},
		"guarded": map[string]any{"sources": []string{src}, "repos": []string{"local"},
			"hooks": map[string]any{"before": []string{"echo checking; exit 3"}}},
	}
	cfg := writeConfig(t, []planRepo{{name: "local", url: a.repo}, {name: "broken", url: notRepo}}, plans, nil)
	dir := mountDir(t)
	m := startMountFlags(t, dir, a.password, []string{"--config", cfg})

	s := runPlanInMount(t, dir, "partial")
	if s.LastRun.Result != "partial" {
		t.Fatalf("result %q, want partial: %+v", s.LastRun.Result, *s.LastRun)
	}
	for _, r := range s.LastRun.Repos {
		switch r.Repo {
		case "local":
			if !r.OK || r.Label == "" {
				t.Errorf("local: %+v, want its snapshot", r)
			}
		case "broken":
			if r.OK || r.Error == "" {
				t.Errorf("broken: %+v, want a failure with its reason", r)
			}
		}
	}
	if labels := planSnapshots(t, dir, "local", "partial"); len(labels) != 1 {
		t.Fatalf("local holds %v of plan partial, want one snapshot", labels)
	}
	hook, err := os.ReadFile(hookOut)
	label := planSnapshots(t, dir, "local", "partial")[0]
	if want := "partial local " + label + " success\n"; err != nil || string(hook) != want {
		t.Fatalf("after hook wrote %q (%v), want %q", hook, err, want)
	}

	s = runPlanInMount(t, dir, "guarded")
	if s.LastRun.Result != "failed" || !strings.Contains(s.LastRun.Error, "before hook") {
		t.Fatalf("guarded: %+v, want failed by its before hook", *s.LastRun)
	}
	if labels := planSnapshots(t, dir, "local", "guarded"); len(labels) != 0 {
		t.Fatalf("a cancelled run saved %v", labels)
	}
	if log := tool(t, "", "cat", filepath.Join(dir, "plans", "guarded", "log")); !strings.Contains(log, `"message":"checking"`) {
		t.Errorf("the hook's output is not in the log:\n%s", log)
	}
	m.unmount()
}

// TestPlansShareARepositoryAndRetention: two plans scheduled every two
// seconds on one repository both succeed, run after run; one keeps its
// last two snapshots, and exactly those remain.
func TestPlansShareARepositoryAndRetention(t *testing.T) {
	requireRoot(t)
	a, src := smallRepo(t)
	plans := map[string]any{
		"one": map[string]any{"sources": []string{src}, "repos": []string{"local"}, "schedule": "@every 2s",
			"retention": map[string]any{"keep_last": 2}},
		"two": map[string]any{"sources": []string{src}, "repos": []string{"local"}, "schedule": "@every 2s"},
	}
	cfg := writeConfig(t, []planRepo{{name: "local", url: a.repo}}, plans, nil)
	dir := mountDir(t)
	m := startMountFlags(t, dir, a.password, []string{"--config", cfg})
	deadline := time.Now().Add(planWait)
	for {
		one, two := planSnapshots(t, dir, "local", "one"), planSnapshots(t, dir, "local", "two")
		if len(two) >= 3 {
			if len(one) != 2 {
				t.Fatalf("plan one keeps %v, want its last 2 snapshots", one)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: plan one %v, plan two %v", planWait, one, two)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range []string{"one", "two"} {
		s := readPlanStatus(t, dir, p)
		if s.LastRun == nil || s.LastRun.Result != "success" || s.LastError != "" {
			t.Errorf("plan %s: %+v", p, s)
		}
		if s.NextRun == "" {
			t.Errorf("plan %s has no next_run in its status", p)
		}
	}
	m.unmount()
	// The CLI sees the same: the newest two of plan one remain.
	var one []string
	for _, l := range snapshotLabels(a) {
		if strings.HasSuffix(l, "_one") || strings.Contains(l, "_one-") {
			one = append(one, l)
		}
	}
	if len(one) != 2 {
		t.Fatalf("after unmounting, plan one has %v", one)
	}
}

// TestBackupPlanCLI runs a plan with cairn backup --plan: exit 0 with a
// snapshot in each repository, exit 1 naming the repository that failed.
func TestBackupPlanCLI(t *testing.T) {
	requireRoot(t)
	a, src := smallRepo(t)
	b := newEnv(t)
	plans := map[string]any{
		"both": map[string]any{"sources": []string{src}, "repos": []string{"a", "b"}},
		"half": map[string]any{"sources": []string{src}, "repos": []string{"a", "gone"}},
	}
	cfg := writeConfig(t, []planRepo{{name: "a", url: a.repo}, {name: "b", url: b.repo}, {name: "gone", url: filepath.Join(t.TempDir(), "none")}}, plans, nil)
	envv := []string{"CAIRN_PASSWORD=" + a.password}
	r := runCairn(t, envv, "backup", "--plan", "both", "--config", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("backup --plan both: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	events := jsonLines(t, r.stdout)
	var summaries int
	for _, ev := range events {
		if ev["type"] == "summary" && ev["ok"] == true {
			summaries++
		}
	}
	if summaries != 2 {
		t.Fatalf("want 2 successful summaries, got:\n%s", r.stdout)
	}
	for _, e := range []*env{a, b} {
		labels := snapshotLabels(e)
		if !strings.HasSuffix(labels[len(labels)-1], "_both") {
			t.Fatalf("%s: snapshots %v", e.repo, labels)
		}
	}
	r = runCairn(t, envv, "backup", "--plan", "half", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "gone") {
		t.Fatalf("backup --plan half: exit %d, want 1 naming the repository\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if labels := snapshotLabels(a); !strings.HasSuffix(labels[len(labels)-1], "_half") {
		t.Fatalf("a has no snapshot of half: %v", labels)
	}
}

// TestPlanHookEnvironmentAndLogPrivacy: a hook that prints its
// environment shows, in plans/<p>/log read through the mount, the run's
// variables and what the plan lists in hooks.env, and none of the
// passwords and credentials the mount holds (CAIRN_PASSWORD, AWS keys,
// the variables a repository names). With --allow-other the log is the
// mounting user's alone unless the plan sets hooks.public_output;
// status stays readable.
func TestPlanHookEnvironmentAndLogPrivacy(t *testing.T) {
	requireRoot(t)
	a, src := smallRepo(t)
	vault := &env{t: t, repo: filepath.Join(t.TempDir(), "vault"), password: "vault-password-3f9a"}
	vault.ok("init")
	secrets := map[string]string{
		"CAIRN_PASSWORD":        a.password, // mountEnv sets it
		"AWS_ACCESS_KEY_ID":     "it-aws-key-id-7c21",
		"AWS_SECRET_ACCESS_KEY": "it-aws-secret-5d0e",
		"IT_VAULT_PASS":         vault.password,
		"IT_KEY_ID":             "it-key-id-91b7",
		"IT_SECRET":             "it-secret-c4e8",
	}
	for k, v := range secrets {
		if k != "CAIRN_PASSWORD" {
			t.Setenv(k, v) // the mount's environment is ours (mountEnv)
		}
	}
	t.Setenv("IT_VISIBLE", "it-visible-value")
	extra := map[string]any{"vault": map[string]any{"url": vault.repo, "password_env": "IT_VAULT_PASS",
		"access_key_id_env": "IT_KEY_ID", "secret_access_key_env": "IT_SECRET"}}
	plans := map[string]any{
		"private": map[string]any{"sources": []string{src}, "repos": []string{"local"},
			"hooks": map[string]any{"before": []string{"env"}, "env": []string{"IT_VISIBLE", "IT_SET=set-by-plan"}}},
		"public": map[string]any{"sources": []string{src}, "repos": []string{"local"},
			"hooks": map[string]any{"before": []string{"echo public-hook-output"}, "public_output": true}},
	}
	cfg := writeConfig(t, []planRepo{{name: "local", url: a.repo}}, plans, extra)
	dir := mountDir(t)
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil { // nobody may reach the mount
		t.Fatal(err)
	}
	m := startMountFlags(t, dir, a.password, []string{"--config", cfg, "--allow-other"})

	for _, p := range []string{"private", "public"} {
		if s := runPlanInMount(t, dir, p); s.LastRun.Result != "success" {
			t.Fatalf("plan %s: %+v", p, *s.LastRun)
		}
	}
	log := tool(t, "", "cat", filepath.Join(dir, "plans", "private", "log"))
	for name, v := range secrets {
		if strings.Contains(log, v) || strings.Contains(log, `"message":"`+name+`=`) {
			t.Errorf("plans/private/log shows $%s to the hook:\n%s", name, log)
		}
	}
	for _, want := range []string{`"message":"CAIRN_PLAN=private"`, `"message":"CAIRN_REPO=local"`,
		`"message":"IT_VISIBLE=it-visible-value"`, `"message":"IT_SET=set-by-plan"`} {
		if !strings.Contains(log, want) {
			t.Errorf("plans/private/log lacks %s:\n%s", want, log)
		}
	}

	// A plan naming a credential variable in hooks.env is refused.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"sources": ["`+src+`"], "repos": ["local"], "hooks": {"env": ["IT_SECRET"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cp", bad, filepath.Join(dir, "plans", "private", "plan.json")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Invalid argument") {
		t.Errorf("cp of a plan with hooks.env [IT_SECRET]: %v, %q; want Invalid argument", err, out)
	}
	if s := readPlanStatus(t, dir, "private"); !strings.Contains(s.DefinitionError, `hooks.env[0]: IT_SECRET is the secret_access_key_env of repository "vault"`) {
		t.Errorf("status definition_error %q, want the refusal of IT_SECRET", s.DefinitionError)
	}

	asNobody := func(args ...string) (string, error) {
		cmd := exec.Command("cat", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asNobody(filepath.Join(dir, "plans", "private", "log")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody reads plans/private/log: %v, %q; want Permission denied", err, out)
	}
	if out, err := asNobody(filepath.Join(dir, "plans", "private", "status")); err != nil || !strings.Contains(out, `"plan": "private"`) {
		t.Errorf("nobody reads plans/private/status: %v, %q", err, out)
	}
	if out, err := asNobody(filepath.Join(dir, "plans", "public", "log")); err != nil || !strings.Contains(out, "public-hook-output") {
		t.Errorf("nobody reads plans/public/log of a plan with public_output: %v, %q", err, out)
	}
	m.unmount()
}
