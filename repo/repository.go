package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/diskcache"
	"github.com/cairn-backup/cairn/repo/chunker"
)

// Repository reads and writes one repository. Its methods are safe for
// concurrent use.
//
// Saving: SaveBlob compresses and seals in the caller's goroutine (so
// callers parallelise it), appends to the open pack of the blob's type, and
// hands a full pack to a bounded set of upload goroutines. Flush writes the
// remaining packs and then one index file naming every pack uploaded since
// the last Flush.
type Repository struct {
	be       backend.Backend
	id       string
	settings Settings
	master   *masterKey
	data     *sealer
	table    *chunker.Table
	idx      *Index

	treeDir     string        // local copies of stored tree blobs ("" = none)
	uploadSlots chan struct{} // bounds packs in flight (memory)
	packBufs    sync.Pool     // *[]byte of uploaded data packs, for reuse
	uploads     sync.WaitGroup

	// flushMu serialises Flush, I/O included: a Flush that finds nothing
	// left to index must not return while another caller's Flush is still
	// writing the index file naming packs that hold this caller's blobs.
	// Lock order: flushMu, then mu.
	flushMu sync.Mutex

	mu sync.Mutex // guards the fields below; never held across I/O
	// pending holds blobs accepted by SaveBlob but not yet indexed.
	pending   map[ID]struct{}
	open      map[BlobType]*openPack
	unindexed []IndexPack // uploaded packs not yet named by an index file
	saveErr   error       // first upload failure; sticky until Flush returns it
	failures  uint64      // uploads failed so far, for FlushSince
	lastFail  error       // the latest of them
	// indexFiles are the index files loaded or written by this process.
	indexFiles map[ID]bool
	// held are the locks this process holds on the repository, checked
	// before writes others could prune (Lock.verify).
	held map[*Lock]struct{}
	// settle is how long listings may lag behind writes (SetSettle).
	settle time.Duration
}

type openPack struct {
	buf   []byte
	blobs []PackBlob
}

func newRepository(be backend.Backend, cf configFile, st Settings, mk *masterKey) (*Repository, error) {
	ds, err := newSealer(mk.derive(infoData))
	if err != nil {
		return nil, err
	}
	if st.PackSize <= 0 {
		st.PackSize = DefaultPackSize
	}
	return &Repository{
		be:          be,
		id:          cf.ID,
		settings:    st,
		master:      mk,
		data:        ds,
		table:       chunker.NewTable(st.ChunkerSeed),
		idx:         newIndex(),
		uploadSlots: make(chan struct{}, 1),
		pending:     make(map[ID]struct{}),
		indexFiles:  make(map[ID]bool),
		open:        make(map[BlobType]*openPack),
	}, nil
}

// SetUploads sets how many packs may upload at once (default 1, enough
// for local storage; remote stores hide their latency with more). Each
// costs a pack's worth of memory. Call it before saving anything.
func (r *Repository) SetUploads(n int) {
	r.uploadSlots = make(chan struct{}, max(1, n))
}

// Uploads is how many packs may upload at once.
func (r *Repository) Uploads() int { return cap(r.uploadSlots) }

// ID returns the repository's id (hex).
func (r *Repository) ID() string { return r.id }

// Backend returns the storage.
func (r *Repository) Backend() backend.Backend { return r.be }

// Settings returns the repository's parameters.
func (r *Repository) Settings() Settings { return r.settings }

// ChunkerTable returns the gear table of the repository's chunker seed.
func (r *Repository) ChunkerTable() *chunker.Table { return r.table }

// Index returns the in-memory index (filled by LoadIndex and by Flush).
func (r *Repository) Index() *Index { return r.idx }

