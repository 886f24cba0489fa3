package repo

import (
	"context"
	"errors"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Since prune exists (issue 13), index files are also removed: a prune
// rewrites the index as fewer files and drops the packs it deletes. A
// process that keeps a repository open (a mount) must then forget what
// the removed files said, or a later backup would deduplicate against a
// blob whose pack is gone and record a snapshot that cannot be restored.
// LoadIndex notices that a file it loaded is no longer listed and rebuilds
// the index with reloadIndex.

// reloadIndex rebuilds the in-memory index from the index files listed
// now and those this process loaded or wrote before that still exist (its
// own writes count even when a listing lags), plus the packs this process
// uploaded and has not indexed in a file yet.
func (r *Repository) reloadIndex(ctx context.Context, listed []ID) error {
	r.mu.Lock()
	ids := append([]ID(nil), listed...)
	for id := range r.indexFiles {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	seen := make(map[ID]bool, len(ids))
	ids = func() []ID {
		out := ids[:0]
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		return out
	}()

	files := make([][]IndexPack, len(ids))
	gone := make([]bool, len(ids))
	err := Parallel(ctx, len(ids), 4, func(ctx context.Context, i int) error {
		packs, err := r.LoadIndexFile(ctx, ids[i])
		if errors.Is(err, backend.ErrNotExist) {
			gone[i] = true // removed by a prune
			return nil
		}
		files[i] = packs
		return err
	})
	if err != nil {
		return err
	}
	fresh := newIndex()
	loaded := make(map[ID]bool, len(ids))
	for i, packs := range files {
		if gone[i] {
			continue
		}
		loaded[ids[i]] = true
		for _, p := range packs {
			fresh.addPack(p.ID, p.Blobs)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.unindexed {
		fresh.addPack(p.ID, p.Blobs)
	}
	// A pack whose upload has indexed it in memory but not yet moved it
	// to r.unindexed still has its blobs in r.pending (uploadPack does
	// both under r.mu): keep those entries.
	r.idx.mu.RLock()
	for id, e := range r.idx.blobs {
		if _, ok := r.pending[id]; ok {
			pack := r.idx.packs[e.pack]
			fresh.addPack(pack, []PackBlob{{Type: e.typ, ID: id, Offset: e.offset, Length: e.length, RawLength: e.rawLength}})
		}
	}
	r.idx.mu.RUnlock()
	r.idx.replace(fresh)
	r.indexFiles = loaded
	return nil
}

// replace makes x hold what y holds; y must not be used afterwards.
func (x *Index) replace(y *Index) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.packs, x.packPos, x.blobs = y.packs, y.packPos, y.blobs
}
