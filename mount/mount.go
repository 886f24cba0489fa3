package mount

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/fs"
	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pool"
)

// Repo is a repository the mount shows under repos/.
type Repo struct {
	Name   string // its directory under repos/
	Target plan.Target
	// Optional: one of the configuration's list, which the mount goes on
	// without if it cannot be opened (plan runs try again).
	Optional bool
}

// Repos lists the repositories a mount shows: those of cfg (nil: none)
// by name, then each of args (--repo values), a configured repository's
// name or a location, named after its last path element.
func Repos(cfg *plan.Config, args []string) []Repo {
	var out []Repo
	if cfg != nil {
		names := make([]string, 0, len(cfg.Repos))
		for name := range cfg.Repos {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			out = append(out, Repo{Name: name, Target: plan.Target{Name: name, Def: cfg.Repos[name]}, Optional: true})
		}
	}
	for _, arg := range args {
		t := cfg.Resolve(arg)
		name := t.Name
		if t.Bare {
			name = filepath.Base(arg)
		}
		out = append(out, Repo{Name: name, Target: t})
	}
	return out
}

// Options say what to mount, and how.
type Options struct {
	Dir   string // an existing directory, not a mount point
	Repos []Repo
	// Config is the configuration file whose plans are shown and run;
	// "" for none.
	Config    string
	CacheSize int64 // bytes of the chunk cache all repositories share
	FS        fs.Options
	Opener    plan.Opener
	// Plans are the options of the plans' Manager; the mount sets
	// SkipPaths (Dir, which a backup must never walk into) and
	// OnSnapshot.
	Plans plan.ManagerOptions
	// OnSkip, if set, hears of an optional repository that could not be
	// opened and is not shown.
	OnSkip func(name string, err error)
	// OnReady, if set, is called once the mount is usable.
	OnReady func()
}

// Run mounts, serves until the directory is unmounted or ctx is cancelled
// (then it unmounts), and then stops the runs going on (their snapshots
// are not saved) and waits for them.
func Run(ctx context.Context, o Options) error {
	if err := CheckDir(o.Dir); err != nil {
		return err
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	chunks := cache.New[repo.ID](o.CacheSize)
	pl := pool.New()
	defer pl.Close(context.WithoutCancel(ctx))
	repoPool := plan.RepoPool{Pool: pl, Opener: o.Opener}

	var repos []*tree.Repo
	byName := map[string]*tree.Repo{}
	for _, r := range o.Repos {
		if _, dup := byName[r.Name]; dup {
			if !r.Target.Bare && !r.Optional {
				continue // --repo NAME of a configured repository: shown already
			}
			return fmt.Errorf("two repositories named %q: mount them at different times, or rename a directory", r.Name)
		}
		e, err := repoPool.Get(ctx, r.Target.OpenName(), r.Target.Def)
		if err != nil {
			if r.Optional {
				if o.OnSkip != nil {
					o.OnSkip(r.Name, err)
				}
				continue
			}
			return err
		}
		rp := tree.NewRepo(bg, r.Name, e.Repo(), chunks)
		if _, err := rp.Snapshots(ctx); err != nil {
			return err
		}
		byName[r.Name] = rp
		repos = append(repos, rp)
	}

	var plans tree.Plans
	var mgr *plan.Manager
	if o.Config != "" {
		popts := o.Plans
		popts.SkipPaths = append(slices.Clone(popts.SkipPaths), o.Dir)
		popts.OnSnapshot = func(name string) {
			if rp := byName[name]; rp != nil {
				rp.Invalidate()
				rp.Snapshots(bg) // reloads now: latest moves, its cached target is dropped
			}
		}
		var err error
		if mgr, err = plan.NewManager(bg, o.Config, repoPool, popts); err != nil {
			return err
		}
		plans = mgr
	}

	server, err := fs.Mount(o.Dir, tree.NewRoot(repos, plans), o.FS)
	if err != nil {
		return err
	}
	for _, rp := range repos {
		rp.OnChange(func() { server.InvalidateLatest(rp.Name()) })
	}
	if mgr != nil {
		go mgr.Schedule(bg)
	}
	if o.OnReady != nil {
		o.OnReady()
	}
	go func() {
		<-ctx.Done()
		server.Unmount()
	}()
	server.Wait()
	if mgr != nil {
		stop()
		mgr.Wait()
	}
	return nil
}

// CheckDir refuses what cannot be mounted on: a missing directory, a
// file, a directory that is a mount point already.
func CheckDir(dir string) error {
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
	return nil
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
