package repo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Snapshot is a snapshot record: what was backed up, when, from where,
// and the root tree. Its root holds each source under its absolute path.
type Snapshot struct {
	Label    string    `json:"label"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	User     string    `json:"user,omitempty"`
	Plan     string    `json:"plan,omitempty"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags,omitempty"`
	Tree     ID        `json:"tree"`
	Parent   *ID       `json:"parent,omitempty"`
	Original *ID       `json:"original,omitempty"` // copied from this snapshot
	From     string    `json:"from,omitempty"`     // repository id it was copied from
	Summary  Summary   `json:"summary"`
	Program  string    `json:"program,omitempty"`

	id ID // set when saved or loaded
}

// Summary counts what a snapshot holds and what its backup did.
type Summary struct {
	Files      uint64  `json:"files"`
	Dirs       uint64  `json:"dirs"`
	Others     uint64  `json:"others,omitempty"`
	Bytes      uint64  `json:"bytes"`                // sum of file sizes
	NewBytes   uint64  `json:"new_bytes,omitempty"`  // plaintext of blobs added
	Unreadable uint64  `json:"unreadable,omitempty"` // files that could not be read
	Unchanged  uint64  `json:"unchanged,omitempty"`  // files taken from the parent
	Duration   float64 `json:"duration,omitempty"`   // seconds
}

// ID returns the snapshot's object id (zero before it is saved).
func (s *Snapshot) ID() ID { return s.id }

// SaveSnapshot writes the record. Call it only after Flush has stored
// everything the snapshot references.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	if err := r.verifyLocks(ctx); err != nil {
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	s.Time = s.Time.UTC()
	plain, err := json.Marshal(s)
	if err != nil {
		return ID{}, err
	}
	id, err := saveObject(ctx, r.be, backend.SnapshotFile, r.data.seal(nil, plain, kindSnapshot))
	if err != nil {
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	s.id = id
	return id, nil
}

// LoadSnapshot loads one record.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	h := backend.Handle{Type: backend.SnapshotFile, Name: id.String()}
	data, err := loadObject(ctx, r.be, backend.SnapshotFile, id)
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	plain, err := r.data.open(nil, data, kindSnapshot)
	if err != nil {
		return nil, &CorruptError{Object: h.String(), Err: err}
	}
	var s Snapshot
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, &CorruptError{Object: h.String(), Err: err}
	}
	s.id = id
	return &s, nil
}

// Snapshots loads every snapshot record, oldest first (ties by label).
func (r *Repository) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	snaps, err := r.loadSnapshots(ctx, ids)
	if err != nil {
		return nil, err
	}
	SortSnapshots(snaps)
	return snaps, nil
}

// snapshotIDs lists the ids of the snapshot objects.
func (r *Repository) snapshotIDs(ctx context.Context) ([]ID, error) {
	return r.listIDs(ctx, backend.SnapshotFile)
}

// listIDs lists the objects of type t whose names are ids (others are
// not ours and are skipped).
func (r *Repository) listIDs(ctx context.Context, t backend.FileType) ([]ID, error) {
	var ids []ID
	err := r.be.List(ctx, t, func(fi backend.FileInfo) error {
		if id, err := ParseID(fi.Name); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t, err)
	}
	return ids, nil
}

