package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo/pool"
)

// configPath is --config, else plan.DefaultPath.
func configPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return plan.DefaultPath()
}

// planOptions are the Manager options of a process.
func planOptions() plan.ManagerOptions {
	host, _ := os.Hostname()
	return plan.ManagerOptions{Host: host, Program: "cairn " + version}
}

// runPlan runs a plan once from the command line (cairn backup --plan):
// progress on a terminal's stderr or as JSON lines under --json, the
// events of the run as warnings and notes, a summary per repository.
// It exits 1 if any repository failed, 3 if some file was unreadable.
func runPlan(ctx context.Context, g *globalFlags, out *output, configFile, name string) error {
	path, err := configPath(configFile)
	if err != nil {
		return err
	}
	pl := pool.New()
	defer pl.Close(context.WithoutCancel(ctx))
	opts := planOptions()
	opts.OnEvent = func(_ string, ev plan.Event) {
		switch ev.Event {
		case "file_error":
			out.warn(ev.Path, errors.New(ev.Error))
		case "repo_error":
			out.warn(ev.Repo, errors.New(ev.Error))
		case "hook_output":
			out.info("%s hook: %s\n", ev.Hook, ev.Message)
		case "hook":
			if ev.Error != "" {
				out.warn(ev.Hook+" hook", errors.New(ev.Error))
			}
		case "forget":
			out.info("%s: forgot %s (%s)\n", ev.Repo, ev.Snapshot, ev.Message)
		}
	}
	opts.OnProgress = func(_ string, p plan.Progress) {
		total := int64(-1)
		if p.TotalBytes > 0 {
			total = int64(p.TotalBytes)
		}
		out.progress("backup", int64(p.Bytes), total, map[string]any{
			"type": "progress", "plan": name, "files": p.Files, "dirs": p.Dirs, "bytes": p.Bytes,
			"new_bytes": p.NewBytes, "errors": p.Errors,
		})
	}
	bg, cancel := context.WithCancel(ctx)
	defer cancel()
	m, err := plan.NewManager(bg, path, plan.RepoPool{Pool: pl, Opener: g.opener()}, opts)
	if err != nil {
		return err
	}
	if _, ok := m.Config().Plans[name]; !ok {
		return fmt.Errorf("plan %q is not defined in %s", name, path)
	}
	res, err := m.RunWait(ctx, name)
	out.done()
	if err != nil {
		return err
	}
	for _, r := range res.Repos {
		if out.json {
			out.emit(map[string]any{
				"type": "summary", "plan": name, "repo": r.Repo, "ok": r.OK, "snapshot": r.Snapshot,
				"label": r.Label, "error": r.Error, "files": r.Files, "bytes": r.Bytes,
				"new_bytes": r.NewBytes, "unchanged": r.Unchanged, "unreadable": r.Unreadable,
				"forgotten": r.Forgotten, "duration": r.Duration,
			})
			continue
		}
		if !r.OK {
			out.printf("%s: failed: %s\n", r.Repo, r.Error)
			continue
		}
		out.printf("%s: snapshot %s saved as %s\n", r.Repo, r.Snapshot[:8], r.Label)
		out.printf("  %s, %s; %d unchanged; %s new data; %.1fs\n",
			plural(r.Files, "file", "files"), humanBytes(r.Bytes), r.Unchanged, humanBytes(r.NewBytes), r.Duration)
		if r.Forgotten > 0 {
			out.printf("  retention forgot %s\n", plural(r.Forgotten, "snapshot", "snapshots"))
		}
		if r.Error != "" {
			out.printf("  %s\n", r.Error)
		}
	}
	switch res.Result {
	case plan.ResultSuccess:
		return nil
	case plan.ResultFailed:
		return fmt.Errorf("plan %s failed: %s", name, res.Error)
	}
	for _, r := range res.Repos {
		if !r.OK || r.Error != "" {
			return fmt.Errorf("plan %s: %s failed", name, r.Repo)
		}
	}
	return errPartial
}
