package s3_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/backendtest"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/backend/s3"
	"github.com/cairn-backup/cairn/repo/backend/s3/miniotest"
)

func TestMain(m *testing.M) { miniotest.Main(m) }

// open returns a backend on cfg that is closed when t ends.
func open(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	be, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open(%v): %v", cfg, err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	return buf
}

func TestSuite(t *testing.T) {
	srv := miniotest.Start(t)

	// Every backend gets a bucket of its own that does not exist yet, so
	// Create makes it.
	t.Run("Bucket", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backend.Backend {
			return open(t, srv.Config(srv.BucketName(), ""))
		})
	})

	// Every backend gets a prefix in one shared bucket, next to neighbours
	// whose prefixes start with the same characters: nothing of theirs may
	// show, and their objects must not make Create refuse.
	t.Run("Prefix", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		var n atomic.Int64
		backendtest.Run(t, func(t *testing.T) backend.Backend {
			prefix := fmt.Sprintf("team/repo%d", n.Add(1))
			neighbour := open(t, srv.Config(bucket, prefix+"x"))
			for _, h := range []backend.Handle{
				{Type: backend.ConfigFile},
				{Type: backend.PackFile, Name: "ab0123"},
				{Type: backend.SnapshotFile, Name: "0123"},
				{Type: backend.LockFile, Name: "0123"},
			} {
				if err := neighbour.Save(t.Context(), h, []byte("neighbour")); err != nil {
					t.Fatalf("neighbour Save(%v): %v", h, err)
				}
			}
			return open(t, srv.Config(bucket, prefix))
		})
	})
}

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want s3.Config
	}{
		{"s3://s3.example.com/backups", s3.Config{Endpoint: "s3.example.com", Bucket: "backups", UseTLS: true}},
		{"s3://s3.example.com/backups/", s3.Config{Endpoint: "s3.example.com", Bucket: "backups", UseTLS: true}},
		{"s3://s3.example.com:8443/backups/alice", s3.Config{Endpoint: "s3.example.com:8443", Bucket: "backups", Prefix: "alice", UseTLS: true}},
		{"s3://s3.example.com/backups/alice/laptop/", s3.Config{Endpoint: "s3.example.com", Bucket: "backups", Prefix: "alice/laptop", UseTLS: true}},
		{"s3+http://127.0.0.1:9000/bkt/repo", s3.Config{Endpoint: "127.0.0.1:9000", Bucket: "bkt", Prefix: "repo"}},
		{"s3+http://localhost/bkt", s3.Config{Endpoint: "localhost", Bucket: "bkt"}},
		{"s3+http://[::1]:9000/bkt/a/b", s3.Config{Endpoint: "[::1]:9000", Bucket: "bkt", Prefix: "a/b"}},
		{"s3://host/my.bucket-1/p%20q", s3.Config{Endpoint: "host", Bucket: "my.bucket-1", Prefix: "p q", UseTLS: true}},
	}
	for _, tt := range good {
		got, err := s3.ParseURL(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("ParseURL(%q) = %#v, %v; want %#v", tt.url, got, err, tt.want)
			continue
		}
		canonical := strings.TrimSuffix(strings.ReplaceAll(tt.url, "%20", " "), "/")
		if got.URL() != canonical {
			t.Errorf("ParseURL(%q).URL() = %q, want %q", tt.url, got.URL(), canonical)
		}
	}

	bad := []struct {
		url  string
		want string // in the message
	}{
		{"s3://host", "names no bucket"},
		{"s3://host/", "names no bucket"},
		{"s3+http://127.0.0.1:9000", "names no bucket"},
		{"http://host/bucket", `unsupported scheme "http"`},
		{"s3s://host/bucket", `unsupported scheme "s3s"`},
		{"/srv/backup", `unsupported scheme ""`},
		{"s3:/host/bucket", "no host"},
		{"s3:host/bucket", "want s3://host"},
		{"s3:///bucket", "no host"},
		{"s3://host:port/bucket", "invalid"},
		{"s3://host:99999/bucket", "invalid port"},
		{"s3://host:/bucket", "invalid port"},
		{"s3://AKIA:secret@host/bucket", "credentials do not belong in the URL"},
		{"s3://host/bucket?region=eu", "queries"},
		{"s3://host/bucket#x", "fragments"},
		{"s3://host/b", "invalid bucket name"},
		{"s3://host/bucket_with*star", "invalid bucket name"},
		{"s3://host/bucket/a//b", "invalid prefix"},
		{"s3://host/bucket/a/../b", "invalid prefix"},
		{"s3://host/bucket/./b", "invalid prefix"},
		{"s3://host/bucket//", "invalid prefix"},
	}
	for _, tt := range bad {
		got, err := s3.ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) = %#v, want an error", tt.url, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURL(%q) error %q does not say %q", tt.url, err, tt.want)
		}
		if strings.Contains(err.Error(), "AKIA") || strings.Contains(err.Error(), ":secret") {
			t.Errorf("ParseURL(%q) error %q shows the credentials", tt.url, err)
		}
	}
}

