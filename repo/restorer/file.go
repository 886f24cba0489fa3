package restorer

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
)

// chunk is one chunk of a file that has to be written, and where.
type chunk struct {
	id  repo.ID
	off int64 // in the file
}

// restoreFile writes a regular file and its metadata. A file whose data
// cannot be read is removed again.
func (rs *restorer) restoreFile(ctx context.Context, j *job) error {
	n, dfd, name := j.node, j.dir.fd, j.node.Name
	chunks, err := rs.plan(n)
	if err != nil {
		return err
	}
	fd := -1
	err = replace(dfd, name, func() error {
		var err error
		fd, err = unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	// A raw descriptor, not an *os.File: for a regular file the latter
	// costs fcntl and epoll calls per file that restore does not need.
	err = rs.writeContent(ctx, fd, chunks, n.Size)
	if err == nil {
		// Sets the size and makes trailing zero chunks a hole.
		if err = unix.Ftruncate(fd, int64(n.Size)); err != nil {
			err = fmt.Errorf("truncate: %w", err)
		}
	}
	if err != nil {
		unix.Close(fd)
		unix.Unlinkat(dfd, name, 0)
		return err
	}
	metaFailed := rs.applyMeta(dfd, name, fd, n, j.path)
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dfd, name, 0)
		return fmt.Errorf("close: %w", err)
	}
	if metaFailed {
		rs.errors.Add(1)
	}
	return nil
}

// plan looks up every chunk of n and drops the chunks of zeros, which
// stay holes. A chunk missing from the index fails the file before it is
// created.
func (rs *restorer) plan(n *repo.Node) ([]chunk, error) {
	chunks := make([]chunk, 0, len(n.Content))
	var off int64
	for _, id := range n.Content {
		length, ok := rs.r.BlobLength(id)
		if !ok {
			return nil, fmt.Errorf("data blob %s: %w", id.Short(), repo.ErrBlobNotFound)
		}
		if !rs.r.IsZeroChunk(id, length) {
			chunks = append(chunks, chunk{id: id, off: off})
		}
		off += int64(length)
	}
	return chunks, nil
}

// writeContent writes chunks into fd. A file of one chunk loads it
// through the chunk cache, so that files sharing it load it once; the
// chunks of a larger file go through one batch load, which reads those
// stored close together in one pack with one request (rs.load).
func (rs *restorer) writeContent(ctx context.Context, fd int, chunks []chunk, size uint64) error {
	var handled atomic.Uint64
	write := func(c chunk, plain []byte) error {
		handled.Add(uint64(len(plain)))
		defer rs.doneBytes.Add(uint64(len(plain)))
		if repo.IsZero(plain) {
			repo.ZeroID(len(plain)) // known from now on, without loading
			return nil
		}
		for off, b := c.off, plain; len(b) > 0; {
			n, err := unix.Pwrite(fd, b, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			b, off = b[n:], off+int64(n)
		}
		return nil
	}
	if len(chunks) == 1 {
		plain, err := rs.loadChunk(ctx, chunks[0].id)
		if err != nil {
			return err
		}
		if err := write(chunks[0], plain); err != nil {
			return err
		}
	} else if len(chunks) > 1 {
		ids := make([]repo.ID, len(chunks))
		for i, c := range chunks {
			ids[i] = c.id
		}
		// Writes at distinct offsets of one descriptor may run at once.
		err := rs.r.LoadBlobs(ctx, ids, rs.load, func(i int, _ repo.ID, plain []byte, err error) error {
			if err != nil {
				return err
			}
			return write(chunks[i], plain)
		})
		if err != nil {
			return err
		}
	}
	if h := handled.Load(); size > h {
		rs.doneBytes.Add(size - h) // the holes
	}
	return nil
}

// loadChunk loads one data blob through the chunk cache.
func (rs *restorer) loadChunk(ctx context.Context, id repo.ID) ([]byte, error) {
	return rs.blobs.GetOrLoad(ctx, id, func(ctx context.Context) ([]byte, error) {
		var plain []byte
		err := rs.r.LoadBlobs(ctx, []repo.ID{id}, rs.load, func(_ int, _ repo.ID, p []byte, err error) error {
			plain = p
			return err
		})
		return plain, err
	})
}

// CachedWindows is how many windows a windowed restore keeps besides the
// one each worker is loading: its working set is (Workers+CachedWindows)
// windows.
const CachedWindows = 8

type windowKey struct {
	pack repo.ID
	n    int64 // window number: bytes [n*Window, (n+1)*Window)
}

// loadWindows returns bytes [start, end) of a pack out of the cached
// windows that cover them: the batch loads' ReadRange when opts.Window is
// set.
func (rs *restorer) loadWindows(ctx context.Context, pack repo.ID, start, end int64) ([]byte, error) {
	h := repo.PackHandle(pack)
	w := int64(rs.opts.Window)
	packEnd := rs.packEnds[pack]
	if end > packEnd {
		return nil, fmt.Errorf("range %d-%d past the blobs of %v", start, end, h)
	}
	out := make([]byte, 0, end-start)
	for n := start / w; n*w < end; n++ {
		win, err := rs.windows.GetOrLoad(ctx, windowKey{pack, n}, func(ctx context.Context) ([]byte, error) {
			return rs.r.Backend().Load(ctx, h, n*w, int(min((n+1)*w, packEnd)-n*w))
		})
		if err != nil {
			return nil, err
		}
		lo, hi := max(start-n*w, 0), min(end-n*w, int64(len(win)))
		out = append(out, win[lo:hi]...)
	}
	return out, nil
}
