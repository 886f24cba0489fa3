package maint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

// CheckOptions select how much of the repository Check reads.
type CheckOptions struct {
	// ReadData reads every indexed pack whole and verifies every blob.
	ReadData bool
	// ReadDataSubset, 0 < f <= 1, reads this fraction of the indexed packs
	// (at least one), chosen at random, when ReadData is false. 0 reads
	// none.
	ReadDataSubset float64
	// OnProblem, if set, is called for every problem as it is found,
	// before Check returns. Calls come from one goroutine at a time, never
	// concurrently; the check waits while OnProblem runs.
	OnProblem func(Problem)
}

// Severities of a Problem.
const (
	// SeverityError: data is damaged or missing. The CLI exits 1.
	SeverityError = "error"
	// SeverityWarning: the repository is sound but not tidy, e.g. a pack
	// that no index names, as a crash or a full disk leaves behind.
	SeverityWarning = "warning"
)

// Problem is one thing Check found wrong.
type Problem struct {
	Object   string // the object concerned, as a backend handle: "data/ab12…", "index/…", "snapshots/…", "keys/…"
	Blob     string // short id of the blob concerned, if any
	Severity string // SeverityError or SeverityWarning
	Message  string
}

func (p Problem) String() string {
	obj := p.Object
	if p.Blob != "" {
		obj += " blob " + p.Blob
	}
	return p.Severity + ": " + obj + ": " + p.Message
}

// CheckResult counts what Check looked at and what it found.
type CheckResult struct {
	Packs     int // packs named by an index or found in storage
	Indexes   int // index files
	Snapshots int // snapshot records
	Trees     int // distinct trees walked
	Blobs     int // distinct blobs in the index
	PacksRead int // packs read whole (ReadData, ReadDataSubset)

	Errors, Warnings int
	Problems         []Problem // in the order found
}

// Workers per phase. Snapshot, index and tree loads are small reads whose
// latency matters on remote storage; packs are read whole, so their
// workers bound memory at about readWorkers × (pack size + one blob).
const (
	loadWorkers = 8
	readWorkers = 4
)

// packEntrySize is the size of one blob's entry in a pack header
// (docs/FORMAT.md: type, stored length, raw length, id). The header of a
// pack lists at least the blobs an index names in it, which bounds the
// pack's size from below.
const packEntrySize = 1 + 4 + 4 + 32

// Check verifies r's structure and, as opts ask, its data. Damage is
// reported as Problems (Errors > 0 means the repository is damaged); the
// error return means the check could not run to the end, and the result
// then holds what was found so far.
//
// The structure check, always done: keys, index files and snapshot records
// are read whole and must hash to their names and decode; every pack an
// index names must be stored and large enough for its blobs and header; a
// stored pack that no index names is a warning; every snapshot's trees
// (each distinct tree once) must load and decode, and every blob they
// reference must be indexed, with the right type, in a pack that is
// stored. Locks are ignored.
//
// Reading data: each selected pack is loaded whole and must hash to its
// name, its header must list exactly the blobs the index places in it, and
// every blob must decrypt, decompress and hash to its id. Packs already
// found missing or truncated are not read.
//
// Check builds its own index from the index files one by one and does not
// use or change r.Index(): a damaged index file must cost only its own
// entries, and the check must not depend on what the caller loaded.
func Check(ctx context.Context, r *repo.Repository, opts CheckOptions) (CheckResult, error) {
	if f := opts.ReadDataSubset; f < 0 || f > 1 || math.IsNaN(f) {
		return CheckResult{}, fmt.Errorf("check: read-data subset %v is not a fraction in (0, 1]", f)
	}
	c := &checker{
		r:      r,
		be:     r.Backend(),
		rep:    newReporter(opts.OnProblem),
		packs:  make(map[repo.ID]*indexedPack),
		blobs:  make(map[repo.ID]repo.Location),
		stored: make(map[repo.ID]int64),
		bad:    make(map[repo.ID]bool),
	}
	err := c.run(ctx, opts)
	c.res.Problems, c.res.Errors, c.res.Warnings = c.rep.finish()
	return c.res, err
}

// checker holds one run of Check. The maps are filled by the sequential
// phases (keys, snapshots, indexes, packs) and only read by the concurrent
// ones (trees, data) that follow, so they need no lock.
type checker struct {
	r   *repo.Repository
	be  backend.Backend
	rep *reporter
	res CheckResult // counts; set by the phases, read at the end

	snaps  []*repo.Snapshot          // loaded records, oldest first
	packs  map[repo.ID]*indexedPack  // every pack an index names
	blobs  map[repo.ID]repo.Location // first indexed location of each blob
	stored map[repo.ID]int64         // packs in storage, with their sizes
	bad    map[repo.ID]bool          // indexed packs found missing or truncated
	read   atomic.Int64              // packs read whole
}

