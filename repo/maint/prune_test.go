package maint_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/maint"
)

// clock is a fake clock for the grace period.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)} }
func (c *clock) opts(grace time.Duration) maint.PruneOptions {
	return maint.PruneOptions{Grace: grace, Now: c.now}
}

// reopen opens the fixture's repository afresh, as the next process would.
func (f *fixture) reopen() *repo.Repository {
	f.t.Helper()
	if pw, ok := passwords.Load(f.root); ok {
		return f.reopenAs(pw.(string))
	}
	return f.reopenAs("secret")
}

// passwords holds the password of a repository whose fixture was not made
// by newFixture (root -> password).
var passwords sync.Map

func (f *fixture) reopenAs(password string) *repo.Repository {
	f.t.Helper()
	be, err := local.Open(f.root)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { be.Close() })
	r, err := repo.Open(f.t.Context(), be, password)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := r.LoadIndex(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// forget removes one snapshot record.
func (f *fixture) forget(id repo.ID) {
	f.t.Helper()
	s, err := f.r.LoadSnapshot(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := maint.Forget(f.t.Context(), f.r, []*repo.Snapshot{s}); err != nil {
		f.t.Fatal(err)
	}
}

// prune runs a prune in a freshly opened repository.
func (f *fixture) prune(opts maint.PruneOptions) *maint.PruneResult {
	f.t.Helper()
	res, err := maint.Prune(f.t.Context(), f.reopen(), opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// reachable loads every blob the snapshots reach, through a freshly
// opened repository, and returns their ids.
func (f *fixture) reachable() []repo.ID {
	f.t.Helper()
	ctx := f.t.Context()
	r := f.reopen()
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []repo.ID
	err = maint.Reachable(ctx, r, snaps, maint.WalkOptions{}, func(id repo.ID, t repo.BlobType) error {
		ids = append(ids, id)
		if _, err := r.LoadBlob(ctx, t, id); err != nil {
			f.t.Errorf("blob %s: %v", id.Short(), err)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.SortFunc(ids, func(a, b repo.ID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

// files maps every file of the repository to the hash of its bytes.
func (f *fixture) files() map[string]string {
	f.t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) cleanCheck() {
	f.t.Helper()
	if res := f.check(maint.CheckOptions{ReadData: true}); res.Errors != 0 || res.Warnings != 0 {
		f.t.Fatalf("check: %+v", res)
	}
}

// Forgetting snap-2 leaves new.bin's data pack and snap-2's tree pack
// unreferenced: the first prune marks them and deletes nothing, a prune
// within the grace period waits, one after it deletes them.
func TestPruneMarksThenDeletes(t *testing.T) {
	f := newFixture(t)
	f.forget(f.snap2)
	want := f.reachable()
	packs := f.packCount()
	c := newClock()
	grace := time.Hour

	res := f.prune(c.opts(grace))
	if res.Marked != 2 || res.Deleted != 0 || res.Waiting != 0 || res.Unmarked != 0 {
		t.Fatalf("first prune: %+v", res)
	}
	if n := f.packCount(); n != packs {
		t.Fatalf("first prune removed packs: %d, had %d", n, packs)
	}
	if n := len(f.names("marks")); n != 1 {
		t.Fatalf("%d mark objects, want 1", n)
	}
	f.cleanCheck()

	c.advance(grace / 2)
	res = f.prune(c.opts(grace))
	if res.Marked != 0 || res.Waiting != 2 || res.Deleted != 0 {
		t.Fatalf("prune within the grace period: %+v", res)
	}
	if n := f.packCount(); n != packs {
		t.Fatalf("prune within the grace period removed packs: %d, had %d", n, packs)
	}

	c.advance(grace)
	res = f.prune(c.opts(grace))
	if res.Deleted != 2 || res.DeletedBytes <= 0 || res.Waiting != 0 {
		t.Fatalf("prune after the grace period: %+v", res)
	}
	if n := f.packCount(); n != packs-2 {
		t.Fatalf("%d packs after deleting 2 of %d", n, packs)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed: %d, had %d", len(got), len(want))
	}
	f.cleanCheck()
	// A process that had the repository open before (a mount) forgets
	// the deleted packs at its next LoadIndex, so that its next backup
	// stores new.bin again instead of deduplicating against a lost pack.
	newBin := repo.Hash(randBytes(100, 30<<10))
	if !f.r.HasBlob(newBin) {
		t.Fatal("the old process never knew new.bin")
	}
	if err := f.r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.r.HasBlob(newBin) {
		t.Fatal("after LoadIndex the old process still has the deleted new.bin")
	}
	for _, id := range want {
		if !f.r.HasBlob(id) {
			t.Fatalf("after LoadIndex the old process lost blob %s", id.Short())
		}
	}

	// Nothing left to do; the marks are gone with their packs.
	res = f.prune(c.opts(grace))
	if res.Marked+res.Waiting+res.Deleted+res.Repacked != 0 {
		t.Fatalf("prune of a pruned repository: %+v", res)
	}
	if n := len(f.names("marks")); n != 0 {
		t.Fatalf("%d mark objects left", n)
	}
}

// Even with no grace period, the prune that marks a pack does not delete
// it: that is the next one's.
func TestPruneTwoPhasesWithoutGrace(t *testing.T) {
	f := newFixture(t)
	f.forget(f.snap2)
	packs := f.packCount()
	c := newClock()
	if res := f.prune(c.opts(0)); res.Marked != 2 || res.Deleted != 0 {
		t.Fatalf("first prune: %+v", res)
	}
	if n := f.packCount(); n != packs {
		t.Fatalf("first prune removed packs: %d, had %d", n, packs)
	}
	if res := f.prune(c.opts(0)); res.Deleted != 2 {
		t.Fatalf("second prune: %+v", res)
	}
	if n := f.packCount(); n != packs-2 {
		t.Fatalf("%d packs, want %d", n, packs-2)
	}
	f.cleanCheck()
}

// A backup that used the marked packs' blobs between the two prunes (here:
// a new snapshot of snap-2's root tree) keeps them.
func TestPruneReferencedAgain(t *testing.T) {
	f := newFixture(t)
	s2, err := f.r.LoadSnapshot(t.Context(), f.snap2)
	if err != nil {
		t.Fatal(err)
	}
	f.forget(f.snap2)
	c := newClock()
	if res := f.prune(c.opts(time.Hour)); res.Marked != 2 {
		t.Fatalf("first prune: %+v", res)
	}
	packs := f.packCount()
	f.snapshot("snap-3", s2.Tree)
	want := f.reachable()

	c.advance(2 * time.Hour)
	res := f.prune(c.opts(time.Hour))
	if res.Deleted != 0 || res.Unmarked != 2 {
		t.Fatalf("prune after the snapshot came back: %+v", res)
	}
	if n := f.packCount(); n != packs {
		t.Fatalf("%d packs, had %d", n, packs)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed: %d, had %d", len(got), len(want))
	}
	if n := len(f.names("marks")); n != 0 {
		t.Fatalf("%d mark objects left, want none", n)
	}
	f.cleanCheck()
}

// Forgetting snap-1 leaves its tree pack with one live tree of four: it is
// repacked (the live tree copied), marked, and deleted after the grace
// period; every reachable blob stays loadable throughout.
func TestPruneRepack(t *testing.T) {
	f := newFixture(t)
	f.forget(f.snap1)
	want := f.reachable()
	packs := f.packCount()
	c := newClock()
	opts := c.opts(time.Hour)
	opts.RepackBelow = 0.5
	downgraded := false
	opts.Downgrade = func(ctx context.Context) (context.Context, error) { downgraded = true; return ctx, nil }

	res := f.prune(opts)
	if res.Repacked != 1 || res.NewPacks != 1 || res.CopiedBlobs != 1 || res.Deleted != 0 || !downgraded {
		t.Fatalf("first prune: %+v (downgraded %v)", res, downgraded)
	}
	if n := f.packCount(); n != packs+1 {
		t.Fatalf("%d packs, want %d", n, packs+1)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed: %d, had %d", len(got), len(want))
	}
	f.cleanCheck()

	c.advance(2 * time.Hour)
	res = f.prune(opts)
	if res.Deleted != 1 || res.Repacked != 0 || res.Unmarked != 0 {
		t.Fatalf("prune after the grace period: %+v", res)
	}
	if n := f.packCount(); n != packs {
		t.Fatalf("%d packs, want %d", n, packs)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed: %d, had %d", len(got), len(want))
	}
	f.cleanCheck()
}

// Many index files become one that names the same packs, and the
// repository reopens with the same reachable blobs.
func TestPruneCompactsIndex(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		f.data(randBytes(uint64(200+i), 5<<10)) // unreferenced, one index file each
		f.flush()
	}
	want := f.reachable()
	if n := len(f.names("index")); n != 7 {
		t.Fatalf("%d index files before, want 7", n)
	}
	c := newClock()
	res := f.prune(c.opts(time.Hour))
	if res.IndexBefore != 7 || res.IndexAfter != 1 || res.RemovedIndexes != 7 || res.Marked != 5 {
		t.Fatalf("prune: %+v", res)
	}
	if n := len(f.names("index")); n != 1 {
		t.Fatalf("%d index files after, want 1", n)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed: %d, had %d", len(got), len(want))
	}
	f.cleanCheck()
	// The unreferenced packs go after the grace period, and the index
	// then names the rest.
	c.advance(2 * time.Hour)
	packs := f.packCount()
	if res := f.prune(c.opts(time.Hour)); res.Deleted != 5 || res.IndexAfter != 1 || res.RemovedIndexes != 1 {
		t.Fatalf("second prune: %+v", res)
	}
	if n := f.packCount(); n != packs-5 {
		t.Fatalf("%d packs, want %d", n, packs-5)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed: %d, had %d", len(got), len(want))
	}
	f.cleanCheck()
}

// A dry run reports and changes nothing, before marking and after.
func TestPruneDryRun(t *testing.T) {
	f := newFixture(t)
	f.forget(f.snap2)
	c := newClock()
	dry := c.opts(time.Hour)
	dry.DryRun = true
	dry.RepackBelow = 0.5
	before := f.files()
	res := f.prune(dry)
	if res.Marked != 2 || res.MarkedBytes <= 0 || res.Deleted != 0 || !res.DryRun {
		t.Fatalf("dry run: %+v", res)
	}
	if after := f.files(); !mapsEqual(before, after) {
		t.Fatalf("dry run changed the repository")
	}

	f.prune(c.opts(time.Hour))
	c.advance(2 * time.Hour)
	before = f.files()
	res = f.prune(dry)
	if res.Deleted != 2 || res.DeletedBytes <= 0 {
		t.Fatalf("dry run after the grace period: %+v", res)
	}
	if after := f.files(); !mapsEqual(before, after) {
		t.Fatalf("dry run changed the repository")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A repository made before marks existed (the golden v1 one, which has no
// marks/ directory) is pruned like any other: the marks directory appears
// with the first mark, and the repository checks clean throughout.
func TestPruneGoldenV1(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(root, os.DirFS(filepath.Join("..", "..", "testdata", "golden", "v1", "repo"))); err != nil {
		t.Fatal(err)
	}
	be, err := local.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(t.Context(), be, "golden")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, root: root, r: r}
	passwords.Store(root, "golden")
	want := f.reachable()
	snaps, err := r.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Keep the snapshots: nothing is unreferenced, nothing is marked.
	c := newClock()
	res, err := maint.Prune(t.Context(), f.reopen(), c.opts(0))
	if err != nil || res.Marked+res.Deleted != 0 {
		t.Fatalf("prune of the golden repository: %+v, %v", res, err)
	}
	// Forget them all: every pack is marked, then deleted.
	if err := maint.Forget(t.Context(), r, snaps); err != nil {
		t.Fatal(err)
	}
	if res, err = maint.Prune(t.Context(), f.reopen(), c.opts(0)); err != nil || res.Marked == 0 || res.Marked != res.Packs {
		t.Fatalf("first prune: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(root, "marks")); err != nil {
		t.Fatal(err)
	}
	if res, err = maint.Prune(t.Context(), f.reopen(), c.opts(0)); err != nil || res.Deleted != res.Packs {
		t.Fatalf("second prune: %+v, %v", res, err)
	}
	if n := f.packCount(); n != 0 || len(want) == 0 {
		t.Fatalf("%d packs left", n)
	}
	f.cleanCheck()
}

// A backup whose index file and snapshot a lagging listing hid from the
// marking prune (its packs looked unindexed, so they were marked) loses
// nothing: the deleting prune sees them referenced and keeps them.
func TestPruneLaggingListingLosesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	blob := f.data(randBytes(300, 25<<10))
	root := f.tree(file("late.bin", blob))
	f.flush()
	hidden := f.index[len(f.index)-1]
	idxPath := filepath.Join(f.root, "index", hidden)
	aside := filepath.Join(t.TempDir(), hidden)
	if err := os.Rename(idxPath, aside); err != nil {
		t.Fatal(err)
	}
	c := newClock()
	res := f.prune(c.opts(time.Hour))
	if res.Marked != 2 || res.Deleted != 0 {
		t.Fatalf("prune that did not see the backup's index: %+v", res)
	}
	// The listing catches up: the index file and the snapshot show.
	if err := os.Rename(aside, idxPath); err != nil {
		t.Fatal(err)
	}
	f.snapshot("late", root)
	packs := f.packCount()
	want := f.reachable()

	c.advance(2 * time.Hour)
	res = f.prune(c.opts(time.Hour))
	if res.Deleted != 0 || res.Unmarked != 2 {
		t.Fatalf("prune after the grace period: %+v", res)
	}
	if n := f.packCount(); n != packs {
		t.Fatalf("%d packs, had %d", n, packs)
	}
	if got := f.reachable(); !slices.Equal(got, want) {
		t.Fatalf("reachable blobs changed")
	}
	if _, err := f.reopen().LoadBlob(ctx, repo.DataBlob, blob); err != nil {
		t.Fatal(err)
	}
	f.cleanCheck()
}
