package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/cairn-backup/cairn/repo/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Creator = (*Backend)(nil)
)

// Config says where a repository is and how to reach it.
type Config struct {
	Endpoint string // host[:port], no scheme
	Bucket   string
	Prefix   string // key prefix inside the bucket, no leading or trailing "/"
	UseTLS   bool

	// Empty keys make anonymous requests.
	AccessKeyID, SecretAccessKey string
	// Region is the bucket's region; empty asks the store (one request per
	// Backend).
	Region string
}

// ParseURL parses s3://host[:port]/bucket[/prefix...] (HTTPS) and
// s3+http://host[:port]/bucket[/prefix...] (plain HTTP) into a Config
// without credentials.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("s3: invalid URL: %w", err)
	}
	// Messages show the URL without credentials.
	bare := *u
	bare.User = nil
	shown := bare.String()
	var cfg Config
	switch u.Scheme {
	case "s3":
		cfg.UseTLS = true
	case "s3+http":
	default:
		return Config{}, fmt.Errorf("s3: unsupported scheme %q in %q: want s3://host[:port]/bucket[/prefix] (HTTPS) or s3+http://host[:port]/bucket[/prefix] (plain HTTP)", u.Scheme, shown)
	}
	switch {
	case u.Opaque != "":
		return Config{}, fmt.Errorf("s3: %q: want %s://host[:port]/bucket[/prefix]", shown, u.Scheme)
	case u.User != nil:
		return Config{}, fmt.Errorf("s3: %q: credentials do not belong in the URL; give them as access and secret keys", shown)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return Config{}, fmt.Errorf("s3: %q: queries and fragments are not supported", shown)
	case u.Hostname() == "":
		return Config{}, fmt.Errorf("s3: %q has no host", shown)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("s3: %q: invalid port %q", shown, p)
		}
	}
	cfg.Endpoint = u.Host

	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if bucket == "" {
		return Config{}, fmt.Errorf("s3: %q names no bucket: want %s://%s/bucket[/prefix]", shown, u.Scheme, u.Host)
	}
	cfg.Bucket = bucket
	// One trailing slash is harmless: s3://host/bucket/ and s3://host/b/p/.
	if prefix != "" {
		if cfg.Prefix = strings.TrimSuffix(prefix, "/"); cfg.Prefix == "" {
			return Config{}, fmt.Errorf("s3: %q: invalid prefix %q", shown, prefix)
		}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("s3: %q: %w", shown, err)
	}
	return cfg, nil
}

// validate checks the parts of c that name the storage.
func (c Config) validate() error {
	if c.Endpoint == "" {
		return errors.New("no endpoint")
	}
	if strings.ContainsAny(c.Endpoint, "/?#@") {
		return fmt.Errorf("endpoint %q is not host[:port]", c.Endpoint)
	}
	if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
		return fmt.Errorf("invalid bucket name %q: %v", c.Bucket, err)
	}
	if c.Prefix == "" {
		return nil
	}
	for _, seg := range strings.Split(c.Prefix, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid prefix %q: empty, \".\" and \"..\" path elements are not allowed", c.Prefix)
		}
	}
	return nil
}

// URL returns the repository's URL, without credentials.
func (c Config) URL() string {
	scheme := "s3+http"
	if c.UseTLS {
		scheme = "s3"
	}
	u := scheme + "://" + c.Endpoint + "/" + c.Bucket
	if c.Prefix != "" {
		u += "/" + c.Prefix
	}
	return u
}

// String returns the URL, so that printing a Config shows no secret.
func (c Config) String() string { return c.URL() }

// GoString is like String, for %#v.
func (c Config) GoString() string {
	return fmt.Sprintf("s3.Config{URL: %q, AccessKeyID: %q, SecretAccessKey: <redacted>, Region: %q}", c.URL(), c.AccessKeyID, c.Region)
}

// Backend stores objects in a bucket. It is safe for concurrent use; all
// state is in the store, so several processes may share a repository.
type Backend struct {
	cfg Config
	dir string // cfg.Prefix + "/", or "" for the bucket's root

	client *minio.Client
	core   minio.Core // client, for GETs that need response headers

	transport *http.Transport
	requests  atomic.Uint64 // HTTP requests sent
	closed    atomic.Bool
}

// Open returns a backend for the repository cfg names. It makes no request:
// the bucket need not exist (Create makes it), and calls on a missing bucket
// fail with errors wrapping backend.ErrNotExist that name the bucket.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	return open(ctx, cfg, nil)
}

// open is Open with a hook that wraps the HTTP transport (tests use it to
// damage requests and responses).
func open(ctx context.Context, cfg Config, wrap func(http.RoundTripper) http.RoundTripper) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3: open: %w", err)
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	tr, err := minio.DefaultTransport(cfg.UseTLS)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	b := &Backend{cfg: cfg, transport: tr}
	if cfg.Prefix != "" {
		b.dir = cfg.Prefix + "/"
	}
	var rt http.RoundTripper = counter{next: tr, n: &b.requests}
	if wrap != nil {
		rt = wrap(rt)
	}
	b.client, err = minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		Secure:    cfg.UseTLS,
		Transport: rt,
		Region:    cfg.Region,
		// One attempt per call: retrying is the retry decorator's job
		// (see the package documentation).
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %s: %w", cfg.URL(), err)
	}
	b.core = minio.Core{Client: b.client}
	return b, nil
}

