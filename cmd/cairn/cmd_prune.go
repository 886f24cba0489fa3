package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/maint"
)

// pruneFlags are prune's options, shared with forget --prune.
type pruneFlags struct {
	dryRun      bool
	repackBelow string
	grace       time.Duration
}

func defaultPruneFlags() pruneFlags {
	return pruneFlags{repackBelow: "50%", grace: maint.DefaultGrace()}
}

func pruneCmd(g *globalFlags) *cobra.Command {
	f := defaultPruneFlags()
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Free the space of data no snapshot references (two-phase: mark now, delete later)",
		Long: `Prune frees the space of packs no snapshot references any more.

It works in two phases, so that backups, copies and mounts of the same
repository may run at the same time, from this host and others: a pack
found unreferenced is only marked; a later prune deletes it once the mark
is older than the grace period (--grace, by default twice the time after
which a lock counts as stale) and only if it is still unreferenced then.
Run prune again after the grace period to free the space.

Packs whose live part is below --repack-below are repacked: the data still
needed is copied into new packs and the old packs are marked. The index is
rewritten as few files naming the packs that stay.

Prune holds the exclusive lock only while it decides, rewrites the index
and deletes; repacking runs under a shared lock. --dry-run says what would
be marked, deleted and repacked and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target()
			if err != nil {
				return err
			}
			return pruneIn(cmd.Context(), g, newOutput(g), t, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "only say what would be marked, deleted and repacked")
	fl.StringVar(&f.repackBelow, "repack-below", f.repackBelow, "repack packs whose live part is below this percentage (0% repacks nothing)")
	fl.DurationVar(&f.grace, "grace", f.grace, "how old a mark must be before its pack is deleted")
	return cmd
}

// parsePercent parses "50%" (or "50") into 0.5.
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, fmt.Errorf("%q: want a percentage from 0%% to 100%%", s)
	}
	return v / 100, nil
}

// pruneIn prunes one repository: the exclusive lock for the deciding,
// index and deleting step, a shared one for the repacking.
func pruneIn(ctx context.Context, g *globalFlags, out *output, t plan.Target, f pruneFlags) error {
	below, err := parsePercent(f.repackBelow)
	if err != nil {
		return fmt.Errorf("--repack-below %w", err)
	}
	if f.grace < 0 {
		return errors.New("--grace must not be negative")
	}
	r, err := g.opener().Open(ctx, t.OpenName(), t.Def)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	opts := maint.PruneOptions{DryRun: f.dryRun, Grace: f.grace, RepackBelow: below}

	opCtx := ctx
	if !f.dryRun {
		settle, err := t.Def.Settle()
		if err != nil {
			return err
		}
		lock, err := r.Lock(ctx, true, repo.LockOptions{Settle: settle})
		if err != nil {
			return err
		}
		held := lock
		defer func() {
			if held != nil {
				held.Unlock(context.WithoutCancel(ctx))
			}
		}()
		opCtx = lock.Context()
		opts.Downgrade = func(context.Context) (context.Context, error) {
			err := held.Unlock(ctx)
			held = nil
			if err != nil {
				return nil, fmt.Errorf("release the exclusive lock: %w", err)
			}
			shared, err := r.Lock(ctx, false, repo.LockOptions{Settle: settle})
			if err != nil {
				return nil, err
			}
			held = shared
			return shared.Context(), nil
		}
	}
	res, err := maint.Prune(opCtx, r, opts)
	if err != nil {
		if cause := context.Cause(opCtx); cause != nil && errors.Is(cause, repo.ErrLockLost) {
			return cause
		}
		return err
	}
	if out.json {
		out.emit(map[string]any{
			"type": "summary", "command": "prune", "repo": t.Name, "dry_run": res.DryRun, "snapshots": res.Snapshots,
			"packs": res.Packs, "pack_bytes": res.PackBytes,
			"packs_marked": res.Marked, "bytes_marked": res.MarkedBytes,
			"packs_waiting": res.Waiting, "bytes_waiting": res.WaitingBytes,
			"packs_unmarked": res.Unmarked,
			"packs_deleted":  res.Deleted, "bytes_freed": res.DeletedBytes,
			"packs_repacked": res.Repacked, "bytes_repacked": res.RepackedBytes,
			"blobs_copied": res.CopiedBlobs, "packs_written": res.NewPacks, "bytes_written": res.NewBytes,
			"bytes_freed_later":  res.FreedLater(),
			"index_files_before": res.IndexBefore, "index_files_written": res.IndexAfter,
			"index_files_removed": res.RemovedIndexes,
		})
		return nil
	}
	out.printf("%s", pruneSummary(t, res, f.grace))
	return nil
}

// pruneSummary is the human report of a prune.
func pruneSummary(t plan.Target, res *maint.PruneResult, grace time.Duration) string {
	var b strings.Builder
	would := func(did, will string) string {
		if res.DryRun {
			return will
		}
		return did
	}
	fmt.Fprintf(&b, "repository %s: %s, %s (%s)\n", t, plural(res.Snapshots, "snapshot", "snapshots"), plural(res.Packs, "pack", "packs"), humanBytes(uint64(res.PackBytes)))
	if res.Deleted > 0 {
		fmt.Fprintf(&b, "%s %s (%s) whose marks expired\n", would("deleted", "would delete"), plural(res.Deleted, "pack", "packs"), humanBytes(uint64(res.DeletedBytes)))
	}
	if res.Marked > 0 {
		fmt.Fprintf(&b, "%s %s (%s)\n", would("marked", "would mark"), plural(res.Marked, "unreferenced pack", "unreferenced packs"), humanBytes(uint64(res.MarkedBytes)))
	}
	if res.Repacked > 0 {
		fmt.Fprintf(&b, "%s %s (%s): %s (%s) into %s, old packs marked\n",
			would("repacked", "would repack"), plural(res.Repacked, "sparse pack", "sparse packs"), humanBytes(uint64(res.RepackedBytes)),
			plural(res.CopiedBlobs, "blob", "blobs"), humanBytes(uint64(res.NewBytes)), plural(res.NewPacks, "new pack", "new packs"))
	}
	if res.Waiting > 0 {
		fmt.Fprintf(&b, "%s (%s) wait for the grace period (%s)\n", plural(res.Waiting, "marked pack", "marked packs"), humanBytes(uint64(res.WaitingBytes)), grace)
	}
	if res.Unmarked > 0 {
		fmt.Fprintf(&b, "%s referenced again and keep their data\n", plural(res.Unmarked, "marked pack is", "marked packs are"))
	}
	if !res.DryRun && (res.IndexAfter > 0 || res.RemovedIndexes > 0) {
		fmt.Fprintf(&b, "index: %s before, %d written, %d removed\n", plural(res.IndexBefore, "file", "files"), res.IndexAfter, res.RemovedIndexes)
	}
	verb := "freed"
	if res.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(&b, "%s %s now; a prune after %s frees about %s more", verb, humanBytes(uint64(res.DeletedBytes)), grace, humanBytes(uint64(max(0, res.FreedLater()))))
	if res.DryRun {
		b.WriteString(" (dry run: nothing changed)")
	}
	b.WriteString("\n")
	return b.String()
}
