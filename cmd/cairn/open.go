package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/location"
)

// repoURL is the one repository a command works on.
func (g *globalFlags) repoURL() (string, error) {
	switch len(g.repos) {
	case 0:
		if url := os.Getenv("CAIRN_REPOSITORY"); url != "" {
			return url, nil
		}
		return "", errors.New("no repository given: use --repo PATH (or a configured name), or set $CAIRN_REPOSITORY")
	case 1:
		return g.repos[0], nil
	}
	return "", errors.New("this command takes one --repo")
}

// opener opens repositories with the command line's password as the
// fallback of definitions that name none, logging retries on stderr.
func (g *globalFlags) opener() plan.Opener {
	return plan.Opener{
		Password: func(context.Context) (string, error) { return password(g, false) },
		OnRetry:  newOutput(g).retry,
	}
}

// openBackend turns the --repo value into storage.
func openBackend(ctx context.Context, g *globalFlags) (backend.Backend, error) {
	url, err := g.repoURL()
	if err != nil {
		return nil, err
	}
	loc, err := location.Parse(url)
	if err != nil {
		return nil, err
	}
	return loc.Open(ctx, location.Options{OnRetry: g.opener().OnRetry})
}

// password finds the password: --password-file, $CAIRN_PASSWORD_FILE,
// $CAIRN_PASSWORD, then a terminal prompt.
func password(g *globalFlags, confirm bool) (string, error) {
	file := g.passwordFile
	if file == "" {
		file = os.Getenv("CAIRN_PASSWORD_FILE")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return line, nil
	}
	if p := os.Getenv("CAIRN_PASSWORD"); p != "" {
		return p, nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", errors.New("no password given: use --password-file, $CAIRN_PASSWORD_FILE or $CAIRN_PASSWORD")
	}
	p, err := prompt("Password: ")
	if err != nil {
		return "", err
	}
	if confirm {
		q, err := prompt("Repeat password: ")
		if err != nil {
			return "", err
		}
		if p != q {
			return "", errors.New("passwords do not match")
		}
	}
	return p, nil
}

func prompt(msg string) (string, error) {
	fmt.Fprint(os.Stderr, msg)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		// Fall back to a plain line read (e.g. a pty that refuses raw mode).
		line, err2 := bufio.NewReader(os.Stdin).ReadString('\n')
		if err2 != nil {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	return string(b), nil
}

// openRepo opens the repository named by the flags (a location or a
// configured name, see target).
func openRepo(ctx context.Context, g *globalFlags) (*repo.Repository, error) {
	t, err := g.target()
	if err != nil {
		return nil, err
	}
	return g.opener().Open(ctx, t.OpenName(), t.Def)
}

// openSnapshot opens the repository, index loaded, and finds the snapshot
// called name (a label, an id prefix or latest).
func openSnapshot(ctx context.Context, g *globalFlags, name string) (*repo.Repository, *repo.Snapshot, error) {
	r, err := openRepo(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	var snaps []*repo.Snapshot
	if err = r.LoadIndex(ctx); err == nil {
		snaps, err = r.Snapshots(ctx)
	}
	if err == nil {
		var snap *repo.Snapshot
		if snap, err = repo.FindSnapshot(snaps, name); err == nil {
			return r, snap, nil
		}
	}
	r.Backend().Close()
	return nil, nil, err
}
