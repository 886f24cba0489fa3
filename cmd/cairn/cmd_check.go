package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo/maint"
)

func checkCmd(g *globalFlags) *cobra.Command {
	var (
		readData bool
		subset   string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure (and with --read-data, every blob)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			opts := maint.CheckOptions{ReadData: readData}
			if subset != "" {
				f, err := strconv.ParseFloat(strings.TrimSuffix(subset, "%"), 64)
				if err != nil || f <= 0 || f > 100 {
					return errorf("--read-data-subset %q: want a percentage such as 10%%", subset)
				}
				opts.ReadDataSubset = f / 100
			}
			opts.OnProblem = func(p maint.Problem) {
				if out.json {
					out.emit(map[string]any{"type": "problem", "object": p.Object, "blob": p.Blob, "severity": p.Severity, "message": p.Message})
					return
				}
				obj := p.Object
				if p.Blob != "" {
					obj += " blob " + p.Blob
				}
				out.printf("%s: %s: %s\n", p.Severity, obj, p.Message)
			}
			r, err := openRepo(ctx, g)
			if err != nil {
				return err
			}
			defer r.Backend().Close()
			res, err := maint.Check(ctx, r, opts)
			if err != nil {
				return err
			}
			if out.json {
				out.emit(map[string]any{"type": "summary", "packs": res.Packs, "indexes": res.Indexes,
					"snapshots": res.Snapshots, "trees": res.Trees, "blobs": res.Blobs,
					"packs_read": res.PacksRead, "errors": res.Errors, "warnings": res.Warnings})
			} else {
				out.printf("checked %s, %s, %s in %s (%d read): %s, %s\n",
					plural(res.Snapshots, "snapshot", "snapshots"), plural(res.Trees, "tree", "trees"),
					plural(res.Blobs, "blob", "blobs"), plural(res.Packs, "pack", "packs"), res.PacksRead,
					plural(res.Errors, "error", "errors"), plural(res.Warnings, "warning", "warnings"))
			}
			if res.Errors > 0 {
				return fmt.Errorf("the repository has %s", plural(res.Errors, "error", "errors"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify every pack")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and verify this percentage of packs, e.g. 10%")
	return cmd
}
