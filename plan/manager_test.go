package plan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// memRepos serves repositories on mem backends, by name; names listed in
// broken fail to open.
type memRepos struct {
	mu     sync.Mutex
	repos  map[string]*repo.Repository
	broken map[string]bool
	opens  int
}

func newMemRepos(t *testing.T, names ...string) *memRepos {
	t.Helper()
	m := &memRepos{repos: map[string]*repo.Repository{}, broken: map[string]bool{}}
	for _, n := range names {
		r, err := repo.Init(t.Context(), mem.New(), "pw", repo.InitOptions{KDF: repo.TestKDF, PackSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		m.repos[n] = r
	}
	return m
}

var errUnreachable = errors.New("unreachable")

func (m *memRepos) Acquire(ctx context.Context, name string, def RepoDef) (*repo.Repository, context.Context, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opens++
	if m.broken[name] {
		return nil, nil, nil, fmt.Errorf("open %s: %w", name, errUnreachable)
	}
	r, ok := m.repos[name]
	if !ok {
		return nil, nil, nil, fmt.Errorf("no repository %s", name)
	}
	return r, context.WithoutCancel(ctx), func() {}, nil
}

func (m *memRepos) snapshots(t *testing.T, name string) []*repo.Snapshot {
	t.Helper()
	snaps, err := m.repos[name].Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snaps
}

// testConfig writes a configuration with repositories a, b and broken
// and the plans given, and returns its path.
func testConfig(t *testing.T, plans map[string]Plan) string {
	t.Helper()
	c := &Config{Repos: map[string]RepoDef{
		"a": {URL: "/srv/a"}, "b": {URL: "/srv/b"}, "broken": {URL: "/srv/broken"},
	}, Plans: plans}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func sourceDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", 1000*i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newTestManager(t *testing.T, path string, repos Repos, opts ManagerOptions) *Manager {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	m, err := NewManager(ctx, path, repos, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); m.Wait() })
	return m
}

func TestManagerDefinitions(t *testing.T) {
	path := testConfig(t, nil)
	m := newTestManager(t, path, newMemRepos(t), ManagerOptions{})
	ctx := t.Context()

	if err := m.Create("home"); err != nil {
		t.Fatal(err)
	}
	if err := m.Create("home"); !errors.Is(err, ErrExist) {
		t.Fatalf("second create: %v, want ErrExist", err)
	}
	for _, bad := range []string{"bad name", ".hidden", "caf\u00e9"} {
		if err := m.Create(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := m.Create("a/b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create a/b: %v, want ErrInvalid", err)
	}
	if got := m.Names(); len(got) != 1 || got[0] != "home" {
		t.Fatalf("names %v", got)
	}
	def, err := m.Definition("home")
	if err != nil || string(def) != planTemplate {
		t.Fatalf("definition of a new plan: %q %v", def, err)
	}
	if err := m.Run("home"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("run of a plan without definition: %v, want ErrInvalid", err)
	}

	good := `{"sources": ["/home/alice"], "repos": ["a"]}`
	if err := m.Define(ctx, "home", []byte(good)); err != nil {
		t.Fatal(err)
	}
	bad := "{\n  \"sources\": [\"/home/alice\"],\n  \"repos\": [\"nowhere\"]\n}\n"
	err = m.Define(ctx, "home", []byte(bad))
	var perr *Error
	if !errors.As(err, &perr) || perr.Line != 3 || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("invalid definition: %v, want an *Error at line 3 naming the repository", err)
	}
	st, _ := m.Status("home")
	if !strings.Contains(string(st), "nowhere") {
		t.Fatalf("status does not name the definition error:\n%s", st)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Plans["home"]; len(p.Repos) != 1 || p.Repos[0] != "a" {
		t.Fatalf("saved plan %+v: the refused definition must not replace the old one", p)
	}

	// A hand edit of the file shows up.
	cfg.Plans["edited"] = Plan{Sources: []string{"/etc"}, Repos: []string{"b"}}
	time.Sleep(10 * time.Millisecond) // a distinct mtime even on coarse clocks
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	if got := m.Names(); strings.Join(got, ",") != "edited,home" {
		t.Fatalf("names after a hand edit: %v", got)
	}
	if err := m.Remove(ctx, "edited"); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := Load(path); len(cfg.Plans) != 1 {
		t.Fatalf("after remove the file holds %v", cfg.Plans)
	}
	if _, err := m.Definition("edited"); !errors.Is(err, ErrNoPlan) {
		t.Fatalf("definition of a removed plan: %v", err)
	}
}

func waitResult(t *testing.T, m *Manager, name string) *RunResult {
	t.Helper()
	res, err := m.RunWait(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestManagerRunIntoTwoRepositoriesOneFailing(t *testing.T) {
	src := sourceDir(t)
	out := filepath.Join(t.TempDir(), "hooks.txt")
	path := testConfig(t, map[string]Plan{
		"home": {Sources: []string{src}, Repos: []string{"a", "b", "broken"}, Tags: []string{"t"},
			Hooks: Hooks{
				After:   []string{`echo "after $CAIRN_REPO $CAIRN_SNAPSHOT $CAIRN_STATUS" >> ` + out},
				OnError: []string{`echo "error $CAIRN_REPO $CAIRN_STATUS" >> ` + out},
			}},
	})
	repos := newMemRepos(t, "a", "b")
	repos.broken["broken"] = true
	m := newTestManager(t, path, repos, ManagerOptions{Host: "h"})
	res := waitResult(t, m, "home")
	if res.Result != ResultPartial {
		t.Fatalf("result %q, want partial: %+v", res.Result, res)
	}
	var labels []string
	for _, r := range res.Repos {
		switch r.Repo {
		case "a", "b":
			if !r.OK || r.Files != 5 {
				t.Errorf("%s: %+v", r.Repo, r)
			}
			labels = append(labels, r.Label)
		case "broken":
			if r.OK || !strings.Contains(r.Error, "unreachable") {
				t.Errorf("broken: %+v", r)
			}
		}
	}
	for _, n := range []string{"a", "b"} {
		snaps := repos.snapshots(t, n)
		if len(snaps) != 1 || snaps[0].Plan != "home" || snaps[0].Host != "h" || !strings.HasSuffix(snaps[0].Label, "_home") {
			t.Fatalf("%s: snapshots %+v", n, snaps)
		}
	}
	hooks, _ := os.ReadFile(out)
	want := "after a " + labels[0] + " success\nafter b " + labels[1] + " success\nerror broken failed\n"
	if string(hooks) != want {
		t.Fatalf("hooks wrote\n%s\nwant\n%s", hooks, want)
	}
	log, _ := m.Log("home")
	for _, w := range []string{`"event":"repo_error"`, `"event":"snapshot"`, `"event":"done"`} {
		if !strings.Contains(string(log), w) {
			t.Errorf("log lacks %s:\n%s", w, log)
		}
	}

	// The second run takes the first as its parent: nothing is read again.
	res = waitResult(t, m, "home")
	for _, r := range res.Repos {
		if r.OK && r.Unchanged != 5 {
			t.Errorf("%s: second run %+v, want every file unchanged", r.Repo, r)
		}
	}
}

func TestManagerBeforeHookCancels(t *testing.T) {
	src := sourceDir(t)
	path := testConfig(t, map[string]Plan{
		"home": {Sources: []string{src}, Repos: []string{"a"},
			Hooks: Hooks{Before: []string{"echo no; exit 2"}}},
		"slow": {Sources: []string{src}, Repos: []string{"a"},
			Hooks: Hooks{Before: []string{"sleep 30"}, Timeout: "200ms"}},
	})
	repos := newMemRepos(t, "a")
	m := newTestManager(t, path, repos, ManagerOptions{})
	for _, name := range []string{"home", "slow"} {
		res := waitResult(t, m, name)
		if res.Result != ResultFailed || !strings.Contains(res.Error, "before hook") {
			t.Fatalf("%s: %+v, want failed by the before hook", name, res)
		}
	}
	if n := len(repos.snapshots(t, "a")); n != 0 {
		t.Fatalf("%d snapshots after cancelled runs", n)
	}
	if repos.opens != 0 {
		t.Fatalf("repositories opened %d times for cancelled runs", repos.opens)
	}
	log, _ := m.Log("home")
	if !strings.Contains(string(log), `"message":"no"`) {
		t.Fatalf("hook output not logged:\n%s", log)
	}
	log, _ = m.Log("slow")
	if !strings.Contains(string(log), "timed out") {
		t.Fatalf("timeout not logged:\n%s", log)
	}
}

func TestManagerRetentionAfterRun(t *testing.T) {
	src := sourceDir(t)
	path := testConfig(t, map[string]Plan{
		"home":  {Sources: []string{src}, Repos: []string{"a"}, Retention: Retention{KeepLast: 2}},
		"other": {Sources: []string{src}, Repos: []string{"a"}},
	})
	repos := newMemRepos(t, "a")
	// The real clock: retention keeps snapshots from the future, and
	// snapshots record when their backup ran.
	m := newTestManager(t, path, repos, ManagerOptions{Host: "h"})
	waitResult(t, m, "other")
	var labels []string
	for range 4 {
		res := waitResult(t, m, "home")
		if res.Result != ResultSuccess {
			t.Fatalf("%+v", res)
		}
		labels = append(labels, res.Repos[0].Label)
	}
	var got []string
	for _, s := range repos.snapshots(t, "a") {
		got = append(got, s.Label)
	}
	if len(got) != 3 || got[1] != labels[2] || got[2] != labels[3] || !strings.Contains(got[0], "_other") {
		t.Fatalf("snapshots %v; want other's and the last two of home %v", got, labels[2:])
	}
}

func TestSchedulerRunsDuePlansOnce(t *testing.T) {
	src := sourceDir(t)
	path := testConfig(t, map[string]Plan{
		"a": {Sources: []string{src}, Repos: []string{"a"}, Schedule: "0 4 * * *"},
		"b": {Sources: []string{src}, Repos: []string{"a"}, Schedule: "0 4 * * *"},
		"c": {Sources: []string{src}, Repos: []string{"a"}},
	})
	repos := newMemRepos(t, "a")
	var mu sync.Mutex
	now := time.Date(2026, 11, 21, 3, 59, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	m := newTestManager(t, path, repos, ManagerOptions{Now: clock})
	m.scheduleOnce()
	st, _ := m.Status("a")
	if !strings.Contains(string(st), `"next_run": "2026-11-21T04:00:00Z"`) {
		t.Fatalf("status before 4 am:\n%s", st)
	}
	set(now.Add(90 * time.Second))
	m.scheduleOnce()
	m.scheduleOnce() // the same minute again: no second start
	m.Wait()
	snaps := repos.snapshots(t, "a")
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want one of each scheduled plan", len(snaps))
	}
	st, _ = m.Status("a")
	if !strings.Contains(string(st), `"next_run": "2026-11-22T04:00:00Z"`) || !strings.Contains(string(st), `"trigger": "schedule"`) {
		t.Fatalf("status after the run:\n%s", st)
	}
}
