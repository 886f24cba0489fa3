package tree

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// runFile is plans/<name>/run: "idle" or "running"; writing starts a run.
type runFile struct {
	d   *planDir
	ino uint64
}

func (f *runFile) Writable() bool { return true }
func (f *runFile) Uncached() bool { return true }
func (f *runFile) Dynamic() bool  { return true }

func (f *runFile) content() []byte {
	if f.d.plans().Running(f.d.name) {
		return []byte("running\n")
	}
	return []byte("idle\n")
}

func (f *runFile) Attr(ctx context.Context) (Attr, error) {
	if !f.d.root.exists(f.d.name) {
		return Attr{}, ErrNotExist
	}
	n := uint64(len(f.content()))
	now := time.Now()
	return Attr{Ino: f.ino, Mode: ModeFile | 0o644, Nlink: 1, UID: f.d.root.uid, GID: f.d.root.gid,
		Size: n, Blocks: (n + 511) / 512, Atime: now, Mtime: now, Ctime: now}, nil
}

func (f *runFile) Open(ctx context.Context) (Handle, error) {
	return bytesHandle{bytes.NewReader(f.content())}, nil
}

func (f *runFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	return &runHandle{f: f, truncated: flags.Truncate}, nil
}

// Setattr accepts truncation (echo > run truncates before it writes):
// through a handle it counts as that handle's write.
func (f *runFile) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	cur, err := f.Attr(ctx)
	if err != nil {
		return err
	}
	size := a.Size
	a.Size = nil
	if err := fixedAttrs(a, cur); err != nil {
		return err
	}
	if rh, ok := h.(*runHandle); ok && size != nil {
		rh.mu.Lock()
		rh.truncated = true
		rh.mu.Unlock()
	}
	return nil
}

// runHandle is run open for writing: it starts one run, at its first
// write or, if it only truncated, at its flush.
type runHandle struct {
	f *runFile

	mu        sync.Mutex // guards the fields below
	truncated bool
	started   bool
}

func (h *runHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return bytesHandle{bytes.NewReader(h.f.content())}.ReadAt(ctx, p, off)
}

// start runs the plan unless this handle did already (or, with
// onlyIfTruncated, unless it has not truncated either).
func (h *runHandle) start(onlyIfTruncated bool) error {
	h.mu.Lock()
	run := !h.started && (h.truncated || !onlyIfTruncated)
	if run {
		h.started = true
	}
	h.mu.Unlock()
	if !run {
		return nil
	}
	return h.f.d.plans().Run(h.f.d.name)
}

func (h *runHandle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := h.start(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *runHandle) Flush(ctx context.Context) error   { return h.start(true) }
func (h *runHandle) Fsync(ctx context.Context) error   { return h.start(true) }
func (h *runHandle) Release(ctx context.Context) error { return h.start(true) }

// infoFile is plans/<name>/status or log: generated on each open,
// readable by everyone when public says so, else by the owner only.
type infoFile struct {
	d      *planDir
	ino    uint64
	gen    func(name string) ([]byte, error)
	public func() bool
}

func (f *infoFile) Writable() bool { return true }
func (f *infoFile) Uncached() bool { return true }
func (f *infoFile) Dynamic() bool  { return true }

func (f *infoFile) Attr(ctx context.Context) (Attr, error) {
	data, err := f.gen(f.d.name)
	if err != nil {
		return Attr{}, err
	}
	mode := uint32(0o400)
	if f.public() {
		mode = 0o444
	}
	now := time.Now()
	return Attr{Ino: f.ino, Mode: ModeFile | mode, Nlink: 1, UID: f.d.root.uid, GID: f.d.root.gid,
		Size: uint64(len(data)), Blocks: uint64(len(data)+511) / 512, Atime: now, Mtime: now, Ctime: now}, nil
}

func (f *infoFile) Open(ctx context.Context) (Handle, error) {
	data, err := f.gen(f.d.name)
	if err != nil {
		return nil, err
	}
	return bytesHandle{bytes.NewReader(data)}, nil
}

// OpenWrite refuses with EACCES rather than the EPERM of an operation the
// file lacks: the file is read-only by its mode.
func (f *infoFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	return nil, ErrAccess
}

func (f *infoFile) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	cur, err := f.Attr(ctx)
	if err != nil {
		return err
	}
	if a.Size != nil {
		return ErrAccess
	}
	return fixedAttrs(a, cur)
}

var (
	_ File        = (*runFile)(nil)
	_ WriteOpener = (*runFile)(nil)
	_ Setattrer   = (*runFile)(nil)
	_ Writable    = (*runFile)(nil)
	_ Uncached    = (*runFile)(nil)
	_ Dynamic     = (*runFile)(nil)
	_ WriteHandle = (*runHandle)(nil)
	_ File        = (*infoFile)(nil)
	_ WriteOpener = (*infoFile)(nil)
	_ Setattrer   = (*infoFile)(nil)
	_ Writable    = (*infoFile)(nil)
	_ Uncached    = (*infoFile)(nil)
	_ Dynamic     = (*infoFile)(nil)
)
