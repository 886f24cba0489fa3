package faulty

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Creator = (*Backend)(nil)
)

// Operation names, as Calls and Options.Only take them (and as the retry
// package reports them).
const (
	OpSave   = "save"
	OpLoad   = "load"
	OpStat   = "stat"
	OpRemove = "remove"
	OpList   = "list"
	OpCreate = "create"
	OpClose  = "close"
)

// faultable lists the operations faults may affect.
var faultable = []string{OpSave, OpLoad, OpStat, OpRemove, OpList, OpCreate}

// Options choose the faults. The zero Options inject nothing.
type Options struct {
	// Seed seeds the generator the faults are drawn from.
	Seed uint64
	// Latency is added to every affected call.
	Latency time.Duration
	// ErrorRate is the probability that an affected call fails with
	// ErrTransient before doing anything.
	ErrorRate float64
	// LostResponseRate is the probability that an affected Save or Remove
	// is done but reported as failed with ErrTransient.
	LostResponseRate float64
	// ListLag hides objects saved less than ListLag ago from List.
	ListLag time.Duration
	// DeleteLag keeps objects removed less than DeleteLag ago in List.
	DeleteLag time.Duration
	// Only names the operations (OpSave, ...) that Latency, ErrorRate and
	// LostResponseRate affect; empty means all but Close. The lags are not
	// filtered.
	Only []string
	// Now is the clock the lags are measured with; nil means time.Now.
	// Tests pass a fake clock to step through lags without sleeping.
	Now func() time.Time
}

// Backend injects faults into the calls it passes to an inner backend. It
// is safe for concurrent use.
type Backend struct {
	inner     backend.Backend
	latency   time.Duration
	listLag   time.Duration
	deleteLag time.Duration
	only      map[string]bool // nil: every faultable operation
	now       func() time.Time

	mu        sync.Mutex // guards the fields below; never held while calling out
	rng       *rand.Rand
	errorRate float64
	lostRate  float64
	calls     map[string]int
	injected  int
	saved     map[backend.Handle]time.Time // by key: Saves younger than listLag
	removed   map[backend.Handle]ghost     // by key: Removes younger than deleteLag
}

// ghost is a removed object that List still reports.
type ghost struct {
	at   time.Time
	size int64
}

// New returns a Backend injecting the faults opts describe into the calls
// it passes to inner. It panics on an unknown operation name in opts.Only.
func New(inner backend.Backend, opts Options) *Backend {
	b := &Backend{
		inner:     inner,
		latency:   opts.Latency,
		listLag:   opts.ListLag,
		deleteLag: opts.DeleteLag,
		now:       opts.Now,
		rng:       rand.New(rand.NewPCG(opts.Seed, 0x6661756c7479)),
		errorRate: opts.ErrorRate,
		lostRate:  opts.LostResponseRate,
		calls:     make(map[string]int),
		saved:     make(map[backend.Handle]time.Time),
		removed:   make(map[backend.Handle]ghost),
	}
	if b.now == nil {
		b.now = time.Now
	}
	if len(opts.Only) > 0 {
		b.only = make(map[string]bool)
		for _, op := range opts.Only {
			if !slices.Contains(faultable, op) {
				panic(fmt.Sprintf("faulty: unknown operation %q in Options.Only", op))
			}
			b.only[op] = true
		}
	}
	return b
}

// SetErrorRate changes ErrorRate for the calls that start from now on.
func (b *Backend) SetErrorRate(r float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errorRate = r
}

// SetLostResponseRate changes LostResponseRate for the calls that start
// from now on.
func (b *Backend) SetLostResponseRate(r float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lostRate = r
}

// Calls returns how many times operation op (OpSave, ...) was called,
// faulted or not.
func (b *Backend) Calls(op string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[op]
}

// Injected returns how many faults were injected: calls failed before
// doing anything plus responses lost.
func (b *Backend) Injected() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.injected
}

// describe names an operation in messages.
func describe(op string, h backend.Handle) string {
	switch op {
	case OpList:
		return "list " + string(h.Type)
	case OpCreate:
		return "create"
	}
	return op + " " + h.String()
}

