package location

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/diskcache"
	"github.com/cairn-backup/cairn/repo/backend/retry"
)

// ErrUnknownScheme: a URL names a scheme no Scheme is registered for.
var ErrUnknownScheme = errors.New("unsupported scheme")

// Scheme is one kind of storage.
type Scheme struct {
	// Name names the kind in messages ("local", "s3").
	Name string
	// Prefixes select the scheme, compared without case: a location
	// starting with one of them is of this scheme ("s3://", "local:").
	Prefixes []string
	// Paths makes this the scheme of plain paths: every location that
	// has no registered prefix and is not a URL ("/srv/backup", "repo").
	// One scheme at most registers it.
	Paths bool
	// Key returns the canonical form of a location, by which a process
	// keeps one open repository per store (a path made absolute, a URL
	// without a trailing slash). nil: the location as given.
	Key func(loc string) string
	// Display returns the location as users see it, credentials
	// redacted. nil: a URL with its password replaced by "xxxxx".
	Display func(loc string) string
	// Open parses loc in full and returns its storage. It should make no
	// request: errors of reaching the store show at the first use.
	Open func(ctx context.Context, loc string, o Options) (backend.Backend, error)
	// SecretEnv are the environment variables the scheme reads secrets
	// from by default (S3: $AWS_SECRET_ACCESS_KEY …), which hooks and
	// other child processes must not inherit.
	SecretEnv []string
	// Defaults tune the repositories in this kind of storage.
	Defaults Defaults
	// Hidden leaves the scheme out of the forms that messages list
	// (Supported, URLs): a test aid.
	Hidden bool
	// Adjust, if set, returns the defaults of one location, for schemes
	// whose locations differ (faulty+: its inner location's, with a
	// settle time covering the lags it injects). nil: Defaults.
	Adjust func(loc string, d Defaults) Defaults
}

// Defaults are what a repository in a kind of storage needs.
type Defaults struct {
	// Remote: storage across a network, slower to reach than a disk.
	Remote bool
	// Settle is how long an exclusive lock waits for rival locks to show
	// in listings (DESIGN.md §7); a repository's definition may say
	// otherwise.
	Settle time.Duration
	// Uploads is how many packs upload at once; 0 keeps the repository's
	// default.
	Uploads int
	// Decorators wrap the storage Open returns, innermost first.
	Decorators []Decorator
	// CacheMetadata keeps copies of keys, index, snapshots and trees on
	// local disk (repo.Repository.UseLocalCache).
	CacheMetadata bool
}

// Decorator wraps storage, e.g. in retries.
type Decorator func(be backend.Backend, o Options) backend.Backend

// Retry retries transient failures; every object of a repository is
// named by its content, which retries may rely on.
func Retry(be backend.Backend, o Options) backend.Backend {
	return retry.New(be, retry.Options{ContentNamed: true, OnRetry: o.OnRetry})
}

// Options say how to open a location.
type Options struct {
	// Credentials, if set, gives the credentials of stores that take
	// some; it is called only by those. nil: the store's defaults (S3:
	// $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY).
	Credentials func() (Credentials, error)
	// OnRetry, if set, sees each retry of the Retry decorator (see
	// retry.Options.OnRetry). It must not block.
	OnRetry func(op string, h backend.Handle, attempt int, err error)
	// CacheDir is the root of the local metadata cache of schemes with
	// CacheMetadata; "" is diskcache.CacheDir.
	CacheDir string
}

// Credentials are an access key and its secret.
type Credentials struct {
	AccessKeyID, SecretAccessKey string
}

// String shows the key id only, so that printing never shows the secret.
func (c Credentials) String() string { return c.AccessKeyID + ":xxxxx" }

// GoString is like String, for %#v.
func (c Credentials) GoString() string {
	return fmt.Sprintf("location.Credentials{AccessKeyID: %q, SecretAccessKey: <redacted>}", c.AccessKeyID)
}

var registry struct {
	mu      sync.RWMutex // guards schemes
	schemes []*Scheme
}

// Register adds a scheme. It panics if a prefix, or the Paths role, is
// taken already: registrations are fixed at init.
func Register(s *Scheme) {
	if s.Open == nil || len(s.Prefixes) == 0 && !s.Paths {
		panic("location: scheme " + s.Name + " has no Open or selects nothing")
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, o := range registry.schemes {
		if s.Paths && o.Paths {
			panic("location: schemes " + o.Name + " and " + s.Name + " both take paths")
		}
		for _, p := range s.Prefixes {
			for _, q := range o.Prefixes {
				if strings.EqualFold(p, q) {
					panic("location: prefix " + p + " of " + s.Name + " is taken by " + o.Name)
				}
			}
		}
	}
	registry.schemes = append(registry.schemes, s)
}

// Location is where a repository is: a path or a URL whose scheme is
// registered. The zero Location is invalid.
type Location struct {
	loc    string
	scheme *Scheme
}

// Parse recognises loc's scheme: a registered prefix, else a plain path
// when it is no URL. A URL must parse; its scheme must be registered
// (ErrUnknownScheme otherwise). The scheme's own rules are checked when
// the location is opened.
func Parse(loc string) (Location, error) {
	if loc == "" {
		return Location{}, errors.New("empty repository location")
	}
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	var u *url.URL
	if strings.Contains(loc, "://") {
		var err error
		if u, err = url.Parse(loc); err != nil {
			return Location{}, fmt.Errorf("invalid URL: %v", err)
		}
	}
	var paths *Scheme
	for _, s := range registry.schemes {
		for _, p := range s.Prefixes {
			if trimPrefix(loc, p) != loc {
				return Location{loc: loc, scheme: s}, nil
			}
		}
		if s.Paths {
			paths = s
		}
	}
	switch {
	case u != nil:
		return Location{}, fmt.Errorf("%w %q: want %s", ErrUnknownScheme, u.Scheme, supportedLocked())
	case paths == nil:
		return Location{}, fmt.Errorf("%q: no scheme takes paths", loc)
	}
	return Location{loc: loc, scheme: paths}, nil
}

// Supported lists the forms of location the registry takes, for messages:
// "a path, s3:// or s3+http://".
func Supported() string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return supportedLocked()
}

