package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/diskcache"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/backend/retry"
	"github.com/cairn-backup/cairn/repo/backend/s3"
)

// repoURL is the one repository a command works on.
func (g *globalFlags) repoURL() (string, error) {
	switch len(g.repos) {
	case 0:
		if url := os.Getenv("CAIRN_REPOSITORY"); url != "" {
			return url, nil
		}
		return "", errors.New("no repository given: use --repo PATH")
	case 1:
		return g.repos[0], nil
	}
	return "", errors.New("this command takes one --repo")
}

// openBackend turns the --repo value into storage.
func openBackend(ctx context.Context, g *globalFlags) (backend.Backend, error) {
	url, err := g.repoURL()
	if err != nil {
		return nil, err
	}
	return backendFor(ctx, url)
}

// backendFor turns a repository URL into storage: a local path, or
// s3:// and s3+http:// URLs with credentials from $AWS_ACCESS_KEY_ID and
// $AWS_SECRET_ACCESS_KEY. Remote storage is wrapped in retries.
func backendFor(ctx context.Context, url string) (backend.Backend, error) {
	if !isRemote(url) {
		return local.Open(strings.TrimPrefix(url, "local:"))
	}
	return s3Backend(ctx, url, os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"))
}

// s3Backend opens an S3 repository URL with the credentials given,
// wrapped in retries.
func s3Backend(ctx context.Context, url, keyID, secret string) (backend.Backend, error) {
	cfg, err := s3.ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = keyID, secret
	cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
	be, err := s3.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return retry.New(be, retry.Options{
		ContentNamed: true,
		OnRetry: func(op string, h backend.Handle, attempt int, err error) {
			fmt.Fprintf(os.Stderr, "cairn: retrying %s %v (attempt %d): %v\n", op, h, attempt, err)
		},
	}), nil
}

func isRemote(url string) bool {
	return strings.HasPrefix(url, "s3://") || strings.HasPrefix(url, "s3+http://")
}

// remoteUploads is how many packs upload at once to remote storage.
const remoteUploads = 4

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

// openRepo opens the repository named by the flags.
func openRepo(ctx context.Context, g *globalFlags) (*repo.Repository, error) {
	url, err := g.repoURL()
	if err != nil {
		return nil, err
	}
	return openRepoURL(ctx, g, url)
}

// openRepoURL opens the repository at url.
func openRepoURL(ctx context.Context, g *globalFlags, url string) (*repo.Repository, error) {
	be, err := backendFor(ctx, url)
	if err != nil {
		return nil, err
	}
	pw, err := password(g, false)
	if err != nil {
		be.Close()
		return nil, err
	}
	return openWith(ctx, be, url, be.Location(), pw)
}

// openWith opens the repository in be (at url, called name in messages),
// tuned for remote storage where url is remote. It closes be on failure.
func openWith(ctx context.Context, be backend.Backend, url, name, pw string) (*repo.Repository, error) {
	r, err := repo.Open(ctx, be, pw)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if isRemote(url) {
		r.SetUploads(remoteUploads)
		if dir, err := diskcache.CacheDir(); err == nil {
			r.UseLocalCache(dir)
		}
	}
	return r, nil
}

// openIndexed opens the repository and loads its index.
func openIndexed(ctx context.Context, g *globalFlags) (*repo.Repository, error) {
	r, err := openRepo(ctx, g)
	if err != nil {
		return nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		r.Backend().Close()
		return nil, err
	}
	return r, nil
}

// openSnapshot opens the repository, index loaded, and finds the snapshot
// called name (a label, an id prefix or latest).
func openSnapshot(ctx context.Context, g *globalFlags, name string) (*repo.Repository, *repo.Snapshot, error) {
	r, err := openIndexed(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := r.Snapshots(ctx)
	if err == nil {
		var snap *repo.Snapshot
		if snap, err = repo.FindSnapshot(snaps, name); err == nil {
			return r, snap, nil
		}
	}
	r.Backend().Close()
	return nil, nil, err
}
