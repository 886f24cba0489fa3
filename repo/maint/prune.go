package maint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

// Prune frees the space of data no snapshot references, in two phases
// (DESIGN.md §7, issue 13). A pack found unreferenced is only marked (a
// mark object, docs/FORMAT.md §15); a later prune deletes it once its mark
// is older than the grace period, and only if it is still unreferenced
// then, judged against the snapshots and index files of that moment. The
// grace period is longer than the time after which a lock counts as
// stale, so a backup that a lagging listing hid from the marking prune,
// or that used the marked pack's blobs in between, has either finished
// (and its snapshot keeps the pack) or still holds a lock the deleting
// prune cannot take.
//
// Marked packs stay in the index until they are deleted, so a backup
// that deduplicates against one of their blobs in between is consistent
// for every reader, and the next prune sees the pack referenced again and
// drops its mark.
//
// Prune runs in two steps:
//
//  1. Under the exclusive lock (the caller's): list index files, snapshots,
//     packs and marks; compute what the snapshots reach (Reachable); decide;
//     write the compacted index (every indexed pack except those deleted
//     now, in few files), then the new mark object, then remove the old
//     mark objects and index files, and only then delete the packs whose
//     marks have expired. Each step leaves a valid repository: the new
//     index is written before the old one goes, and a pack goes only after
//     no index file names it.
//  2. After Downgrade (the caller trades the exclusive lock for a shared
//     one): packs whose live fraction is below RepackBelow are repacked:
//     their needed blobs are copied into new packs, an index file names
//     those, and only then are the old packs marked like unreferenced ones.
//     This step only adds objects, so backups may run beside it.

// DefaultGrace is how old a mark must be before a prune deletes its pack:
// twice the lock stale time.
func DefaultGrace() time.Duration { return 2 * repo.StaleAfter }

// DefaultIndexPacksPerFile bounds the packs named by one compacted index
// file: about 1.5 MB of index for 2000 packs of 16 blobs.
const DefaultIndexPacksPerFile = 2000

// PruneOptions tune Prune.
type PruneOptions struct {
	// DryRun decides and reports, and changes nothing.
	DryRun bool
	// Grace is how old a mark must be for its pack to be deleted
	// (DefaultGrace; tests use 0). A pack is never deleted by the prune
	// that marks it.
	Grace time.Duration
	// RepackBelow: packs whose live fraction (stored bytes of blobs the
	// snapshots need, over all their blob bytes) is below it are repacked;
	// 0 repacks nothing.
	RepackBelow float64
	// IndexPacksPerFile bounds the packs of one compacted index file
	// (DefaultIndexPacksPerFile if 0).
	IndexPacksPerFile int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Downgrade, if set, is called between the exclusive step and the
	// repacking, to release the exclusive lock and take a shared one; the
	// context it returns is used from then on. Not called on a dry run.
	Downgrade func(ctx context.Context) (context.Context, error)
}

// PruneResult says what a prune did, or on a dry run would do.
type PruneResult struct {
	DryRun         bool
	Snapshots      int
	Packs          int   // stored or indexed packs seen
	PackBytes      int64 // their stored size
	Marked         int   // unreferenced packs marked now
	MarkedBytes    int64
	Waiting        int // packs marked earlier whose grace has not passed
	WaitingBytes   int64
	Unmarked       int // marked packs found referenced again, kept
	Deleted        int // packs deleted (marks expired)
	DeletedBytes   int64
	Repacked       int   // packs repacked, then marked
	RepackedBytes  int64 // their stored size
	CopiedBlobs    int   // blobs copied by the repacking
	NewPacks       int   // packs the repacking wrote
	NewBytes       int64
	IndexBefore    int // index files before
	IndexAfter     int // index files written by the compaction and the repacking
	RemovedIndexes int // old index files removed
}

// FreedLater is what the next prune after the grace period frees, as far
// as this one can tell: the packs marked now and those still waiting,
// less what the repacking wrote.
func (res *PruneResult) FreedLater() int64 {
	return res.MarkedBytes + res.WaitingBytes + res.RepackedBytes - res.NewBytes
}

