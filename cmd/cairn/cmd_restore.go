package main

import (
	"fmt"
	"path"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo/restorer"
)

func restoreCmd(g *globalFlags) *cobra.Command {
	var (
		target       string
		includes     []string
		numericOwner bool
	)
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot (or --include paths of it) into a directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			if target == "" {
				return errorf("--target is required")
			}
			softMemoryLimit(restoreMemory)
			r, snap, err := openSnapshot(ctx, g, args[0])
			if err != nil {
				return err
			}
			defer r.Backend().Close()
			for i, inc := range includes {
				includes[i] = path.Clean("/" + inc)
			}
			workers, window := 0, 0 // the restorer's defaults, for local storage
			if r.Uploads() > 1 {
				// Remote storage: read packs in large windows rather than
				// a request per small file, and keep several in flight.
				// A limit under the windows' working set (it was 96 MiB)
				// keeps the collector running.
				workers, window = 16, 4<<20
				softMemoryLimit(restoreMemory + int64(workers+restorer.CachedWindows)*int64(window))
			}
			res, err := restorer.Restore(ctx, r, snap, target, restorer.Options{
				Workers:      workers,
				Window:       window,
				Includes:     includes,
				NumericOwner: numericOwner,
				OnError:      out.warn,
				Progress: func(p restorer.Progress) {
					out.progress("restore", int64(p.Bytes), int64(p.TotalBytes), map[string]any{
						"type": "progress", "files": p.Files, "bytes": p.Bytes,
						"total_files": p.TotalFiles, "total_bytes": p.TotalBytes,
					})
				},
			})
			out.done()
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if out.json {
				out.emit(map[string]any{"type": "summary", "snapshot": snap.ID().String(), "label": snap.Label,
					"files": res.Files, "dirs": res.Dirs, "bytes": res.Bytes, "errors": res.Errors})
			} else {
				out.printf("restored %s to %s: %d files, %d dirs, %s\n", snap.Label, target, res.Files, res.Dirs, humanBytes(res.Bytes))
			}
			if res.Errors > 0 {
				out.warn("", fmt.Errorf("%d files or directories could not be restored (named above)", res.Errors))
				return errPartial
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&target, "target", "t", "", "directory to restore into (each source reappears under its absolute path);\n"+
		"a symlink on its path is followed only if owned by root or by you, else the restore is refused")
	f.StringArrayVarP(&includes, "include", "i", nil, "restore only this path of the snapshot (repeatable)")
	f.BoolVar(&numericOwner, "numeric-owner", false, "restore owners by recorded uid/gid, ignoring names")
	return cmd
}
