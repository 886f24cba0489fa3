package main

import (
	"context"
	"errors"
	"fmt"
	"os/user"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
)

func backupCmd(g *globalFlags) *cobra.Command {
	var (
		tags   []string
		host   string
		label  string
		noPar  bool
		oneFS  bool
		parent string
		pl     string
		config string
	)
	cmd := &cobra.Command{
		Use:   "backup (PATH... | --plan NAME)",
		Short: "Back up paths into the repository as one snapshot, or run a plan",
		Long: `Back up the paths given into the --repo repository as one snapshot,
or with --plan NAME run a plan of the configuration file: its sources are
read once and saved into each of its repositories, each getting its own
snapshot, then its retention policy and hooks run.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			if pl != "" {
				if len(args) > 0 || len(g.repos) > 0 {
					return errors.New("--plan takes no paths and no --repo: the plan names its sources and repositories")
				}
				return runPlan(ctx, g, out, config, pl)
			}
			if len(args) == 0 {
				return errors.New("nothing to back up: give paths, or --plan NAME")
			}
			t, err := g.target()
			if err != nil {
				return err
			}
			r, ctx, done, err := g.opener().Operation(ctx, t, true)
			if err != nil {
				return err
			}
			defer done()
			softMemoryLimit(backupMemory(r))

			opts := archiver.Options{
				Host: host, Label: label, Tags: tags, OneFileSystem: oneFS,
				Program: "cairn " + version,
				OnError: out.warn,
			}
			if u, err := user.Current(); err == nil {
				opts.User = u.Username
			}
			snaps, err := r.Snapshots(ctx)
			if err != nil {
				return err
			}
			opts.Snapshots = snaps
			if !noPar {
				if parent != "" {
					opts.Parent, err = repo.FindSnapshot(snaps, parent)
					if err != nil {
						return err
					}
				} else {
					opts.Parent = plan.Parent(snaps, opts.Host, "", args)
				}
			}
			var total int64 = -1
			if opts.Parent != nil {
				total = int64(opts.Parent.Summary.Bytes)
			}
			opts.Progress = func(p archiver.Progress) {
				out.progress("backup", int64(p.Bytes), total, map[string]any{
					"type": "progress", "files": p.Files, "dirs": p.Dirs, "bytes": p.Bytes,
					"new_bytes": p.NewBytes, "unchanged": p.Unchanged, "errors": p.Errors,
					"elapsed": p.Elapsed.Seconds(),
				})
			}
			snap, err := archiver.Backup(ctx, r, args, opts)
			out.done()
			if err != nil {
				if cause := context.Cause(ctx); cause != nil && errors.Is(cause, repo.ErrLockLost) {
					return cause
				}
				return err
			}
			s := snap.Summary
			if out.json {
				out.emit(map[string]any{
					"type": "summary", "snapshot": snap.ID().String(), "label": snap.Label,
					"files": s.Files, "dirs": s.Dirs, "others": s.Others, "bytes": s.Bytes, "new_bytes": s.NewBytes,
					"unchanged": s.Unchanged, "unreadable": s.Unreadable, "duration": s.Duration,
				})
			} else {
				out.printf("snapshot %s saved as %s\n", snap.ID().Short(), snap.Label)
				// Counted as restore counts them (see restoreCounts):
				// files are all non-directory entries, directories
				// those of the sources, not the ones leading to them.
				out.printf("  %s, %s, %s; %d unchanged; %s new data; %.1fs\n",
					plural(s.Files+s.Others, "file", "files"), plural(s.Dirs, "directory", "directories"),
					humanBytes(s.Bytes), s.Unchanged, humanBytes(s.NewBytes), s.Duration)
			}
			if s.Unreadable > 0 {
				out.warn("", fmt.Errorf("%s not be read completely (named above)", plural(s.Unreadable, "file could", "files could")))
				return errPartial
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&tags, "tag", nil, "tag the snapshot (repeatable)")
	f.StringVar(&host, "host", "", "host name to record (default: this host)")
	f.StringVar(&label, "label", "", "snapshot label (default: <UTC time>_<host>)")
	f.BoolVar(&noPar, "force", false, "read every file, ignoring the parent snapshot")
	f.StringVar(&parent, "parent", "", "parent snapshot (default: the latest of this host with the same paths)")
	f.BoolVarP(&oneFS, "one-file-system", "x", false, "do not cross filesystem boundaries")
	f.StringVar(&pl, "plan", "", "run this plan of the configuration file")
	f.StringVar(&config, "config", "", "configuration file (default $CAIRN_CONFIG, else ~/.config/cairn/config.json)")
	return cmd
}
