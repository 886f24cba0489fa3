package plan

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

func TestParent(t *testing.T) {
	here, _ := os.Hostname()
	wd, _ := os.Getwd()
	mk := func(label, host, plan string, paths ...string) *repo.Snapshot {
		return &repo.Snapshot{Label: label, Host: host, Plan: plan, Paths: paths}
	}
	snaps := []*repo.Snapshot{ // oldest first
		mk("old-home", "h", "home", "/home"),
		mk("adhoc", "h", "", "/a", filepath.Join(wd, "b")),
		mk("home", "h", "home", "/home"),
		mk("other-host", "other", "home", "/home"),
		mk("here", here, "", "/a"),
		mk("adhoc-plan-made", "h", "etc", "/etc"),
	}
	for _, tc := range []struct {
		host, plan string
		paths      []string
		want       string
	}{
		{"h", "home", nil, "home"},
		{"other", "home", nil, "other-host"},
		{"h", "", []string{"b", "/a", "/a/"}, "adhoc"}, // made absolute, sorted, compacted
		{"h", "", []string{"/a"}, ""},
		{"", "", []string{"/a"}, "here"}, // this host
		{"h", "", []string{"/etc"}, "adhoc-plan-made"},
		{"h", "nope", nil, ""},
	} {
		got := ""
		if p := Parent(snaps, tc.host, tc.plan, tc.paths); p != nil {
			got = p.Label
		}
		if got != tc.want {
			t.Errorf("Parent(%q, %q, %q) = %q, want %q", tc.host, tc.plan, tc.paths, got, tc.want)
		}
	}
}

func TestGroupSnapshots(t *testing.T) {
	mk := func(host, planName string, paths ...string) *repo.Snapshot {
		return &repo.Snapshot{Host: host, Plan: planName, Paths: paths}
	}
	snaps := []*repo.Snapshot{
		mk("b", "", "/x"), mk("a", "home", "/x"), mk("a", "", "/x"), mk("a", "", "/y", "/x"), mk("a", "", "/x", "/y"),
	}
	for by, want := range map[string][]int{
		"host,plan,paths": {1, 2, 1, 1}, // a /x; a /x, /y; a home /x; b /x
		"host":            {4, 1},
		"":                {5},
		"plan":            {4, 1},
	} {
		fields, err := ParseGroupBy(by)
		if err != nil {
			t.Fatal(err)
		}
		groups := groupSnapshots(snaps, fields)
		var sizes []int
		for _, g := range groups {
			sizes = append(sizes, len(g.snaps))
		}
		if !equalInts(sizes, want) {
			var descs []string
			for _, g := range groups {
				descs = append(descs, g.desc)
			}
			t.Errorf("group by %q: sizes %v (%q), want %v", by, sizes, descs, want)
		}
	}
	if _, err := ParseGroupBy("host,colour"); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func equalInts(a, b []int) bool { return slices.Equal(a, b) }

// TestForget: the policy applies to the snapshots the options select,
// group by group; a dry run removes nothing, a real one exactly those
// not kept.
func TestForget(t *testing.T) {
	ctx := t.Context()
	r, err := repo.Init(ctx, mem.New(), "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	save := func(label, host, plan string, age time.Duration) {
		if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Label: label, Host: host, Plan: plan, Time: now.Add(-age), Paths: []string{"/x"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, age := range []time.Duration{4 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour} {
		save("a-home-"+string(rune('0'+i)), "a", "home", age)
		save("b-home-"+string(rune('0'+i)), "b", "home", age)
	}
	save("a-etc", "a", "etc", 5*time.Hour)
	labels := func(ss []*repo.Snapshot) []string {
		var l []string
		for _, s := range ss {
			l = append(l, s.Label)
		}
		slices.Sort(l)
		return l
	}
	pol := Retention{KeepLast: 2}

	res, err := Forget(ctx, r, pol, ForgetOptions{Plan: "home", GroupBy: []string{"host"}, Now: now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshots != 8 || len(res.Groups) != 2 || res.Groups[0].Desc != "host a" || len(res.Groups[0].Keep) != 2 {
		t.Fatalf("dry run: %+v", res)
	}
	if got := labels(res.Forgotten); !slices.Equal(got, []string{"a-home-0", "a-home-1", "b-home-0", "b-home-1"}) {
		t.Fatalf("dry run would forget %v", got)
	}
	if snaps, _ := r.Snapshots(ctx); len(snaps) != 9 {
		t.Fatalf("a dry run removed snapshots: %d left", len(snaps))
	}

	res, err = Forget(ctx, r, pol, ForgetOptions{Plan: "home", Host: "a", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if got := labels(res.Forgotten); res.Snapshots != 4 || len(res.Groups) != 1 || !slices.Equal(got, []string{"a-home-0", "a-home-1"}) {
		t.Fatalf("forgot %v of %d in %d groups", got, res.Snapshots, len(res.Groups))
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := labels(snaps); !slices.Equal(got, []string{"a-etc", "a-home-2", "a-home-3", "b-home-0", "b-home-1", "b-home-2", "b-home-3"}) {
		t.Fatalf("left %v", got)
	}
	if res, err := Forget(ctx, r, Retention{}, ForgetOptions{Now: now}); err != nil || len(res.Forgotten) != 0 || res.Snapshots != 7 {
		t.Fatalf("an empty policy: %+v, %v", res, err)
	}
}