// indexedPack is what the index files say about one pack.
type indexedPack struct {
	index repo.ID // the first index file naming it
	blobs []repo.PackBlob
}

func (c *checker) run(ctx context.Context, opts CheckOptions) error {
	// The order of listings matters, see the package documentation.
	for _, phase := range []func(context.Context) error{
		c.checkKeys, c.loadSnapshots, c.loadIndexes, c.checkPacks, c.checkTrees,
	} {
		if err := phase(ctx); err != nil {
			return err
		}
	}
	sel := c.selectPacks(opts)
	err := repo.Parallel(ctx, len(sel), readWorkers, func(ctx context.Context, i int) error {
		return c.readPack(ctx, sel[i])
	})
	c.res.PacksRead = int(c.read.Load())
	return err
}

// fatal reports whether err means the check cannot go on, rather than
// that one object is damaged.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, backend.ErrTransient) || errors.Is(err, backend.ErrPermission) ||
		errors.Is(err, backend.ErrClosed)
}

// reason is err for a Problem's message: the cause of a CorruptError
// without the object name the Problem already carries.
func reason(err error) string {
	if ce, ok := errors.AsType[*repo.CorruptError](err); ok {
		return ce.Err.Error()
	}
	return err.Error()
}

func handle(t backend.FileType, id repo.ID) string {
	return backend.Handle{Type: t, Name: id.String()}.String()
}

// describe names a snapshot in messages.
func describe(s *repo.Snapshot) string {
	return fmt.Sprintf("snapshot %q (%s)", s.Label, s.ID().Short())
}

type object struct {
	id   repo.ID
	size int64
}

