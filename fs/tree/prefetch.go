package tree

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// Read-ahead over a directory. Opening one file of a snapshot directory is
// taken as a sign that its neighbours will be read next (cp -a, rsync,
// tar and grep -r all go through a directory in order), so the files after
// it are loaded into the chunk cache in the background by one batch load
// (repo.LoadBlobs: the blobs that lie close together in one pack read by
// one request, decoded on every core in the order they will be read),
// while the reader is still busy with the files before them. Each small
// file then costs its reader no storage read and no decoding.
const (
	// aheadStart is how many files past the one opened are loaded when
	// a reader starts, or leaves the order expected. Each batch the
	// reader then goes on into doubles the next, up to aheadFiles; a new
	// batch starts once the reader is within half a batch of the end of
	// what is queued. A reader opening files at random thus costs a few
	// files of read-ahead per open, not a batch.
	aheadStart = 8
	aheadFiles = 64
	// aheadBytes bounds the data of one batch.
	aheadBytes = 8 << 20
	// aheadFileChunks: of a larger file only its first chunks are loaded
	// (its own sequential prefetch takes over once it is read).
	aheadFileChunks = 2
)

// dirAhead is the read-ahead state of one directory. Readers go through
// a directory in one of two orders: by name (rsync, tar, our own listing
// order) or by inode number (cp -a and other coreutils sort the names they
// read by d_ino, to spare disks their seeks). The read-ahead follows
// whichever order the reader is seen to take, by inode number until the
// reader shows otherwise.
type dirAhead struct {
	mu     sync.Mutex
	seq    []int // the files of the directory (indices into its nodes) in the order expected
	posOf  []int // posOf[i] is the position of node i in seq, len(seq) for nodes not in it
	byName bool  // seq is in name order rather than inode order
	from   int   // seq[from:pos] is what was queued since the reader last left the order
	pos    int   // the end of what was queued
	batch  int   // files in the batch queued last
	last   int   // index of the file opened last, -1 before the first
}

// opened notes that the file at index i of t (the directory's decoded
// tree) was opened, and queues a batch of the files expected after it
// when fewer than half a batch of them are queued.
func (a *dirAhead) opened(rp *Repo, t *repo.Tree, i int, ino func(int) uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init(t, ino)
	if !a.byName && a.last >= 0 && i == nextFile(t, a.last) && a.at(i) != a.at(a.last)+1 {
		a.order(t, true, ino) // the reader goes by name
	}
	a.last = i
	p := a.at(i)
	switch {
	case p < a.from || p >= a.pos: // the reader started, or left the order expected
		a.from, a.pos, a.batch = p, p+1, aheadStart
	case a.pos-p <= a.batch/2:
		a.batch = min(2*a.batch, aheadFiles)
	default:
		return
	}
	a.queueLocked(rp, t)
}

// listed starts the read-ahead of a directory just listed, before any of
// its files is opened: for a directory met while its parent is being read.
func (a *dirAhead) listed(rp *Repo, t *repo.Tree, ino func(int) uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init(t, ino)
	if a.pos == 0 {
		a.batch = aheadStart
		a.queueLocked(rp, t)
	}
}

func (a *dirAhead) init(t *repo.Tree, ino func(int) uint64) {
	if a.seq == nil {
		a.last = -1
		a.order(t, false, ino)
	}
}

// queueLocked queues the next batch of seq, from pos on.
func (a *dirAhead) queueLocked(rp *Repo, t *repo.Tree) {
	var ids []repo.ID
	var size int64
	for end := a.pos + a.batch; a.pos < min(end, len(a.seq)) && size < aheadBytes; a.pos++ {
		n := t.Nodes[a.seq[a.pos]]
		size += int64(min(n.Size, uint64(aheadBytes)))
		ids = append(ids, n.Content[:min(len(n.Content), aheadFileChunks)]...)
	}
	if len(ids) > 0 {
		go rp.loadAhead(ids)
	}
}

// order sets seq to the files of t in name or inode order; what was queued
// counts as not queued.
func (a *dirAhead) order(t *repo.Tree, byName bool, ino func(int) uint64) {
	a.seq, a.byName, a.from, a.pos = make([]int, 0, len(t.Nodes)), byName, 0, 0
	for k, n := range t.Nodes {
		if n.Type == repo.NodeFile && len(n.Content) > 0 {
			a.seq = append(a.seq, k)
		}
	}
	if !byName {
		slices.SortFunc(a.seq, func(x, y int) int { return cmp.Compare(ino(x), ino(y)) })
	}
	a.posOf = make([]int, len(t.Nodes))
	for k := range a.posOf {
		a.posOf[k] = len(a.seq)
	}
	for p, k := range a.seq {
		a.posOf[k] = p
	}
}

// at is the position of file i in seq (len(seq) if it has no content).
func (a *dirAhead) at(i int) int { return a.posOf[i] }

// nextFile is the index of the first file with content after index i.
func nextFile(t *repo.Tree, i int) int {
	for k := i + 1; k < len(t.Nodes); k++ {
		if n := t.Nodes[k]; n.Type == repo.NodeFile && len(n.Content) > 0 {
			return k
		}
	}
	return -1
}

// loadAhead loads the chunks ids into the cache, decoded in the order
// given (the order they are expected to be read in).
func (rp *Repo) loadAhead(ids []repo.ID) {
	keys := make([]repo.ID, 0, len(ids))
	seen := make(map[repo.ID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		n, ok := rp.r.BlobLength(id)
		if !ok || rp.r.IsZeroChunk(id, n) {
			continue // the reader reports a missing chunk; zeros cost nothing
		}
		keys = append(keys, id)
	}
	select {
	case rp.fills <- struct{}{}: // one batch at a time per repository
	case <-rp.bg.Done():
		return
	}
	defer func() { <-rp.fills }()
	rp.cache.Fill(rp.bg, keys, func(ctx context.Context, keys []repo.ID, put func(int, []byte, error)) {
		// The cache's waiters get each result as it comes; Fill fails
		// those that a cancelled load leaves out.
		rp.r.LoadBlobs(ctx, keys, repo.LoadOptions{}, func(i int, _ repo.ID, plain []byte, err error) error {
			put(i, plain, err)
			return nil
		})
	})
}
