package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
)

func TestRepoPassword(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("from file\r\nsecond line\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	t.Setenv("CAIRN_TEST_PW", "from env")
	t.Setenv("CAIRN_TEST_UNSET", "")
	t.Setenv("CAIRN_PASSWORD_FILE", "")
	t.Setenv("CAIRN_PASSWORD", "global")
	g := &globalFlags{}
	for _, tc := range []struct {
		def  plan.RepoDef
		want string
		err  string
	}{
		{plan.RepoDef{PasswordFile: filepath.Join(dir, "pw")}, "from file", ""},
		{plan.RepoDef{PasswordFile: "~/pw"}, "from file", ""},
		{plan.RepoDef{PasswordFile: filepath.Join(dir, "empty")}, "", "is empty"},
		{plan.RepoDef{PasswordFile: filepath.Join(dir, "missing")}, "", "password_file"},
		{plan.RepoDef{PasswordEnv: "CAIRN_TEST_PW"}, "from env", ""},
		{plan.RepoDef{PasswordEnv: "CAIRN_TEST_UNSET"}, "", "$CAIRN_TEST_UNSET is not set"},
		{plan.RepoDef{PasswordCommand: "printf 'from command\\nmore'"}, "from command", ""},
		{plan.RepoDef{PasswordCommand: "true"}, "", "printed nothing"},
		{plan.RepoDef{PasswordCommand: "printf 'sec%s' ret; exit 3"}, "", "exit status 3"},
		{plan.RepoDef{}, "global", ""}, // the command line's sources
	} {
		def := tc.def
		got, err := repoPassword(t.Context(), g, repoTarget{name: "r", url: "/r", def: &def})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: %q, %v; want error %q", tc.def, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the command's output: %v", err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.def, got, err, tc.want)
		}
	}
}

func TestResolveRepo(t *testing.T) {
	cfg := &plan.Config{Repos: map[string]plan.RepoDef{
		"local":   {URL: "/srv/backup"},
		"offsite": {URL: "s3://h/b", SettleTime: "10s"},
	}}
	if tg := resolveRepo(cfg, "local"); tg.def == nil || tg.url != "/srv/backup" || tg.name != "local" {
		t.Fatalf("%+v", tg)
	}
	for _, arg := range []string{"./local", "/srv/backup", "nope", "s3://h/b"} {
		if tg := resolveRepo(cfg, arg); tg.def != nil || tg.url != arg {
			t.Fatalf("%s: %+v", arg, tg)
		}
	}
	if tg := resolveRepo(nil, "local"); tg.def != nil {
		t.Fatal(tg)
	}
	for arg, want := range map[string]time.Duration{"local": 0, "offsite": 10 * time.Second, "/x": 0, "s3://h/other": defaultRemoteSettle} {
		if d, err := resolveRepo(cfg, arg).settle(); err != nil || d != want {
			t.Errorf("settle of %s: %v %v, want %v", arg, d, err, want)
		}
	}
	if s := resolveRepo(cfg, "local").String(); s != "local (/srv/backup)" {
		t.Fatal(s)
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
		fields, err := parseGroupBy(by)
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
	if _, err := parseGroupBy("host,colour"); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFlagError(t *testing.T) {
	for pol, want := range map[*plan.Retention]string{
		{KeepWeekly: -3}:              "--keep-weekly: -3 is negative",
		{KeepTags: []string{"", "x"}}: "--keep-tag: empty tag",
		{KeepWithin: "soon"}:          `--keep-within: invalid duration "soon"`,
	} {
		err := flagError(pol.Validate())
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", *pol, err, want)
		}
	}
	other := errors.New("other")
	if flagError(other) != other {
		t.Fatal("a plain error changed")
	}
}
