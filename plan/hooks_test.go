package plan

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// secretRepos are repositories whose definitions name the variables
// their password and S3 credentials come from.
var secretRepos = map[string]RepoDef{
	"a":       {URL: "/srv/a"},
	"offsite": {URL: "s3://h/b", AccessKeyIDEnv: "OFFSITE_KEY", SecretAccessKeyEnv: "OFFSITE_SECRET"},
	"vault":   {URL: "/srv/vault", PasswordEnv: "VAULT_PASS"},
}

// TestHookEnvironmentHoldsNoSecrets runs a hook that prints its whole
// environment while cairn's holds a password, AWS credentials and the
// variables configured repositories take theirs from: the log shows the
// run's variables and what the plan lists in hooks.env, and none of the
// secrets.
func TestHookEnvironmentHoldsNoSecrets(t *testing.T) {
	secrets := map[string]string{
		"CAIRN_PASSWORD":        "pw-from-cairn-password",
		"CAIRN_PASSWORD_FILE":   "/etc/secret/password-file-path",
		"AWS_ACCESS_KEY_ID":     "aws-key-id-value",
		"AWS_SECRET_ACCESS_KEY": "aws-secret-key-value",
		"AWS_SESSION_TOKEN":     "aws-session-token-value",
		"OFFSITE_KEY":           "offsite-key-value",
		"OFFSITE_SECRET":        "offsite-secret-value",
		"VAULT_PASS":            "vault-password-value",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("HOOK_VISIBLE", "visible-value")
	t.Setenv("UNLISTED_VAR", "unlisted-value")

	src := sourceDir(t)
	c := &Config{Repos: secretRepos, Plans: map[string]Plan{
		"home": {Sources: []string{src}, Repos: []string{"a"}, Hooks: Hooks{
			Before: []string{"env"},
			After:  []string{"env"},
			Env:    []string{"HOOK_VISIBLE", "HOOK_SET=given=value", "HOOK_UNSET"},
		}},
	}}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, path, newMemRepos(t, "a"), ManagerOptions{})
	if res := waitResult(t, m, "home"); res.Result != ResultSuccess {
		t.Fatalf("run: %+v", res)
	}
	log, err := m.Log("home")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range secrets {
		if strings.Contains(string(log), v) {
			t.Errorf("the log holds the value of $%s:\n%s", name, log)
		}
		if strings.Contains(string(log), `"message":"`+name+`=`) {
			t.Errorf("hooks got $%s:\n%s", name, log)
		}
	}
	for _, want := range []string{
		`"hook":"before","command":"env","message":"CAIRN_PLAN=home"`,
		`"hook":"after","command":"env","message":"CAIRN_REPO=a"`,
		`"message":"CAIRN_STATUS=success"`,
		`"message":"HOOK_VISIBLE=visible-value"`,
		`"message":"HOOK_SET=given=value"`,
		`"message":"PATH=`,
	} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
	for _, unwanted := range []string{"unlisted-value", "HOOK_UNSET"} {
		if strings.Contains(string(log), unwanted) {
			t.Errorf("the log holds %s, which no hook should get:\n%s", unwanted, log)
		}
	}
}

