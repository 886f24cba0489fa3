package tree

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// MaxEditSize bounds what a write may make of a file held in memory
// (plan.json, an editor's scratch file), unless its owner sets another
// bound.
const MaxEditSize = 4 << 20

// memFile is a regular file whose content lives in memory and changes
// through the mount: the building block of writable files. The scratch
// files editors make beside plan.json are memFiles as they are; plan.json
// is one laid over the plan's definition (base) that defines the plan when
// committed; a pending snapshot (DESIGN.md §5) can make its files commit
// into the repository, by its tree's file options.
//
// Commit: a write handle that changed the file commits it at its first
// flush (close(2)) after a write or an ftruncate, at fsync, and at its
// release if no flush did (a truncation by the open alone). The O_TRUNC
// of an open alone does not commit at a flush: shells open with O_TRUNC,
// dup the descriptor and close the original (a flush) before they write,
// and committing the empty file then would refuse it and lose the write
// that follows. A truncation by path (truncate(1), no handle) is a change
// of its own, committed at once. Renaming a file into place is its
// directory's to commit (memDirOptions.rename).
type memFile struct {
	opts memFileOptions

	mu     sync.Mutex // guards the fields below and the flags of the file's handles
	data   []byte
	edited bool // data is the content; else base is (only with a base)
	attr   Attr // all but Size and Blocks, which follow the content
}

// memFileOptions say what a memFile's changes mean beyond its bytes.
type memFileOptions struct {
	// maxSize bounds the content (ErrTooLarge); 0 means MaxEditSize.
	maxSize int64
	// base, if set, is the content while the file holds no uncommitted
	// change: asked on each access, and copied when a change starts. A
	// commit drops the change, so that the file shows base again, which
	// then reflects it (plan.json, over the plan's definition).
	base func(ctx context.Context) ([]byte, error)
	// commit, if set, is called with the content when a handle commits
	// (see memFile). Its error is what close(2) or fsync(2) return, or
	// reaches no one at a release. It is called without locks held, the
	// content is its to keep, and it may see the same content twice (two
	// handles that wrote).
	commit func(ctx context.Context, f *memFile, data []byte) error
	// uncached: the file may change or vanish behind the mount's back
	// (Uncached).
	uncached bool
}

// newMemFile makes a file with the attributes of a (but its size).
func newMemFile(a Attr, opts memFileOptions) *memFile {
	if opts.maxSize == 0 {
		opts.maxSize = MaxEditSize
	}
	a.Mode = ModeFile | a.Mode&0o7777
	return &memFile{opts: opts, attr: a, edited: opts.base == nil}
}

func (f *memFile) Writable() bool { return true }
func (f *memFile) Uncached() bool { return f.opts.uncached }

// Dynamic: its content is read with direct I/O, so that a reader never
// gets pages cached before a write through another handle.
func (f *memFile) Dynamic() bool { return true }

// Content returns a copy of the content.
func (f *memFile) Content(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	if f.edited {
		defer f.mu.Unlock()
		return bytes.Clone(f.data), nil
	}
	f.mu.Unlock()
	return f.opts.base(ctx)
}

func (f *memFile) Attr(ctx context.Context) (Attr, error) {
	f.mu.Lock()
	a, size, edited := f.attr, len(f.data), f.edited
	f.mu.Unlock()
	if !edited {
		data, err := f.opts.base(ctx)
		if err != nil {
			return Attr{}, err
		}
		size = len(data)
	}
	a.Size = uint64(size)
	a.Blocks = (a.Size + 511) / 512
	return a, nil
}

// Open opens the file for reading. A file over a base is read as it was
// at the open (generated content must not change under a reader); the
// others as they are at each read.
func (f *memFile) Open(ctx context.Context) (Handle, error) {
	if f.opts.base == nil {
		return memReader{f}, nil
	}
	data, err := f.Content(ctx)
	if err != nil {
		return nil, err
	}
	return bytesHandle{bytes.NewReader(data)}, nil
}

