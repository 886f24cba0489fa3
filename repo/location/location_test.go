package location

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

func TestParseSelectsTheScheme(t *testing.T) {
	for loc, want := range map[string]*Scheme{
		"/srv/backup":              Local,
		"relative/repo":            Local,
		"local:/srv/backup":        Local,
		"LOCAL:/srv/backup":        Local,
		"/srv/odd:name":            Local,
		"s3://host/bucket/prefix":  S3,
		"S3://host/bucket":         S3,
		"s3+http://h:9000/b/p/q":   S3,
		"s3://key:secret@host/bkt": S3,
	} {
		l, err := Parse(loc)
		if err != nil {
			t.Errorf("Parse(%q): %v", loc, err)
			continue
		}
		if l.Scheme() != want {
			t.Errorf("Parse(%q): scheme %s, want %s", loc, l.Scheme().Name, want.Name)
		}
	}
}

func TestParseUnknownScheme(t *testing.T) {
	for _, loc := range []string{"ftp://host/x", "sftp://user@host/srv", "gs://bucket/p"} {
		_, err := Parse(loc)
		if !errors.Is(err, ErrUnknownScheme) {
			t.Errorf("Parse(%q): %v, want ErrUnknownScheme", loc, err)
			continue
		}
		scheme, _, _ := strings.Cut(loc, "://")
		want := fmt.Sprintf("unsupported scheme %q: want a path, s3:// or s3+http://", scheme)
		if err.Error() != want {
			t.Errorf("Parse(%q): %q, want %q", loc, err, want)
		}
	}
	for _, loc := range []string{"", "s3://h/b\x7f%zz"} {
		if _, err := Parse(loc); err == nil {
			t.Errorf("Parse(%q) accepted", loc)
		}
	}
}

func TestDisplayRedactsCredentials(t *testing.T) {
	for loc, want := range map[string]string{
		"s3://key:secret@host/bucket/p": "s3://key:xxxxx@host/bucket/p",
		"s3+http://k:s3cr3t@h:9000/b":   "s3+http://k:xxxxx@h:9000/b",
		"s3://host/bucket":              "s3://host/bucket",
		"/srv/backup":                   "/srv/backup",
		"local:/srv/backup":             "local:/srv/backup",
	} {
		l, err := Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.String(); got != want {
			t.Errorf("%q shows as %q, want %q", loc, got, want)
		}
		if got := fmt.Sprint(l); strings.Contains(got, "secret") || strings.Contains(got, "s3cr3t") {
			t.Errorf("%q prints as %q", loc, got)
		}
		if secret := strings.Contains(loc, ":s"); l.Secret() != secret {
			t.Errorf("%q: Secret() = %v", loc, l.Secret())
		}
	}
	if got := redact("s3://k:secret@h/b%zz"); strings.Contains(got, "secret") {
		t.Errorf("an unparsable URL shows its password: %q", got)
	}
	c := Credentials{AccessKeyID: "AKID", SecretAccessKey: "very-secret"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "very-secret") || !strings.Contains(s, "AKID") {
			t.Errorf("credentials print as %q", s)
		}
	}
}

func TestKeyAndRelative(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	same := [][]string{
		{"/srv/backup", "/srv/backup/", "local:/srv/backup", "/srv/./backup"},
		{"repo", filepath.Join(wd, "repo"), "local:repo"},
		{"s3://h/bucket/p", "s3://h/bucket/p/", "S3://h/bucket/p"},
	}
	for _, group := range same {
		var keys []string
		for _, loc := range group {
			l, err := Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, l.Key())
		}
		for _, k := range keys[1:] {
			if k != keys[0] {
				t.Errorf("%q: keys %q differ", group, keys)
			}
		}
	}
	a, _ := Parse("s3://h/bucket/p")
	b, _ := Parse("s3+http://h/bucket/p")
	if a.Key() == b.Key() {
		t.Errorf("TLS and plain HTTP share the key %q", a.Key())
	}
	for loc, rel := range map[string]bool{"repo": true, "local:repo": true, "./r": true, "/srv/r": false, "local:/r": false, "s3://h/b": false} {
		if l, _ := Parse(loc); l.Relative() != rel {
			t.Errorf("%q: Relative() = %v", loc, !rel)
		}
	}
}

