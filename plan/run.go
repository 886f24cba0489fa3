package plan

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
)

// Results of a run.
const (
	ResultSuccess = "success"
	ResultPartial = "partial"
	ResultFailed  = "failed"
)

// acquired is one repository open for a run.
type acquired struct {
	name    string
	r       *repo.Repository
	lockCtx context.Context
	release func()
}

// run runs plan p once: before hooks, one backup into every repository
// of the plan (one walk, one read of each file), retention, after or
// on_error hooks. A repository that fails is reported and the others go
// on.
func (m *Manager) run(ctx context.Context, name string, p Plan, cfg *Config, st *planState, trigger string) *RunResult {
	now := m.opts.Now
	res := &RunResult{Started: now(), Trigger: trigger}
	ev := func(e Event) { st.event(now(), e) }
	finish := func() *RunResult {
		res.Finished = now()
		switch {
		case res.Error != "":
			res.Result = ResultFailed
		default:
			res.Result = ResultSuccess
			ok := 0
			for _, r := range res.Repos {
				if r.OK {
					ok++
				}
				if !r.OK || r.Unreadable > 0 {
					res.Result = ResultPartial
				}
			}
			if ok == 0 {
				res.Result, res.Error = ResultFailed, "no repository got a snapshot"
			}
		}
		ev(Event{Event: "done", Message: res.Result, Error: res.Error})
		return res
	}
	ev(Event{Event: "start", Message: fmt.Sprintf("%s run into %s", trigger, strings.Join(p.Repos, ", "))})
	hooks := hookRunner{m: m, st: st, plan: name, hooks: p.Hooks, secrets: secretEnv(cfg.Repos)}
	onError := func(repoName string) {
		st.setPhase("on_error")
		hooks.run(ctx, "on_error", p.Hooks.OnError, repoName, "", "failed")
	}

	st.setPhase("before")
	if err := hooks.run(ctx, "before", p.Hooks.Before, strings.Join(p.Repos, " "), "", "running"); err != nil {
		res.Error = "before hook failed, run cancelled: " + err.Error()
		onError(strings.Join(p.Repos, " "))
		return finish()
	}

	st.setPhase("open")
	opened := m.acquireAll(ctx, p.Repos, cfg, res, ev)
	defer func() {
		for _, a := range opened {
			a.release()
		}
	}()
	if len(opened) == 0 {
		res.Error = "no repository could be opened"
		onError(strings.Join(p.Repos, " "))
		return finish()
	}

	// Losing any repository's lock stops the run (DESIGN.md §7).
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, a := range opened {
		stop := context.AfterFunc(a.lockCtx, func() { cancel(context.Cause(a.lockCtx)) })
		defer stop()
	}

	st.setPhase("backup")
	results, err := m.backup(bctx, name, p, opened, st, ev)
	if err != nil {
		res.Error = err.Error()
		for _, a := range opened {
			res.repo(a.name).Error = err.Error()
		}
		onError(strings.Join(p.Repos, " "))
		return finish()
	}

	for i, a := range opened {
		rr := res.repo(a.name)
		r := results[i]
		if r.Err != nil {
			rr.Error = r.Err.Error()
			ev(Event{Event: "repo_error", Repo: a.name, Error: rr.Error})
			continue
		}
		s := r.Snapshot
		rr.OK, rr.Snapshot, rr.Label = true, s.ID().String(), s.Label
		rr.Files, rr.Bytes, rr.NewBytes = s.Summary.Files, s.Summary.Bytes, s.Summary.NewBytes
		rr.Unchanged, rr.Unreadable, rr.Duration = s.Summary.Unchanged, s.Summary.Unreadable, s.Summary.Duration
		ev(Event{Event: "snapshot", Repo: a.name, Snapshot: s.Label,
			Message: fmt.Sprintf("%d files, %d bytes, %d new bytes, %d unchanged, %d unreadable",
				s.Summary.Files, s.Summary.Bytes, s.Summary.NewBytes, s.Summary.Unchanged, s.Summary.Unreadable)})
	}

	if !p.Retention.Empty() {
		st.setPhase("retention")
		for _, a := range opened {
			rr := res.repo(a.name)
			if !rr.OK {
				continue
			}
			n, err := m.retain(bctx, a, name, p.Retention, ev)
			rr.Forgotten = n
			if err != nil {
				ev(Event{Event: "repo_error", Repo: a.name, Error: "retention: " + err.Error()})
				rr.Error = "retention: " + err.Error()
			}
		}
	}
	for _, a := range opened {
		if m.opts.OnSnapshot != nil {
			m.opts.OnSnapshot(a.name)
		}
	}

	st.setPhase("after")
	for _, a := range opened {
		rr := res.repo(a.name)
		if !rr.OK {
			continue
		}
		status := ResultSuccess
		if rr.Unreadable > 0 {
			status = ResultPartial
		}
		if err := hooks.run(ctx, "after", p.Hooks.After, a.name, rr.Label, status); err != nil {
			rr.Error = "after hook failed: " + err.Error()
		}
	}
	for _, rr := range res.Repos {
		if !rr.OK {
			onError(rr.Repo)
		}
	}
	return finish()
}

