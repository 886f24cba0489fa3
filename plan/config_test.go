package plan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const designExample = `{
  "repos": {
    "local":   {"url": "/srv/backup", "password_file": "/etc/cairn/local.pass"},
    "offsite": {"url": "s3://s3.example.com/backups/alice",
                "password_command": "pass show cairn",
                "access_key_id_env": "OFFSITE_KEY", "secret_access_key_env": "OFFSITE_SECRET",
                "settle_time": "10s"}
  },
  "plans": {"home": {
    "sources": ["/home/alice"],
    "exclude": ["**/.cache", "*.tmp"],
    "repos": ["local", "offsite"],
    "schedule": "0 4 * * *",
    "jitter": "10m",
    "retention": {"keep_last": 7, "keep_daily": 14, "keep_weekly": 8,
                  "keep_monthly": 12, "keep_yearly": 3, "keep_within": "48h",
                  "keep_tags": ["keep"]},
    "hooks": {"before": ["echo before"], "after": ["echo after"], "on_error": ["echo error"], "timeout": "5m"},
    "tags": ["laptop"],
    "one_file_system": true
  }}
}
`

func TestParseDesignExample(t *testing.T) {
	c, err := Parse([]byte(designExample))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Repos: map[string]RepoDef{
			"local": {URL: "/srv/backup", PasswordFile: "/etc/cairn/local.pass"},
			"offsite": {URL: "s3://s3.example.com/backups/alice", PasswordCommand: "pass show cairn",
				AccessKeyIDEnv: "OFFSITE_KEY", SecretAccessKeyEnv: "OFFSITE_SECRET", SettleTime: "10s"},
		},
		Plans: map[string]Plan{"home": {
			Sources:  []string{"/home/alice"},
			Exclude:  []string{"**/.cache", "*.tmp"},
			Repos:    []string{"local", "offsite"},
			Schedule: "0 4 * * *",
			Jitter:   "10m",
			Retention: Retention{KeepLast: 7, KeepDaily: 14, KeepWeekly: 8, KeepMonthly: 12, KeepYearly: 3,
				KeepWithin: "48h", KeepTags: []string{"keep"}},
			Hooks:         Hooks{Before: []string{"echo before"}, After: []string{"echo after"}, OnError: []string{"echo error"}, Timeout: "5m"},
			Tags:          []string{"laptop"},
			OneFileSystem: true,
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

// doc builds a configuration with one repository "local" and one plan
// "home" whose body is given, one field per line from line 4 on.
func doc(planBody string) string {
	return "{\n" +
		`  "repos": {"local": {"url": "/srv/backup"}},` + "\n" +
		`  "plans": {"home": {` + "\n" +
		planBody + "\n" +
		"  }}\n}\n"
}

const okPlan = `    "sources": ["/home/alice"],
    "repos": ["local"]`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		text      string
		want      string // substring of the message
		line, col int
	}{
		{"unknown field", doc(okPlan + ",\n    \"retention\": {\"keep_last\": 1,\n      \"keep_dayly\": 7}"),
			`plans.home.retention.keep_dayly: unknown field (did you mean "keep_daily"?)`, 7, 7},
		{"unknown top-level field", "{\"repo\": {}}", `repo: unknown field (did you mean "repos"?)`, 1, 2},
		{"unknown field far from any", doc(okPlan + ",\n    \"colour\": \"blue\""), "plans.home.colour: unknown field", 6, 5},
		{"missing comma", "{\n  \"repos\": {}\n  \"plans\": {}\n}", "syntax error: invalid character '\"' after object key:value pair", 3, 3},
		{"trailing comma", "{\n  \"repos\": {},\n}", "looking for beginning of object key string", 3, 1},
		{"unfinished", "{\n  \"repos\": {", "unexpected end of input", 2, 13},
		{"unfinished string", "{\"repos", "unexpected end of input", 1, 8},
		{"bad literal", "{\n\"plans\": tru }", "in literal true", 2, 13},
		{"text after the object", "{}\n{}", "invalid character '{' after top-level value", 2, 1},
		{"not an object", "[1, 2]", "want a JSON object, got an array", 1, 1},
		{"empty", "  \n", "the document is empty", 2, 1},
		{"duplicate field", doc(okPlan + ",\n    \"sources\": [\"/etc\"]"), `field "sources" appears twice`, 6, 5},
		{"string for int", doc(okPlan + ",\n    \"retention\": {\"keep_last\": \"7\"}"),
			"plans.home.retention.keep_last: want a whole number, got a string", 6, 32},
		{"fraction", doc(okPlan + ",\n    \"retention\": {\"keep_last\": 1.5}"),
			"plans.home.retention.keep_last: want a whole number, got 1.5", 6, 32},
		{"negative keep", doc(okPlan + ",\n    \"retention\": {\"keep_daily\": -1}"),
			"plans.home.retention.keep_daily: -1 is negative", 6, 33},
		{"null", doc(okPlan + ",\n    \"exclude\": null"), "plans.home.exclude: null is not allowed", 6, 16},
		{"string for list", doc(okPlan + ",\n    \"tags\": \"laptop\""), "plans.home.tags: want an array, got a string", 6, 13},
		{"bad cron", doc(okPlan + ",\n    \"schedule\": \"61 * * * *\""),
			`plans.home.schedule: invalid cron expression "61 * * * *": `, 6, 17},
		{"cron with four fields", doc(okPlan + ",\n    \"schedule\": \"0 4 * *\""),
			`plans.home.schedule: invalid cron expression "0 4 * *"`, 6, 17},
		{"undefined repository", doc("    \"sources\": [\"/home/alice\"],\n    \"repos\": [\"local\", \"offsite\"]"),
			`plans.home.repos[1]: repository "offsite" is not defined`, 5, 24},
		{"no repositories", doc("    \"sources\": [\"/home/alice\"],\n    \"repos\": []"),
			"plans.home.repos: a plan needs at least one repository", 5, 14},
		{"empty sources", doc("    \"sources\": [],\n    \"repos\": [\"local\"]"),
			"plans.home.sources: a plan needs at least one source", 4, 16},
		{"missing sources", doc("    \"repos\": [\"local\"]"),
			"plans.home.sources: a plan needs at least one source", 3, 13},
		{"relative source", doc("    \"sources\": [\"/etc\", \"home/alice\"],\n    \"repos\": [\"local\"]"),
			`plans.home.sources[1]: "home/alice" is not an absolute path`, 4, 25},
		{"bad glob", doc(okPlan + ",\n    \"exclude\": [\"*.tmp\", \"[a-\"]"),
			`plans.home.exclude[1]: invalid exclude pattern "[a-"`, 6, 26},
		{"bad jitter", doc(okPlan + ",\n    \"jitter\": \"10\""), `plans.home.jitter: invalid duration "10": missing unit`, 6, 15},
		{"bad keep_within", doc(okPlan + ",\n    \"retention\": {\"keep_within\": \"2x\"}"),
			`plans.home.retention.keep_within: invalid duration "2x"`, 6, 34},
		{"negative duration", doc(okPlan + ",\n    \"hooks\": {\"timeout\": \"-5m\"}"),
			`plans.home.hooks.timeout: invalid duration "-5m": negative`, 6, 26},
		{"plan name with slash", "{\"plans\": {\"a/b\": {}}}", `plans["a/b"]: plan name "a/b" may hold only letters, digits, '-', '_' and '.'`, 1, 12},
		{"plan name with space", "{\"plans\": {\"bad name\": {}}}", `plans["bad name"]: plan name "bad name" may hold only`, 1, 12},
		{"plan name dot-dot", "{\"plans\": {\"..\": {}}}", `plans[".."]: plan name ".." starts with '.'`, 1, 12},
		{"two password sources", `{"repos": {"r": {"url": "/r", "password_env": "P", "password_command": "cat /p"}}}`,
			"repos.r.password_command: give only one of password_env and password_command", 1, 72},
		{"relative repository path", `{"repos": {"r": {"url": "backup"}}}`, `repos.r.url: "backup" is not an absolute path`, 1, 25},
		{"password in URL", `{"repos": {"r": {"url": "s3://key:secret@host/bucket"}}}`, "repos.r.url: s3://key:xxxxx@host/bucket holds a password", 1, 25},
		{"unknown scheme", `{"repos": {"r": {"url": "ftp://host/x"}}}`, `unsupported scheme "ftp"`, 1, 25},
		{"half the credentials", `{"repos": {"r": {"url": "s3://h/b", "access_key_id_env": "K"}}}`, "repos.r.secret_access_key_env: access_key_id_env and secret_access_key_env go together", 1, 12},
		{"column counts characters", "{\"plans\": {\"häme\": {\"sourcés\": 1}}}", `plans.häme.sourcés: unknown field`, 1, 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil {
				t.Fatalf("no error for\n%s", tc.text)
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v is not an *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			if e.Line != tc.line || e.Column != tc.col {
				t.Errorf("error %q at line %d, column %d; want %d, %d", err, e.Line, e.Column, tc.line, tc.col)
			}
		})
	}
}

func TestParsePlan(t *testing.T) {
	p, err := ParsePlan([]byte(`{"sources": ["/home/alice"], "repos": ["anything"], "retention": {"keep_last": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Retention.KeepLast != 3 || p.Repos[0] != "anything" {
		t.Fatalf("%+v", p)
	}

	_, err = ParsePlan([]byte("{\n  \"sources\": [\"/home/alice\"],\n  \"repos\": [\"local\"],\n  \"retention\": {\"keep_dayly\": 7}\n}"))
	var e *Error
	if !errors.As(err, &e) || e.Path != "retention.keep_dayly" || e.Line != 4 || e.Column != 17 {
		t.Fatalf("got %#v", err)
	}
	if want := `line 4, column 17: retention.keep_dayly: unknown field (did you mean "keep_daily"?)`; err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err, want)
	}

	_, err = ParsePlan([]byte(`{"sources": ["/x"], "repos": ["local"], "schedule": "@every 0s"}`))
	if err == nil || !strings.Contains(err.Error(), "schedule: invalid schedule") {
		t.Fatalf("got %v", err)
	}

	c, err := Parse([]byte(designExample))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ParsePlan([]byte(`{"sources": ["/x"], "repos": ["local", "offsite"]}`)); err != nil {
		t.Fatal(err)
	}
	_, err = c.ParsePlan([]byte("{\"sources\": [\"/x\"],\n \"repos\": [\"local\", \"usb\"]}"))
	if !errors.As(err, &e) || e.Path != "repos[1]" || e.Line != 2 || e.Column != 21 {
		t.Fatalf("got %v", err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c, err := Parse([]byte(designExample))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cairn")
	path := filepath.Join(dir, "config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("loaded %+v\nsaved  %+v", got, c)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	assertOnly(t, dir, "config.json")

	// Saving again replaces the file whole.
	c.Plans["home"] = Plan{Sources: []string{"/etc"}, Repos: []string{"local"}}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err = Load(path)
	if err != nil || !reflect.DeepEqual(got.Plans["home"].Sources, []string{"/etc"}) {
		t.Fatalf("%v %+v", err, got)
	}
	assertOnly(t, dir, "config.json")

	// Empty settings are left out of the file.
	data, _ := os.ReadFile(path)
	for _, s := range []string{"retention", "hooks", "exclude", "one_file_system"} {
		if strings.Contains(string(data), `"`+s+`"`) && !strings.Contains(designExample, s) {
			t.Errorf("saved file holds empty %s:\n%s", s, data)
		}
	}
	if strings.Contains(string(data), `"hooks"`) {
		t.Errorf("saved file holds empty hooks:\n%s", data)
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if err != nil || c == nil || len(c.Repos) != 0 || len(c.Plans) != 0 {
		t.Fatalf("%+v, %v", c, err)
	}
}

func TestLoadNamesFileAndPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte("{\n  \"plans\": 3\n}"), 0o600)
	_, err := Load(path)
	if err == nil || !errors.Is(err, ErrInvalid) || err.Error() != path+": line 2, column 12: plans: want an object, got a number" {
		t.Fatalf("got %v", err)
	}
}

func TestSaveRefusesInvalidAndLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	bad := &Config{Plans: map[string]Plan{"home": {Sources: []string{"relative"}, Repos: []string{"x"}}}}
	if err := bad.Save(path); !errors.Is(err, ErrInvalid) {
		t.Fatalf("saved an invalid config: %v", err)
	}
	assertOnly(t, dir)

	// A rename that fails (a directory is in the way) leaves no
	// temporary file behind, and the directory as it was.
	good := &Config{Repos: map[string]RepoDef{"r": {URL: "/r"}}}
	os.Mkdir(path, 0o700)
	os.WriteFile(filepath.Join(path, "x"), nil, 0o600)
	if err := good.Save(path); err == nil {
		t.Fatal("saved over a directory")
	}
	assertOnly(t, dir, "config.json")
}

func TestSaveFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "dotfiles", "cairn.json")
	os.MkdirAll(filepath.Dir(real), 0o700)
	os.WriteFile(real, []byte("{}"), 0o600)
	link := filepath.Join(dir, "config.json")
	os.Symlink(real, link)
	c := &Config{Repos: map[string]RepoDef{"r": {URL: "/r"}}}
	if err := c.Save(link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	got, err := Load(real)
	if err != nil || got.Repos["r"].URL != "/r" {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("CAIRN_CONFIG", "/etc/cairn.json")
	if p, err := DefaultPath(); err != nil || p != "/etc/cairn.json" {
		t.Fatalf("%q %v", p, err)
	}
	t.Setenv("CAIRN_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "/home/ann")
	if p, err := DefaultPath(); err != nil || p != "/home/ann/.config/cairn/config.json" {
		t.Fatalf("%q %v", p, err)
	}
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if p, err := DefaultPath(); err != nil || p != "/xdg/cairn/config.json" {
		t.Fatalf("%q %v", p, err)
	}
}

func TestNoSecretsInOutput(t *testing.T) {
	t.Setenv("OFFSITE_SECRET", "hunter2")
	c, err := Parse([]byte(designExample))
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "hunter2") {
		t.Fatal("a secret in the JSON")
	}
	if s := c.Repos["offsite"].String(); s != "s3://s3.example.com/backups/alice (password from command pass show cairn)" {
		t.Fatalf("String: %q", s)
	}
	if s := (RepoDef{URL: "s3://key:secret@host/b"}).String(); strings.Contains(s, "secret") {
		t.Fatalf("String shows the URL's password: %q", s)
	}
}

func TestValidPlanName(t *testing.T) {
	for name, ok := range map[string]bool{
		"home": true, "home.v2": true, "my-plan_2": true, "A1": true, strings.Repeat("a", MaxPlanName): true,
		"my plan": false, "": false, ".": false, "..": false, ".hidden": false, "a/b": false, "a\x00": false,
		"caf\u00e9": false, "a:b": false, "a*": false, "x\n": false, strings.Repeat("a", MaxPlanName+1): false,
	} {
		if err := ValidPlanName(name); (err == nil) != ok {
			t.Errorf("ValidPlanName(%q) = %v", name, err)
		}
	}
	cfg := &Config{Plans: map[string]Plan{"bad name": {Sources: []string{"/src"}}}}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bad name") {
		t.Errorf("Validate of a plan called %q: %v, want an invalid-name error", "bad name", err)
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"home": true, "home.v2": true, "my plan": true, "": false, ".": false, "..": false, "a/b": false, "a\x00": false} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v", name, err)
		}
	}
}
