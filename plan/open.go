package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/location"
	"github.com/cairn-backup/cairn/repo/pool"
)

// Opener opens the repositories that definitions name: the location
// registry gives the storage, the definition the password and the
// credentials. It is the one place that turns a RepoDef into an open
// repository; a bare location is a RepoDef with only a URL.
type Opener struct {
	// Password gives the password of a repository whose definition names
	// no source: the command line's (cmd/cairn: --password-file,
	// $CAIRN_PASSWORD_FILE, $CAIRN_PASSWORD, a prompt). nil: there is
	// none, and such a repository cannot be opened.
	Password func(ctx context.Context) (string, error)
	// OnRetry, if set, sees the retries of remote storage
	// (location.Options.OnRetry).
	OnRetry func(op string, h backend.Handle, attempt int, err error)
}

// Target is a repository to work on: one of the configuration, by name,
// or a bare location (a --repo path or URL), whose definition has only
// its URL.
type Target struct {
	Name string // the configured name; a bare location's name for display
	Def  RepoDef
	Bare bool
}

// Resolve turns a command line's repository argument into a target: the
// name of a repository of c (names never contain '/'), else a bare
// location named by itself. c may be nil.
func (c *Config) Resolve(arg string) Target {
	if c != nil && !strings.Contains(arg, "/") {
		if def, ok := c.Repos[arg]; ok {
			return Target{Name: arg, Def: def}
		}
	}
	return Bare(arg)
}

// Bare is the target of a location without a definition (a --repo path
// or URL), named by itself.
func Bare(loc string) Target {
	return Target{Name: loc, Def: RepoDef{URL: loc}, Bare: true}
}

// String describes the target, credentials redacted: a bare location's
// display form, else "name (definition)".
func (t Target) String() string {
	if t.Bare {
		return location.Display(t.Def.URL)
	}
	return t.Name + " (" + t.Def.String() + ")"
}

// OpenName is the name Opener.Open and RepoPool.Get take for the target:
// "" for a bare location, which is named by its storage.
func (t Target) OpenName() string {
	if t.Bare {
		return ""
	}
	return t.Name
}

// Open opens the repository that d defines. name names it in errors; ""
// names it by its storage. The storage is opened before the password is
// asked for, so a malformed location fails first.
func (o Opener) Open(ctx context.Context, name string, d RepoDef) (*repo.Repository, error) {
	loc, err := location.Parse(d.URL)
	if err != nil {
		return nil, err
	}
	opts := location.Options{OnRetry: o.OnRetry, Credentials: d.credentials(name)}
	be, err := loc.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = be.Location()
	}
	pw, err := d.password(ctx, name, o.Password)
	if err != nil {
		be.Close()
		return nil, err
	}
	r, err := loc.OpenRepository(ctx, be, pw, opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return r, nil
}

// Settle is how long an exclusive lock on the repository waits for rival
// locks to show in listings (DESIGN.md §7): settle_time, else the default
// of its storage's scheme.
func (d RepoDef) Settle() (time.Duration, error) {
	if d.SettleTime != "" {
		return ParseDuration(d.SettleTime)
	}
	loc, err := location.Parse(d.URL)
	if err != nil {
		return 0, err
	}
	return loc.Defaults().Settle, nil
}

// credentials reads the credentials from the variables the definition
// names; nil when it names none (the store's defaults apply).
func (d RepoDef) credentials(name string) func() (location.Credentials, error) {
	if d.AccessKeyIDEnv == "" {
		return nil
	}
	return func() (location.Credentials, error) {
		var c location.Credentials
		for _, v := range []struct {
			env string
			to  *string
		}{{d.AccessKeyIDEnv, &c.AccessKeyID}, {d.SecretAccessKeyEnv, &c.SecretAccessKey}} {
			if *v.to = os.Getenv(v.env); *v.to == "" {
				return c, fmt.Errorf("repository %s: $%s is not set", name, v.env)
			}
		}
		return c, nil
	}
}

// passwordCommandTimeout bounds a password_command, which may wait for a
// pinentry dialog but must not hang a scheduled run for ever.
const passwordCommandTimeout = 5 * time.Minute