// repo returns the result for the repository named, adding it in the
// order of the plan.
func (res *RunResult) repo(name string) *RepoResult {
	for i := range res.Repos {
		if res.Repos[i].Repo == name {
			return &res.Repos[i]
		}
	}
	res.Repos = append(res.Repos, RepoResult{Repo: name})
	return &res.Repos[len(res.Repos)-1]
}

// acquireAll opens the plan's repositories concurrently; failures are
// recorded in res. The result keeps the plan's order.
func (m *Manager) acquireAll(ctx context.Context, names []string, cfg *Config, res *RunResult, ev func(Event)) []acquired {
	out := make([]*acquired, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		res.repo(name)
		def, ok := cfg.Repos[name]
		if !ok {
			errs[i] = fmt.Errorf("repository %q is not defined", name)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, lctx, release, err := m.repos.Acquire(ctx, name, def)
			if err == nil {
				// Pick up what other processes added since the last run.
				if err = r.LoadIndex(lctx); err != nil {
					release()
				}
			}
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = &acquired{name: name, r: r, lockCtx: lctx, release: release}
		}()
	}
	wg.Wait()
	var opened []acquired
	for i, name := range names {
		if errs[i] != nil {
			res.repo(name).Error = errs[i].Error()
			ev(Event{Event: "repo_error", Repo: name, Error: errs[i].Error()})
			continue
		}
		opened = append(opened, *out[i])
	}
	return opened
}

// backup runs the one walk of the plan's sources into every repository
// opened.
func (m *Manager) backup(ctx context.Context, name string, p Plan, opened []acquired, st *planState, ev func(Event)) ([]archiver.Result, error) {
	excl, err := p.Excluder()
	if err != nil {
		return nil, err
	}
	start := m.opts.Now()
	label := repo.LabelTime(start) + "_" + name
	var total uint64
	targets := make([]archiver.Target, len(opened))
	for i, a := range opened {
		snaps, err := a.r.Snapshots(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: list snapshots: %w", a.name, err)
		}
		t := archiver.Target{Repo: a.r, Snapshots: snaps, Label: label}
		t.Parent = Parent(snaps, m.opts.Host, name, nil)
		if t.Parent != nil {
			total = max(total, t.Parent.Summary.Bytes)
		}
		targets[i] = t
	}
	opts := archiver.Options{
		Host: m.opts.Host, Plan: name, Tags: p.Tags, Program: m.opts.Program,
		Exclude:       excl.Match,
		OneFileSystem: p.OneFileSystem,
		SkipPaths:     m.opts.SkipPaths,
		SkipVirtual:   !m.opts.IncludeVirtual,
		OnError: func(path string, err error) {
			ev(Event{Event: "file_error", Path: path, Error: err.Error()})
		},
		Progress: func(pr archiver.Progress) {
			p := Progress{Files: pr.Files, Dirs: pr.Dirs, Bytes: pr.Bytes, TotalBytes: total,
				NewBytes: pr.NewBytes, Errors: pr.Errors}
			st.setProgress(p)
			if m.opts.OnProgress != nil {
				m.opts.OnProgress(name, p)
			}
		},
	}
	if u, err := user.Current(); err == nil {
		opts.User = u.Username
	}
	ev(Event{Event: "backup", Message: "reading " + strings.Join(p.Sources, ", ")})
	results, err := archiver.BackupMany(ctx, targets, p.Sources, opts)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, repo.ErrLockLost) {
			err = cause
		}
		return nil, err
	}
	return results, nil
}

// retain applies the plan's retention policy to its snapshots of this
// host in one repository, under the run's shared lock.
func (m *Manager) retain(ctx context.Context, a acquired, name string, pol Retention, ev func(Event)) (int, error) {
	res, err := Forget(ctx, a.r, pol, ForgetOptions{Plan: name, Host: m.opts.Host, Now: m.opts.Now()})
	if err != nil {
		return 0, err
	}
	for _, s := range res.Forgotten {
		ev(Event{Event: "forget", Repo: a.name, Snapshot: s.Label, Message: pol.String()})
	}
	return len(res.Forgotten), nil
}
