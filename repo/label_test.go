package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// saveRacing has n writers, each with its own Repository over be (as n
// processes would), save a snapshot labelled label at the same moment,
// each having listed no snapshot before, and returns every label stored.
func saveRacing(t *testing.T, be backend.Backend, n int, settle time.Duration, label string) []string {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		r, err := Open(ctx, be, "pw")
		if err != nil {
			t.Fatal(err)
		}
		r.SetSettle(settle)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s := &Snapshot{Label: label, Time: time.Now(), Host: fmt.Sprint("writer", i), Paths: []string{"/"}}
			_, errs[i] = r.SaveSnapshotUnique(ctx, s, nil)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	r, err := Open(ctx, be, "pw")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * settle) // past the lags
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, s := range snaps {
		labels = append(labels, s.Label)
	}
	return labels
}

func duplicates(labels []string) []string {
	seen := map[string]int{}
	var dup []string
	for _, l := range labels {
		if seen[l]++; seen[l] == 2 {
			dup = append(dup, l)
		}
	}
	return dup
}

// TestSaveSnapshotUniqueUnderRace: writers that save one label at the
// same moment end with distinct labels, one snapshot each, on storage
// that lists at once and on storage whose listings lag (by less than the
// settle time); the label stays the one asked for, or that label with a
// suffix (issue 14).
func TestSaveSnapshotUniqueUnderRace(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		lag    time.Duration
		settle time.Duration
	}{
		{"immediate listings", 0, 0},
		{"listings lag 150ms", 150 * time.Millisecond, 200 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			inner := mem.New()
			if _, err := Init(ctx, inner, "pw", InitOptions{KDF: TestKDF}); err != nil {
				t.Fatal(err)
			}
			be := faulty.New(inner, faulty.Options{ListLag: c.lag, DeleteLag: c.lag, Latency: time.Millisecond})
			const n = 15
			labels := saveRacing(t, be, n, c.settle, "2026-12-03T040000Z_host")
			if len(labels) != n {
				t.Fatalf("%d snapshots stored, want %d: %v", len(labels), n, labels)
			}
			if dup := duplicates(labels); len(dup) > 0 {
				t.Fatalf("labels shared: %v (all: %v)", dup, labels)
			}
			for _, l := range labels {
				if !strings.HasPrefix(l, "2026-12-03T040000Z_host") {
					t.Errorf("label %q does not start with the label asked for", l)
				}
			}
		})
	}
}

// TestSaveSnapshotUniqueSequential: without a race, a taken label gets
// -2, -3 as before, and no suffix of ids.
func TestSaveSnapshotUniqueSequential(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, mem.New(), "pw", InitOptions{KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		snaps, err := r.Snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := &Snapshot{Label: "L", Time: time.Unix(int64(i), 0), Paths: []string{"/"}}
		if _, err := r.SaveSnapshotUnique(ctx, s, snaps); err != nil {
			t.Fatal(err)
		}
		want = append(want, s.Label)
	}
	if strings.Join(want, " ") != "L L-2 L-3" {
		t.Fatalf("labels %v, want L L-2 L-3", want)
	}
}

// TestFindSnapshotSharedLabel: a label that several snapshots share is an
// error naming each one's id, never a pick; ids still select them.
func TestFindSnapshotSharedLabel(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, mem.New(), "pw", InitOptions{KDF: TestKDF})
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for i := range 3 {
		label := "shared"
		if i == 2 {
			label = "alone"
		}
		id, err := r.SaveSnapshot(ctx, &Snapshot{Label: label, Time: time.Unix(int64(i), 0), Paths: []string{"/"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = FindSnapshot(snaps, "shared")
	if !errors.Is(err, ErrAmbiguousLabel) {
		t.Fatalf("FindSnapshot(shared): %v, want ErrAmbiguousLabel", err)
	}
	for _, id := range ids[:2] {
		if !strings.Contains(err.Error(), id.String()[:16]) {
			t.Errorf("error %q does not name candidate %s", err, id)
		}
	}
	for i, name := range []string{"alone", ids[0].String()[:12], ids[1].String()[:12]} {
		s, err := FindSnapshot(snaps, name)
		if err != nil || s.ID() != ids[(i+2)%3] {
			t.Errorf("FindSnapshot(%s) = %v, %v; want %s", name, s, err, ids[(i+2)%3])
		}
	}
}
