package mount

import (
	"os"
	"testing"

	"github.com/cairn-backup/cairn/plan"
)

func TestRepos(t *testing.T) {
	cfg := &plan.Config{Repos: map[string]plan.RepoDef{"z": {URL: "/srv/z"}, "a": {URL: "/srv/a"}}}
	got := Repos(cfg, []string{"/data/backup/", "z", "s3://h/bucket/team", "rel/dir"})
	want := []struct {
		name, url      string
		bare, optional bool
	}{
		{"a", "/srv/a", false, true},
		{"z", "/srv/z", false, true},
		{"backup", "/data/backup/", true, false},
		{"z", "/srv/z", false, false}, // --repo NAME of a configured repository
		{"team", "s3://h/bucket/team", true, false},
		{"dir", "rel/dir", true, false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d repositories: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Target.Def.URL != w.url || g.Target.Bare != w.bare || g.Optional != w.optional {
			t.Errorf("%d: %+v, want %+v", i, g, w)
		}
	}
	if got := Repos(nil, []string{"a"}); len(got) != 1 || !got[0].Target.Bare || got[0].Name != "a" {
		t.Errorf("without a configuration: %+v", got)
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDir(dir); err != nil {
		t.Fatal(err)
	}
	file := dir + "/f"
	os.WriteFile(file, nil, 0o600)
	for _, bad := range []string{file, dir + "/missing", "/proc"} {
		if err := CheckDir(bad); err == nil {
			t.Errorf("CheckDir(%s) accepted", bad)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/with\040space\011tab`); got != "/mnt/with space\ttab" {
		t.Fatalf("got %q", got)
	}
	if got := unescapeMount(`/plain`); got != "/plain" {
		t.Fatalf("got %q", got)
	}
}
