package tree

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/repo"
)

// RefreshAfter is how old the snapshot list may be before an access to
// snapshots/ reloads it (and the index), so snapshots made elsewhere
// appear without remounting.
var RefreshAfter = 5 * time.Second

// Repo is repos/<name>: its status file and snapshots/.
type Repo struct {
	name  string
	r     *repo.Repository
	cache *cache.Cache[repo.ID]
	bg    context.Context // lifetime of the mount: prefetches run under it
	fills chan struct{}   // held by the batch of read-ahead being loaded
	ino   uint64
	start time.Time

	refresh sync.Mutex // serialises reloads (held across repository I/O, never with mu)

	mu       sync.Mutex // guards the fields below
	onChange func()     // called, outside locks, when the newest snapshot changes
	snaps    []*repo.Snapshot
	loadedAt time.Time
}

// NewRepo shows r under the name given. Chunks are read through c, which
// may be shared by every repository of a mount (blob ids are hashes of the
// plaintext, so equal ids are equal data). bg bounds background work.
func NewRepo(bg context.Context, name string, r *repo.Repository, c *cache.Cache[repo.ID]) *Repo {
	return &Repo{
		name: name, r: r, cache: c, bg: bg, start: time.Now(),
		fills: make(chan struct{}, 1),
	}
}

// OnChange sets a function called when a refresh finds a different newest
// snapshot (the adapter invalidates the kernel's copy of latest).
func (rp *Repo) OnChange(fn func()) {
	rp.mu.Lock()
	rp.onChange = fn
	rp.mu.Unlock()
}

// Name is the repository's name in the tree.
func (rp *Repo) Name() string { return rp.name }

func (rp *Repo) Attr(ctx context.Context) (Attr, error) {
	return Attr{Ino: rp.ino, Mode: ModeDir | 0o555, Nlink: 3, Atime: rp.start, Mtime: rp.start, Ctime: rp.start}, nil
}

func (rp *Repo) Lookup(ctx context.Context, name string) (Node, error) {
	switch name {
	case "status":
		return rp.statusFile(), nil
	case "snapshots":
		return &snapshotsDir{rp: rp, ino: childIno(rp.ino, "snapshots")}, nil
	}
	return nil, ErrNotExist
}

func (rp *Repo) List(ctx context.Context) ([]Entry, error) {
	return []Entry{
		{Name: "snapshots", Ino: childIno(rp.ino, "snapshots"), Mode: ModeDir},
		{Name: "status", Ino: childIno(rp.ino, "status"), Mode: ModeFile},
	}, nil
}

// Snapshots returns the snapshot list, reloading it (and new index files)
// when it is older than RefreshAfter.
func (rp *Repo) Snapshots(ctx context.Context) ([]*repo.Snapshot, error) {
	rp.mu.Lock()
	snaps, fresh := rp.snaps, time.Since(rp.loadedAt) < RefreshAfter
	rp.mu.Unlock()
	if fresh {
		return snaps, nil
	}
	rp.refresh.Lock()
	defer rp.refresh.Unlock()
	rp.mu.Lock()
	snaps, fresh = rp.snaps, time.Since(rp.loadedAt) < RefreshAfter
	rp.mu.Unlock()
	if fresh {
		return snaps, nil // another caller reloaded meanwhile
	}
	// Index first: a snapshot is only shown once its data is indexed.
	if err := rp.r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	snaps, err := rp.r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	rp.mu.Lock()
	changed := newest(rp.snaps) != newest(snaps) && !rp.loadedAt.IsZero()
	rp.snaps, rp.loadedAt = snaps, time.Now()
	onChange := rp.onChange
	rp.mu.Unlock()
	if changed && onChange != nil {
		onChange()
	}
	return snaps, nil
}

func newest(snaps []*repo.Snapshot) repo.ID {
	if len(snaps) == 0 {
		return repo.ID{}
	}
	return snaps[len(snaps)-1].ID()
}

// Status is the content of repos/<name>/status.
type Status struct {
	Repository    string     `json:"repository"`
	Location      string     `json:"location"`
	ID            string     `json:"id"`
	Snapshots     int        `json:"snapshots"`
	Latest        string     `json:"latest,omitempty"`
	Blobs         int        `json:"blobs"`
	Packs         int        `json:"packs"`
	StoredBytes   uint64     `json:"stored_bytes"`
	OriginalBytes uint64     `json:"original_bytes"`
	DedupRatio    float64    `json:"dedup_ratio"`
	Cache         CacheStats `json:"cache"`
	Locks         []LockInfo `json:"locks"`
}

// CacheStats describes the mount's chunk cache.
type CacheStats struct {
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	HitRate float64 `json:"hit_rate"`
	Bytes   int64   `json:"bytes"`
	Entries int64   `json:"entries"`
}

// LockInfo is a lock as status shows it.
type LockInfo struct {
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Time      time.Time `json:"time"`
	Stale     bool      `json:"stale"`
}