// password finds the repository's password: its password_file,
// password_env or password_command, else fallback's. Errors name the
// source, never the secret.
func (d RepoDef) password(ctx context.Context, name string, fallback func(context.Context) (string, error)) (string, error) {
	switch {
	case d.PasswordFile != "":
		file := d.PasswordFile
		if rest, ok := strings.CutPrefix(file, "~/"); ok {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("repository %s: password_file %s: %w", name, file, err)
			}
			file = filepath.Join(home, rest)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("repository %s: password_file: %w", name, err)
		}
		pw := firstLine(b)
		if pw == "" {
			return "", fmt.Errorf("repository %s: password file %s is empty", name, file)
		}
		return pw, nil
	case d.PasswordEnv != "":
		pw := os.Getenv(d.PasswordEnv)
		if pw == "" {
			return "", fmt.Errorf("repository %s: password_env: $%s is not set", name, d.PasswordEnv)
		}
		return pw, nil
	case d.PasswordCommand != "":
		ctx, cancel := context.WithTimeout(ctx, passwordCommandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", d.PasswordCommand)
		var out bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, &out, os.Stderr
		cmd.WaitDelay = time.Second
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %v", passwordCommandTimeout)
			}
			return "", fmt.Errorf("repository %s: password_command %q: %w", name, d.PasswordCommand, err)
		}
		pw := firstLine(out.Bytes())
		if pw == "" {
			return "", fmt.Errorf("repository %s: password_command %q printed nothing", name, d.PasswordCommand)
		}
		return pw, nil
	case fallback != nil:
		return fallback(ctx)
	}
	return "", fmt.Errorf("repository %s: no password source", name)
}

// firstLine is the first line of b without its line ending.
func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r")
}

// RepoPool gives the mount and plan runs their repositories from one
// pool: one open repository per store, shared by everything in the
// process, and a shared lock per run (DESIGN.md §7). It implements Repos.
type RepoPool struct {
	Pool   *pool.Pool
	Opener Opener
}

// Get returns the pool's entry for the repository d defines, opened
// (index loaded) on first use. Holding it takes no lock. name names it in
// errors; "" names it by its storage.
func (p RepoPool) Get(ctx context.Context, name string, d RepoDef) (*pool.Entry, error) {
	src, err := p.Opener.source(name, d, true)
	if err != nil {
		return nil, err
	}
	return p.Pool.Get(ctx, src)
}

// Acquire implements Repos: the repository, with a shared lock for the
// run that release gives up.
func (p RepoPool) Acquire(ctx context.Context, name string, def RepoDef) (*repo.Repository, context.Context, func(), error) {
	e, err := p.Get(ctx, name, def)
	if err != nil {
		return nil, nil, nil, err
	}
	op, err := e.Lock(ctx, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("repository %s: %w", name, err)
	}
	return e.Repo(), op.Context(), op.Release, nil
}

// source is how a pool opens the repository d defines, its index loaded
// if index.
func (o Opener) source(name string, d RepoDef, index bool) (pool.Source, error) {
	loc, err := location.Parse(d.URL)
	if err != nil {
		return pool.Source{}, fmt.Errorf("repository %s: %w", name, err)
	}
	settle, err := d.Settle()
	if err != nil {
		return pool.Source{}, fmt.Errorf("repository %s: settle_time: %w", name, err)
	}
	return pool.Source{Key: loc.Key(), Settle: settle, Open: func(ctx context.Context) (*repo.Repository, error) {
		r, err := o.Open(ctx, name, d)
		if err != nil || !index {
			return r, err
		}
		if err := r.LoadIndex(ctx); err != nil {
			r.Backend().Close()
			if name == "" {
				name = r.Backend().Location()
			}
			return nil, fmt.Errorf("repository %s: %w", name, err)
		}
		return r, nil
	}}, nil
}

// Operation opens the target for one writing operation of a process that
// does only that (a command): the repository, its index loaded if index,
// under a shared lock, and the operation's context, cancelled with cause
// repo.ErrLockLost if the lock is lost. done releases the lock and closes
// the storage.
func (o Opener) Operation(ctx context.Context, t Target, index bool) (r *repo.Repository, opCtx context.Context, done func(), err error) {
	src, err := o.source(t.OpenName(), t.Def, index)
	if err != nil {
		return nil, nil, nil, err
	}
	p := pool.New()
	e, err := p.Get(ctx, src)
	if err != nil {
		return nil, nil, nil, err
	}
	op, err := e.Lock(ctx, false)
	if err != nil {
		p.Close(context.WithoutCancel(ctx))
		return nil, nil, nil, err
	}
	if index {
		// Again under the lock: a prune that ran between the first load
		// and the lock may have deleted packs the index still named, and
		// a backup must not deduplicate against them (issue 13).
		if err := e.Repo().LoadIndex(op.Context()); err != nil {
			op.Release()
			p.Close(context.WithoutCancel(ctx))
			return nil, nil, nil, err
		}
	}
	return e.Repo(), op.Context(), func() {
		op.Release()
		p.Close(context.WithoutCancel(ctx))
	}, nil
}