func TestLocationHidesCredentials(t *testing.T) {
	cfg := s3.Config{Endpoint: "s3.example.com", Bucket: "bkt", Prefix: "/a/b/", UseTLS: true,
		AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "very-secret"}
	be := open(t, cfg)
	if got, want := be.Location(), "s3://s3.example.com/bkt/a/b"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), be.Location()} {
		if strings.Contains(s, "very-secret") {
			t.Errorf("%q shows the secret key", s)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, cfg := range []s3.Config{
		{Bucket: "bkt"},
		{Endpoint: "http://host", Bucket: "bkt"},
		{Endpoint: "host", Bucket: ""},
		{Endpoint: "host", Bucket: "Bad*Name"},
		{Endpoint: "host", Bucket: "bkt", Prefix: "a//b"},
	} {
		if be, err := s3.Open(t.Context(), cfg); err == nil {
			be.Close()
			t.Errorf("Open(%#v) succeeded", cfg)
		}
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	good := open(t, srv.Config(bucket, "repo"))
	h := backend.Handle{Type: backend.SnapshotFile, Name: "0123"}
	if err := good.Save(t.Context(), h, []byte("x")); err != nil {
		t.Fatal(err)
	}

	wrongSecret := srv.Config(bucket, "repo")
	wrongSecret.SecretAccessKey += "-wrong"
	wrongKey := srv.Config(bucket, "repo")
	wrongKey.AccessKeyID = "nobody"
	for name, cfg := range map[string]s3.Config{"secret": wrongSecret, "access key": wrongKey} {
		t.Run(name, func(t *testing.T) {
			be := open(t, cfg)
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, backend.ErrPermission) {
					t.Errorf("%s with wrong %s = %v, want ErrPermission", op, name, err)
					return
				}
				if !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "HTTP 403") {
					t.Errorf("%s with wrong %s: message %q does not explain", op, name, err)
				}
			}
			_, err := be.Stat(t.Context(), h)
			check("Stat", err)
			_, err = be.Load(t.Context(), h, 0, 0)
			check("Load", err)
			check("Save", be.Save(t.Context(), backend.Handle{Type: backend.SnapshotFile, Name: "4567"}, []byte("y")))
			check("List", be.List(t.Context(), backend.SnapshotFile, func(backend.FileInfo) error { return nil }))
			check("Remove", be.Remove(t.Context(), h))
			check("Create", be.Create(t.Context()))
			t.Logf("message: %v", err)
		})
	}
	if _, err := good.Stat(t.Context(), h); err != nil {
		t.Errorf("object gone after refused calls: %v", err)
	}
}

func TestMissingBucket(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.BucketName()
	be := open(t, srv.Config(bucket, "repo"))
	h := backend.Handle{Type: backend.IndexFile, Name: "0123"}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("%s in missing bucket = %v, want ErrNotExist", op, err)
			return
		}
		if want := fmt.Sprintf("bucket %q does not exist", bucket); !strings.Contains(err.Error(), want) {
			t.Errorf("%s in missing bucket: message %q does not say %q", op, err, want)
		}
	}
	_, err := be.Load(t.Context(), h, 0, 0)
	check("Load", err)
	t.Logf("message: %v", err)
	_, err = be.Load(t.Context(), h, 5, 10)
	check("ranged Load", err)
	_, err = be.Stat(t.Context(), h)
	check("Stat", err)
	check("Save", be.Save(t.Context(), h, []byte("x")))
	check("Remove", be.Remove(t.Context(), h))
	for _, typ := range backend.FileTypes {
		check("List "+string(typ), be.List(t.Context(), typ, func(backend.FileInfo) error { return nil }))
	}
	if _, err := repo.Open(t.Context(), be, "pw"); !errors.Is(err, repo.ErrNoRepository) {
		t.Errorf("repo.Open in missing bucket = %v, want ErrNoRepository", err)
	}

	// Create makes it.
	if err := be.Create(t.Context()); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := be.Save(t.Context(), h, []byte("x")); err != nil {
		t.Fatalf("Save after Create: %v", err)
	}
}