// round3 rounds a ratio to three decimals: status is read by people, and
// 1.0458984375 says no more than 1.046.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Status computes the repository's status.
func (rp *Repo) Status(ctx context.Context) (Status, error) {
	snaps, err := rp.Snapshots(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Repository: rp.name, Location: rp.r.Backend().Location(), ID: rp.r.ID(),
		Snapshots: len(snaps), Locks: []LockInfo{}}
	if len(snaps) > 0 {
		st.Latest = snaps[len(snaps)-1].Label
	}
	for _, s := range snaps {
		st.OriginalBytes += s.Summary.Bytes
	}
	idx := rp.r.Index()
	st.Blobs = idx.Len()
	st.Packs = len(idx.Packs())
	st.StoredBytes = idx.StoredBytes()
	if st.StoredBytes > 0 {
		st.DedupRatio = round3(float64(st.OriginalBytes) / float64(st.StoredBytes))
	}
	cs := rp.cache.Stats()
	st.Cache = CacheStats{Hits: cs.Hits, Misses: cs.Misses, Bytes: cs.Bytes, Entries: cs.Entries}
	if cs.Hits+cs.Misses > 0 {
		st.Cache.HitRate = round3(float64(cs.Hits) / float64(cs.Hits+cs.Misses))
	}
	locks, err := rp.r.Locks(ctx)
	if err != nil {
		return Status{}, err
	}
	now := time.Now()
	for _, l := range locks {
		st.Locks = append(st.Locks, LockInfo{Exclusive: l.Exclusive, Host: l.Host, PID: l.PID, Time: l.Time, Stale: l.Stale(now)})
	}
	return st, nil
}

func (rp *Repo) statusFile() *staticFile {
	return &staticFile{ino: childIno(rp.ino, "status"), mode: 0o444, time: rp.start,
		gen: func(ctx context.Context) ([]byte, error) {
			st, err := rp.Status(ctx)
			if err != nil {
				return nil, err
			}
			b, err := json.MarshalIndent(st, "", "  ")
			return append(b, '\n'), err
		}}
}

// snapshotsDir is repos/<name>/snapshots: a directory per snapshot and
// latest.
type snapshotsDir struct {
	rp  *Repo
	ino uint64
}

func (d *snapshotsDir) Attr(ctx context.Context) (Attr, error) {
	snaps, err := d.rp.Snapshots(ctx)
	if err != nil {
		return Attr{}, err
	}
	t := d.rp.start
	if len(snaps) > 0 {
		t = snaps[len(snaps)-1].Time
	}
	return Attr{Ino: d.ino, Mode: ModeDir | 0o555, Nlink: uint32(2 + len(snaps)), Atime: t, Mtime: t, Ctime: t}, nil
}

func (d *snapshotsDir) Lookup(ctx context.Context, name string) (Node, error) {
	snaps, err := d.rp.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	if name == "latest" && len(snaps) > 0 {
		return &latestLink{rp: d.rp, ino: childIno(d.ino, "latest")}, nil
	}
	for _, s := range snaps {
		if s.Label == name {
			return d.rp.snapshotRoot(s, childIno(d.ino, name)), nil
		}
	}
	return nil, ErrNotExist
}

func (d *snapshotsDir) List(ctx context.Context) ([]Entry, error) {
	snaps, err := d.rp.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(snaps)+1)
	hasLatest := false
	for _, s := range snaps {
		if s.Label == "latest" {
			hasLatest = true
		}
		out = append(out, Entry{Name: s.Label, Ino: childIno(d.ino, s.Label), Mode: ModeDir})
	}
	if len(snaps) > 0 && !hasLatest {
		out = append(out, Entry{Name: "latest", Ino: childIno(d.ino, "latest"), Mode: ModeSymlink})
	}
	sortEntries(out)
	return out, nil
}

// latestLink points at the newest snapshot's directory. It resolves on
// every call: the adapter may keep one object for the inode across
// refreshes.
type latestLink struct {
	rp  *Repo
	ino uint64
}

func (l *latestLink) newest(ctx context.Context) (*repo.Snapshot, error) {
	snaps, err := l.rp.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	if len(snaps) == 0 {
		return nil, ErrNotExist
	}
	return snaps[len(snaps)-1], nil
}

func (l *latestLink) Attr(ctx context.Context) (Attr, error) {
	s, err := l.newest(ctx)
	if err != nil {
		return Attr{}, err
	}
	return Attr{Ino: l.ino, Mode: ModeSymlink | 0o777, Nlink: 1, Size: uint64(len(s.Label)),
		Atime: s.Time, Mtime: s.Time, Ctime: s.Time}, nil
}

func (l *latestLink) Readlink(ctx context.Context) (string, error) {
	s, err := l.newest(ctx)
	if err != nil {
		return "", err
	}
	return s.Label, nil
}

// Invalidate makes the next access to snapshots/ reload the list. The
// mount calls it when a plan run of its own saved or forgot snapshots, so
// that they show at once rather than after RefreshAfter.
func (rp *Repo) Invalidate() {
	rp.mu.Lock()
	if !rp.loadedAt.IsZero() {
		rp.loadedAt = time.Unix(1, 0) // long ago, but not "never loaded"
	}
	rp.mu.Unlock()
}

var (
	_ Dir     = (*Repo)(nil)
	_ Dir     = (*snapshotsDir)(nil)
	_ Symlink = (*latestLink)(nil)
)
