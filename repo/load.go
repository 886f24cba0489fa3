package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Loading many blobs. The mount's read-ahead, restore and check load
// blobs by the batch through LoadBlobs: blobs that lie close together in
// one pack are read with one ranged request, the gap between them
// included (reading a little more costs less than another request,
// locally as remotely), and decoded on every core.

const (
	// DefaultGap: blobs of one pack at most this many bytes apart are
	// read with one request.
	DefaultGap = 256 << 10
	// DefaultMaxRange bounds the bytes of one request.
	DefaultMaxRange = 4 << 20
)

// LoadOptions tune LoadBlobs. The zero value loads through the
// repository's index and storage with the default limits.
type LoadOptions struct {
	// Gap: blobs of one pack at most Gap bytes apart are read with one
	// request, the gap included. 0 means DefaultGap; negative joins only
	// blobs that touch.
	Gap int64
	// MaxRange bounds the bytes of one request; 0 means DefaultMaxRange.
	// A blob longer than that is read alone.
	MaxRange int64
	// Ranges is how many ranges are held at once, being read or being
	// decoded: memory for stored bytes stays below Ranges × MaxRange
	// (or the largest blob). 0 means max(2, GOMAXPROCS). With 1, a range
	// is read only once every blob of the one before was handed to fn.
	Ranges int
	// Locate, if set, says where ids[i] is stored, in place of the
	// repository's index: check works from the index files it loads
	// itself and from pack headers.
	Locate func(i int) (Location, bool)
	// ReadRange, if set, returns bytes [start, end) of a pack in place
	// of a ranged load from storage: the restorer reads through windows
	// it caches, check out of packs it read whole. An error matching
	// backend.ErrNotExist means the pack is missing, one matching
	// io.ErrUnexpectedEOF (and not backend.ErrTransient) that it is
	// shorter than the range; so does a result shorter than asked.
	ReadRange func(ctx context.Context, pack ID, start, end int64) ([]byte, error)
}