// LoadIndex reads every index file not loaded before, so calling it
// again picks up what other processes have added. When a file loaded
// before is gone (a prune rewrote the index), it rebuilds the index
// instead (reload.go). An index file that fails verification is reported
// by name.
func (r *Repository) LoadIndex(ctx context.Context) error {
	var ids, listed []ID
	err := r.be.List(ctx, backend.IndexFile, func(fi backend.FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			return nil // not ours
		}
		listed = append(listed, id)
		r.mu.Lock()
		seen := r.indexFiles[id]
		r.mu.Unlock()
		if !seen {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	r.mu.Lock()
	removed := len(listed)-len(ids) < len(r.indexFiles)
	r.mu.Unlock()
	if removed {
		return r.reloadIndex(ctx, listed)
	}
	return Parallel(ctx, len(ids), 4, func(ctx context.Context, i int) error {
		packs, err := r.LoadIndexFile(ctx, ids[i])
		if err != nil {
			return err
		}
		for _, p := range packs {
			r.idx.addPack(p.ID, p.Blobs)
		}
		r.mu.Lock()
		r.indexFiles[ids[i]] = true
		r.mu.Unlock()
		return nil
	})
}

// LoadIndexFile loads and decodes one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, id ID) ([]IndexPack, error) {
	h := backend.Handle{Type: backend.IndexFile, Name: id.String()}
	data, err := loadObject(ctx, r.be, backend.IndexFile, id)
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	plain, err := r.data.open(nil, data, kindIndex)
	if err != nil {
		return nil, &CorruptError{Object: h.String(), Err: err}
	}
	packs, err := decodeIndex(plain)
	if err != nil {
		return nil, &CorruptError{Object: h.String(), Err: err}
	}
	return packs, nil
}

// HasBlob reports whether id is stored or being stored.
func (r *Repository) HasBlob(id ID) bool {
	if r.idx.Has(id) {
		return true
	}
	r.mu.Lock()
	_, ok := r.pending[id]
	r.mu.Unlock()
	return ok
}

// LookupBlob returns where id is stored.
func (r *Repository) LookupBlob(id ID) (Location, bool) { return r.idx.Lookup(id) }

// BlobLength returns the length of id's plaintext, as the index gives it.
func (r *Repository) BlobLength(id ID) (uint32, bool) {
	loc, ok := r.idx.Lookup(id)
	return loc.RawLength, ok
}

// LoadBlob loads, decrypts, decompresses and verifies one blob.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	loc, ok := r.idx.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrBlobNotFound)
	}
	h := packHandle(loc.Pack)
	if t == TreeBlob && r.treeDir != "" {
		return r.loadCachedTree(ctx, h, loc, id)
	}
	stored, err := r.packRange(ctx, loc.Pack, id, int64(loc.Offset), int64(loc.Offset)+int64(loc.Length))
	if err != nil {
		return nil, err
	}
	return r.openBlob(h, loc, id, stored)
}

// UseLocalCache keeps copies of the repository's metadata under
// dir/<repository id>: keys, index files and snapshots (through a
// diskcache backend) and tree blobs, all verified on use. Meant for
// remote repositories, where it saves the downloads that listing
// snapshots or browsing a mount would otherwise repeat.
func (r *Repository) UseLocalCache(dir string) {
	dir = filepath.Join(dir, r.id)
	r.be = diskcache.New(r.be, dir)
	r.treeDir = filepath.Join(dir, "trees")
}

// loadCachedTree serves a tree blob from the local cache, or loads it and
// keeps the stored (still encrypted) bytes.
func (r *Repository) loadCachedTree(ctx context.Context, h backend.Handle, loc Location, id ID) ([]byte, error) {
	p := r.treePath(id)
	if stored, err := os.ReadFile(p); err == nil {
		if plain, err := r.openBlob(h, loc, id, stored); err == nil {
			return plain, nil
		}
		os.Remove(p) // damaged or stale copy
	}
	stored, err := r.packRange(ctx, loc.Pack, id, int64(loc.Offset), int64(loc.Offset)+int64(loc.Length))
	if err != nil {
		return nil, err
	}
	plain, err := r.openBlob(h, loc, id, stored)
	if err != nil {
		return nil, err
	}
	r.cacheTree(id, stored)
	return plain, nil
}

