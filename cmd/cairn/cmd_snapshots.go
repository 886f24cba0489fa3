package main

import (
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
)

func snapshotsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			r, err := openRepo(ctx, g)
			if err != nil {
				return err
			}
			defer r.Backend().Close()
			snaps, err := r.Snapshots(ctx)
			if err != nil {
				return err
			}
			if out.json {
				for _, s := range snaps {
					out.emit(snapshotJSON(s))
				}
				return nil
			}
			tw := tabwriter.NewWriter(out.stdout, 0, 2, 2, ' ', 0)
			tw.Write([]byte("ID\tLABEL\tTIME\tHOST\tPATHS\tSIZE\n"))
			for _, s := range snaps {
				tw.Write([]byte(s.ID().Short() + "\t" + s.Label + "\t" + s.Time.Local().Format("2006-01-02 15:04:05") +
					"\t" + s.Host + "\t" + strings.Join(s.Paths, ",") + "\t" + humanBytes(s.Summary.Bytes) + "\n"))
			}
			tw.Flush()
			out.printf("%s\n", plural(len(snaps), "snapshot", "snapshots"))
			return nil
		},
	}
}

// snapshotJSON is a snapshot's line of snapshots --json: paths and tags
// are always arrays, and the plan is left out when there is none (ad-hoc
// backups), so scripts need no null checks.
func snapshotJSON(s *repo.Snapshot) map[string]any {
	m := map[string]any{
		"id": s.ID().String(), "label": s.Label, "time": s.Time, "host": s.Host,
		"user": s.User, "paths": orEmpty(s.Paths), "tags": orEmpty(s.Tags),
		"tree": s.Tree.String(), "summary": s.Summary,
	}
	if s.Plan != "" {
		m["plan"] = s.Plan
	}
	return m
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
