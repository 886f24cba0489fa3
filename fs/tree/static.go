package tree

import (
	"bytes"
	"context"
	"time"
)

// staticFile is a read-only file whose content is fixed or made on each
// open (gen); the adapter serves the latter with direct I/O.
type staticFile struct {
	ino  uint64
	mode uint32
	time time.Time
	gen  func(ctx context.Context) ([]byte, error)
}

func (f *staticFile) Attr(ctx context.Context) (Attr, error) {
	data, err := f.gen(ctx)
	if err != nil {
		return Attr{}, err
	}
	return Attr{Ino: f.ino, Mode: ModeFile | f.mode, Nlink: 1, Size: uint64(len(data)),
		Blocks: uint64(len(data)+511) / 512, Atime: f.time, Mtime: f.time, Ctime: f.time}, nil
}

func (f *staticFile) Open(ctx context.Context) (Handle, error) {
	data, err := f.gen(ctx)
	if err != nil {
		return nil, err
	}
	return bytesHandle{bytes.NewReader(data)}, nil
}

// Dynamic reports that the content may change between opens.
func (f *staticFile) Dynamic() bool { return true }

type bytesHandle struct{ r *bytes.Reader }

func (h bytesHandle) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	n, err := h.r.ReadAt(p, off)
	if n > 0 || off >= h.r.Size() {
		err = nil // short reads at the end are not errors for FUSE
	}
	return n, err
}

func (h bytesHandle) Close() error { return nil }

// staticDir is a directory with a fixed set of children.
type staticDir struct {
	ino      uint64
	time     time.Time
	names    []string // sorted
	children map[string]Node
}

func (d *staticDir) Attr(ctx context.Context) (Attr, error) {
	return Attr{Ino: d.ino, Mode: ModeDir | 0o555, Nlink: 2, Atime: d.time, Mtime: d.time, Ctime: d.time}, nil
}

func (d *staticDir) Lookup(ctx context.Context, name string) (Node, error) {
	if n, ok := d.children[name]; ok {
		return n, nil
	}
	return nil, ErrNotExist
}

func (d *staticDir) List(ctx context.Context) ([]Entry, error) {
	out := make([]Entry, 0, len(d.names))
	for _, name := range d.names {
		a, err := d.children[name].Attr(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Name: name, Ino: a.Ino, Mode: a.Mode & ModeType})
	}
	return out, nil
}

// Dynamic marks files whose content is made on each open.
type Dynamic interface {
	Dynamic() bool
}

var (
	_ File    = (*staticFile)(nil)
	_ Dynamic = (*staticFile)(nil)
	_ Handle  = bytesHandle{}
	_ Dir     = (*staticDir)(nil)
)
