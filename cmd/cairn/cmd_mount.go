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
		logFile    string
	)
	cmd := &cobra.Command{
		Use:   "mount DIR",
		Short: "Mount the repositories as a filesystem at DIR (until unmounted)",
		Long: `Mount the repositories and plans of the configuration file, and every
--repo, at DIR: repositories at DIR/repos/<name>/ (a --repo path is named
after its last element), plans at DIR/plans/<name>/. The mount process
runs the plans by their schedules. Runs in the foreground until unmounted
(umount DIR, or Ctrl-C); with --background it returns once the mount is
ready, logging to --log FILE (by default a file under
$XDG_STATE_HOME/cairn/, that is ~/.local/state/cairn/).`,
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
			out := newOutput(g)
			if background {
				if logFile == "" {
					if logFile, err = defaultMountLog(dir); err != nil {
						return err
					}
				}
				return startBackground(out, dir, logFile)
			}
			if logFile != "" {
				if err := logToFile(logFile); err != nil {
					return err
				}
			}
			logTo(out)
			err = runMount(ctx, g, out, dir, configFile, size, fs.Options{AllowOther: allowOther, Debug: debug})
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
	f.StringVar(&logFile, "log", "", "append the mount's log to this file (with --background, by default a file under $XDG_STATE_HOME/cairn/)")
	f.BoolVar(&debug, "debug", false, "log every FUSE request")
	f.MarkHidden("debug")
	return cmd
}

func runMount(ctx context.Context, g *globalFlags, out *output, dir, configFile string, cacheSize int64, opts fs.Options) error {
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
			out.note("plan", fmt.Sprintf("plan %s: %s", planName, ev),
				map[string]any{"plan": planName, "event": ev.Event, "repo": ev.Repo, "error": ev.Error})
		}
	}
	o.OnSkip = func(name string, err error) {
		// An unreachable configured repository must not keep the others
		// from being mounted; plan runs retry it.
		out.warn("", fmt.Errorf("repository %s not mounted: %w", name, err))
	}
	o.OnReady = func() {
		out.note("mounted", "mounted at "+dir, map[string]any{"dir": dir, "pid": os.Getpid()})
		tellParent("ok")
	}
	return mount.Run(ctx, o) // until unmounted, SIGINT or SIGTERM
}

// defaultMountLog is the log file of a background mount of dir without
// --log: $XDG_STATE_HOME/cairn/mount-<dir with '-' for '/'>.log.
func defaultMountLog(dir string) (string, error) {
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" || !filepath.IsAbs(state) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no log file for the background mount: %w (use --log FILE)", err)
		}
		state = filepath.Join(home, ".local", "state")
	}
	name := strings.ReplaceAll(strings.Trim(dir, "/"), "/", "-")
	if name == "" {
		name = "root"
	}
	return filepath.Join(state, "cairn", "mount-"+name+".log"), nil
}

// openLog opens a log file for appending, creating it (0600) and its
// directory (0700) if need be.
func openLog(file string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return f, nil
}

// logToFile makes file the process's standard error, descriptor 2
// included, so that every line the mount logs (ours, the log package's,
// go-fuse's, a panic's) lands in it.
func logToFile(file string) error {
	f, err := openLog(file)
	if err != nil {
		return err
	}
	if err := syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
		f.Close()
		return fmt.Errorf("log: %w", err)
	}
	f.Close()
	return nil
}

// startBackground runs this command again without --background, detached,
// its standard error appended to logFile, and returns once it reports the
// mount ready (or failed).
func startBackground(out *output, dir, logFile string) error {
	logf, err := openLog(logFile)
	if err != nil {
		return err
	}
	defer logf.Close()
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
	c.Stdin, c.Stdout, c.Stderr = devnull, logf, logf
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
		out.note("mounted", fmt.Sprintf("mounted at %s (pid %d), logging to %s", dir, c.Process.Pid, logFile),
			map[string]any{"dir": dir, "pid": c.Process.Pid, "log": logFile})
		c.Process.Release()
		return nil
	case strings.HasPrefix(line, "error: "):
		c.Wait()
		return errors.New(strings.TrimPrefix(line, "error: "))
	default:
		err := c.Wait()
		return fmt.Errorf("the mount process ended before the mount was ready: %v (see %s)", err, logFile)
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
