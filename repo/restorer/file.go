package restorer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

// chunk is one chunk of a file that has to be written, and where.
type chunk struct {
	id  repo.ID
	loc repo.Location
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
		loc, ok := rs.r.LookupBlob(id)
		if !ok {
			return nil, fmt.Errorf("data blob %s: %w", id.Short(), repo.ErrBlobNotFound)
		}
		if !rs.isZeroChunk(id, loc.RawLength) {
			chunks = append(chunks, chunk{id: id, loc: loc, off: off})
		}
		off += int64(loc.RawLength)
	}
	return chunks, nil
}

// writeContent writes chunks into f. Runs of chunks stored close together
// in one pack are fetched with a single ranged load.
func (rs *restorer) writeContent(ctx context.Context, fd int, chunks []chunk, size uint64) error {
	var handled uint64
	write := func(c chunk, plain []byte) error {
		if uint32(len(plain)) != c.loc.RawLength {
			return fmt.Errorf("blob %s has %d bytes, the index says %d: %w", c.id.Short(), len(plain), c.loc.RawLength, repo.ErrCorrupt)
		}
		handled += uint64(len(plain))
		defer rs.doneBytes.Add(uint64(len(plain)))
		if isZeros(plain) {
			rs.noteZero(c.id, c.loc.RawLength)
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
	for i := 0; i < len(chunks); {
		if err := ctx.Err(); err != nil {
			return err
		}
		first := chunks[i].loc
		start, end := int64(first.Offset), int64(first.Offset)+int64(first.Length)
		k := i + 1
		for ; k < len(chunks); k++ {
			l := chunks[k].loc
			off, next := int64(l.Offset), int64(l.Offset)+int64(l.Length)
			if l.Pack != first.Pack || off < end || off-end > maxGap || next-start > maxRange {
				break
			}
			end = next
		}
		if k == i+1 {
			plain, err := rs.loadChunk(ctx, chunks[i])
			if err != nil {
				return err
			}
			if err := write(chunks[i], plain); err != nil {
				return err
			}
		} else if err := rs.loadRange(ctx, chunks[i:k], start, end, write); err != nil {
			return err
		}
		i = k
	}
	if size > handled {
		rs.doneBytes.Add(size - handled) // the holes
	}
	return nil
}

// loadChunk loads one data blob through the chunk cache, so that files
// sharing a chunk load it once.
func (rs *restorer) loadChunk(ctx context.Context, c chunk) ([]byte, error) {
	return rs.blobs.GetOrLoad(ctx, c.id, func(ctx context.Context) ([]byte, error) {
		if rs.windows == nil {
			return rs.r.LoadBlob(ctx, repo.DataBlob, c.id)
		}
		h := repo.PackHandle(c.loc.Pack)
		stored, err := rs.loadStored(ctx, c.loc.Pack, int64(c.loc.Offset), int64(c.loc.Offset)+int64(c.loc.Length))
		if err != nil {
			return nil, err
		}
		return rs.r.OpenBlob(h, c.loc, c.id, stored)
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

// loadStored returns bytes [start, end) of a pack: directly, or through
// the cached windows that cover them.
func (rs *restorer) loadStored(ctx context.Context, pack repo.ID, start, end int64) ([]byte, error) {
	h := repo.PackHandle(pack)
	if rs.windows == nil {
		return rs.r.Backend().Load(ctx, h, start, int(end-start))
	}
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
		if errors.Is(err, backend.ErrNotExist) {
			return nil, &repo.CorruptError{Object: h.String(), Err: errors.New("pack is missing")}
		}
		if err != nil {
			return nil, err
		}
		lo, hi := max(start-n*w, 0), min(end-n*w, int64(len(win)))
		out = append(out, win[lo:hi]...)
	}
	return out, nil
}

// loadRange loads bytes [start, end) of the pack holding cs with one
// request and passes each blob of cs, decoded and verified, to fn in order.
func (rs *restorer) loadRange(ctx context.Context, cs []chunk, start, end int64, fn func(chunk, []byte) error) error {
	h := repo.PackHandle(cs[0].loc.Pack)
	buf, err := rs.loadStored(ctx, cs[0].loc.Pack, start, end)
	if errors.Is(err, backend.ErrNotExist) {
		return &repo.CorruptError{Object: h.String(), Blob: cs[0].id, Err: errors.New("pack is missing")}
	}
	if err != nil {
		return fmt.Errorf("load %v at %d+%d: %w", h, start, end-start, err)
	}
	if int64(len(buf)) != end-start {
		return &repo.CorruptError{Object: h.String(), Blob: cs[0].id, Err: fmt.Errorf("read %d bytes at %d, want %d", len(buf), start, end-start)}
	}
	for _, c := range cs {
		o := int64(c.loc.Offset) - start
		plain, err := rs.r.OpenBlob(h, c.loc, c.id, buf[o:o+int64(c.loc.Length)])
		if err != nil {
			return err
		}
		if err := fn(c, plain); err != nil {
			return err
		}
	}
	return nil
}

// isZeroChunk reports whether id is the id of n zero bytes. The id of a
// length is computed (a hash of n zeros, cheaper than loading the blob)
// only for the lengths zero chunks have: the archiver stores holes as
// chunks of the chunker's maximum size plus a remainder that, like holes,
// is a multiple of the block size; runs of zeros inside data are cut at
// the chunker's minimum or maximum size. Other zero chunks are found
// after loading (noteZero).
func (rs *restorer) isZeroChunk(id repo.ID, n uint32) bool {
	rs.zeroMu.Lock()
	z, ok := rs.zeroIDs[n]
	rs.zeroMu.Unlock()
	if !ok {
		if n%4096 != 0 && n != rs.chunkMax && n != rs.chunkMin {
			return false
		}
		z = zeroID(n)
		rs.noteZero(z, n)
	}
	return z == id
}

// noteZero records that id is n zero bytes.
func (rs *restorer) noteZero(id repo.ID, n uint32) {
	rs.zeroMu.Lock()
	rs.zeroIDs[n] = id
	rs.zeroMu.Unlock()
}

var zeros [64 << 10]byte // read-only

// zeroID returns the id of n zero bytes.
func zeroID(n uint32) repo.ID {
	h := sha256.New()
	for left := int(n); left > 0; {
		k := min(left, len(zeros))
		h.Write(zeros[:k])
		left -= k
	}
	var id repo.ID
	h.Sum(id[:0])
	return id
}

func isZeros(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
