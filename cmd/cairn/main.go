// Command cairn is the command-line front end of the cairn backup engine
// (DESIGN.md §10): flags, environment, printing and exit codes, nothing
// else. The engine does the work: repo and its packages (repo/location
// opens storage, repo/pool shares repositories and locks per operation),
// plan (definitions, runs, retention) and mount (the mount process).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes of DESIGN.md §10.
const (
	exitOK      = 0
	exitFailure = 1
	exitPartial = 3
)

// errPartial makes a command exit 3: it finished, but some files could
// not be read (backup) or restored (restore); each was named on stderr.
var errPartial = errors.New("finished with errors")

type globalFlags struct {
	repos        []string // --repo, repeatable for mount
	passwordFile string
	json         bool
	quiet        bool
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// CAIRN_CPUPROFILE=FILE writes a CPU profile, for make bench and for
	// looking into a slow run.
	if f := os.Getenv("CAIRN_CPUPROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			pprof.StartCPUProfile(out)
			defer func() { pprof.StopCPUProfile(); out.Close() }()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "Deduplicating, encrypted backups you can drive with ordinary file tools",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringArrayVarP(&g.repos, "repo", "r", nil, "repository: a path, URL or configured name (default $CAIRN_REPOSITORY); mount takes several")
	pf.StringVar(&g.passwordFile, "password-file", "", "read the password from this file (or $CAIRN_PASSWORD_FILE, $CAIRN_PASSWORD)")
	pf.BoolVar(&g.json, "json", false, "print JSON lines on stdout, and nothing else")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print no progress")

	root.AddCommand(
		initCmd(g), backupCmd(g), snapshotsCmd(g), lsCmd(g), restoreCmd(g),
		unlockCmd(g), withLockCmd(g), checkCmd(g), mountCmd(g), forgetCmd(g), pruneCmd(g),
	)
	root.SetArgs(args)
	root.SetContext(ctx)
	err := root.Execute()
	out := newOutput(g)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errPartial):
		return exitPartial
	default:
		out.fatal(err)
		return exitFailure
	}
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
