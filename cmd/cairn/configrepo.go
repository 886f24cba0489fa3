package main

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

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

// repoTarget is one repository a command works on: a URL from --repo,
// or a repository of the configuration file with its definition.
type repoTarget struct {
	name string        // the configured name; the URL for a bare --repo
	url  string        // path or s3:// URL
	def  *plan.RepoDef // nil for a bare --repo
}

func (t repoTarget) String() string {
	if t.def == nil {
		return t.url
	}
	return t.name + " (" + t.def.String() + ")"
}

// resolveRepo turns a --repo value into a target: the name of a
// repository of cfg (names never contain '/'), else a path or URL.
func resolveRepo(cfg *plan.Config, arg string) repoTarget {
	if cfg != nil && !strings.Contains(arg, "/") {
		if def, ok := cfg.Repos[arg]; ok {
			return repoTarget{name: arg, url: def.URL, def: &def}
		}
	}
	return repoTarget{name: arg, url: arg}
}

// configPath is --config, else plan.DefaultPath.
func configPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return plan.DefaultPath()
}

// defaultRemoteSettle is how long an exclusive lock on remote storage
// waits for rival locks to show in listings (DESIGN.md §7) unless the
// repository's definition says otherwise.
const defaultRemoteSettle = 3 * time.Second

// settle is the target's settle time for exclusive locks.
func (t repoTarget) settle() (time.Duration, error) {
	if t.def != nil && t.def.SettleTime != "" {
		return plan.ParseDuration(t.def.SettleTime)
	}
	if isRemote(t.url) {
		return defaultRemoteSettle, nil
	}
	return 0, nil
}

// openTarget opens the repository of t. A bare URL is opened as --repo
// is; a configured repository takes its password and S3 credentials
// from its definition.
func openTarget(ctx context.Context, g *globalFlags, t repoTarget) (*repo.Repository, error) {
	if t.def == nil {
		return openRepoURL(ctx, g, t.url)
	}
	be, err := configBackend(ctx, t)
	if err != nil {
		return nil, err
	}
	pw, err := repoPassword(ctx, g, t)
	if err != nil {
		be.Close()
		return nil, err
	}
	return openWith(ctx, be, t.url, t.name, pw)
}

// configBackend is backendFor with the S3 credentials of the definition,
// when it names their environment variables.
func configBackend(ctx context.Context, t repoTarget) (backend.Backend, error) {
	if !isRemote(t.url) || t.def.AccessKeyIDEnv == "" {
		return backendFor(ctx, t.url)
	}
	keyID, err := fromEnv(t, t.def.AccessKeyIDEnv)
	if err != nil {
		return nil, err
	}
	secret, err := fromEnv(t, t.def.SecretAccessKeyEnv)
	if err != nil {
		return nil, err
	}
	return s3Backend(ctx, t.url, keyID, secret)
}

func fromEnv(t repoTarget, name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("repository %s: $%s is not set", t.name, name)
	}
	return v, nil
}

// passwordCommandTimeout bounds a password_command, which may wait for a
// pinentry dialog but must not hang a scheduled run for ever.
const passwordCommandTimeout = 5 * time.Minute

// repoPassword finds a configured repository's password: its
// password_file, password_env or password_command, else the command
// line's sources (password). Errors name the source, never the secret.
func repoPassword(ctx context.Context, g *globalFlags, t repoTarget) (string, error) {
	d := t.def
	switch {
	case d == nil:
		return password(g, false)
	case d.PasswordFile != "":
		file := d.PasswordFile
		if rest, ok := strings.CutPrefix(file, "~/"); ok {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("repository %s: password_file %s: %w", t.name, file, err)
			}
			file = filepath.Join(home, rest)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("repository %s: password_file: %w", t.name, err)
		}
		pw := firstLine(b)
		if pw == "" {
			return "", fmt.Errorf("repository %s: password file %s is empty", t.name, file)
		}
		return pw, nil
	case d.PasswordEnv != "":
		pw := os.Getenv(d.PasswordEnv)
		if pw == "" {
			return "", fmt.Errorf("repository %s: password_env: $%s is not set", t.name, d.PasswordEnv)
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
			return "", fmt.Errorf("repository %s: password_command %q: %w", t.name, d.PasswordCommand, err)
		}
		pw := firstLine(out.Bytes())
		if pw == "" {
			return "", fmt.Errorf("repository %s: password_command %q printed nothing", t.name, d.PasswordCommand)
		}
		return pw, nil
	}
	return password(g, false)
}

// firstLine is the first line of b without its line ending.
func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r")
}