// packInfo is what a prune knows of one pack.
type packInfo struct {
	id      repo.ID
	size    int64 // stored size (from the listing, else estimated)
	stored  bool  // listed under data/
	indexed bool
	blobs   []repo.PackBlob // from the index (nil if not indexed)
	live    int64           // stored bytes of blobs the snapshots reach
	total   int64           // stored bytes of all its blobs

	marked   bool      // marked now (earlier, or by this prune)
	markedAt time.Time // when first marked
	oldMark  bool      // marked by an earlier prune
}

// Prune runs a prune of r; see the comment above for what it does and
// which lock the caller must hold. On error the repository is valid and
// the next prune finishes the work.
func Prune(ctx context.Context, r *repo.Repository, opts PruneOptions) (*PruneResult, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if opts.IndexPacksPerFile <= 0 {
		opts.IndexPacksPerFile = DefaultIndexPacksPerFile
	}
	res := &PruneResult{DryRun: opts.DryRun}
	t0 := now()

	// Index files first, then snapshots, then packs (as check does): the
	// write order is packs, index, snapshot, so whatever a listed
	// snapshot references was stored and indexed before the later
	// listings began.
	idxFiles, err := r.IndexFiles(ctx)
	if err != nil {
		return nil, err
	}
	res.IndexBefore = len(idxFiles)
	packs := make(map[repo.ID]*packInfo)
	var mu sync.Mutex
	err = repo.Parallel(ctx, len(idxFiles), 4, func(ctx context.Context, i int) error {
		ips, err := r.LoadIndexFile(ctx, idxFiles[i])
		if err != nil {
			return err // a damaged index file needs a repair first
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ip := range ips {
			if p := packs[ip.ID]; p == nil {
				packs[ip.ID] = &packInfo{id: ip.ID, indexed: true, blobs: ip.Blobs}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	res.Snapshots = len(snaps)
	err = r.Backend().List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		id, err := repo.ParseID(fi.Name)
		if err != nil {
			return nil // not ours
		}
		p := packs[id]
		if p == nil {
			p = &packInfo{id: id}
			packs[id] = p
		}
		p.stored, p.size = true, fi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	marks, badMarks, err := r.LoadMarks(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range marks {
		for _, mp := range m.Packs {
			p := packs[mp.ID]
			if p == nil {
				continue // deleted already (or hidden by a lagging listing: marked again when it shows)
			}
			// Of several marks (a prune that stopped between writing its
			// mark and removing the old ones) the latest counts: waiting
			// longer is never unsafe.
			if !p.marked || mp.Time.After(p.markedAt) {
				p.marked, p.oldMark, p.markedAt = true, true, mp.Time
			}
		}
	}

	// What the snapshots need. A tree that cannot be loaded stops the
	// prune: deciding on part of the answer could delete what the rest
	// needs.
	reach := make(map[repo.ID]bool)
	err = Reachable(ctx, r, snaps, WalkOptions{}, func(id repo.ID, _ repo.BlobType) error {
		reach[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	copies := make(map[repo.ID][]*packInfo) // reachable blob -> indexed packs holding it
	for _, p := range sortedPacks(packs) {
		if p.size == 0 {
			p.size = estimateSize(p.blobs)
		}
		for _, b := range p.blobs {
			p.total += int64(b.Length)
			if reach[b.ID] {
				p.live += int64(b.Length)
				copies[b.ID] = append(copies[b.ID], p)
			}
		}
		res.Packs++
		res.PackBytes += p.size
	}
	for id := range reach {
		if len(copies[id]) == 0 {
			return nil, fmt.Errorf("prune: blob %s is referenced by a snapshot but in no index file (an index file the listing did not show yet, or a lost one: run prune again later, or repair the index); nothing was changed", id.Short())
		}
	}

	// Decide. New marks: indexed packs no snapshot needs anything of,
	// and packs no index names (left by an interrupted backup, or by a
	// running one whose lock and index the listings did not show yet:
	// the grace period waits for it). Repack candidates: sparse packs.
	var repack []*packInfo
	var fresh []*packInfo
	for _, p := range sortedPacks(packs) {
		switch {
		case p.marked:
		case p.indexed && !p.stored:
			// Indexed but not listed: a lagging listing, or a lost pack
			// (check reports it). Never marked from here.
		case !p.indexed || p.live == 0:
			fresh = append(fresh, p)
		case opts.RepackBelow > 0 && p.total > 0 && float64(p.live)/float64(p.total) < opts.RepackBelow:
			repack = append(repack, p)
		}
	}
	inRepack := make(map[*packInfo]bool, len(repack))
	for _, p := range repack {
		inRepack[p] = true
	}
	for _, p := range fresh {
		p.marked, p.markedAt = true, t0
	}
	// A needed blob (reachable) must keep a copy in a pack that is
	// neither marked nor being repacked, or be copied by the repacking.
	// A marked pack holding the only copy is referenced again: it loses
	// its mark (and keeps its place in the index).
	outside := func(id repo.ID) bool {
		for _, p := range copies[id] {
			if !p.marked && !inRepack[p] {
				return true
			}
		}
		return false
	}
	ids := make([]repo.ID, 0, len(reach))
	for id := range reach {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b repo.ID) int { return bytes.Compare(a[:], b[:]) })
	for _, id := range ids {
		if outside(id) || slices.ContainsFunc(copies[id], func(p *packInfo) bool { return inRepack[p] }) {
			continue
		}
		p := copies[id][0] // sorted by pack id: the same choice every run
		p.marked, p.oldMark = false, false
		res.Unmarked++
	}
	// The blobs the repacking copies: needed ones with no copy elsewhere.
	toCopy := make(map[*packInfo][]repo.PackBlob)
	copied := make(map[repo.ID]bool)
	for _, p := range repack {
		for _, b := range p.blobs {
			if reach[b.ID] && !copied[b.ID] && !outside(b.ID) {
				copied[b.ID] = true
				toCopy[p] = append(toCopy[p], b)
				res.CopiedBlobs++
			}
		}
	}
	var del []*packInfo
	for _, p := range sortedPacks(packs) {
		switch {
		case !p.marked:
		case p.oldMark && t0.Sub(p.markedAt) >= opts.Grace:
			del = append(del, p)
			res.Deleted++
			res.DeletedBytes += p.size
		case p.oldMark:
			res.Waiting++
			res.WaitingBytes += p.size
		default:
			res.Marked++
			res.MarkedBytes += p.size
		}
	}
	for _, p := range repack {
		res.Repacked++
		res.RepackedBytes += p.size
		for _, b := range toCopy[p] {
			res.NewBytes += int64(b.Length)
		}
	}
	if opts.DryRun {
		if len(repack) > 0 {
			res.NewBytes += estimateHeaders(res.CopiedBlobs)
		}
		return res, nil
	}

	// Act, exclusive step. The compacted index names every indexed pack
	// but those deleted now; it is rewritten when it shrinks or when
	// there are more files than it needs.
	deleting := make(map[repo.ID]bool, len(del))
	for _, p := range del {
		deleting[p.id] = true
	}
	var keep []repo.IndexPack
	for _, p := range sortedPacks(packs) {
		if p.indexed && !deleting[p.id] {
			keep = append(keep, repo.IndexPack{ID: p.id, Blobs: p.blobs})
		}
	}
	need := (len(keep) + opts.IndexPacksPerFile - 1) / opts.IndexPacksPerFile
	var written []repo.ID
	rewrite := len(del) > 0 || len(idxFiles) > need
	if rewrite {
		if written, err = r.WriteIndexFiles(ctx, keep, opts.IndexPacksPerFile); err != nil {
			return res, err
		}
		res.IndexAfter += len(written)
	}
	// The marks as they are now; packs deleted now stay in it until the
	// next prune finds them gone, so a prune stopped before deleting them
	// leaves them marked.
	host, _ := os.Hostname()
	cur := &repo.Marks{Time: t0, Host: host}
	for _, p := range sortedPacks(packs) {
		if p.marked {
			cur.Packs = append(cur.Packs, repo.MarkedPack{ID: p.id, Time: p.markedAt, Size: p.size})
		}
	}
	if err := replaceMarks(ctx, r, cur, marks, badMarks); err != nil {
		return res, err
	}
	if rewrite {
		keepNew := make(map[repo.ID]bool, len(written))
		for _, id := range written {
			keepNew[id] = true
		}
		for _, id := range idxFiles {
			if keepNew[id] {
				continue
			}
			h := backend.Handle{Type: backend.IndexFile, Name: id.String()}
			if err := r.Backend().Remove(ctx, h); err != nil {
				return res, fmt.Errorf("remove %v: %w", h, err)
			}
			res.RemovedIndexes++
		}
	}
	err = repo.Parallel(ctx, len(del), forgetWorkers, func(ctx context.Context, i int) error {
		h := repo.PackHandle(del[i].id)
		if err := r.Backend().Remove(ctx, h); err != nil {
			return fmt.Errorf("remove %v: %w", h, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if len(repack) == 0 {
		return res, nil
	}

	// Shared step: repack. New packs, their index, then the old packs
	// marked.
	if opts.Downgrade != nil {
		if ctx, err = opts.Downgrade(ctx); err != nil {
			return res, err
		}
	}
	res.NewBytes = 0
	rp := r.NewRepacker()
	for _, p := range repack {
		if len(toCopy[p]) == 0 {
			continue
		}
		data, err := r.Backend().Load(ctx, repo.PackHandle(p.id), 0, 0)
		if err != nil {
			return res, fmt.Errorf("repack: load %v: %w", repo.PackHandle(p.id), err)
		}
		if err := rp.Add(ctx, p.id, data, toCopy[p]); err != nil {
			return res, fmt.Errorf("repack: %w", err)
		}
	}
	newPacks, err := rp.Finish(ctx)
	if err != nil {
		return res, fmt.Errorf("repack: %w", err)
	}
	res.NewPacks = len(newPacks)
	for _, np := range newPacks {
		res.NewBytes += estimateSize(np.Blobs)
	}
	if len(newPacks) > 0 {
		w, err := r.WriteIndexFiles(ctx, newPacks, opts.IndexPacksPerFile)
		if err != nil {
			return res, err
		}
		res.IndexAfter += len(w)
	}
	next := &repo.Marks{Time: now(), Host: host, Packs: cur.Packs}
	for _, p := range repack {
		next.Packs = append(next.Packs, repo.MarkedPack{ID: p.id, Time: next.Time, Size: p.size})
	}
	var old []*repo.Marks
	if cur.Name != (repo.ID{}) {
		old = []*repo.Marks{cur}
	}
	return res, replaceMarks(ctx, r, next, old, nil)
}

// replaceMarks writes cur (unless it marks nothing), then removes the
// mark objects it replaces.
func replaceMarks(ctx context.Context, r *repo.Repository, cur *repo.Marks, old []*repo.Marks, bad []repo.ID) error {
	if len(cur.Packs) > 0 {
		if _, err := r.SaveMarks(ctx, cur); err != nil {
			return err
		}
	}
	var errs []error
	for _, m := range old {
		if m.Name != cur.Name {
			errs = append(errs, r.RemoveMarks(ctx, m.Name))
		}
	}
	for _, id := range bad {
		errs = append(errs, r.RemoveMarks(ctx, id))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove old marks: %w", err)
	}
	return nil
}

func sortedPacks(m map[repo.ID]*packInfo) []*packInfo {
	out := make([]*packInfo, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *packInfo) int { return bytes.Compare(a.id[:], b.id[:]) })
	return out
}

// estimateSize is the stored size of a pack of blobs (docs/FORMAT.md §6).
func estimateSize(blobs []repo.PackBlob) int64 {
	var n int64
	for _, b := range blobs {
		n += int64(b.Length)
	}
	return n + estimateHeaders(len(blobs))
}

func estimateHeaders(blobs int) int64 { return int64(4 + 29 + 41*blobs) }
