package maint_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/maint"
)

// reachable is what a plain recursive walk of snaps references, each blob
// once, and the number of references to each tree.
func reachable(t *testing.T, r *repo.Repository, snaps []*repo.Snapshot) (map[repo.ID]repo.BlobType, map[repo.ID]int) {
	t.Helper()
	blobs := map[repo.ID]repo.BlobType{}
	refs := map[repo.ID]int{}
	var walk func(id repo.ID)
	walk = func(id repo.ID) {
		refs[id]++
		blobs[id] = repo.TreeBlob
		tr, err := r.LoadTree(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			switch n.Type {
			case repo.NodeDir:
				walk(*n.Subtree)
			case repo.NodeFile:
				for _, c := range n.Content {
					blobs[c] = repo.DataBlob
				}
			}
		}
	}
	for _, s := range snaps {
		walk(s.Tree)
	}
	return blobs, refs
}

func (f *fixture) snaps() []*repo.Snapshot {
	f.t.Helper()
	snaps, err := f.r.Snapshots(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return snaps
}

// Reachable passes every tree and data blob of the snapshots once, though
// the snapshots share a subtree (/etc) and chunks (notes, photo).
func TestReachableEachBlobOnce(t *testing.T) {
	f := newFixture(t)
	snaps := f.snaps()
	want, refs := reachable(t, f.r, snaps)
	if refs[snaps[0].Tree] != 1 || slices.Max(mapValues(refs)) < 2 {
		t.Fatal("the fixture's snapshots share no subtree: the test would prove nothing")
	}
	var (
		mu    sync.Mutex
		loads = map[repo.ID]int{}
	)
	load := func(ctx context.Context, id repo.ID) (*repo.Tree, error) {
		mu.Lock()
		loads[id]++
		mu.Unlock()
		return f.r.LoadTree(ctx, id)
	}
	got := map[repo.ID]int{}
	err := maint.Reachable(t.Context(), f.r, snaps, maint.WalkOptions{LoadTree: load}, func(id repo.ID, typ repo.BlobType) error {
		got[id]++ // never called concurrently
		if want[id] != typ {
			t.Errorf("%s passed as a %s blob, want %s", id.Short(), typ, want[id])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d blobs passed, want %d", len(got), len(want))
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s passed %d times", id.Short(), n)
		}
	}
	for id, n := range loads {
		if n != 1 {
			t.Errorf("tree %s (referenced %d times) loaded %d times", id.Short(), refs[id], n)
		}
	}
}

func mapValues(m map[repo.ID]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Walk visits each distinct tree once, newest snapshot first, and tells a
// shared tree with the first place it met it.
func TestWalkSharedSubtreeOnce(t *testing.T) {
	f := newFixture(t)
	snaps := f.snaps()
	_, refs := reachable(t, f.r, snaps)
	var visits []maint.Visit
	err := maint.Walk(t.Context(), f.r, snaps, maint.WalkOptions{Workers: 1}, func(_ context.Context, v maint.Visit) error {
		visits = append(visits, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(visits) != len(refs) {
		t.Fatalf("%d visits, want one per distinct tree (%d)", len(visits), len(refs))
	}
	newest := snaps[len(snaps)-1]
	if visits[0].ID != newest.Tree || visits[0].Path != "/" || visits[0].Snapshot != newest {
		t.Errorf("first visit %s %s, want the newest snapshot's root", visits[0].Snapshot.Label, visits[0].Path)
	}
	for _, v := range visits {
		if v.Err != nil || v.Tree == nil {
			t.Errorf("%s: %v", v.Path, v.Err)
		}
		if v.Path == "/etc" && v.Snapshot != newest {
			t.Errorf("/etc (shared) told with %q, want the newest snapshot", v.Snapshot.Label)
		}
	}
}

// A tree that cannot be loaded is passed with its error and its subtrees
// are not walked; Reachable stops with a TreeError naming the snapshot and
// the path. Follow can refuse a tree.
func TestWalkTreeErrors(t *testing.T) {
	f := newFixture(t)
	snaps := f.snaps()
	old := snaps[0]
	tr, err := f.r.LoadTree(t.Context(), old.Tree)
	if err != nil {
		t.Fatal(err)
	}
	home := *tr.Find("home").Subtree
	_, path := f.packOf(home)
	if err := os.Remove(path); err != nil { // every tree of both snapshots is in it
		t.Fatal(err)
	}

	var visits []maint.Visit
	err = maint.Walk(t.Context(), f.r, snaps[:1], maint.WalkOptions{}, func(_ context.Context, v maint.Visit) error {
		visits = append(visits, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(visits) != 1 || visits[0].Err == nil || !errors.Is(visits[0].Err, repo.ErrCorrupt) {
		t.Fatalf("visits %+v, want the root alone, failed", visits)
	}

	err = maint.Reachable(t.Context(), f.r, snaps[:1], maint.WalkOptions{}, func(repo.ID, repo.BlobType) error { return nil })
	var te *maint.TreeError
	if !errors.As(err, &te) || te.Snapshot != old || te.Path != "/" || te.Tree != old.Tree || !errors.Is(err, repo.ErrCorrupt) {
		t.Fatalf("Reachable gave %v, want a TreeError for %q /", err, old.Label)
	}

	// Follow refuses /home: only the root and /etc are loaded.
	f2 := newFixture(t)
	var paths []string
	refuse := func(s *repo.Snapshot, p string, id repo.ID) bool { return p != "/home" }
	err = maint.Walk(t.Context(), f2.r, f2.snaps()[:1], maint.WalkOptions{Follow: refuse, Workers: 1}, func(_ context.Context, v maint.Visit) error {
		paths = append(paths, v.Path)
		return nil
	})
	if err != nil || !slices.Equal(paths, []string{"/", "/etc"}) {
		t.Errorf("walked %v (%v), want / and /etc", paths, err)
	}
}

// An error from fn stops the walk and is returned.
func TestWalkStopsOnError(t *testing.T) {
	f := newFixture(t)
	stop := errors.New("stop")
	var mu sync.Mutex
	n := 0
	err := maint.Walk(t.Context(), f.r, f.snaps(), maint.WalkOptions{}, func(context.Context, maint.Visit) error {
		mu.Lock()
		defer mu.Unlock()
		n++
		return stop
	})
	if err != stop || n >= 7 {
		t.Errorf("err %v after %d visits", err, n)
	}
}