// counter is an http.RoundTripper that counts requests.
type counter struct {
	next http.RoundTripper
	n    *atomic.Uint64
}

func (c counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

// Requests returns how many HTTP requests the backend has sent, the bucket
// region lookup included. Benchmarks report it.
func (b *Backend) Requests() uint64 { return b.requests.Load() }

// Location implements backend.Backend: the URL, without credentials.
func (b *Backend) Location() string { return b.cfg.URL() }

// key returns the object key of h.
func (b *Backend) key(h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return b.dir + "config"
	case backend.PackFile:
		return b.dir + string(backend.PackFile) + "/" + h.Name[:2] + "/" + h.Name
	default:
		return b.dir + string(h.Type) + "/" + h.Name
	}
}

// check runs the checks every method taking a handle starts with.
func (b *Backend) check(ctx context.Context, op string, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("%s %v: %w", op, h, err)
	}
	if b.closed.Load() {
		return fmt.Errorf("%s %v: %w", op, h, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %v: %w", op, h, err)
	}
	return nil
}

// fail wraps the error of a store call on h.
func (b *Backend) fail(op string, h backend.Handle, err error) error {
	return fmt.Errorf("%s %v: %w", op, h, translate(err, b.cfg.Bucket))
}

// Create implements backend.Creator. It makes the bucket if it is missing
// and fails with ErrExist if any object has a key under the prefix (with no
// prefix: if the bucket holds anything), so it never adopts storage that
// holds something else.
func (b *Backend) Create(ctx context.Context) error {
	loc := b.Location()
	if b.closed.Load() {
		return fmt.Errorf("create %s: %w", loc, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", loc, err)
	}
	exists, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("create %s: %w", loc, translate(err, b.cfg.Bucket))
	}
	if !exists {
		err := b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region})
		var resp minio.ErrorResponse
		switch {
		case errors.As(err, &resp) && resp.Code == minio.BucketAlreadyOwnedByYou:
			// Another Create won the race; the prefix check decides.
		case errors.As(err, &resp) && resp.Code == minio.BucketAlreadyExists:
			return fmt.Errorf("create %s: the bucket name %q is taken by another account: %w", loc, b.cfg.Bucket, err)
		case err != nil:
			return fmt.Errorf("create %s: make bucket %q: %w", loc, b.cfg.Bucket, translate(err, b.cfg.Bucket))
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: b.dir, Recursive: true, MaxKeys: 1, FetchOwner: new(false)}
	for obj := range b.client.ListObjectsIter(ctx, b.cfg.Bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("create %s: %w", loc, translate(obj.Err, b.cfg.Bucket))
		}
		return fmt.Errorf("create %s: not empty (holds %q): %w", loc, obj.Key, backend.ErrExist)
	}
	// The listing ends silently when ctx is cancelled.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", loc, err)
	}
	return nil
}

// Save implements backend.Backend with one conditional PUT (see the package
// documentation).
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := b.check(ctx, "save", h); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// Content-MD5 protects the body; signing its SHA-256 as well
		// (streaming signatures on plain HTTP) would only cost time, and
		// everything stored is authenticated by the repository anyway.
		SendContentMd5:       true,
		DisableContentSha256: true,
		DisableMultipart:     true,
	}
	opts.SetMatchETagExcept("*") // If-None-Match: *
	_, err := b.client.PutObject(ctx, b.cfg.Bucket, b.key(h), bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return b.fail("save", h, err)
	}
	return nil
}

// Load implements backend.Backend with one GET, ranged unless the whole
// object is asked for.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	if err := b.check(ctx, "load", h); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("load %v: invalid range offset %d length %d", h, offset, length)
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		opts.SetRange(offset, offset+int64(length)-1)
	case offset > 0:
		opts.SetRange(offset, 0) // to the end
	}
	body, info, header, err := b.core.GetObject(ctx, b.cfg.Bucket, b.key(h), opts)
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == minio.InvalidRange || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
			return b.loadUnsatisfiable(ctx, h, offset, length)
		}
		return nil, b.fail("load", h, err)
	}
	defer body.Close()

	first, size, err := responseRange(header, info.Size)
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	end := size
	if length > 0 {
		end = offset + int64(length)
	}
	if offset > size || end > size {
		return nil, errBeyond(h, offset, length, size)
	}
	if first > offset {
		return nil, fmt.Errorf("load %v: store sent bytes from %d, asked for %d", h, first, offset)
	}
	// A store that ignores Range sends the object from its start.
	if skip := offset - first; skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			return nil, fmt.Errorf("load %v: short body: %w", h, translate(err, b.cfg.Bucket))
		}
	}
	buf := make([]byte, end-offset)
	if n, err := io.ReadFull(body, buf); err != nil {
		// The object is long enough, so this is the transfer failing.
		return nil, fmt.Errorf("load %v: short body, %d of %d bytes: %w", h, n, len(buf), translate(err, b.cfg.Bucket))
	}
	return buf, nil
}

