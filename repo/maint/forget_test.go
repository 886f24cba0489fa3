package maint_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/maint"
)

func TestForget(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	packs := f.packCount()
	snaps, err := f.r.Snapshots(ctx)
	if err != nil || len(snaps) != 2 {
		t.Fatal(snaps, err)
	}
	lock, err := f.r.Lock(ctx, true, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx)

	old := snaps[0]
	if old.ID() != f.snap1 {
		t.Fatalf("oldest is %s", old.Label)
	}
	if err := maint.Forget(ctx, f.r, []*repo.Snapshot{old}); err != nil {
		t.Fatal(err)
	}
	left, err := f.r.Snapshots(ctx)
	if err != nil || len(left) != 1 || left[0].ID() != f.snap2 {
		t.Fatalf("left %v, %v", left, err)
	}
	if got := f.names("snapshots"); !slices.Equal(got, []string{f.snap2.String()}) {
		t.Fatalf("snapshots/ holds %v", got)
	}
	// Only the record went: packs stay until a prune, and the
	// repository checks clean.
	if n := f.packCount(); n != packs {
		t.Fatalf("%d packs, had %d", n, packs)
	}
	if res := f.check(maint.CheckOptions{ReadData: true}); res.Errors != 0 || res.Warnings != 0 || res.Snapshots != 1 {
		t.Fatalf("check after forget: %+v", res)
	}
	// What is left restores as before: its tree still loads.
	if _, err := f.r.LoadTree(ctx, left[0].Tree); err != nil {
		t.Fatal(err)
	}

	// Forgetting what is gone already is success.
	if err := maint.Forget(ctx, f.r, []*repo.Snapshot{old}); err != nil {
		t.Fatalf("second forget: %v", err)
	}
	// Nothing to forget is nothing to do.
	if err := maint.Forget(ctx, f.r, nil); err != nil {
		t.Fatal(err)
	}
}

func TestForgetRefusesUnsavedSnapshot(t *testing.T) {
	f := newFixture(t)
	snaps, _ := f.r.Snapshots(t.Context())
	err := maint.Forget(t.Context(), f.r, []*repo.Snapshot{snaps[0], {Label: "never saved"}})
	if err == nil {
		t.Fatal("forgot a snapshot without an id")
	}
	// Checked before anything is removed.
	if left, _ := f.r.Snapshots(t.Context()); len(left) != 2 {
		t.Fatalf("%d snapshots left", len(left))
	}
}

func TestForgetCancelled(t *testing.T) {
	f := newFixture(t)
	snaps, _ := f.r.Snapshots(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := maint.Forget(ctx, f.r, snaps); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
