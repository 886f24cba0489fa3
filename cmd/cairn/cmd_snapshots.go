package main

import (
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
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
					out.emit(map[string]any{
						"id": s.ID().String(), "label": s.Label, "time": s.Time, "host": s.Host,
						"user": s.User, "plan": s.Plan, "paths": s.Paths, "tags": s.Tags,
						"tree": s.Tree.String(), "summary": s.Summary,
					})
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
			out.printf("%d snapshots\n", len(snaps))
			return nil
		},
	}
}
