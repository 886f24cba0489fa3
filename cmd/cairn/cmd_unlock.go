package main

import (
	"github.com/spf13/cobra"
)

func unlockCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks (older than 30 minutes, or of dead processes on this host)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			r, err := openRepo(ctx, g)
			if err != nil {
				return err
			}
			defer r.Backend().Close()
			n, err := r.RemoveStaleLocks(ctx)
			if err != nil {
				return err
			}
			locks, err := r.Locks(ctx)
			if err != nil {
				return err
			}
			if out.json {
				out.emit(map[string]any{"type": "summary", "removed": n, "remaining": len(locks)})
				return nil
			}
			out.printf("removed %s\n", plural(n, "stale lock", "stale locks"))
			for _, l := range locks {
				out.printf("still held: %v\n", l)
			}
			return nil
		},
	}
}
