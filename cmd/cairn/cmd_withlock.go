package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
)

// withLockTermWait is how long a command sent SIGTERM (the lock was lost,
// or cairn was interrupted) has to end before it is killed.
const withLockTermWait = 10 * time.Second

func withLockCmd(g *globalFlags) *cobra.Command {
	var exclusive bool
	cmd := &cobra.Command{
		Use:   "with-lock [--exclusive] -- COMMAND [ARG...]",
		Short: "Run a command while holding (and refreshing) a lock on the repository",
		Long: `Take a shared lock on the --repo repository (--exclusive: the exclusive
lock, which waits for no other to be held) and run COMMAND while it is
held, refreshing it for as long as COMMAND runs: e.g. an rclone sync of
the repository, or a snapshot of the disk it is on. If the lock is lost
(it could not be refreshed, or someone removed it), COMMAND is sent
SIGTERM and cairn exits 1 saying so. cairn exits 1 too if COMMAND fails,
and forwards SIGINT and SIGTERM to it as SIGTERM.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := openRepo(ctx, g)
			if err != nil {
				return err
			}
			defer r.Backend().Close()
			opts := repo.LockOptions{}
			if exclusive {
				opts.Settle = r.Settle()
			}
			// The lock is not tied to ctx: an interrupt ends the command
			// first, then the lock is removed.
			l, err := r.Lock(context.WithoutCancel(ctx), exclusive, opts)
			if err != nil {
				return err
			}
			defer l.Unlock(context.WithoutCancel(ctx))
			return runLocked(ctx, l, args)
		},
	}
	cmd.Flags().SetInterspersed(false) // COMMAND's own flags are not ours, even without --
	cmd.Flags().BoolVar(&exclusive, "exclusive", false, "take the exclusive lock (no backup, copy or prune runs meanwhile)")
	return cmd
}

// runLocked runs args while l is held. It ends the command with SIGTERM
// if the lock is lost or ctx is cancelled.
func runLocked(ctx context.Context, l *repo.Lock, args []string) error {
	c := exec.Command(args[0], args[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	name := strings.Join(args, " ")
	var stopped error
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	case <-l.Context().Done():
		stopped = fmt.Errorf("%w; %s was sent SIGTERM", context.Cause(l.Context()), name)
	case <-ctx.Done():
		stopped = fmt.Errorf("interrupted; %s was sent SIGTERM", name)
	}
	c.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(withLockTermWait):
		c.Process.Kill()
		<-exited
	}
	return stopped
}
