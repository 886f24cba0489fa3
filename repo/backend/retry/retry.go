package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Creator = (*Backend)(nil)
)

// Defaults for the zero fields of Options.
const (
	DefaultAttempts = 6
	DefaultBase     = 200 * time.Millisecond
	DefaultMax      = 10 * time.Second
)

// Options tune the retries. Zero (or negative) fields take the defaults.
type Options struct {
	// Attempts is how many times an operation is tried in all, the first
	// try included; 1 disables retrying.
	Attempts int
	// Base caps the wait before the second try; the cap doubles with every
	// failed try up to Max. Each wait is drawn uniformly below its cap.
	Base time.Duration
	Max  time.Duration
	// OnRetry, if set, is called on the caller's goroutine before each
	// wait, for logging. op is "save", "load", "stat", "remove", "list" or
	// "create"; for list only h.Type is set, for create h is zero. attempt
	// is the number of the try that failed (1 for the first) and err its
	// error. It must not block.
	OnRetry func(op string, h backend.Handle, attempt int, err error)
	// ContentNamed promises that every object's name is determined by its
	// content, as in cairn repositories (names are hashes of the stored
	// bytes). An identical object already stored is then as good as ours,
	// so Save skips its first look (a request per object on S3) and a
	// Save of an object already there may report success instead of
	// ErrExist after a transient failure.
	ContentNamed bool
}

// Backend retries the transient failures of the backend it wraps. It is
// safe for concurrent use as far as the inner backend is; it keeps no
// state of its own between calls.
type Backend struct {
	inner backend.Backend
	opts  Options
}

// New returns a Backend retrying inner's transient failures.
func New(inner backend.Backend, opts Options) *Backend {
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Base <= 0 {
		opts.Base = DefaultBase
	}
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	return &Backend{inner: inner, opts: opts}
}

// permanent are the errors retrying cannot fix, even wrapped together with
// ErrTransient.
var permanent = []error{
	backend.ErrNotExist, backend.ErrExist, backend.ErrPermission,
	backend.ErrNoSpace, backend.ErrClosed,
	context.Canceled, context.DeadlineExceeded,
}

// retryable reports whether err is worth another try.
func retryable(err error) bool {
	if !errors.Is(err, backend.ErrTransient) {
		return false
	}
	for _, p := range permanent {
		if errors.Is(err, p) {
			return false
		}
	}
	return true
}

// final marks an error that ends the retries whatever it wraps; do returns
// the error inside. It has no Unwrap on purpose.
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }

// describe names an operation in messages.
func describe(op string, h backend.Handle) string {
	switch op {
	case "list":
		return "list " + string(h.Type)
	case "create":
		return "create"
	}
	return op + " " + h.String()
}

// do calls try until it succeeds, fails for good, or the attempts run out,
// waiting between tries.
func (b *Backend) do(ctx context.Context, op string, h backend.Handle, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if f, ok := err.(final); ok {
			return f.err
		}
		if !retryable(err) {
			return err
		}
		if attempt >= b.opts.Attempts {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		if b.opts.OnRetry != nil {
			b.opts.OnRetry(op, h, attempt, err)
		}
		if cerr := sleep(ctx, b.backoff(attempt)); cerr != nil {
			return fmt.Errorf("%s: %w while waiting to retry (last error: %v)", describe(op, h), cerr, err)
		}
	}
}

// backoff returns the wait after the attempt-th failed try: full jitter
// below a cap that starts at Base and doubles up to Max.
func (b *Backend) backoff(attempt int) time.Duration {
	ceiling := b.opts.Base
	for i := 1; i < attempt && ceiling < b.opts.Max; i++ {
		if ceiling > b.opts.Max/2 {
			ceiling = b.opts.Max
			break
		}
		ceiling *= 2
	}
	return rand.N(min(ceiling, b.opts.Max))
}

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Location implements backend.Backend: the inner backend's location.
func (b *Backend) Location() string { return b.inner.Location() }

// Create implements backend.Creator by delegating to the inner backend.
func (b *Backend) Create(ctx context.Context) error {
	c, ok := b.inner.(backend.Creator)
	if !ok {
		return fmt.Errorf("create: %s cannot create its storage: %w", b.inner.Location(), errors.ErrUnsupported)
	}
	return b.do(ctx, "create", backend.Handle{}, func() error { return c.Create(ctx) })
}

// Save implements backend.Backend. See the package documentation for how
// a Save whose response was lost is told from one that lost a race.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	// Look first, so that ErrExist after a failed try below can only come
	// from a Save that raced ours (or was ours), never from an old object.
	if b.opts.ContentNamed {
		// No need: an old identical object is as good as ours.
	} else if _, err := b.Stat(ctx, h); err == nil {
		return fmt.Errorf("save %v: %w", h, backend.ErrExist)
	} else if !errors.Is(err, backend.ErrNotExist) {
		return fmt.Errorf("save %v: %w", h, err)
	}

	uncertain := false // a try failed transiently and may have stored data
	return b.do(ctx, "save", h, func() error {
		err := b.inner.Save(ctx, h, data)
		switch {
		case uncertain && errors.Is(err, backend.ErrExist):
			return b.landed(ctx, h, data, err)
		case retryable(err):
			uncertain = true
		}
		return err
	})
}

// landed decides a Save that found h taken after one of its tries failed
// transiently: success if the stored object is exactly data (our try
// landed, or an identical object won the race, which for content-named
// objects is the same thing), exist if it is someone else's or already
// gone. A transient read error is returned for do to try again.
func (b *Backend) landed(ctx context.Context, h backend.Handle, data []byte, exist error) error {
	stored, err := b.inner.Load(ctx, h, 0, 0)
	switch {
	case err == nil && bytes.Equal(stored, data):
		return nil
	case err == nil, errors.Is(err, backend.ErrNotExist):
		return exist
	}
	return fmt.Errorf("save %v: reading back after an uncertain try: %w", h, err)
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	var data []byte
	err := b.do(ctx, "load", h, func() error {
		var err error
		data, err = b.inner.Load(ctx, h, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	var fi backend.FileInfo
	err := b.do(ctx, "stat", h, func() error {
		var err error
		fi, err = b.inner.Stat(ctx, h)
		return err
	})
	if err != nil {
		return backend.FileInfo{}, err
	}
	return fi, nil
}

// Remove implements backend.Backend. Removing a missing object succeeds, so
// a retry after a lost response needs no special case.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	return b.do(ctx, "remove", h, func() error { return b.inner.Remove(ctx, h) })
}

// List implements backend.Backend. A failed listing restarts from the
// beginning; names already passed to fn are skipped, so fn sees each name
// once. fn is called on the goroutines the inner List calls it on (one at a
// time, for every cairn backend).
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	seen := make(map[string]struct{})
	return b.do(ctx, "list", backend.Handle{Type: t}, func() error {
		var fnErr error
		err := b.inner.List(ctx, t, func(fi backend.FileInfo) error {
			if _, ok := seen[fi.Name]; ok {
				return nil
			}
			seen[fi.Name] = struct{}{}
			fnErr = fn(fi)
			return fnErr
		})
		if fnErr != nil {
			// The caller's error, whatever it wraps: never retried.
			if err == nil {
				err = fnErr
			}
			return final{err}
		}
		return err
	})
}

// Close implements backend.Backend. It is not retried.
func (b *Backend) Close() error { return b.inner.Close() }
