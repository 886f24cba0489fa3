package maint

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

// forgetWorkers bounds concurrent removals; deletes on remote storage
// are small requests whose latency dominates.
const forgetWorkers = 8

// Forget removes the records of snaps (as loaded by r.Snapshots) from r.
// Only the records go: the trees and data they reference stay in their
// packs until a prune finds them unreferenced, so a forget is cheap, and
// until then `check` reports nothing amiss.
//
// The caller holds a lock on r for the operation; a shared one is enough
// (r.Lock(ctx, false, …)): a snapshot record is only read whole, so its
// removal cannot break a backup or a read running beside it, and nothing
// it references is deleted here. Deleting packs is prune's, under the
// exclusive lock. A record that is already gone
// (another forget got there first, or the listing lagged) is success, so
// Forget can simply be run again after an error. On error some records
// may have been removed and others not; the error names the first one
// that failed.
func Forget(ctx context.Context, r *repo.Repository, snaps []*repo.Snapshot) error {
	for _, s := range snaps {
		if s.ID().IsNull() {
			return fmt.Errorf("forget: snapshot %q has no id (it was never saved)", s.Label)
		}
	}
	be := r.Backend()
	return repo.Parallel(ctx, len(snaps), forgetWorkers, func(ctx context.Context, i int) error {
		h := backend.Handle{Type: backend.SnapshotFile, Name: snaps[i].ID().String()}
		err := be.Remove(ctx, h)
		if err != nil && !errors.Is(err, backend.ErrNotExist) {
			return fmt.Errorf("forget %s: remove %v: %w", describe(snaps[i]), h, err)
		}
		return nil
	})
}