// TestCreateOnly checks that a Save of a taken name is one conditional PUT
// that the server refuses with 412, from this or another client.
func TestCreateOnly(t *testing.T) {
	srv := miniotest.Start(t)
	cfg := srv.Config(srv.NewBucket(t), "repo")
	be, other := open(t, cfg), open(t, cfg)
	h := backend.Handle{Type: backend.LockFile, Name: "0123456789abcdef"}
	first := []byte("the first lock")
	if err := be.Save(t.Context(), h, first); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*s3.Backend{be, other} {
		for _, data := range [][]byte{[]byte("a rival"), first, nil} {
			before := b.Requests()
			err := b.Save(t.Context(), h, data)
			if !errors.Is(err, backend.ErrExist) {
				t.Fatalf("second Save = %v, want ErrExist", err)
			}
			if !strings.Contains(err.Error(), "PreconditionFailed, HTTP 412") {
				t.Errorf("second Save: %q does not show the 412", err)
			}
			// The first Save on other also looks up the bucket's region.
			if n := b.Requests() - before; n != 1 && !(b == other && n == 2) {
				t.Errorf("refused Save took %d requests, want 1", n)
			}
		}
	}
	got, err := other.Load(t.Context(), h, 0, 0)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("Load after refused Saves = %q, %v; want %q", got, err, first)
	}
}

// TestRequests checks the request counts of the common calls: packs go up
// in one PUT, blobs come down in one ranged GET.
func TestRequests(t *testing.T) {
	srv := miniotest.Start(t)
	be := open(t, srv.Config(srv.NewBucket(t), "repo"))
	if err := be.Create(t.Context()); err != nil { // also caches the region
		t.Fatal(err)
	}
	count := func(what string, want uint64, fn func() error) {
		t.Helper()
		before := be.Requests()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := be.Requests() - before; n != want {
			t.Errorf("%s took %d requests, want %d", what, n, want)
		}
	}
	pack := backend.Handle{Type: backend.PackFile, Name: "ab0123456789"}
	data := randomData(1, 40<<20+17)
	count("Save of a 40 MiB pack", 1, func() error { return be.Save(t.Context(), pack, data) })
	count("ranged Load", 1, func() error {
		got, err := be.Load(t.Context(), pack, 20<<20, 1<<20)
		if err == nil && !bytes.Equal(got, data[20<<20:21<<20]) {
			err = errors.New("wrong bytes")
		}
		return err
	})
	count("Load to the end", 1, func() error {
		got, err := be.Load(t.Context(), pack, 40<<20, 0)
		if err == nil && !bytes.Equal(got, data[40<<20:]) {
			err = errors.New("wrong bytes")
		}
		return err
	})
	count("Stat", 1, func() error { _, err := be.Stat(t.Context(), pack); return err })
	count("Remove", 1, func() error { return be.Remove(t.Context(), pack) })
}

// damage is an http.RoundTripper that lets a test change requests and
// responses on the wire.
type damage struct {
	next http.RoundTripper
	req  func(*http.Request) *http.Request
	resp func(*http.Response) *http.Response
}

func (d damage) RoundTrip(req *http.Request) (*http.Response, error) {
	if d.req != nil {
		req = d.req(req)
	}
	resp, err := d.next.RoundTrip(req)
	if err == nil && d.resp != nil {
		resp = d.resp(resp)
	}
	return resp, err
}

// flipReader flips one bit of the byte at offset at.
type flipReader struct {
	r   io.Reader
	at  int64
	pos int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0x10
	}
	f.pos += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return nil }

