package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/fs"
	"github.com/cairn-backup/cairn/mount"
	"github.com/cairn-backup/cairn/plan"
)

// readyFDEnv names the descriptor on which a mount started by
// --background reports "ok" or "error: …" to its parent.
const readyFDEnv = "CAIRN_READY_FD"

func mountCmd(g *globalFlags) *cobra.Command {
	var (
		cacheSize  string
		allowOther bool
		background bool
		debug      bool
		configFile string
	)
	cmd := &cobra.Command{
		Use:   "mount DIR",
		Short: "Mount the repositories as a filesystem at DIR (until unmounted)",
		Long: `Mount the repositories and plans of the configuration file, and every
--repo, at DIR: repositories at DIR/repos/<name>/ (a --repo path is named
after its last element), plans at DIR/plans/<name>/. The mount process
runs the plans by their schedules. Runs in the foreground until unmounted
(umount DIR, or Ctrl-C); with --background it returns once the mount is
ready.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			size, err := parseSize(cacheSize)
			if err != nil {
				return errorf("--cache-size: %w", err)
			}
			if background {
				return startBackground(dir)
			}
			err = runMount(ctx, g, dir, configFile, size, fs.Options{AllowOther: allowOther, Debug: debug})
			if err != nil {
				tellParent("error: " + err.Error())
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "configuration file of repositories and plans (default $CAIRN_CONFIG, else ~/.config/cairn/config.json)")
	f.StringVar(&cacheSize, "cache-size", "512MiB", "size of the chunk cache shared by all repositories")
	f.BoolVar(&allowOther, "allow-other", false, "let other users in (the kernel checks the recorded modes)")
	f.BoolVar(&background, "background", false, "return once the mount is ready, leaving it running")
	f.BoolVar(&debug, "debug", false, "log every FUSE request")
	f.MarkHidden("debug")
	return cmd
}

func runMount(ctx context.Context, g *globalFlags, dir, configFile string, cacheSize int64, opts fs.Options) error {
	if err := mount.CheckDir(dir); err != nil {
		return err
	}
	// The configuration file: --config, $CAIRN_CONFIG or the default
	// path. Without --repo the mount shows its repositories and plans;
	// the default file need not exist when --repo is given.
	cfgPath, err := configPath(configFile)
	if err != nil {
		return err
	}
	var cfg *plan.Config
	if _, serr := os.Stat(cfgPath); serr == nil || configFile != "" || len(g.repos) == 0 {
		if cfg, err = plan.Load(cfgPath); err != nil {
			return err
		}
	}
	if len(g.repos) == 0 && (cfg == nil || len(cfg.Repos) == 0 && len(cfg.Plans) == 0) {
		return fmt.Errorf("no repository given: use --repo PATH (repeatable), or define repositories in %s", cfgPath)
	}
	softMemoryLimit(cacheSize + 256<<20)
	o := mount.Options{Dir: dir, Repos: mount.Repos(cfg, g.repos), CacheSize: cacheSize, FS: opts, Opener: g.opener(), Plans: planOptions()}
	if cfg != nil {
		o.Config = cfgPath
	}
	o.Plans.OnEvent = func(planName string, ev plan.Event) {
		if ev.Event == "done" || ev.Event == "repo_error" || ev.Event == "skipped" {
			fmt.Fprintf(os.Stderr, "cairn: plan %s: %s %s%s\n", planName, ev.Event, ev.Repo, suffix(ev.Message, ev.Error))
		}
	}
	o.OnSkip = func(name string, err error) {
		// An unreachable configured repository must not keep the others
		// from being mounted; plan runs retry it.
		fmt.Fprintf(os.Stderr, "cairn: warning: repository %s not mounted: %v\n", name, err)
	}
	o.OnReady = func() {
		fmt.Fprintf(os.Stderr, "cairn: mounted at %s\n", dir)
		tellParent("ok")
	}
	return mount.Run(ctx, o) // until unmounted, SIGINT or SIGTERM
}

// suffix joins a message and an error for a log line.
func suffix(msg, errText string) string {
	switch {
	case errText != "" && msg != "":
		return ": " + msg + ": " + errText
	case errText != "":
		return ": " + errText
	case msg != "":
		return ": " + msg
	}
	return ""
}

// startBackground runs this command again without --background, detached,
// and returns once it reports the mount ready (or failed).
func startBackground(dir string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--background" {
			args = append(args, a)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	c := exec.Command(self, args...)
	c.Env = append(os.Environ(), readyFDEnv+"=3")
	c.ExtraFiles = []*os.File{w}
	c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		fmt.Fprintf(os.Stderr, "cairn: mounted at %s (pid %d)\n", dir, c.Process.Pid)
		c.Process.Release()
		return nil
	case strings.HasPrefix(line, "error: "):
		c.Wait()
		return errors.New(strings.TrimPrefix(line, "error: "))
	default:
		err := c.Wait()
		return fmt.Errorf("the mount process ended before the mount was ready: %v", err)
	}
}

// tellParent reports readiness to a parent waiting in startBackground.
func tellParent(msg string) {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if err != nil {
		return
	}
	os.Unsetenv(readyFDEnv)
	f := os.NewFile(uintptr(fd), "ready")
	fmt.Fprintln(f, msg)
	f.Close()
}

// parseSize reads sizes such as 512MiB, 2GiB, 100MB or 1048576.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512MiB)", s)
	}
	return int64(n * float64(mult)), nil
}
