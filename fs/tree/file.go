package tree

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
)

// prefetchChunks is how many chunks ahead a sequential reader is served.
const prefetchChunks = 2

// snapFile is a regular file of a snapshot.
type snapFile struct {
	rp   *Repo
	node *repo.Node
	ino  uint64
	dir  *snapDir // the directory it was found in
}

func (f *snapFile) Immutable() bool { return true }

func (f *snapFile) Xattrs(ctx context.Context) ([]repo.Xattr, error) { return f.node.Xattrs, nil }

// Attr counts blocks without the holes, so that du, cp and rsync see a
// sparse file as sparse.
func (f *snapFile) Attr(ctx context.Context) (Attr, error) {
	a := nodeAttr(f.node, f.ino)
	var holes uint64
	for _, id := range f.node.Content {
		if n, ok := f.rp.r.BlobLength(id); ok && f.rp.r.IsZeroChunk(id, n) {
			holes += uint64(n)
		}
	}
	if holes > 0 {
		a.Blocks = (f.node.Size - min(holes, f.node.Size) + 511) / 512
	}
	return a, nil
}

// Open opens the file for reading and starts the read-ahead over its
// directory.
func (f *snapFile) Open(ctx context.Context) (Handle, error) {
	h, err := f.handle()
	if err != nil {
		return nil, err
	}
	if f.dir != nil {
		f.dir.opened(f.node)
	}
	return h, nil
}

// handle builds the file's offset table: chunk i covers
// [offsets[i], offsets[i+1]).
func (f *snapFile) handle() (*fileHandle, error) {
	n := len(f.node.Content)
	h := &fileHandle{rp: f.rp, ids: f.node.Content, offsets: make([]int64, n+1), zero: make([]bool, n)}
	h.fetched.Store(-1)
	for i, id := range f.node.Content {
		length, ok := f.rp.r.BlobLength(id)
		if !ok {
			return nil, fmt.Errorf("%s: chunk %s: %w", f.node.Name, id.Short(), repo.ErrBlobNotFound)
		}
		h.offsets[i+1] = h.offsets[i] + int64(length)
		h.zero[i] = f.rp.r.IsZeroChunk(id, length)
	}
	return h, nil
}

// Seek finds data or holes, for SEEK_DATA and SEEK_HOLE.
func (f *snapFile) Seek(ctx context.Context, off int64, data bool) (int64, error) {
	h, err := f.handle()
	if err != nil {
		return 0, err
	}
	return h.seek(off, data)
}

// fileHandle reads one open file. It is stateless but for a hint of where
// the last read ended, used to detect sequential reading.
type fileHandle struct {
	rp      *Repo
	ids     []repo.ID
	offsets []int64
	zero    []bool
	lastEnd atomic.Int64
	// fetched is the highest chunk index prefetch has started on.
	fetched atomic.Int64
}

// ErrNoData: SEEK_DATA found no data after the offset (ENXIO).
var ErrNoData = errors.New("no data after offset")

func (h *fileHandle) size() int64 { return h.offsets[len(h.offsets)-1] }

func (h *fileHandle) seek(off int64, data bool) (int64, error) {
	if off >= h.size() {
		return 0, ErrNoData
	}
	for i := h.chunkAt(off); i < len(h.ids); i++ {
		if h.zero[i] != data {
			return max(off, h.offsets[i]), nil
		}
	}
	if data {
		return 0, ErrNoData
	}
	return h.size(), nil
}

func (h *fileHandle) chunkAt(off int64) int {
	return sort.Search(len(h.ids), func(i int) bool { return h.offsets[i+1] > off })
}

func (h *fileHandle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= h.size() {
		return 0, nil
	}
	sequential := h.lastEnd.Load() == off
	total := 0
	i := h.chunkAt(off)
	for total < len(p) && i < len(h.ids) {
		data, err := h.chunk(ctx, i)
		if err != nil {
			return total, err
		}
		within := off + int64(total) - h.offsets[i]
		total += copy(p[total:], data[within:])
		i++
	}
	h.lastEnd.Store(off + int64(total))
	if sequential || off == 0 {
		h.prefetch(i)
	}
	return total, nil
}

func (h *fileHandle) chunk(ctx context.Context, i int) ([]byte, error) {
	length := h.offsets[i+1] - h.offsets[i]
	if h.zero[i] {
		return repo.Zeros(int(length)), nil
	}
	id := h.ids[i]
	data, err := h.rp.cache.GetOrLoad(ctx, id, func(ctx context.Context) ([]byte, error) {
		return h.rp.r.LoadBlob(ctx, repo.DataBlob, id)
	})
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != length {
		return nil, fmt.Errorf("chunk %s has %d bytes, the index says %d: %w", id.Short(), len(data), length, repo.ErrCorrupt)
	}
	return data, nil
}

// prefetch loads the chunks from i on in the background, so a sequential
// reader finds them in the cache.
func (h *fileHandle) prefetch(i int) {
	for k := i; k < min(i+prefetchChunks, len(h.ids)); k++ {
		prev := h.fetched.Load()
		if int64(k) <= prev || !h.fetched.CompareAndSwap(prev, int64(k)) || h.zero[k] {
			continue
		}
		go h.chunk(h.rp.bg, k) // errors surface when the reader gets there
	}
}

func (h *fileHandle) Close() error { return nil }

var (
	_ File      = (*snapFile)(nil)
	_ Seeker    = (*snapFile)(nil)
	_ Xattrer   = (*snapFile)(nil)
	_ Immutable = (*snapFile)(nil)
	_ Handle    = (*fileHandle)(nil)
)