// TestDamageInTransit checks that a body altered on the way up is refused
// by the store (Content-MD5) and one cut short on the way down is an error,
// both transient.
func TestDamageInTransit(t *testing.T) {
	srv := miniotest.Start(t)
	cfg := srv.Config(srv.NewBucket(t), "repo")
	var flip, cut atomic.Bool
	be, err := s3.OpenWithTransport(t.Context(), cfg, func(next http.RoundTripper) http.RoundTripper {
		return damage{
			next: next,
			req: func(req *http.Request) *http.Request {
				if req.Method != http.MethodPut || req.Body == nil || !flip.Load() {
					return req
				}
				req = req.Clone(req.Context())
				req.Body = &flipReader{r: req.Body, at: 1000}
				return req
			},
			resp: func(resp *http.Response) *http.Response {
				if resp.Request.Method == http.MethodGet && resp.ContentLength > 100 && cut.Load() {
					resp.Body = struct {
						io.Reader
						io.Closer
					}{io.LimitReader(resp.Body, resp.ContentLength/2), resp.Body}
				}
				return resp
			},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	if err := be.Create(t.Context()); err != nil {
		t.Fatal(err)
	}

	h := backend.Handle{Type: backend.PackFile, Name: "cd0123456789"}
	data := randomData(2, 1<<20)
	flip.Store(true)
	err = be.Save(t.Context(), h, data)
	flip.Store(false)
	if !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Save of a body damaged in transit = %v, want ErrTransient", err)
	}
	t.Logf("damaged Save: %v", err)
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat after damaged Save = %v, want ErrNotExist", err)
	}

	if err := be.Save(t.Context(), h, data); err != nil {
		t.Fatal(err)
	}
	cut.Store(true)
	for _, r := range [][2]int{{0, 0}, {100, 5000}, {1 << 19, 0}} {
		got, err := be.Load(t.Context(), h, int64(r[0]), r[1])
		if !errors.Is(err, backend.ErrTransient) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Load(%d, %d) with the body cut short = %d bytes, %v; want ErrTransient", r[0], r[1], len(got), err)
		}
	}
	cut.Store(false)
	if got, err := be.Load(t.Context(), h, 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load = %d bytes, %v", len(got), err)
	}
}