func TestHookEnv(t *testing.T) {
	env := map[string]string{"HOME": "/root", "LANG": "C.UTF-8", "SECRET": "s", "FOO": "foo", "CAIRN_PASSWORD": "pw"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	secrets := secretEnv(map[string]RepoDef{"r": {URL: "/r", PasswordEnv: "SECRET"}})
	got := hookEnv(lookup, []string{"FOO", "HOME=/home/hook", "SECRET", "CAIRN_PASSWORD=x", "CAIRN_PLAN=forged", "MISSING"}, secrets,
		[]string{"CAIRN_PLAN=p", "CAIRN_REPO=r1 r2", "CAIRN_SNAPSHOT=", "CAIRN_STATUS=running"})
	want := []string{
		"PATH=" + defaultPath, // cairn has none
		"HOME=/home/hook",     // the plan's value wins over cairn's
		"LANG=C.UTF-8",
		"FOO=foo",
		"CAIRN_PLAN=p", // the run's wins over the plan's
		"CAIRN_REPO=r1 r2", "CAIRN_SNAPSHOT=", "CAIRN_STATUS=running",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("hookEnv\n%q\nwant\n%q", got, want)
	}
	env["PATH"] = "/opt/bin:/bin"
	if got := hookEnv(lookup, nil, secrets, nil); got[0] != "PATH=/opt/bin:/bin" {
		t.Fatalf("with cairn's PATH: %q", got)
	}
}

// TestHooksEnvRefusesSecrets: hooks.env may not name a variable cairn
// reads a password or credential from, neither cairn's own nor one a
// configured repository names; the definition is refused with an error
// that says why and where, and status shows it.
func TestHooksEnvRefusesSecrets(t *testing.T) {
	plan := func(env string) string {
		return "{\n  \"sources\": [\"/home/alice\"],\n  \"repos\": [\"a\"],\n  \"hooks\": {\"before\": [\"env\"],\n    \"env\": [\"LANG\", " + env + "]}\n}\n"
	}
	cfg := &Config{Repos: secretRepos}
	for _, tc := range []struct {
		env, want string
	}{
		{`"CAIRN_PASSWORD"`, "hooks.env[1]: CAIRN_PASSWORD is where cairn reads a password or credential from; hooks never get passwords or credentials"},
		{`"CAIRN_PASSWORD=set-here"`, "hooks.env[1]: CAIRN_PASSWORD is where cairn reads"},
		{`"CAIRN_PASSWORD_FILE"`, "CAIRN_PASSWORD_FILE is where cairn reads"},
		{`"AWS_ACCESS_KEY_ID"`, "AWS_ACCESS_KEY_ID is where cairn reads"},
		{`"AWS_SECRET_ACCESS_KEY"`, "AWS_SECRET_ACCESS_KEY is where cairn reads"},
		{`"AWS_SESSION_TOKEN"`, "AWS_SESSION_TOKEN is where cairn reads"},
		{`"OFFSITE_SECRET"`, `hooks.env[1]: OFFSITE_SECRET is the secret_access_key_env of repository "offsite"; hooks never get passwords or credentials`},
		{`"OFFSITE_KEY"`, `OFFSITE_KEY is the access_key_id_env of repository "offsite"`},
		{`"VAULT_PASS"`, `VAULT_PASS is the password_env of repository "vault"`},
		{`"CAIRN_PLAN=other"`, "hooks.env[1]: CAIRN_PLAN is set by each run"},
		{`"LANG=C"`, "hooks.env[1]: LANG is listed twice"},
		{`""`, `hooks.env[1]: want NAME or NAME=value; "" is not a variable name`},
		{`"=x"`, `hooks.env[1]: want NAME or NAME=value; "" is not a variable name`},
		{`"A-B=hunter2"`, `want NAME or NAME=value; "A-B" is not a variable name (letters, digits and _, not starting with a digit)`},
		{`"1X"`, `"1X" is not a variable name`},
		{`"X=a\u0000b"`, "the value of X contains a NUL byte"},
	} {
		_, err := cfg.ParsePlan([]byte(plan(tc.env)))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hooks.env [\"LANG\", %s]: %v\nwant an *Error with %q", tc.env, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("hooks.env [\"LANG\", %s]: %v shows the value", tc.env, err)
		}
		if e.Line != 5 || e.Column != 21 {
			t.Errorf("hooks.env [\"LANG\", %s]: %v at line %d, column %d; want 5, 21", tc.env, err, e.Line, e.Column)
		}
	}
	// Without a configuration only cairn's own variables are known.
	if _, err := ParsePlan([]byte(plan(`"CAIRN_PASSWORD"`))); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParsePlan of hooks.env naming CAIRN_PASSWORD: %v, want refused", err)
	}
	if _, err := ParsePlan([]byte(plan(`"OFFSITE_SECRET", "HOOK_SET=a=b"`))); err != nil {
		t.Errorf("ParsePlan without repositories: %v", err)
	}
	// A whole configuration: any repository's variables count, not only
	// the plan's.
	whole := `{"repos": {"a": {"url": "/a"}, "offsite": {"url": "s3://h/b", "access_key_id_env": "K", "secret_access_key_env": "S"}},
 "plans": {"home": {"sources": ["/x"], "repos": ["a"], "hooks": {"env": ["S"]}}}}`
	if _, err := Parse([]byte(whole)); err == nil || !strings.Contains(err.Error(), `plans.home.hooks.env[0]: S is the secret_access_key_env of repository "offsite"`) {
		t.Errorf("configuration with hooks.env naming a repository's secret: %v", err)
	}

	// Through the Manager: refused, the old definition stays, status
	// names the error.
	path := filepath.Join(t.TempDir(), "config.json")
	if err := (&Config{Repos: secretRepos}).Save(path); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, path, newMemRepos(t), ManagerOptions{})
	if err := m.Create("home"); err != nil {
		t.Fatal(err)
	}
	if err := m.Define(t.Context(), "home", []byte(plan(`"HOOK_OK=1"`))); err != nil {
		t.Fatal(err)
	}
	if err := m.Define(t.Context(), "home", []byte(plan(`"OFFSITE_SECRET"`))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Define with hooks.env naming OFFSITE_SECRET: %v, want ErrInvalid", err)
	}
	st, _ := m.Status("home")
	if !strings.Contains(string(st), `"definition_error": "line 5, column 21: hooks.env[1]: OFFSITE_SECRET is the secret_access_key_env of repository \"offsite\"`) {
		t.Errorf("status does not name the refusal:\n%s", st)
	}
	if def, _ := m.Definition("home"); !strings.Contains(string(def), "HOOK_OK=1") {
		t.Errorf("the refused definition replaced the old one:\n%s", def)
	}
}

func TestPublicOutput(t *testing.T) {
	c := &Config{Repos: secretRepos, Plans: map[string]Plan{
		"private": {Sources: []string{"/x"}, Repos: []string{"a"}},
		"public":  {Sources: []string{"/x"}, Repos: []string{"a"}, Hooks: Hooks{PublicOutput: true}},
	}}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, path, newMemRepos(t), ManagerOptions{})
	if err := m.Create("draft"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"private": false, "public": true, "draft": false, "missing": false} {
		if got := m.PublicOutput(name); got != want {
			t.Errorf("PublicOutput(%s) = %v, want %v", name, got, want)
		}
	}
	def, _ := m.Definition("public")
	if p, err := ParsePlan(def); err != nil || !p.Hooks.PublicOutput || !strings.Contains(string(def), `"public_output": true`) {
		t.Errorf("plan.json of a public plan: %v\n%s", err, def)
	}
}
