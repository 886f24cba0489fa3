package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/backend/s3"
	"github.com/cairn-backup/cairn/repo/backend/s3/miniotest"
)

// s3Env is an env whose repository is a fresh prefix on the test MinIO,
// credentials in the environment as a user would set them.
func s3Env(t *testing.T) (*env, *miniotest.Server) {
	t.Helper()
	srv := miniotest.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	// init creates the bucket when it is missing.
	e := &env{t: t, repo: srv.URL(srv.BucketName(), "backups/"+t.Name()), password: "s3 password"}
	e.ok("init")
	return e, srv
}

func TestS3RoundTrip(t *testing.T) {
	requireRoot(t)
	e, _ := s3Env(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	e.ok("backup", src)
	r := e.ok("backup", "--json", src) // unchanged: served from the parent
	if !strings.Contains(r.stdout, `"new_bytes":0`) {
		t.Fatalf("re-backup on S3: %s", r.stdout)
	}
	target := t.TempDir()
	e.ok("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))
	if c := e.run("check", "--read-data"); c.code != 0 {
		t.Fatalf("check: %s%s", c.stdout, c.stderr)
	}
}

func TestS3Mount(t *testing.T) {
	requireRoot(t)
	e, _ := s3Env(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src)
	e.ok("backup", src)
	dir := mountDir(t)
	m := startMount(t, dir, e.password, e.repo)
	name := filepath.Base(e.repo)
	copied := filepath.Join(t.TempDir(), "copy")
	tool(t, "", "cp", "-a", "--preserve=xattr", filepath.Join(dir, "repos", name, "snapshots", "latest")+src, copied)
	compareTrees(t, src, copied)
	m.unmount()
}

// TestS3MovesToLocalUnchanged copies a repository object by object from
// a bucket to a directory and restores from the copy.
func TestS3MovesToLocalUnchanged(t *testing.T) {
	e, _ := s3Env(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("moved between stores"), 0o644)
	e.ok("backup", src)
	dir := filepath.Join(t.TempDir(), "copied")
	mirror(t, e, dir)
	local := &env{t: t, repo: dir, password: e.password}
	target := t.TempDir()
	local.ok("restore", "latest", "--target", target)
	if b, _ := os.ReadFile(filepath.Join(target, src, "f")); string(b) != "moved between stores" {
		t.Fatalf("restored %q", b)
	}
	local.ok("check", "--read-data")
}

func TestS3BadCredentialsAndBucket(t *testing.T) {
	e, srv := s3Env(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	r := e.run("snapshots")
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("wrong secret: exit %d, %q", r.code, r.stderr)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	missing := &env{t: t, repo: srv.URL("no-such-bucket-here", "x"), password: "pw"}
	r = missing.run("snapshots")
	if r.code != 1 || !strings.Contains(r.stderr, "no-such-bucket-here") || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("missing bucket: exit %d, %q", r.code, r.stderr)
	}
}

// mirror copies every object of e's bucket repository into a local
// repository directory, as a user would with any S3 tool.
func mirror(t *testing.T, e *env, dir string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := s3.ParseURL(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	from, err := s3.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	to, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := to.Create(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ft := range backend.FileTypes {
		err := from.List(ctx, ft, func(fi backend.FileInfo) error {
			h := backend.Handle{Type: ft, Name: fi.Name}
			data, err := from.Load(ctx, h, 0, 0)
			if err != nil {
				return err
			}
			n++
			return to.Save(ctx, h, data)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 5 {
		t.Fatalf("mirrored only %d objects", n)
	}
}