func (r *Repository) treePath(id ID) string {
	return filepath.Join(r.treeDir, id.String()[:2], id.String())
}

// cacheTree keeps the stored bytes of a tree blob; failures only cost a
// later download.
func (r *Repository) cacheTree(id ID, stored []byte) {
	p := r.treePath(id)
	if os.MkdirAll(filepath.Dir(p), 0o700) != nil {
		return
	}
	if tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*"); err == nil {
		_, werr := tmp.Write(stored)
		if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
			os.Remove(tmp.Name())
		}
	}
}

// openBlob decodes a blob from its stored bytes.
func (r *Repository) openBlob(h backend.Handle, loc Location, id ID, stored []byte) ([]byte, error) {
	plain, err := r.decodeBlob(stored, id, int(loc.RawLength))
	if err != nil {
		return nil, &CorruptError{Object: h.String(), Blob: id, Err: err}
	}
	return plain, nil
}

func packHandle(id ID) backend.Handle {
	return backend.Handle{Type: backend.PackFile, Name: id.String()}
}

// PackHandle names a pack object.
func PackHandle(id ID) backend.Handle { return packHandle(id) }

// SaveBlob stores plain as a blob of type t unless the repository has it
// already; known reports that case. id must be Hash(plain); callers have it
// already because they deduplicate before compressing.
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, id ID, plain []byte) (known bool, err error) {
	if !r.reserve(id) {
		return r.reserveErr(id)
	}
	sp := scratchPool.Get().(*[]byte)
	inner := r.innerBlob(plain, *sp)
	err = r.addBlob(ctx, t, id, inner, len(plain))
	*sp = inner[:0]
	scratchPool.Put(sp)
	return false, err
}

// EncodedBlob is a blob compressed as repositories of one compression
// setting store it, before sealing: a backup into several repositories
// compresses each chunk once and seals it for each (EncodeBlob,
// SaveEncoded). It is immutable once made.
type EncodedBlob struct {
	compression string
	inner       []byte
	raw         int
}

// EncodeBlob compresses plain as r stores it, for SaveEncoded into r or
// any repository with the same Settings().Compression. The blob is built
// in scratch when it is large enough (nil allocates); SaveEncoded copies
// it, so scratch may be reused once the saves have returned.
func (r *Repository) EncodeBlob(plain, scratch []byte) EncodedBlob {
	return EncodedBlob{compression: r.settings.Compression, inner: r.innerBlob(plain, scratch), raw: len(plain)}
}

// Bytes returns the encoded blob's buffer, for the caller to reuse as
// the scratch of a later EncodeBlob once its saves have returned.
func (e EncodedBlob) Bytes() []byte { return e.inner }

// Compression returns the compression setting the blob was encoded for.
func (e EncodedBlob) Compression() string { return e.compression }

// SaveEncoded is SaveBlob for a blob made by EncodeBlob; id must be the
// hash of its plaintext. A blob encoded for another compression setting
// is an error.
func (r *Repository) SaveEncoded(ctx context.Context, t BlobType, id ID, e EncodedBlob) (known bool, err error) {
	if e.compression != r.settings.Compression {
		return false, fmt.Errorf("blob %v encoded for compression %q, the repository uses %q", id.Short(), e.compression, r.settings.Compression)
	}
	if !r.reserve(id) {
		return r.reserveErr(id)
	}
	return false, r.addBlob(ctx, t, id, e.inner, e.raw)
}

// reserve claims id for a save; false if the repository has the blob,
// indexed or pending, or saving has failed (see reserveErr).
func (r *Repository) reserve(id ID) bool {
	if r.idx.Has(id) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saveErr != nil {
		return false
	}
	if _, ok := r.pending[id]; ok {
		return false
	}
	// Again under the lock: an upload may have indexed the blob and
	// dropped it from pending since the check above. It indexes before
	// it drops, so here the blob is in one or the other.
	if r.idx.Has(id) {
		return false
	}
	r.pending[id] = struct{}{}
	return true
}