// loadUnsatisfiable handles a GET refused with 416: the range starts at or
// beyond the end. Load at offset == size with length 0 is empty, not an
// error (the contract allows it; S3 does not).
func (b *Backend) loadUnsatisfiable(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return nil, b.fail("load", h, err)
	}
	if length == 0 && offset == info.Size {
		return []byte{}, nil
	}
	return nil, errBeyond(h, offset, length, info.Size)
}

// errBeyond is the error of a Load past the end. Like the local backend's
// it wraps io.ErrUnexpectedEOF and no sentinel: retrying cannot help.
func errBeyond(h backend.Handle, offset int64, length int, size int64) error {
	return fmt.Errorf("load %v: range %d+%d beyond size %d: %w", h, offset, length, size, io.ErrUnexpectedEOF)
}

// responseRange returns the offset of the first byte a GET response holds
// and the size of the whole object, from Content-Range ("bytes a-b/size")
// or, for a response to an unranged GET, Content-Length.
func responseRange(header http.Header, contentLength int64) (first, size int64, err error) {
	cr := header.Get("Content-Range")
	if cr == "" {
		if contentLength < 0 {
			return 0, 0, errors.New("store sent no Content-Length")
		}
		return 0, contentLength, nil
	}
	var last int64
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &size); err != nil || first < 0 || last < first || size <= last {
		return 0, 0, fmt.Errorf("store sent an invalid Content-Range %q", cr)
	}
	if contentLength >= 0 && contentLength != last-first+1 {
		return 0, 0, fmt.Errorf("store sent Content-Range %q with Content-Length %d", cr, contentLength)
	}
	return first, size, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.check(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return backend.FileInfo{}, b.fail("stat", h, err)
	}
	return backend.FileInfo{Name: h.ReportedName(), Size: info.Size}, nil
}

// Remove implements backend.Backend. S3 deletes of missing keys succeed;
// a missing bucket is an error.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.check(ctx, "remove", h); err != nil {
		return err
	}
	err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.key(h), minio.RemoveObjectOptions{})
	if err == nil {
		return nil
	}
	err = translate(err, b.cfg.Bucket)
	var serr *s3Error
	if errors.Is(err, backend.ErrNotExist) && errors.As(err, &serr) && !serr.noBucket {
		return nil // a store that reports missing keys on DELETE
	}
	return fmt.Errorf("remove %v: %w", h, err)
}

// List implements backend.Backend. Listing in a missing bucket fails with
// ErrNotExist.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if b.closed.Load() {
		return fmt.Errorf("list %s: %w", t, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if t == backend.ConfigFile {
		return b.listConfig(ctx, fn)
	}

	prefix := b.dir + string(t) + "/"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: t == backend.PackFile, FetchOwner: new(false)}
	for obj := range b.client.ListObjectsIter(ctx, b.cfg.Bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list %s: %w", t, translate(obj.Err, b.cfg.Bucket))
		}
		name, ok := objectName(t, strings.TrimPrefix(obj.Key, prefix))
		if !ok {
			continue
		}
		if err := fn(backend.FileInfo{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	// The listing ends silently when ctx is cancelled.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	return nil
}

// objectName returns the name of the object of type t whose key, after the
// type's prefix, is rel, and whether rel is the key of such an object at
// all: "xx/<name>" with xx the name's first two characters for packs, a
// bare name otherwise.
func objectName(t backend.FileType, rel string) (string, bool) {
	name := rel
	if t == backend.PackFile {
		dir, rest, ok := strings.Cut(rel, "/")
		if !ok || len(rest) < 2 || rest[:2] != dir {
			return "", false
		}
		name = rest
	}
	if (backend.Handle{Type: t, Name: name}).Valid() != nil {
		return "", false
	}
	return name, true
}

func (b *Backend) listConfig(ctx context.Context, fn func(backend.FileInfo) error) error {
	h := backend.Handle{Type: backend.ConfigFile}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		err = translate(err, b.cfg.Bucket)
		var serr *s3Error
		if errors.Is(err, backend.ErrNotExist) && errors.As(err, &serr) && !serr.noBucket {
			return nil // no config yet
		}
		return fmt.Errorf("list config: %w", err)
	}
	return fn(backend.FileInfo{Name: "config", Size: info.Size})
}

// Close implements backend.Backend. It drops idle connections; later calls,
// Close included, fail with ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("close %s: %w", b.Location(), backend.ErrClosed)
	}
	b.transport.CloseIdleConnections()
	return nil
}