// TestListSkipsStrays puts keys under the repository's prefix that no
// handle maps to; List must report none of them.
func TestListSkipsStrays(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	be := open(t, srv.Config(bucket, "repo"))
	want := map[backend.FileType][]string{
		backend.PackFile:     {"ab0123", "cdef01"},
		backend.SnapshotFile: {"0123"},
		backend.KeyFile:      {"4567"},
	}
	for typ, names := range want {
		for _, name := range names {
			if err := be.Save(t.Context(), backend.Handle{Type: typ, Name: name}, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Backends on deeper prefixes write keys of shapes the repository's
	// layout does not have.
	strays := []struct {
		prefix string
		h      backend.Handle
	}{
		{"repo/data", backend.Handle{Type: backend.SnapshotFile, Name: "0123"}}, // data/snapshots/0123
		{"repo/data/cd", backend.Handle{Type: backend.ConfigFile}},              // data/cd/config
		{"repo/data/ab", backend.Handle{Type: backend.KeyFile, Name: "ab01"}},   // data/ab/keys/ab01
		{"repo/snapshots", backend.Handle{Type: backend.KeyFile, Name: "89"}},   // snapshots/keys/89
		{"repo/keys/sub", backend.Handle{Type: backend.ConfigFile}},             // keys/sub/config
	}
	for _, s := range strays {
		b := open(t, srv.Config(bucket, s.prefix))
		if err := b.Save(t.Context(), s.h, []byte("stray")); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range backend.FileTypes {
		var got []string
		err := be.List(t.Context(), typ, func(fi backend.FileInfo) error {
			got = append(got, fi.Name)
			if fi.Size != int64(len(fi.Name)) {
				t.Errorf("List(%s): %s has size %d, want %d", typ, fi.Name, fi.Size, len(fi.Name))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("List(%s): %v", typ, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[typ]) {
			t.Errorf("List(%s) = %q, want %q", typ, got, want[typ])
		}
	}
}

const password = "correct horse battery staple"

// testRepo is what writeRepo stored.
type testRepo struct {
	blobs map[repo.ID][]byte
	snap  repo.ID
}

// writeRepo initialises a repository on be and stores blobs and a
// snapshot in it.
func writeRepo(t *testing.T, be backend.Backend) testRepo {
	t.Helper()
	ctx := t.Context()
	r, err := repo.Init(ctx, be, password, repo.InitOptions{KDF: repo.TestKDF, PackSize: 4 << 20})
	if err != nil {
		t.Fatalf("Init on %s: %v", be.Location(), err)
	}
	tr := testRepo{blobs: make(map[repo.ID][]byte)}
	var first repo.ID
	for i, size := range []int{100, 1 << 20, 3 << 20, 5<<20 + 3, 64 << 10} {
		data := randomData(uint64(100+i), size)
		id := repo.Hash(data)
		if _, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil {
			t.Fatalf("SaveBlob: %v", err)
		}
		tr.blobs[id] = data
		if i == 0 {
			first = id
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	tr.snap, err = r.SaveSnapshot(ctx, &repo.Snapshot{
		Label: "s3-test", Time: time.Now(), Host: "test", Paths: []string{"/src"}, Tree: first,
	})
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	return tr
}

// checkRepo opens the repository on be and reads back what writeRepo
// stored.
func checkRepo(t *testing.T, be backend.Backend, want testRepo) {
	t.Helper()
	ctx := t.Context()
	r, err := repo.Open(ctx, be, password)
	if err != nil {
		t.Fatalf("Open on %s: %v", be.Location(), err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatalf("LoadIndex: %v", err)
	}
	for id, data := range want.blobs {
		got, err := r.LoadBlob(ctx, repo.DataBlob, id)
		if err != nil {
			t.Fatalf("LoadBlob(%s): %v", id.Short(), err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("LoadBlob(%s): %d bytes differ from the %d saved", id.Short(), len(got), len(data))
		}
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatalf("Snapshots: %v", err)
	}
	if len(snaps) != 1 || snaps[0].ID() != want.snap || snaps[0].Label != "s3-test" {
		t.Fatalf("Snapshots = %v, want the one saved (%s)", snaps, want.snap.Short())
	}
	if _, err := repo.Open(ctx, be, "wrong password"); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("Open with a wrong password = %v, want ErrWrongPassword", err)
	}
}

func TestRepository(t *testing.T) {
	srv := miniotest.Start(t)
	cfg := srv.Config(srv.BucketName(), "backups/alice")
	want := writeRepo(t, open(t, cfg))
	checkRepo(t, open(t, cfg), want)

	// Init refuses a prefix that holds a repository.
	_, err := repo.Init(t.Context(), open(t, cfg), password, repo.InitOptions{KDF: repo.TestKDF})
	if !errors.Is(err, backend.ErrExist) {
		t.Errorf("second Init = %v, want ErrExist", err)
	}
}

// copyObjects copies every object from src to dst, creating dst, the way a
// user would with a generic copy tool.
func copyObjects(t *testing.T, src, dst backend.Backend) int {
	t.Helper()
	ctx := t.Context()
	if c, ok := dst.(backend.Creator); ok {
		if err := c.Create(ctx); err != nil {
			t.Fatalf("Create %s: %v", dst.Location(), err)
		}
	}
	n := 0
	for _, typ := range backend.FileTypes {
		var names []string
		err := src.List(ctx, typ, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%s) of %s: %v", typ, src.Location(), err)
		}
		for _, name := range names {
			h := backend.Handle{Type: typ, Name: name}
			data, err := src.Load(ctx, h, 0, 0)
			if err != nil {
				t.Fatalf("Load(%v): %v", h, err)
			}
			if err := dst.Save(ctx, h, data); err != nil {
				t.Fatalf("Save(%v) to %s: %v", h, dst.Location(), err)
			}
			n++
		}
	}
	return n
}

// checkLayout checks that every file under root, by its path relative to
// root, is the key of an object of be that holds the same bytes.
func checkLayout(t *testing.T, root string, be *s3.Backend, prefix string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		h := backend.Handle{Type: backend.FileType(parts[0]), Name: parts[len(parts)-1]}
		if len(parts) == 1 {
			h = backend.Handle{Type: backend.ConfigFile}
		}
		if key := s3.Key(be, h); key != prefix+"/"+filepath.ToSlash(rel) {
			t.Errorf("%s is stored as key %q, want %q", rel, key, prefix+"/"+rel)
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under %s", files, root)
	}
}

func TestCopyLocalToS3(t *testing.T) {
	srv := miniotest.Start(t)
	dir := filepath.Join(t.TempDir(), "repo")
	src, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	want := writeRepo(t, src)

	cfg := srv.Config(srv.BucketName(), "copies/from-local")
	dst := open(t, cfg)
	n := copyObjects(t, src, dst)
	t.Logf("copied %d objects", n)
	checkRepo(t, dst, want)
	checkLayout(t, dir, dst, cfg.Prefix)
}

func TestCopyS3ToLocal(t *testing.T) {
	srv := miniotest.Start(t)
	src := open(t, srv.Config(srv.BucketName(), "copies/to-local"))
	want := writeRepo(t, src)

	dir := filepath.Join(t.TempDir(), "repo")
	dst, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	n := copyObjects(t, src, dst)
	t.Logf("copied %d objects", n)
	checkRepo(t, dst, want)
	checkLayout(t, dir, src, "copies/to-local")
}