// reserveErr is what a save whose reserve failed returns: the sticky
// upload failure if there is one, else "known".
func (r *Repository) reserveErr(id ID) (known bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saveErr != nil && !r.idx.Has(id) {
		return false, r.saveErr
	}
	return true, nil
}

// addBlob seals inner (the encoding of a plaintext of raw bytes) into the
// open pack of type t, handing full packs to the uploads.
func (r *Repository) addBlob(ctx context.Context, t BlobType, id ID, inner []byte, raw int) error {
	stored := len(inner) + Overhead

	// Close the open pack first if this blob would take it past the
	// target size, so pack buffers never grow beyond it (a single blob
	// larger than the target gets a pack of its own).
	var full []*openPack
	r.mu.Lock()
	p := r.open[t]
	if p != nil && len(p.buf) > 0 && len(p.buf)+stored > r.settings.PackSize {
		full = append(full, p)
		p = nil
	}
	if p == nil {
		p = r.newPack(t)
		r.open[t] = p
	}
	off := len(p.buf)
	p.buf = r.data.seal(p.buf, inner, kindBlob)
	p.blobs = append(p.blobs, PackBlob{Type: t, ID: id, Offset: uint32(off), Length: uint32(len(p.buf) - off), RawLength: uint32(raw)})
	var cacheTree []byte
	if t == TreeBlob && r.treeDir != "" {
		cacheTree = append([]byte(nil), p.buf[off:]...)
	}
	if len(p.buf) >= r.settings.PackSize {
		full = append(full, p)
		delete(r.open, t)
	}
	r.mu.Unlock()
	if cacheTree != nil {
		// The next backup reads this tree as its parent's: keep a copy
		// (verified on use, so one of a pack that never lands is harmless).
		r.cacheTree(id, cacheTree)
	}

	for _, f := range full {
		if err := r.startUpload(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// newPack returns an empty pack with a buffer from the free list: data
// packs fill to the target size, so they get it at once; tree packs are
// usually small and grow as needed.
func (r *Repository) newPack(t BlobType) *openPack {
	if t == DataBlob {
		if b, ok := r.packBufs.Get().(*[]byte); ok {
			return &openPack{buf: (*b)[:0]}
		}
		return &openPack{buf: make([]byte, 0, r.settings.PackSize+256<<10)}
	}
	return &openPack{buf: make([]byte, 0, 256<<10)}
}

// startUpload seals the pack's header and uploads it in the background,
// waiting for a free slot first (backpressure bounds memory).
func (r *Repository) startUpload(ctx context.Context, p *openPack) error {
	select {
	case r.uploadSlots <- struct{}{}:
	case <-ctx.Done():
		r.failPack(p, ctx.Err())
		return ctx.Err()
	}
	r.uploads.Add(1)
	go func() {
		defer r.uploads.Done()
		defer func() { <-r.uploadSlots }()
		if err := r.uploadPack(ctx, p); err != nil {
			r.failPack(p, err)
		}
	}()
	return nil
}

// failPack records that pack p never reached storage. Its blobs stop
// being pending, so that a later save stores them again instead of
// taking them for known; every caller that may have relied on them
// learns of the failure from Flush or FlushSince.
func (r *Repository) failPack(p *openPack, err error) {
	r.mu.Lock()
	if r.saveErr == nil {
		r.saveErr = err
	}
	r.failures++
	r.lastFail = err
	for _, b := range p.blobs {
		delete(r.pending, b.ID)
	}
	r.mu.Unlock()
}

func (r *Repository) uploadPack(ctx context.Context, p *openPack) error {
	hdr := r.data.seal(nil, encodePackHeader(p.blobs), kindHeader)
	p.buf = append(p.buf, hdr...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(hdr)))
	id, err := saveObject(ctx, r.be, backend.PackFile, p.buf)
	if err != nil {
		return fmt.Errorf("save pack: %w", err)
	}
	r.idx.addPack(id, p.blobs)
	r.mu.Lock()
	for _, b := range p.blobs {
		delete(r.pending, b.ID)
	}
	r.unindexed = append(r.unindexed, IndexPack{ID: id, Blobs: p.blobs})
	r.mu.Unlock()
	if cap(p.buf) >= r.settings.PackSize && cap(p.buf) <= r.settings.PackSize+1<<20 {
		buf := p.buf[:0]
		r.packBufs.Put(&buf)
	}
	return nil
}

// Flush uploads the open packs, waits for every upload and writes an index
// file for them. After Flush returns nil, every blob saved before is
// indexed in the repository. A failed upload is reported here (and by
// later SaveBlob calls); the packs that did reach storage are still
// indexed so that their data is not lost to a retry.
//
// Several callers may save into one Repository at once (plans sharing a
// repository share its uploads, DESIGN.md §7); each should use
// SaveMark and FlushSince, because the error of a failed upload is
// returned by one Flush only.
func (r *Repository) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	var open []*openPack
	for t, p := range r.open {
		open = append(open, p)
		delete(r.open, t)
	}
	r.mu.Unlock()
	for _, p := range open {
		if err := r.startUpload(ctx, p); err != nil {
			break
		}
	}
	r.uploads.Wait()

	r.mu.Lock()
	packs := r.unindexed
	r.unindexed = nil
	saveErr := r.saveErr
	r.saveErr = nil
	r.mu.Unlock()

	if len(packs) > 0 {
		if _, err := r.saveIndex(ctx, packs); err != nil {
			r.mu.Lock()
			r.unindexed = append(packs, r.unindexed...)
			r.mu.Unlock()
			return errors.Join(saveErr, err)
		}
	}
	return saveErr
}

// SaveMark is a point in a repository's series of uploads, taken by a
// caller before its first save.
type SaveMark struct{ failures uint64 }

// SaveMark returns the current point, for FlushSince.
func (r *Repository) SaveMark() SaveMark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return SaveMark{r.failures}
}

