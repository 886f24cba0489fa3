package main

import (
	"fmt"
	"path"
	"slices"
	"strings"

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
			dirs, parents := restoreCounts(res.Dirs, snap.Paths, includes)
			if out.json {
				out.emit(map[string]any{"type": "summary", "snapshot": snap.ID().String(), "label": snap.Label,
					"files": res.Files, "dirs": dirs, "parent_dirs": parents, "bytes": res.Bytes, "errors": res.Errors})
			} else {
				out.printf("restored %s to %s: %s, %s, %s\n", snap.Label, target, plural(res.Files, "file", "files"),
					plural(dirs, "directory", "directories"), humanBytes(res.Bytes))
			}
			if res.Errors > 0 {
				out.warn("", fmt.Errorf("%s could not be restored (named above)", plural(res.Errors, "file or directory", "files or directories")))
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

// restoreCounts splits the directories a restore made into those of the
// snapshot's sources and the parents leading to them (for a source
// /home/alice, the directory home), so that a restore reports the
// directories its backup reported: the backup counts only what it walked.
// A parent is made when everything is restored or an include lies in,
// at or above it.
func restoreCounts(restored uint64, sources, includes []string) (dirs, parents uint64) {
	seen := map[string]bool{}
	for _, src := range sources {
		for p := path.Dir(path.Clean("/" + src)); p != "/"; p = path.Dir(p) {
			if seen[p] || slices.ContainsFunc(sources, func(other string) bool { return within(p, path.Clean("/"+other)) }) {
				continue // a source itself, or inside one: the backup counted it
			}
			seen[p] = true
			if len(includes) == 0 || slices.ContainsFunc(includes, func(inc string) bool {
				return within(inc, p) || within(p, inc)
			}) {
				parents++
			}
		}
	}
	parents = min(parents, restored) // a parent that failed was not counted
	return restored - parents, parents
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