func supportedLocked() string {
	forms := urlPrefixesLocked()
	for _, s := range registry.schemes {
		if s.Paths {
			forms = append([]string{"a path"}, forms...)
		}
	}
	return orList(forms)
}

// URLs lists the URL prefixes the registry takes, for messages: "s3:// or
// s3+http://".
func URLs() string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return orList(urlPrefixesLocked())
}

// urlPrefixesLocked lists the prefixes of the schemes that do not take
// paths.
func urlPrefixesLocked() []string {
	var forms []string
	for _, s := range registry.schemes {
		if !s.Paths && !s.Hidden {
			forms = append(forms, s.Prefixes...)
		}
	}
	return forms
}

func orList(forms []string) string {
	switch len(forms) {
	case 0:
		return "nothing"
	case 1:
		return forms[0]
	}
	return strings.Join(forms[:len(forms)-1], ", ") + " or " + forms[len(forms)-1]
}

// SecretEnv lists the environment variables of every scheme's SecretEnv.
func SecretEnv() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	var names []string
	for _, s := range registry.schemes {
		names = append(names, s.SecretEnv...)
	}
	return names
}

// Display is the display form of loc, whether it parses or not:
// credentials redacted.
func Display(loc string) string {
	if l, err := Parse(loc); err == nil {
		return l.String()
	}
	return redact(loc)
}

// String is the display form: credentials redacted.
func (l Location) String() string {
	if l.scheme == nil {
		return ""
	}
	if l.scheme.Display != nil {
		return l.scheme.Display(l.loc)
	}
	return redact(l.loc)
}

// redact replaces the password of a URL by "xxxxx"; a URL that does not
// parse loses everything between "://" and its last "@".
func redact(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err == nil {
		if u.User == nil {
			return s
		}
		return u.Redacted()
	}
	scheme, rest, _ := strings.Cut(s, "://")
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		return scheme + "://xxxxx" + rest[i:]
	}
	return s
}

// Secret reports whether the location itself holds a password
// (s3://key:secret@host/…), which belongs elsewhere.
func (l Location) Secret() bool {
	if !strings.Contains(l.loc, "://") {
		return false
	}
	u, err := url.Parse(l.loc)
	if err != nil {
		return strings.Contains(l.loc, "@")
	}
	_, ok := u.User.Password()
	return ok
}

// Relative reports whether the location is a relative path ("repo",
// "local:repo").
func (l Location) Relative() bool {
	if l.scheme == nil || !l.scheme.Paths {
		return false
	}
	p := l.loc
	for _, prefix := range l.scheme.Prefixes {
		p = trimPrefix(p, prefix)
	}
	return !filepath.IsAbs(p)
}

// trimPrefix is strings.TrimPrefix without regard to case.
func trimPrefix(s, prefix string) string {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):]
	}
	return s
}

// Key is the canonical form of the location: two locations of one store
// have the same Key.
func (l Location) Key() string {
	if l.scheme != nil && l.scheme.Key != nil {
		return l.scheme.Key(l.loc)
	}
	return l.loc
}

// Scheme is the location's scheme.
func (l Location) Scheme() *Scheme { return l.scheme }

// Defaults are the defaults of the location's scheme.
func (l Location) Defaults() Defaults {
	if l.scheme == nil {
		return Defaults{}
	}
	if l.scheme.Adjust != nil {
		return l.scheme.Adjust(l.loc, l.scheme.Defaults)
	}
	return l.scheme.Defaults
}

// Open returns the storage at the location, wrapped in its scheme's
// decorators.
func (l Location) Open(ctx context.Context, o Options) (backend.Backend, error) {
	if l.scheme == nil {
		return nil, errors.New("location: open of the zero Location")
	}
	be, err := l.scheme.Open(ctx, l.loc, o)
	if err != nil {
		return nil, err
	}
	for _, d := range l.Defaults().Decorators {
		be = d(be, o)
	}
	return be, nil
}

// OpenRepository opens the repository in be, the storage Open returned
// for this location, with password, tuned by the scheme's defaults:
// uploads in parallel and a local metadata cache for remote storage. It
// closes be if it fails. (Storage and repository are opened in two steps
// so that a malformed location fails before a password is asked for.)
func (l Location) OpenRepository(ctx context.Context, be backend.Backend, password string, o Options) (*repo.Repository, error) {
	r, err := repo.Open(ctx, be, password)
	if err != nil {
		be.Close()
		return nil, err
	}
	d := l.Defaults()
	r.SetSettle(d.Settle)
	if d.Uploads > 0 {
		r.SetUploads(d.Uploads)
	}
	if d.CacheMetadata {
		dir := o.CacheDir
		if dir == "" {
			dir, err = diskcache.CacheDir()
		}
		if err == nil {
			r.UseLocalCache(dir)
		}
	}
	return r, nil
}