// FlushSince is Flush for one of several callers saving at once: it also
// fails when any upload failed after m was taken, even one whose error
// another caller's Flush returned already, since the failed pack may have
// held a blob that this caller's SaveBlob took for known.
func (r *Repository) FlushSince(ctx context.Context, m SaveMark) error {
	err := r.Flush(ctx)
	r.mu.Lock()
	failed, last := r.failures != m.failures, r.lastFail
	r.mu.Unlock()
	if err == nil && failed {
		err = fmt.Errorf("a pack upload failed during this save: %w", last)
	}
	return err
}

func (r *Repository) saveIndex(ctx context.Context, packs []IndexPack) (ID, error) {
	if err := r.verifyLocks(ctx); err != nil {
		return ID{}, fmt.Errorf("save index: %w", err)
	}
	sealed := r.data.seal(nil, encodeIndex(packs), kindIndex)
	id, err := saveObject(ctx, r.be, backend.IndexFile, sealed)
	if err != nil {
		return id, fmt.Errorf("save index: %w", err)
	}
	r.mu.Lock()
	r.indexFiles[id] = true
	r.mu.Unlock()
	return id, nil
}

// SaveIndexFile writes packs as one index file (used by repair and copy).
func (r *Repository) SaveIndexFile(ctx context.Context, packs []IndexPack) (ID, error) {
	for _, p := range packs {
		r.idx.addPack(p.ID, p.Blobs)
	}
	return r.saveIndex(ctx, packs)
}

// Parallel runs fn(ctx, i) for i in 0..n-1 on up to workers goroutines.
// The first error cancels the context of the others, stops starting new
// ones and is returned once all have returned; otherwise Parallel returns
// ctx.Err(), so that a cancelled ctx never passes for success.
func Parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