// decodeSlots bounds the blobs being decoded, and handed to their
// callers, by every LoadBlobs of the process: the cores, and memory for
// plaintext, are shared by the mount's read-ahead of every repository and
// by the workers of a restore or a check.
var decodeSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// LoadBlobs loads the blobs ids and calls fn once for each, with i its
// position in ids and either its plaintext, verified against its id and
// against the length the index gives, or the reason it could not be had:
// ErrBlobNotFound for a blob the index (or Locate) does not know; a
// *CorruptError naming the pack and the blob for a pack that is missing
// or shorter than the range, or a blob that does not decrypt, decompress
// or verify; other errors of storage wrapped with the pack and the blob.
// One blob failing does not stop the others.
//
// Order: ranges are read in the order of the first of their blobs in ids,
// and the blobs of a range decoded in the order of ids, so that blobs
// come out about in the order given (the read-ahead gives them in the
// order they will be read). fn is called from several goroutines at
// once, in no fixed order, while the call holds one of the process's
// decoding slots: it should be quick, and must not wait for another
// LoadBlobs. A plaintext is the caller's to keep but is read-only: a
// blob given twice at the same place is decoded once and passed for both.
//
// An error returned by fn stops the loading and is returned. When ctx is
// done LoadBlobs stops and returns ctx.Err(), and fn may not have been
// called for every blob; otherwise it returns nil after fn was called for
// every blob.
func (r *Repository) LoadBlobs(ctx context.Context, ids []ID, opts LoadOptions, fn func(i int, id ID, plain []byte, err error) error) error {
	if opts.Gap == 0 {
		opts.Gap = DefaultGap
	}
	opts.Gap = max(opts.Gap, 0)
	if opts.MaxRange <= 0 {
		opts.MaxRange = DefaultMaxRange
	}
	if opts.Ranges <= 0 {
		opts.Ranges = max(2, runtime.GOMAXPROCS(0))
	}
	want := make([]wanted, 0, len(ids))
	for i, id := range ids {
		var loc Location
		var ok bool
		if opts.Locate != nil {
			loc, ok = opts.Locate(i)
		} else {
			loc, ok = r.idx.Lookup(id)
		}
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("blob %s: %w", id.Short(), ErrBlobNotFound)
		case loc.Length < Overhead:
			err = &CorruptError{Object: packHandle(loc.Pack).String(), Blob: id, Err: fmt.Errorf("the index gives it an impossible length %d", loc.Length)}
		default:
			want = append(want, wanted{i: i, id: id, loc: loc})
			continue
		}
		if err := fn(i, id, nil, err); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	spans := planSpans(want, opts.Gap, opts.MaxRange)
	if len(spans) == 1 && len(spans[0].blobs) == 1 {
		// One blob: no goroutines.
		sp := spans[0]
		buf, err := r.readSpan(ctx, opts, sp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := r.deliver(ctx, sp, sp.blobs[0], buf, err, fn); err != nil {
			return err
		}
		return ctx.Err()
	}
	return r.loadSpans(ctx, spans, opts, fn)
}

// wanted is one blob to load.
type wanted struct {
	i    int // position in ids
	id   ID
	loc  Location
	dups []int // further positions of the same blob at the same place
}

// span is a range of one pack read with one request, and the blobs in it
// in the order of ids.
type span struct {
	pack       ID
	start, end int64
	blobs      []wanted
	left       atomic.Int32 // blobs not yet handed to fn
}

// planSpans groups blobs into ranges of their packs, at most gap apart
// and maxRange long, and orders them by the first of their blobs in ids.
func planSpans(want []wanted, gap, maxRange int64) []*span {
	slices.SortFunc(want, func(a, b wanted) int {
		return cmp.Or(slices.Compare(a.loc.Pack[:], b.loc.Pack[:]), cmp.Compare(a.loc.Offset, b.loc.Offset), cmp.Compare(a.i, b.i))
	})
	var spans []*span
	var cur *span
	for _, b := range want {
		start, end := int64(b.loc.Offset), int64(b.loc.Offset)+int64(b.loc.Length)
		if cur != nil && b.loc.Pack == cur.pack {
			if last := &cur.blobs[len(cur.blobs)-1]; last.id == b.id && last.loc == b.loc {
				last.dups = append(last.dups, b.i)
				continue
			}
			if start-cur.end <= gap && max(end, cur.end)-cur.start <= maxRange {
				cur.blobs = append(cur.blobs, b)
				cur.end = max(cur.end, end)
				continue
			}
		}
		cur = &span{pack: b.loc.Pack, start: start, end: end, blobs: []wanted{b}}
		spans = append(spans, cur)
	}
	for _, sp := range spans {
		slices.SortFunc(sp.blobs, func(a, b wanted) int { return cmp.Compare(a.i, b.i) })
		sp.left.Store(int32(len(sp.blobs)))
	}
	slices.SortFunc(spans, func(a, b *span) int { return cmp.Compare(a.blobs[0].i, b.blobs[0].i) })
	return spans
}

// loadSpans reads spans, opts.Ranges at a time, and decodes their blobs
// on up to GOMAXPROCS goroutines as they arrive.
func (r *Repository) loadSpans(ctx context.Context, spans []*span, opts LoadOptions, fn func(int, ID, []byte, error) error) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex // guards first
		first error      // the first error of fn
	)
	stop := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}

	type job struct {
		sp  *span
		b   wanted
		buf []byte
		err error
	}
	jobs := make(chan job)
	held := make(chan struct{}, opts.Ranges) // a token per range held
	n := 0
	for _, sp := range spans {
		n += len(sp.blobs)
	}
	var decoders sync.WaitGroup
	for range min(cap(decodeSlots), n) {
		decoders.Go(func() {
			for j := range jobs {
				if ctx.Err() == nil {
					if err := r.deliver(ctx, j.sp, j.b, j.buf, j.err, fn); err != nil {
						stop(err)
					}
				}
				if j.sp.left.Add(-1) == 0 {
					<-held // the range's bytes are no longer needed
				}
			}
		})
	}
	var readers sync.WaitGroup
	for _, sp := range spans {
		if ctx.Err() != nil {
			break
		}
		select {
		case held <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		readers.Go(func() {
			buf, err := r.readSpan(ctx, opts, sp)
			for _, b := range sp.blobs {
				select {
				case jobs <- job{sp, b, buf, err}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	readers.Wait()
	close(jobs)
	decoders.Wait()
	if first != nil {
		return first
	}
	return parent.Err()
}

// readSpan reads the bytes of sp.
func (r *Repository) readSpan(ctx context.Context, opts LoadOptions, sp *span) ([]byte, error) {
	if opts.ReadRange != nil {
		return opts.ReadRange(ctx, sp.pack, sp.start, sp.end)
	}
	return r.be.Load(ctx, packHandle(sp.pack), sp.start, int(sp.end-sp.start))
}

// deliver decodes b out of buf, the bytes of sp (or the error of reading
// them), and hands the result to fn for each position of b. A failure
// that the end of ctx caused is not the blob's: it is not handed on.
func (r *Repository) deliver(ctx context.Context, sp *span, b wanted, buf []byte, readErr error, fn func(int, ID, []byte, error) error) error {
	select {
	case decodeSlots <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-decodeSlots }()
	plain, err := r.openIn(sp, b, buf, readErr)
	if err != nil && ctx.Err() != nil {
		return nil
	}
	for _, i := range append([]int{b.i}, b.dups...) {
		if err := fn(i, b.id, plain, err); err != nil {
			return err
		}
	}
	return nil
}

// openIn returns the plaintext of b, read as part of sp into buf.
func (r *Repository) openIn(sp *span, b wanted, buf []byte, readErr error) ([]byte, error) {
	h := packHandle(sp.pack)
	if readErr != nil {
		return nil, rangeErr(readErr, h, b.id)
	}
	o, end := int64(b.loc.Offset)-sp.start, int64(b.loc.Offset)+int64(b.loc.Length)-sp.start
	if end > int64(len(buf)) {
		return nil, shortRead(h, b.id, len(buf), sp.start, sp.end)
	}
	plain, err := r.openBlob(h, b.loc, b.id, buf[o:end])
	if err != nil {
		return nil, err
	}
	if len(plain) != int(b.loc.RawLength) {
		return nil, &CorruptError{Object: h.String(), Blob: b.id, Err: fmt.Errorf("%d bytes, the index says %d", len(plain), b.loc.RawLength)}
	}
	return plain, nil
}

// packRange loads bytes [start, end) of a pack with one request: the
// stored form of the blobs there. Errors name blob, the first blob
// wanted there.
func (r *Repository) packRange(ctx context.Context, pack, blob ID, start, end int64) ([]byte, error) {
	h := packHandle(pack)
	stored, err := r.be.Load(ctx, h, start, int(end-start))
	if err != nil {
		return nil, rangeErr(err, h, blob)
	}
	if int64(len(stored)) != end-start {
		return nil, shortRead(h, blob, len(stored), start, end)
	}
	return stored, nil
}

// rangeErr is the error of a blob whose pack could not be read: a
// missing pack or one shorter than the range is damage, anything else is
// the storage's failure.
func rangeErr(err error, h backend.Handle, blob ID) error {
	switch {
	case errors.Is(err, backend.ErrNotExist):
		return &CorruptError{Object: h.String(), Blob: blob, Err: errors.New("pack is missing")}
	case errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, backend.ErrTransient):
		return &CorruptError{Object: h.String(), Blob: blob, Err: fmt.Errorf("pack is truncated: %w", err)}
	}
	return fmt.Errorf("load blob %s from %v: %w", blob.Short(), h, err)
}

func shortRead(h backend.Handle, blob ID, got int, start, end int64) error {
	return &CorruptError{Object: h.String(), Blob: blob, Err: fmt.Errorf("read %d bytes at %d, want %d", got, start, end-start)}
}