func (f *memFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	h := &memHandle{f: f, append: flags.Append}
	if flags.Truncate {
		if err := h.truncate(ctx, 0, false); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Setattr changes the attributes. A change of size through a handle of
// the file is that handle's; by path it is committed at once.
func (f *memFile) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	if a.Size != nil {
		if *a.Size > uint64(f.opts.maxSize) {
			return ErrTooLarge
		}
		mh, ok := h.(*memHandle)
		byPath := !ok || mh.f != f
		if byPath {
			mh = &memHandle{f: f}
		}
		if err := mh.truncate(ctx, int64(*a.Size), true); err != nil {
			return err
		}
		if byPath {
			if err := mh.commit(ctx); err != nil {
				return err
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.Mode != nil {
		f.attr.Mode = ModeFile | *a.Mode&0o7777
	}
	if a.UID != nil {
		f.attr.UID = *a.UID
	}
	if a.GID != nil {
		f.attr.GID = *a.GID
	}
	if a.Atime != nil {
		f.attr.Atime = *a.Atime
	}
	if a.Mtime != nil {
		f.attr.Mtime = *a.Mtime
	}
	f.attr.Ctime = time.Now()
	return nil
}

// edit calls fn on the content, under f.mu, after copying base into it if
// the file holds no change; and marks the file modified.
func (f *memFile) edit(ctx context.Context, fn func(data *[]byte) error) error {
	f.mu.Lock()
	if !f.edited {
		f.mu.Unlock()
		base, err := f.opts.base(ctx)
		if err != nil {
			return err
		}
		f.mu.Lock()
		if !f.edited {
			f.data, f.edited = bytes.Clone(base), true
		}
	}
	defer f.mu.Unlock()
	if err := fn(&f.data); err != nil {
		return err
	}
	f.attr.Mtime = time.Now()
	f.attr.Ctime = f.attr.Mtime
	return nil
}

// discard drops a change not committed yet: the file shows its base again.
// Without a base it does nothing (the content is the file).
func (f *memFile) discard() {
	f.mu.Lock()
	if f.opts.base != nil {
		f.data, f.edited = nil, false
	}
	f.mu.Unlock()
}

// resize sets the length of data, zero-filling.
func resize(data *[]byte, size int64) {
	if size <= int64(len(*data)) {
		*data = (*data)[:size]
	} else {
		*data = append(*data, make([]byte, size-int64(len(*data)))...)
	}
}

// memReader reads a memFile opened for reading.
type memReader struct{ f *memFile }

func (r memReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return r.f.readAt(ctx, p, off)
}

func (r memReader) Close() error { return nil }

func (f *memFile) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	if f.edited {
		defer f.mu.Unlock()
		if off >= int64(len(f.data)) {
			return 0, nil
		}
		return copy(p, f.data[off:]), nil
	}
	f.mu.Unlock()
	data, err := f.opts.base(ctx)
	if err != nil {
		return 0, err
	}
	return bytesHandle{bytes.NewReader(data)}.ReadAt(ctx, p, off)
}

// memHandle is a memFile open for writing.
type memHandle struct {
	f      *memFile
	append bool

	// Guarded by f.mu.
	wrote bool // written or ftruncated since the last commit
	dirty bool // wrote, or truncated by the open, since the last commit
}

func (h *memHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return h.f.readAt(ctx, p, off)
}

func (h *memHandle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	err := h.f.edit(ctx, func(data *[]byte) error {
		if h.append {
			off = int64(len(*data))
		}
		end := off + int64(len(p))
		if off < 0 || end > h.f.opts.maxSize {
			return ErrTooLarge
		}
		if end > int64(len(*data)) {
			resize(data, end)
		}
		copy((*data)[off:], p)
		h.wrote, h.dirty = true, true
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// truncate resizes the file: explicitly (ftruncate, truncate by path), or
// as the O_TRUNC of the open.
func (h *memHandle) truncate(ctx context.Context, size int64, explicit bool) error {
	if size < 0 || size > h.f.opts.maxSize {
		return ErrTooLarge
	}
	mark := func(data *[]byte) error {
		resize(data, size)
		h.dirty = true
		h.wrote = h.wrote || explicit
		return nil
	}
	if size == 0 { // the usual case needs no base to start from
		f := h.f
		f.mu.Lock()
		f.data, f.edited = f.data[:0], true
		mark(&f.data)
		f.attr.Mtime = time.Now()
		f.attr.Ctime = f.attr.Mtime
		f.mu.Unlock()
		return nil
	}
	return h.f.edit(ctx, mark)
}

// commit hands the content to the file's commit hook if this handle
// changed it. Over a base the change is dropped either way: refused, the
// base stays what it was.
func (h *memHandle) commit(ctx context.Context) error {
	f := h.f
	f.mu.Lock()
	dirty := h.dirty
	h.wrote, h.dirty = false, false
	data, edited := f.data, f.edited
	switch {
	case !dirty || !edited:
	case f.opts.base != nil:
		f.data, f.edited = nil, false
	default:
		data = bytes.Clone(data)
	}
	f.mu.Unlock()
	if !dirty || !edited || f.opts.commit == nil {
		return nil // nothing changed, or another handle committed our writes with its own
	}
	return f.opts.commit(ctx, f, data)
}

func (h *memHandle) Flush(ctx context.Context) error {
	h.f.mu.Lock()
	wrote := h.wrote
	h.f.mu.Unlock()
	if !wrote {
		return nil
	}
	return h.commit(ctx)
}

func (h *memHandle) Fsync(ctx context.Context) error   { return h.commit(ctx) }
func (h *memHandle) Release(ctx context.Context) error { return h.commit(ctx) }

var (
	_ File        = (*memFile)(nil)
	_ WriteOpener = (*memFile)(nil)
	_ Setattrer   = (*memFile)(nil)
	_ Writable    = (*memFile)(nil)
	_ Uncached    = (*memFile)(nil)
	_ Dynamic     = (*memFile)(nil)
	_ Handle      = memReader{}
	_ WriteHandle = (*memHandle)(nil)
)