// list lists the objects of type t, sorted by name. A name that is not an
// object id is reported as a warning and skipped.
func (c *checker) list(ctx context.Context, t backend.FileType) ([]object, error) {
	var objs []object
	err := c.be.List(ctx, t, func(fi backend.FileInfo) error {
		id, err := repo.ParseID(fi.Name)
		if err != nil {
			c.rep.warnf(backend.Handle{Type: t, Name: fi.Name}.String(), repo.ID{}, "not a cairn object name; ignored")
			return nil
		}
		objs = append(objs, object{id: id, size: fi.Size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t, err)
	}
	slices.SortFunc(objs, func(a, b object) int { return bytes.Compare(a.id[:], b.id[:]) })
	return objs, nil
}

// vanished reports an object that was listed but could not be found when
// loaded: a concurrent forget or prune removed it, or the listing lags.
func (c *checker) vanished(obj string) {
	c.rep.warnf(obj, repo.ID{}, "listed but gone when read (removed by a concurrent forget or prune?)")
}

func (c *checker) checkKeys(ctx context.Context) error {
	keys, err := c.list(ctx, backend.KeyFile)
	if err != nil {
		return err
	}
	for _, k := range keys {
		h := backend.Handle{Type: backend.KeyFile, Name: k.id.String()}
		data, err := c.be.Load(ctx, h, 0, 0)
		switch {
		case err == nil:
			if repo.Hash(data) != k.id {
				c.rep.errorf(h.String(), repo.ID{}, "content does not match its name (altered or truncated)")
			}
		case fatal(ctx, err):
			return err
		case errors.Is(err, backend.ErrNotExist):
			c.vanished(h.String())
		default:
			c.rep.errorf(h.String(), repo.ID{}, "cannot be read: %v", err)
		}
	}
	return nil
}

func (c *checker) loadSnapshots(ctx context.Context) error {
	objs, err := c.list(ctx, backend.SnapshotFile)
	if err != nil {
		return err
	}
	c.res.Snapshots = len(objs)
	snaps := make([]*repo.Snapshot, len(objs))
	err = repo.Parallel(ctx, len(objs), loadWorkers, func(ctx context.Context, i int) error {
		s, err := c.r.LoadSnapshot(ctx, objs[i].id)
		obj := handle(backend.SnapshotFile, objs[i].id)
		switch {
		case err == nil:
			snaps[i] = s
		case fatal(ctx, err):
			return err
		case errors.Is(err, backend.ErrNotExist):
			c.vanished(obj)
		default:
			c.rep.errorf(obj, repo.ID{}, "damaged snapshot record: %s", reason(err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.snaps = slices.DeleteFunc(snaps, func(s *repo.Snapshot) bool { return s == nil })
	repo.SortSnapshots(c.snaps)
	return nil
}

func (c *checker) loadIndexes(ctx context.Context) error {
	objs, err := c.list(ctx, backend.IndexFile)
	if err != nil {
		return err
	}
	c.res.Indexes = len(objs)
	files := make([][]repo.IndexPack, len(objs))
	err = repo.Parallel(ctx, len(objs), loadWorkers, func(ctx context.Context, i int) error {
		packs, err := c.r.LoadIndexFile(ctx, objs[i].id)
		obj := handle(backend.IndexFile, objs[i].id)
		switch {
		case err == nil:
			files[i] = packs
		case fatal(ctx, err):
			return err
		case errors.Is(err, backend.ErrNotExist):
			c.vanished(obj)
		default:
			c.rep.errorf(obj, repo.ID{}, "damaged index file: %s; the packs it names are not indexed", reason(err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Merge in name order, so that which index file is blamed for a
	// disagreement does not depend on timing.
	for i, packs := range files {
		for _, p := range packs {
			c.addPack(objs[i].id, p)
		}
	}
	c.res.Blobs = len(c.blobs)
	return nil
}

// addPack merges one index file's entries for a pack. Two index files may
// name the same pack (repair writes one beside the old), but they must
// agree on where its blobs are.
func (c *checker) addPack(index repo.ID, p repo.IndexPack) {
	ip := c.packs[p.ID]
	if ip == nil {
		c.packs[p.ID] = &indexedPack{index: index, blobs: p.Blobs}
		for _, b := range p.Blobs {
			if _, ok := c.blobs[b.ID]; !ok {
				c.blobs[b.ID] = location(p.ID, b)
			}
		}
		return
	}
	known := make(map[repo.ID]repo.PackBlob, len(ip.blobs))
	for _, b := range ip.blobs {
		known[b.ID] = b
	}
	for _, b := range p.Blobs {
		if kb, ok := known[b.ID]; ok {
			if kb != b {
				c.rep.errorf(handle(backend.IndexFile, index), b.ID,
					"places the blob in pack %s as a %s, index %s as a %s",
					p.ID.Short(), entry(b), ip.index.Short(), entry(kb))
			}
			continue
		}
		ip.blobs = append(ip.blobs, b)
		if _, ok := c.blobs[b.ID]; !ok {
			c.blobs[b.ID] = location(p.ID, b)
		}
	}
}

func location(pack repo.ID, b repo.PackBlob) repo.Location {
	return repo.Location{Pack: pack, Type: b.Type, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength}
}

// entry describes where a blob entry places its blob.
func entry(b repo.PackBlob) string {
	return fmt.Sprintf("%s blob at offset %d, length %d, raw length %d", b.Type, b.Offset, b.Length, b.RawLength)
}

func (c *checker) checkPacks(ctx context.Context) error {
	objs, err := c.list(ctx, backend.PackFile)
	if err != nil {
		return err
	}
	for _, o := range objs {
		c.stored[o.id] = o.size
	}
	for _, id := range sortedIDs(c.packs) {
		ip := c.packs[id]
		obj := handle(backend.PackFile, id)
		size, ok := c.stored[id]
		if !ok {
			c.rep.errorf(obj, repo.ID{}, "pack is missing: index %s names it, storage does not hold it", ip.index.Short())
			c.bad[id] = true
			continue
		}
		if need := minPackSize(ip.blobs); size < need {
			c.rep.errorf(obj, repo.ID{}, "pack is truncated: %d bytes, its indexed blobs and header need at least %d", size, need)
			c.bad[id] = true
		}
	}
	for _, o := range objs {
		if c.packs[o.id] == nil {
			c.rep.warnf(handle(backend.PackFile, o.id), repo.ID{}, "unreferenced pack (`cairn prune` frees it)")
		}
	}
	c.res.Packs = len(c.packs)
	for id := range c.stored {
		if c.packs[id] == nil {
			c.res.Packs++
		}
	}
	return nil
}

// minPackSize is the least size a pack holding blobs can have: up to the
// end of its last blob, then a header sealing at least their entries,
// then the header's length.
func minPackSize(blobs []repo.PackBlob) int64 {
	var end int64
	for _, b := range blobs {
		end = max(end, int64(b.Offset)+int64(b.Length))
	}
	return end + repo.Overhead + 1 + int64(len(blobs))*packEntrySize + 4
}

func sortedIDs[V any](m map[repo.ID]V) []repo.ID {
	ids := make([]repo.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b repo.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

func (c *checker) checkTrees(ctx context.Context) error {
	var trees atomic.Int64
	err := Walk(ctx, c.r, c.snaps, WalkOptions{LoadTree: c.loadTree, Follow: c.subtree, Workers: loadWorkers},
		func(ctx context.Context, v Visit) error {
			trees.Add(1)
			return c.checkTree(ctx, v)
		})
	c.res.Trees = int(trees.Load())
	return err
}

// checkTree checks the entries of one tree the walk reached (its
// subtrees are checked by subtree, as the walk follows them). It returns
// an error only if the check cannot go on.
func (c *checker) checkTree(ctx context.Context, v Visit) error {
	if v.Err != nil {
		if fatal(ctx, v.Err) {
			return v.Err
		}
		loc := c.blobs[v.ID]
		c.rep.errorf(handle(backend.PackFile, loc.Pack), v.ID, "%s: %s: tree cannot be loaded: %s",
			describe(v.Snapshot), v.Path, reason(v.Err))
		return nil
	}
	for _, n := range v.Tree.Nodes {
		if n.Type == repo.NodeFile {
			c.content(v.Snapshot, path.Join(v.Path, n.Name), n.Content)
		}
	}
	return nil
}

// loadTree is repo.LoadTree on the checker's own index.
func (c *checker) loadTree(ctx context.Context, id repo.ID) (*repo.Tree, error) {
	var plain []byte
	locate := func(int) (repo.Location, bool) { loc, ok := c.blobs[id]; return loc, ok }
	err := c.r.LoadBlobs(ctx, []repo.ID{id}, repo.LoadOptions{Locate: locate}, func(_ int, _ repo.ID, p []byte, err error) error {
		plain = p
		return err
	})
	if err != nil {
		return nil, err
	}
	t, err := repo.DecodeTree(plain)
	if err != nil {
		return nil, fmt.Errorf("tree does not decode: %w", err)
	}
	return t, nil
}

// subtree checks a reference to a tree blob and reports whether the tree
// can be walked.
func (c *checker) subtree(s *repo.Snapshot, p string, id repo.ID) bool {
	loc, ok := c.blobs[id]
	if !ok {
		c.rep.errorf(handle(backend.SnapshotFile, s.ID()), id, "%s: %s: tree blob %s is not in the index", describe(s), p, id.Short())
		return false
	}
	if loc.Type != repo.TreeBlob {
		c.rep.errorf(handle(backend.SnapshotFile, s.ID()), id, "%s: %s: tree blob %s is indexed as a %s blob", describe(s), p, id.Short(), loc.Type)
		return false
	}
	return true
}

// content checks a file's chunk list against the index and the pack
// listing. It reports a damaged file once, naming its first bad blob.
func (c *checker) content(s *repo.Snapshot, p string, ids []repo.ID) {
	var (
		bad      int
		first    repo.ID
		firstWhy string
	)
	for _, id := range ids {
		why := c.blobState(id)
		if why == "" {
			continue
		}
		if bad == 0 {
			first, firstWhy = id, why
		}
		bad++
	}
	if bad == 0 {
		return
	}
	msg := fmt.Sprintf("%s: %s: data blob %s %s", describe(s), p, first.Short(), firstWhy)
	if bad > 1 {
		msg += fmt.Sprintf(" (%d of the file's %d blobs are affected)", bad, len(ids))
	}
	c.rep.add(Problem{Object: handle(backend.SnapshotFile, s.ID()), Blob: first.Short(), Severity: SeverityError, Message: msg})
}

// blobState says what is wrong with a data blob reference, or "".
func (c *checker) blobState(id repo.ID) string {
	loc, ok := c.blobs[id]
	if !ok {
		return "is not in the index"
	}
	if loc.Type != repo.DataBlob {
		return fmt.Sprintf("is indexed as a %s blob", loc.Type)
	}
	size, ok := c.stored[loc.Pack]
	if !ok {
		return fmt.Sprintf("is in pack %s, which is missing", loc.Pack.Short())
	}
	if int64(loc.Offset)+int64(loc.Length) > size {
		return fmt.Sprintf("is beyond the end of pack %s, which is truncated", loc.Pack.Short())
	}
	return ""
}

// selectPacks picks the packs to read: indexed, stored, and not already
// found truncated.
func (c *checker) selectPacks(opts CheckOptions) []repo.ID {
	if !opts.ReadData && opts.ReadDataSubset == 0 {
		return nil
	}
	ids := slices.DeleteFunc(sortedIDs(c.packs), func(id repo.ID) bool { return c.bad[id] })
	if opts.ReadData || len(ids) == 0 {
		return ids
	}
	n := max(1, int(math.Ceil(opts.ReadDataSubset*float64(len(ids)))))
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:min(n, len(ids))]
	slices.SortFunc(ids, func(a, b repo.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// readPack reads one pack whole and verifies its name, its header against
// the index, and every blob. It returns an error only if the check cannot
// go on.
func (c *checker) readPack(ctx context.Context, id repo.ID) error {
	h := repo.PackHandle(id)
	obj := h.String()
	data, err := c.be.Load(ctx, h, 0, 0)
	switch {
	case err == nil:
	case fatal(ctx, err):
		return err
	case errors.Is(err, backend.ErrNotExist):
		c.vanished(obj)
		return nil
	default:
		c.rep.errorf(obj, repo.ID{}, "cannot be read: %v", err)
		return nil
	}
	c.read.Add(1)
	if repo.Hash(data) != id {
		c.rep.errorf(obj, repo.ID{}, "pack content does not match its name")
	}

	indexed := c.packs[id].blobs
	blobs := slices.Clone(indexed)
	header, err := c.r.ParsePack(data)
	if err != nil {
		c.rep.errorf(obj, repo.ID{}, "cannot read the pack header: %v", err)
	} else {
		inHeader := make(map[repo.ID]repo.PackBlob, len(header))
		for _, b := range header {
			inHeader[b.ID] = b
		}
		for _, b := range indexed {
			hb, ok := inHeader[b.ID]
			switch {
			case !ok:
				c.rep.errorf(obj, b.ID, "indexed in this pack but not in its header")
			case hb != b:
				c.rep.errorf(obj, b.ID, "the index has a %s, the pack header a %s", entry(b), entry(hb))
			}
			delete(inHeader, b.ID)
		}
		for _, b := range header {
			if _, ok := inHeader[b.ID]; ok {
				c.rep.errorf(obj, b.ID, "in the pack header but in no index")
				blobs = append(blobs, b)
			}
		}
	}

	// Decode every blob out of the pack read whole.
	blobs = slices.DeleteFunc(blobs, func(b repo.PackBlob) bool {
		if int64(b.Offset)+int64(b.Length) > int64(len(data)) {
			c.rep.errorf(obj, b.ID, "%s reaches beyond the end of the pack (%d bytes)", entry(b), len(data))
			return true
		}
		return false
	})
	ids := make([]repo.ID, len(blobs))
	for i, b := range blobs {
		ids[i] = b.ID
	}
	opts := repo.LoadOptions{
		Gap:       int64(len(data)),
		MaxRange:  int64(len(data)),
		Locate:    func(i int) (repo.Location, bool) { return location(id, blobs[i]), true },
		ReadRange: func(_ context.Context, _ repo.ID, start, end int64) ([]byte, error) { return data[start:end], nil },
	}
	return c.r.LoadBlobs(ctx, ids, opts, func(i int, _ repo.ID, _ []byte, err error) error {
		switch {
		case err == nil:
		case fatal(ctx, err):
			return err
		default:
			c.rep.errorf(obj, blobs[i].ID, "damaged %s blob: %s", blobs[i].Type, reason(err))
		}
		return nil
	})
}

// reporter collects problems from any goroutine. They pass through a
// channel to one goroutine, which alone appends them and calls OnProblem,
// so that no lock is held while calling out and OnProblem is never called
// concurrently.
type reporter struct {
	ch   chan Problem
	done chan struct{}

	// Owned by the collecting goroutine until done is closed.
	problems         []Problem
	errors, warnings int
}

func newReporter(on func(Problem)) *reporter {
	rp := &reporter{ch: make(chan Problem), done: make(chan struct{})}
	go func() {
		defer close(rp.done)
		for p := range rp.ch {
			rp.problems = append(rp.problems, p)
			if p.Severity == SeverityError {
				rp.errors++
			} else {
				rp.warnings++
			}
			if on != nil {
				on(p)
			}
		}
	}()
	return rp
}

func (rp *reporter) add(p Problem) { rp.ch <- p }

func (rp *reporter) errorf(obj string, blob repo.ID, format string, args ...any) {
	rp.report(SeverityError, obj, blob, format, args...)
}

func (rp *reporter) warnf(obj string, blob repo.ID, format string, args ...any) {
	rp.report(SeverityWarning, obj, blob, format, args...)
}

func (rp *reporter) report(severity, obj string, blob repo.ID, format string, args ...any) {
	p := Problem{Object: obj, Severity: severity, Message: fmt.Sprintf(format, args...)}
	if !blob.IsNull() {
		p.Blob = blob.Short()
	}
	rp.add(p)
}

// finish waits for every problem reported so far to be handled and returns
// them. No problem may be reported after it.
func (rp *reporter) finish() ([]Problem, int, int) {
	close(rp.ch)
	<-rp.done
	return rp.problems, rp.errors, rp.warnings
}
