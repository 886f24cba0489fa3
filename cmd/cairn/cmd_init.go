package main

import (
	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
)

func initCmd(g *globalFlags) *cobra.Command {
	var chunkerFrom, chunkerFromPasswordFile string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repository (refuses a non-empty target)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := newOutput(g)
			var opts repo.InitOptions
			if chunkerFrom != "" {
				src := *g
				src.repos = []string{chunkerFrom}
				if chunkerFromPasswordFile != "" {
					src.passwordFile = chunkerFromPasswordFile
				}
				other, err := openRepo(ctx, &src)
				if err != nil {
					return err
				}
				st := other.Settings()
				opts.ChunkerFrom = &st
				other.Backend().Close()
			}
			be, err := openBackend(ctx, g)
			if err != nil {
				return err
			}
			defer be.Close()
			pw, err := password(g, true)
			if err != nil {
				return err
			}
			r, err := repo.Init(ctx, be, pw, opts)
			if err != nil {
				return errorf("init %s: %w", be.Location(), err)
			}
			if out.json {
				out.emit(map[string]any{"type": "summary", "repository": be.Location(), "id": r.ID()})
			} else {
				out.printf("created cairn repository %s at %s\n", r.ID()[:8], be.Location())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&chunkerFrom, "chunker-from", "", "copy the chunker seed of this repository, so both deduplicate alike")
	cmd.Flags().StringVar(&chunkerFromPasswordFile, "chunker-from-password-file", "", "password file of the --chunker-from repository")
	return cmd
}
