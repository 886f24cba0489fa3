package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/fs"
	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
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
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if mounted, err := isMountPoint(dir); err != nil {
		return err
	} else if mounted {
		return fmt.Errorf("%s is already a mount point: unmount it first (umount %s)", dir, dir)
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

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	chunks := cache.New[repo.ID](cacheSize)
	shared := newSharedRepos(g)
	defer shared.close(context.WithoutCancel(ctx))

	// Configured repositories first, by name; then each --repo, named
	// after the last element of its path.
	var targets []repoTarget
	configured := 0
	if cfg != nil {
		for _, name := range sortedNames(cfg.Repos) {
			def := cfg.Repos[name]
			targets = append(targets, repoTarget{name: name, url: def.URL, def: &def})
			configured++
		}
	}
	for _, url := range g.repos {
		t := resolveRepo(cfg, url)
		if t.def == nil {
			t.name = filepath.Base(strings.TrimRight(url, "/"))
		}
		targets = append(targets, t)
	}
	var repos []*tree.Repo
	byName := map[string]*tree.Repo{}
	for i, t := range targets {
		if _, dup := byName[t.name]; dup {
			if t.def != nil && i >= configured {
				continue // --repo NAME of a configured repository: shown already
			}
			return fmt.Errorf("two repositories named %q: mount them at different times, or rename a directory", t.name)
		}
		o, err := openLocked(ctx, g, t)
		if err != nil {
			if i < configured {
				// An unreachable configured repository must not keep
				// the others from being mounted; plan runs retry it.
				fmt.Fprintf(os.Stderr, "cairn: warning: repository %s not mounted: %v\n", t.name, err)
				continue
			}
			return err
		}
		shared.add(t.name, o.r, o.lock)
		rp := tree.NewRepo(bg, t.name, o.r, chunks)
		if _, err := rp.Snapshots(ctx); err != nil {
			return err
		}
		byName[t.name] = rp
		repos = append(repos, rp)
	}

	var plans tree.Plans
	var mgr *plan.Manager
	var mounted *fs.Mounted
	if cfg != nil {
		popts := planOptions()
		popts.SkipPaths = []string{dir}
		popts.OnSnapshot = func(name string) {
			if rp := byName[name]; rp != nil {
				rp.Invalidate()
				rp.Snapshots(bg) // reloads now: latest moves, its cached target is dropped
			}
		}
		popts.OnEvent = func(planName string, ev plan.Event) {
			if ev.Event == "done" || ev.Event == "repo_error" || ev.Event == "skipped" {
				fmt.Fprintf(os.Stderr, "cairn: plan %s: %s %s%s\n", planName, ev.Event, ev.Repo, suffix(ev.Message, ev.Error))
			}
		}
		mgr, err = plan.NewManager(bg, cfgPath, shared, popts)
		if err != nil {
			return err
		}
		plans = mgr
	}

	server, err := fs.Mount(dir, tree.NewRoot(repos, plans), opts)
	if err != nil {
		return err
	}
	mounted = server
	for _, rp := range repos {
		rp.OnChange(func() { mounted.InvalidateLatest(rp.Name()) })
	}
	if mgr != nil {
		go mgr.Schedule(bg)
	}
	fmt.Fprintf(os.Stderr, "cairn: mounted at %s\n", dir)
	tellParent("ok")

	go func() {
		<-ctx.Done() // SIGINT, SIGTERM
		server.Unmount()
	}()
	server.Wait()
	if mgr != nil {
		stop() // runs going on stop early; their snapshots are not saved
		mgr.Wait()
	}
	return nil
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

// sortedNames lists a map's keys in order.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// isMountPoint reports whether dir is listed in /proc/self/mountinfo.
func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
