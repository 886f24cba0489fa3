package mem

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/cairn-backup/cairn/repo/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Creator = (*Backend)(nil)
)

// Backend stores objects in a map. Save and Load copy the bytes, so callers
// may reuse their buffers and cannot change stored objects through a
// returned slice.
type Backend struct {
	mu     sync.Mutex // guards the fields below
	closed bool
	objs   map[backend.Handle][]byte
}

// New returns an empty, ready backend.
func New() *Backend {
	return &Backend{objs: make(map[backend.Handle][]byte)}
}

// check runs the checks common to every method that takes a handle.
func (b *Backend) check(ctx context.Context, op string, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("%s %v: %w", op, h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %v: %w", op, h, err)
	}
	return nil
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return "mem" }

// Create implements backend.Creator: it succeeds while no object is stored.
func (b *Backend) Create(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("create: %w", backend.ErrClosed)
	}
	if len(b.objs) > 0 {
		return fmt.Errorf("create: repository holds %d objects: %w", len(b.objs), backend.ErrExist)
	}
	return nil
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := b.check(ctx, "save", h); err != nil {
		return err
	}
	buf := make([]byte, len(data))
	copy(buf, data)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("save %v: %w", h, backend.ErrClosed)
	}
	k := h.Canonical()
	if _, ok := b.objs[k]; ok {
		return fmt.Errorf("save %v: %w", h, backend.ErrExist)
	}
	b.objs[k] = buf
	return nil
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	if err := b.check(ctx, "load", h); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("load %v: invalid range offset %d length %d", h, offset, length)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("load %v: %w", h, backend.ErrClosed)
	}
	data, ok := b.objs[h.Canonical()]
	if !ok {
		return nil, fmt.Errorf("load %v: %w", h, backend.ErrNotExist)
	}
	size := int64(len(data))
	end := size
	if length > 0 {
		end = offset + int64(length)
	}
	if offset > size || end > size {
		return nil, fmt.Errorf("load %v: range %d+%d beyond size %d: %w", h, offset, length, size, io.ErrUnexpectedEOF)
	}
	buf := make([]byte, end-offset)
	copy(buf, data[offset:end])
	return buf, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.check(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return backend.FileInfo{}, fmt.Errorf("stat %v: %w", h, backend.ErrClosed)
	}
	data, ok := b.objs[h.Canonical()]
	if !ok {
		return backend.FileInfo{}, fmt.Errorf("stat %v: %w", h, backend.ErrNotExist)
	}
	return backend.FileInfo{Name: h.ReportedName(), Size: int64(len(data))}, nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.check(ctx, "remove", h); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("remove %v: %w", h, backend.ErrClosed)
	}
	delete(b.objs, h.Canonical())
	return nil
}

// List implements backend.Backend. It takes a snapshot of the matching
// objects first and calls fn without holding the lock, so fn may call back
// into the backend.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("list %s: %w", t, backend.ErrClosed)
	}
	var infos []backend.FileInfo
	for h, data := range b.objs {
		if h.Type == t {
			infos = append(infos, backend.FileInfo{Name: h.ReportedName(), Size: int64(len(data))})
		}
	}
	b.mu.Unlock()

	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Close implements backend.Backend. It drops the stored objects; further
// calls, Close included, return ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("close: %w", backend.ErrClosed)
	}
	b.closed = true
	b.objs = nil
	return nil
}