// begin counts a call, draws its faults and applies the ones that come
// before the inner call: latency, the context check and ErrorRate. It
// reports whether the response is to be lost once the inner call succeeds.
func (b *Backend) begin(ctx context.Context, op string, h backend.Handle) (lose bool, err error) {
	b.mu.Lock()
	b.calls[op]++
	affected := b.only == nil || b.only[op]
	fail := false
	if affected {
		// Two draws per affected call whatever the rates and the
		// operation, so that the faults depend on the seed and the
		// sequence of calls only.
		u1, u2 := b.rng.Float64(), b.rng.Float64()
		fail = u1 < b.errorRate
		lose = !fail && u2 < b.lostRate && (op == OpSave || op == OpRemove)
	}
	b.mu.Unlock()

	if affected && b.latency > 0 {
		t := time.NewTimer(b.latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%s: %w", describe(op, h), err)
	}
	if fail {
		b.mu.Lock()
		b.injected++
		b.mu.Unlock()
		return false, fmt.Errorf("%s: injected fault: %w", describe(op, h), backend.ErrTransient)
	}
	return lose, nil
}

// lost returns the error of a call whose response is lost.
func (b *Backend) lost(op string, h backend.Handle) error {
	b.mu.Lock()
	b.injected++
	b.mu.Unlock()
	return fmt.Errorf("%s: injected lost response (the operation was done): %w", describe(op, h), backend.ErrTransient)
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return "faulty:" + b.inner.Location() }

// Create implements backend.Creator by delegating to the inner backend; it
// returns an error wrapping errors.ErrUnsupported if that cannot create
// storage.
func (b *Backend) Create(ctx context.Context) error {
	if _, err := b.begin(ctx, OpCreate, backend.Handle{}); err != nil {
		return err
	}
	c, ok := b.inner.(backend.Creator)
	if !ok {
		return fmt.Errorf("create: %s cannot create its storage: %w", b.inner.Location(), errors.ErrUnsupported)
	}
	return c.Create(ctx)
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	lose, err := b.begin(ctx, OpSave, h)
	if err != nil {
		return err
	}
	if err := b.inner.Save(ctx, h, data); err != nil {
		return err
	}
	now := b.now()
	b.mu.Lock()
	k := h.Canonical()
	delete(b.removed, k)
	if b.listLag > 0 {
		b.saved[k] = now
	}
	b.mu.Unlock()
	if lose {
		return b.lost(OpSave, h)
	}
	return nil
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	if _, err := b.begin(ctx, OpLoad, h); err != nil {
		return nil, err
	}
	return b.inner.Load(ctx, h, offset, length)
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if _, err := b.begin(ctx, OpStat, h); err != nil {
		return backend.FileInfo{}, err
	}
	return b.inner.Stat(ctx, h)
}

// Remove implements backend.Backend. With a DeleteLag it first Stats the
// object on the inner backend, to list it with its size while it lags.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	lose, err := b.begin(ctx, OpRemove, h)
	if err != nil {
		return err
	}
	var g *ghost
	if b.deleteLag > 0 {
		fi, err := b.inner.Stat(ctx, h)
		switch {
		case err == nil:
			g = &ghost{size: fi.Size}
		case !errors.Is(err, backend.ErrNotExist):
			return err
		}
	}
	if err := b.inner.Remove(ctx, h); err != nil {
		return err
	}
	now := b.now()
	b.mu.Lock()
	k := h.Canonical()
	delete(b.saved, k)
	if g != nil {
		g.at = now
		b.removed[k] = *g
	}
	b.mu.Unlock()
	if lose {
		return b.lost(OpRemove, h)
	}
	return nil
}

// List implements backend.Backend, hiding young objects and listing the
// recently removed ones after the inner listing.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if _, err := b.begin(ctx, OpList, backend.Handle{Type: t}); err != nil {
		return err
	}

	now := b.now()
	hidden := make(map[string]bool)
	var ghosts []backend.FileInfo
	b.mu.Lock()
	for k, at := range b.saved {
		switch {
		case now.Sub(at) >= b.listLag:
			delete(b.saved, k)
		case k.Type == t:
			hidden[k.ReportedName()] = true
		}
	}
	for k, g := range b.removed {
		switch {
		case now.Sub(g.at) >= b.deleteLag:
			delete(b.removed, k)
		case k.Type == t:
			ghosts = append(ghosts, backend.FileInfo{Name: k.ReportedName(), Size: g.size})
		}
	}
	b.mu.Unlock()
	slices.SortFunc(ghosts, func(a, b backend.FileInfo) int { return cmp.Compare(a.Name, b.Name) })

	listed := make(map[string]bool)
	err := b.inner.List(ctx, t, func(fi backend.FileInfo) error {
		if hidden[fi.Name] {
			return nil
		}
		if len(ghosts) > 0 {
			listed[fi.Name] = true
		}
		return fn(fi)
	})
	if err != nil {
		return err
	}
	for _, g := range ghosts {
		if listed[g.Name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(g); err != nil {
			return err
		}
	}
	return nil
}

// Close implements backend.Backend. It is counted but never faulted.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.calls[OpClose]++
	b.mu.Unlock()
	return b.inner.Close()
}
