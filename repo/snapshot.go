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
	var ids []ID
	err := r.be.List(ctx, backend.SnapshotFile, func(fi backend.FileInfo) error {
		if id, err := ParseID(fi.Name); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	snaps := make([]*Snapshot, len(ids))
	err = Parallel(ctx, len(ids), 8, func(ctx context.Context, i int) error {
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
	snaps = slices.DeleteFunc(snaps, func(s *Snapshot) bool { return s == nil })
	SortSnapshots(snaps)
	return snaps, nil
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

// FindSnapshot picks a snapshot by "latest", label, or id prefix.
func FindSnapshot(snaps []*Snapshot, name string) (*Snapshot, error) {
	if name == "latest" {
		if len(snaps) == 0 {
			return nil, fmt.Errorf("%w: the repository has no snapshots", ErrNoSnapshot)
		}
		return snaps[len(snaps)-1], nil
	}
	for _, s := range snaps {
		if s.Label == name {
			return s, nil
		}
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

// LabelTime formats t the way labels start: 2026-11-21T040000Z.
func LabelTime(t time.Time) string { return t.UTC().Format("2006-01-02T150405Z") }