// loadSnapshots loads the snapshots ids names, in parallel; those removed
// since they were listed are left out.
func (r *Repository) loadSnapshots(ctx context.Context, ids []ID) ([]*Snapshot, error) {
	snaps := make([]*Snapshot, len(ids))
	err := Parallel(ctx, len(ids), 8, func(ctx context.Context, i int) error {
		s, err := r.LoadSnapshot(ctx, ids[i])
		if errors.Is(err, backend.ErrNotExist) {
			return nil // removed after listing
		}
		snaps[i] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(snaps, func(s *Snapshot) bool { return s == nil }), nil
}

// SortSnapshots orders by time, then label.
func SortSnapshots(snaps []*Snapshot) {
	slices.SortFunc(snaps, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
}

// ErrNoSnapshot: nothing matches the name given.
var ErrNoSnapshot = errors.New("no such snapshot")

// ErrAmbiguousLabel: several snapshots have the label given (repositories
// written before labels were made unique, or two writers that raced).
var ErrAmbiguousLabel = errors.New("label names several snapshots")

// FindSnapshot picks a snapshot by "latest", label, or id prefix. A label
// that several snapshots share is an error (ErrAmbiguousLabel) naming
// their ids, never a silent pick.
func FindSnapshot(snaps []*Snapshot, name string) (*Snapshot, error) {
	if name == "latest" {
		if len(snaps) == 0 {
			return nil, fmt.Errorf("%w: the repository has no snapshots", ErrNoSnapshot)
		}
		return snaps[len(snaps)-1], nil
	}
	var labelled []*Snapshot
	for _, s := range snaps {
		if s.Label == name {
			labelled = append(labelled, s)
		}
	}
	switch len(labelled) {
	case 0:
	case 1:
		return labelled[0], nil
	default:
		ids := make([]string, len(labelled))
		for i, s := range labelled {
			ids[i] = s.id.String()[:16] + " (" + s.Time.UTC().Format(time.RFC3339) + ", host " + s.Host + ")"
		}
		return nil, fmt.Errorf("%w: %d snapshots are labelled %q: %s; name one by its id", ErrAmbiguousLabel, len(labelled), name, strings.Join(ids, ", "))
	}
	var found *Snapshot
	if len(name) >= 4 && isHex(name) {
		for _, s := range snaps {
			if strings.HasPrefix(s.id.String(), name) {
				if found != nil {
					return nil, fmt.Errorf("snapshot id prefix %q is ambiguous", name)
				}
				found = s
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w %q", ErrNoSnapshot, name)
	}
	return found, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
}

// UniqueLabel returns base, or base-2, base-3… if a snapshot already has it.
func UniqueLabel(snaps []*Snapshot, base string) string {
	taken := make(map[string]bool, len(snaps))
	for _, s := range snaps {
		taken[s.Label] = true
	}
	if !taken[base] {
		return base
	}
	for i := 2; ; i++ {
		if l := fmt.Sprintf("%s-%d", base, i); !taken[l] {
			return l
		}
	}
}

// SaveSnapshotUnique saves s under a label that no other snapshot of the
// repository has, without a lock that would serialise writers: s.Label,
// made unique over known (the caller's listing) with a -2, -3… suffix;
// then, because writers that listed at the same time may have picked the
// same label, a check after saving. After the settle time (so that a
// lagging listing shows the rivals saved before ours) it lists the
// snapshots again; if any other has our label, ours is saved again as
// <s.Label as given>-<the first 8 hex digits of its id> and the first
// copy removed.
//
// Why this is enough: of two writers that saved one label, the one whose
// check ran last lists the other's snapshot (its listing comes after both
// saves and the settle time covers the lag), so at least one of them
// renames; if both do, both get distinct suffixes (ids differ) and the
// plain label is nobody's. A renamed snapshot is checked again the same
// way, with a longer suffix should 32 bits of id ever clash. Only a clash
// costs anything: one more save and a removal, and the snapshot shows
// under its first label for the settle time.
func (r *Repository) SaveSnapshotUnique(ctx context.Context, s *Snapshot, known []*Snapshot) (ID, error) {
	labels := make(map[ID]string, len(known))
	for _, k := range known {
		labels[k.id] = k.Label
	}
	base := s.Label
	s.Label = UniqueLabel(known, base)
	id, err := r.SaveSnapshot(ctx, s)
	if err != nil {
		return ID{}, err
	}
	for n := 8; ; n *= 2 {
		labels[id] = s.Label
		clash, err := r.labelTaken(ctx, id, s.Label, labels)
		if err != nil {
			return id, fmt.Errorf("snapshot %s saved as %s, but checking that no other snapshot has that label failed: %w", id.Short(), s.Label, err)
		}
		if !clash || n > 2*len(id) {
			return id, nil
		}
		first := id
		s.Label = base + "-" + first.String()[:n]
		if id, err = r.SaveSnapshot(ctx, s); err != nil {
			return ID{}, fmt.Errorf("snapshot %s saved under a label another snapshot took at the same time, and saving it again as %s failed: %w", first.Short(), s.Label, err)
		}
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.SnapshotFile, Name: first.String()}); err != nil {
			return id, fmt.Errorf("snapshot saved as %s (%s), but its first copy %s could not be removed: %w", s.Label, id.Short(), first.Short(), err)
		}
	}
}

// labelTaken waits the settle time, lists the snapshots and reports
// whether one other than own has label. labels caches the labels of the
// snapshots loaded so far, by id; it is updated.
func (r *Repository) labelTaken(ctx context.Context, own ID, label string, labels map[ID]string) (bool, error) {
	if d := r.Settle(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, context.Cause(ctx)
		}
	}
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return false, err
	}
	var unknown []ID
	for _, id := range ids {
		if _, ok := labels[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	loaded, err := r.loadSnapshots(ctx, unknown)
	if err != nil {
		return false, err
	}
	for _, s := range loaded {
		labels[s.id] = s.Label
	}
	for _, id := range ids {
		if id != own && labels[id] == label {
			return true, nil
		}
	}
	return false, nil
}

// LabelTime formats t the way labels start: 2026-11-21T040000Z.
func LabelTime(t time.Time) string { return t.UTC().Format("2006-01-02T150405Z") }
