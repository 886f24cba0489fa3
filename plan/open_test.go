package plan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/pool"
)

func TestRepoPassword(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("from file\r\nsecond line\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	t.Setenv("CAIRN_TEST_PW", "from env")
	t.Setenv("CAIRN_TEST_UNSET", "")
	fallback := func(context.Context) (string, error) { return "global", nil }
	for _, tc := range []struct {
		def  RepoDef
		want string
		err  string
	}{
		{RepoDef{PasswordFile: filepath.Join(dir, "pw")}, "from file", ""},
		{RepoDef{PasswordFile: "~/pw"}, "from file", ""},
		{RepoDef{PasswordFile: filepath.Join(dir, "empty")}, "", "is empty"},
		{RepoDef{PasswordFile: filepath.Join(dir, "missing")}, "", "password_file"},
		{RepoDef{PasswordEnv: "CAIRN_TEST_PW"}, "from env", ""},
		{RepoDef{PasswordEnv: "CAIRN_TEST_UNSET"}, "", "$CAIRN_TEST_UNSET is not set"},
		{RepoDef{PasswordCommand: "printf 'from command\\nmore'"}, "from command", ""},
		{RepoDef{PasswordCommand: "true"}, "", "printed nothing"},
		{RepoDef{PasswordCommand: "printf 'sec%s' ret; exit 3"}, "", "exit status 3"},
		{RepoDef{}, "global", ""}, // the command line's sources
	} {
		got, err := tc.def.password(t.Context(), "r", fallback)
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
	if _, err := (RepoDef{}).password(t.Context(), "r", nil); err == nil {
		t.Error("a password without any source")
	}
}

func TestRepoDefSettleAndCredentials(t *testing.T) {
	for def, want := range map[RepoDef]time.Duration{
		{URL: "/srv/backup"}:                     0,
		{URL: "/srv/backup", SettleTime: "10s"}:  10 * time.Second,
		{URL: "s3://h/bucket"}:                   3 * time.Second,
		{URL: "s3://h/bucket", SettleTime: "0s"}: 0,
	} {
		if got, err := def.Settle(); err != nil || got != want {
			t.Errorf("%+v: settle %v, %v; want %v", def, got, err, want)
		}
	}
	if (RepoDef{URL: "s3://h/b"}).credentials("r") != nil {
		t.Error("credentials without variables named")
	}
	t.Setenv("IT_KEY", "key")
	t.Setenv("IT_SECRET", "")
	creds := RepoDef{URL: "s3://h/b", AccessKeyIDEnv: "IT_KEY", SecretAccessKeyEnv: "IT_SECRET"}.credentials("r")
	if _, err := creds(); err == nil || !strings.Contains(err.Error(), "repository r: $IT_SECRET is not set") {
		t.Errorf("unset secret: %v", err)
	}
	t.Setenv("IT_SECRET", "secret")
	if c, err := creds(); err != nil || c.AccessKeyID != "key" || c.SecretAccessKey != "secret" {
		t.Errorf("credentials %#v, %v", c, err)
	}
}

// initLocal makes a repository in a directory.
func initLocal(t *testing.T, pw string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(t.Context(), be, pw, repo.InitOptions{KDF: repo.TestKDF}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenerOpens(t *testing.T) {
	dir := initLocal(t, "pw")
	t.Setenv("IT_PW", "pw")
	asked := 0
	o := Opener{Password: func(context.Context) (string, error) { asked++; return "wrong", nil }}
	r, err := o.Open(t.Context(), "r", RepoDef{URL: dir, PasswordEnv: "IT_PW"})
	if err != nil || asked != 0 {
		t.Fatalf("open with password_env: %v (fallback asked %d times)", err, asked)
	}
	r.Backend().Close()
	_, err = o.Open(t.Context(), "", RepoDef{URL: dir})
	if !errors.Is(err, repo.ErrWrongPassword) || !strings.Contains(err.Error(), "open "+dir+": ") || asked != 1 {
		t.Fatalf("a bare location with the fallback's wrong password: %v (asked %d)", err, asked)
	}
	// A location that cannot be opened fails before the password is asked.
	for _, url := range []string{"ftp://host/x", "s3://h/no"} {
		if _, err := o.Open(t.Context(), "r", RepoDef{URL: url}); err == nil || asked != 1 {
			t.Fatalf("%s: %v (asked %d)", url, err, asked)
		}
	}
}

// TestRepoPoolLocksPerRun: names of one store share a repository; getting
// it takes no lock; each Acquire holds a shared lock until released.
func TestRepoPoolLocksPerRun(t *testing.T) {
	ctx := t.Context()
	dir := initLocal(t, "pw")
	pl := pool.New()
	defer pl.Close(ctx)
	p := RepoPool{Pool: pl, Opener: Opener{Password: func(context.Context) (string, error) { return "pw", nil }}}
	e, err := p.Get(ctx, "mounted", RepoDef{URL: dir + "/"})
	if err != nil {
		t.Fatal(err)
	}
	locks := func() int {
		l, err := e.Repo().Locks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	if n := locks(); n != 0 {
		t.Fatalf("an open repository holds %d locks", n)
	}
	r, lctx, release, err := p.Acquire(ctx, "local", RepoDef{URL: "local:" + dir})
	if err != nil {
		t.Fatal(err)
	}
	if r != e.Repo() {
		t.Fatal("two names of one store opened it twice")
	}
	_, _, release2, err := p.Acquire(ctx, "local", RepoDef{URL: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := locks(); n != 1 {
		t.Fatalf("%d locks during two runs, want one shared", n)
	}
	release()
	release2()
	if n := locks(); n != 0 || lctx.Err() == nil {
		t.Fatalf("after the runs: %d locks, run context %v", n, lctx.Err())
	}
}

func TestResolve(t *testing.T) {
	cfg := &Config{Repos: map[string]RepoDef{
		"local":   {URL: "/srv/backup"},
		"offsite": {URL: "s3://h/b", SettleTime: "10s"},
	}}
	if tg := cfg.Resolve("local"); tg.Bare || tg.Def.URL != "/srv/backup" || tg.Name != "local" || tg.OpenName() != "local" {
		t.Fatalf("%+v", tg)
	}
	for _, arg := range []string{"./local", "/srv/backup", "nope", "s3://h/b"} {
		if tg := cfg.Resolve(arg); !tg.Bare || tg.Def != (RepoDef{URL: arg}) || tg.OpenName() != "" {
			t.Fatalf("%s: %+v", arg, tg)
		}
	}
	if tg := (*Config)(nil).Resolve("local"); !tg.Bare {
		t.Fatal(tg)
	}
	for arg, want := range map[string]time.Duration{"local": 0, "offsite": 10 * time.Second, "/x": 0, "s3://h/other": 3 * time.Second} {
		if d, err := cfg.Resolve(arg).Def.Settle(); err != nil || d != want {
			t.Errorf("settle of %s: %v %v, want %v", arg, d, err, want)
		}
	}
	if s := cfg.Resolve("local").String(); s != "local (/srv/backup)" {
		t.Fatal(s)
	}
	if s := cfg.Resolve("s3://k:secret@h/b").String(); s != "s3://k:xxxxx@h/b" {
		t.Errorf("a bare location shows as %q", s)
	}
}