func TestDefaults(t *testing.T) {
	for loc, want := range map[string]Defaults{
		"/srv/backup": {},
		"s3://h/b":    {Remote: true, Settle: 3 * time.Second, Uploads: 4, CacheMetadata: true},
	} {
		l, _ := Parse(loc)
		got := l.Defaults()
		decorators := len(got.Decorators)
		got.Decorators = nil
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: defaults %+v, want %+v", loc, got, want)
		}
		if remote := want.Remote; (decorators > 0) != remote {
			t.Errorf("%s: %d decorators", loc, decorators)
		}
	}
}

// TestS3Credentials: credentials come from Options when it has them, from
// the environment otherwise, and a failure to get them is Open's error.
func TestS3Credentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "env-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	l, err := Parse("s3+http://127.0.0.1:1/bucket/p")
	if err != nil {
		t.Fatal(err)
	}
	called := false
	be, err := l.Open(t.Context(), Options{Credentials: func() (Credentials, error) {
		called = true
		return Credentials{"k", "s"}, nil
	}})
	if err != nil || !called {
		t.Fatalf("open: %v, credentials asked: %v", err, called)
	}
	be.Close()
	nope := errors.New("$KEY is not set")
	if _, err := l.Open(t.Context(), Options{Credentials: func() (Credentials, error) { return Credentials{}, nope }}); !errors.Is(err, nope) {
		t.Fatalf("failing credentials: %v", err)
	}
	// A local path never asks.
	local, _ := Parse(t.TempDir())
	be, err = local.Open(t.Context(), Options{Credentials: func() (Credentials, error) { return Credentials{}, nope }})
	if err != nil {
		t.Fatal(err)
	}
	be.Close()
	if _, err := Parse("s3://h/b"); err != nil {
		t.Fatal(err)
	}
	bad, _ := Parse("s3://h/no")
	if _, err := bad.Open(t.Context(), Options{}); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("an invalid bucket name opened: %v", err)
	}
}

// memStores are the stores of the mem:// test scheme, by name.
var memStores = map[string]backend.Backend{}

type marked struct {
	backend.Backend
	mark string
}

var memScheme = &Scheme{
	Name:     "mem",
	Prefixes: []string{"mem://"},
	Open: func(ctx context.Context, loc string, o Options) (backend.Backend, error) {
		be, ok := memStores[loc]
		if !ok {
			return nil, fmt.Errorf("%s: no such store", loc)
		}
		return be, nil
	},
	Defaults: Defaults{
		Uploads: 3,
		Decorators: []Decorator{
			func(be backend.Backend, o Options) backend.Backend { return marked{be, "inner"} },
			func(be backend.Backend, o Options) backend.Backend { return marked{be, "outer"} },
		},
	},
}

func TestRegisteredSchemeOpensRepository(t *testing.T) {
	Register(memScheme)
	ctx := context.Background()
	store := mem.New()
	memStores["mem://one"] = store
	if _, err := repo.Init(ctx, store, "pw", repo.InitOptions{KDF: repo.TestKDF}); err != nil {
		t.Fatal(err)
	}
	l, err := Parse("mem://one")
	if err != nil {
		t.Fatal(err)
	}
	be, err := l.Open(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := be.(marked); !ok || m.mark != "outer" || m.Backend.(marked).mark != "inner" {
		t.Fatalf("decorators applied as %#v", be)
	}
	r, err := l.OpenRepository(ctx, be, "pw", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Uploads() != 3 {
		t.Errorf("uploads %d, want the scheme's 3", r.Uploads())
	}
	if _, err := l.OpenRepository(ctx, be, "wrong", Options{}); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	if !strings.Contains(Supported(), "mem://") {
		t.Errorf("Supported() = %q", Supported())
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration of mem:// did not panic")
		}
	}()
	Register(&Scheme{Name: "again", Prefixes: []string{"MEM://"}, Open: memScheme.Open})
}
