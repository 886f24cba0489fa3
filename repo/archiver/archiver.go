package archiver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/chunker"
)

// Options tune one backup.
type Options struct {
	// Parent and Snapshots are Backup's: the parent snapshot, whose
	// unchanged files are not read again (nil for none), and the
	// repository's snapshots as the caller listed them, to make the label
	// unique (nil lists them again). BackupMany takes both from its
	// targets instead.
	Parent    *repo.Snapshot
	Snapshots []*repo.Snapshot
	Host      string // default: os.Hostname
	User      string
	// Label names the snapshot of every target without a label of its
	// own; default <UTC time>_<host>. Labels are made unique per
	// repository.
	Label   string
	Plan    string
	Tags    []string
	Program string

	// Exclude, if set, is asked for every entry below a source; true
	// leaves it (and a directory's whole subtree) out.
	Exclude func(path string, isDir bool) bool
	// OneFileSystem keeps the walk on the filesystem of each source.
	OneFileSystem bool
	// SkipPaths are absolute paths the walk never enters nor records, nor
	// even stats: the mount point of the cairn mount running the backup,
	// whose walk would deadlock. A source inside one is an error.
	SkipPaths []string
	// SkipVirtual keeps the walk out of FUSE filesystems and virtual ones
	// (proc, sysfs, cgroup, debugfs, ...): their mount points are
	// recorded as empty directories, so that a restore recreates them. A
	// source given explicitly is backed up whatever its filesystem.
	SkipVirtual bool

	Workers  int                          // file readers; 0: GOMAXPROCS+2
	OnError  func(path string, err error) // per-file problems; the backup goes on
	Progress func(Progress)               // called about 4 times a second and once at the end

	// beforeOpen is a test hook run before a file is opened.
	beforeOpen func(path string)
	// onRead is a test hook told of every read of file data: n bytes of
	// path at offset off.
	onRead func(path string, off, n int64)
}

// Progress counts what the backup has done so far, over all its targets:
// Files, Bytes and Unchanged count each source file once however many
// repositories it goes to (Unchanged: files no target needed read),
// NewBytes adds up what every repository stored anew.
type Progress struct {
	Files, Dirs, Bytes, NewBytes, Unchanged, Errors uint64
	Elapsed                                         time.Duration
}

// Target is one repository of a multi-repository backup.
type Target struct {
	Repo   *repo.Repository
	Parent *repo.Snapshot // this repository's parent snapshot; nil for none
	// Snapshots are the repository's snapshots as the caller listed them,
	// to make the label unique; nil lists them again.
	Snapshots []*repo.Snapshot
	Label     string // default: Options.Label
}

// Result is what a backup did in one target.
type Result struct {
	Snapshot *repo.Snapshot // nil when Err != nil
	Err      error          // this repository failed; the others went on
}

// ErrSourceMissing: a source path given to Backup does not exist.
var ErrSourceMissing = errors.New("source path does not exist")

// ErrChanged: a file changed while it was read; the snapshot holds what
// was read.
var ErrChanged = errors.New("file changed while it was read")

// errAllFailed stops the walk once no target is left to save into; each
// target's Result carries its own error.
var errAllFailed = errors.New("every repository failed")

// Backup reads paths (files or directories, made absolute) and saves them
// as one snapshot, with opts.Parent, opts.Snapshots and opts.Label. Per-file
// problems go to opts.OnError; an error return means no snapshot was saved.
func Backup(ctx context.Context, r *repo.Repository, paths []string, opts Options) (*repo.Snapshot, error) {
	res, err := BackupMany(ctx, []Target{{Repo: r, Parent: opts.Parent, Snapshots: opts.Snapshots, Label: opts.Label}}, paths, opts)
	if err != nil {
		return nil, err
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return res[0].Snapshot, nil
}

// BackupMany reads paths once and saves them as one snapshot in each
// target. It returns one Result per target, in order; the error return is
// for problems that stop every target (no source exists, ctx cancelled, a
// source cannot be walked). A target whose repository fails is dropped from
// the rest of the walk and the others go on; the walk stops early only when
// every target has failed. Files are chunked and hashed once per distinct
// chunker (seed and parameters) among the targets, and each source byte is
// read once.
func BackupMany(ctx context.Context, targets []Target, paths []string, opts Options) ([]Result, error) {
	start := time.Now()
	if len(targets) == 0 {
		return nil, errors.New("no repository to back up into")
	}
	if len(paths) == 0 {
		return nil, errors.New("nothing to back up")
	}
	skip, err := newSkipper(opts.SkipPaths)
	if err != nil {
		return nil, err
	}
	var sources []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if s := skip.covers(abs); s != "" {
			return nil, fmt.Errorf("%s: inside %s, which the backup skips", p, s)
		}
		if _, err := os.Lstat(abs); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: %w", p, ErrSourceMissing)
			}
			return nil, err
		}
		sources = append(sources, abs)
	}
	if sources, err = resolveNested(sources); err != nil {
		return nil, err
	}
	sources = dropNested(sources)
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0) + 2
	}

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	a := newArchiver(ctx, stop, targets, opts, skip)

	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.worker(ctx)
		}()
	}
	stopProgress := a.reportProgress(start)

	rootIDs := make([]*repo.ID, len(a.targets))
	for i, t := range a.targets {
		if t.Parent != nil {
			rootIDs[i] = &t.Parent.Tree
		}
	}
	ids, err := a.saveRoot(ctx, sources, a.loadTrees(rootIDs), rootIDs)
	close(a.jobs)
	wg.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	if errors.Is(err, errAllFailed) {
		err = nil // each target says why
	}
	results := make([]Result, len(a.targets))
	var fin sync.WaitGroup
	for i, t := range a.targets {
		fin.Add(1)
		go func() {
			defer fin.Done()
			if err != nil || t.failed.Load() {
				// Index what did reach storage so a retry can reuse it.
				_ = t.Repo.FlushSince(context.WithoutCancel(t.ctx), t.mark)
				results[i] = Result{Err: t.err}
				return
			}
			results[i] = a.finish(t, ids[i], sources, start)
		}()
	}
	fin.Wait()
	stopProgress()
	if err != nil {
		return nil, err
	}
	return results, nil
}

// finish flushes target t and saves its snapshot of root tree id.
func (a *archiver) finish(t *target, id repo.ID, sources []string, start time.Time) Result {
	ctx := t.ctx
	if err := t.Repo.FlushSince(ctx, t.mark); err != nil {
		return Result{Err: err}
	}
	opts := a.opts
	snap := &repo.Snapshot{
		Time: start, Host: opts.Host, User: opts.User, Plan: opts.Plan,
		Paths: sources, Tags: opts.Tags, Tree: id, Program: opts.Program,
		Summary: repo.Summary{
			Files: a.files.Load(), Dirs: a.dirs.Load(), Others: a.others.Load(),
			Bytes: a.bytes.Load(), NewBytes: t.newBytes.Load(),
			Unreadable: a.errs.Load(), Unchanged: t.unchanged.Load(),
			Duration: time.Since(start).Seconds(),
		},
	}
	if t.Parent != nil {
		pid := t.Parent.ID()
		snap.Parent = &pid
	}
	existing := t.Snapshots
	if existing == nil {
		var err error
		if existing, err = t.Repo.Snapshots(ctx); err != nil {
			return Result{Err: err}
		}
	}
	snap.Label = cmp.Or(t.Label, opts.Label, repo.LabelTime(start)+"_"+opts.Host)
	if _, err := t.Repo.SaveSnapshotUnique(ctx, snap, existing); err != nil {
		return Result{Err: err}
	}
	return Result{Snapshot: snap}
}

// resolveNested replaces each source that lies below another source but
// behind a symlink (A and A/lnk/sub) by its real path: the enclosing
// source records lnk as a symlink, so the nested one cannot be recorded
// under the path as given, and dropping it would lose it silently. It is
// backed up as a tree of its own at the path the link leads to (which
// dropNested then drops if another source holds it). Links are followed
// as for the walk's way to a source: root's and the user's own only.
func resolveNested(paths []string) ([]string, error) {
	out := slices.Clone(paths)
	for i, p := range paths {
		var outer string
		for _, q := range paths {
			if q != p && (q == "/" || strings.HasPrefix(p, q+"/")) && len(q) > len(outer) {
				outer = q
			}
		}
		if outer == "" || !linkBetween(outer, filepath.Dir(p)) {
			continue
		}
		real, err := realPath(filepath.Dir(p))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out[i] = filepath.Join(real, filepath.Base(p))
	}
	return out, nil
}

// linkBetween reports whether a directory below outer on the way to dir
// (dir included) is a symlink.
func linkBetween(outer, dir string) bool {
	for d := dir; d != outer && len(d) > len(outer); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return true
		}
	}
	return false
}

// dropNested removes sources inside other sources, and duplicates.
func dropNested(paths []string) []string {
	slices.Sort(paths)
	paths = slices.Compact(paths)
	var out []string
	for _, p := range paths {
		nested := false
		for _, q := range out {
			if q == "/" || strings.HasPrefix(p, q+"/") {
				nested = true
				break
			}
		}
		if !nested {
			out = append(out, p)
		}
	}
	return out
}

// archiver is one run of BackupMany.
//
// Concurrency: the walk runs on the calling goroutine and on up to
// GOMAXPROCS directory walkers (dirSlots); files are read by the workers
// (jobs). Everything a directory's entries hold is complete once their
// done channels are closed, so a directory builds its trees without locks.
// Per-target state that several goroutines touch is atomic (counters,
// failed) or written once under target.once (err, read only after the
// walk). Nodes are shared between targets whose records agree and are not
// changed once an entry is complete.
type archiver struct {
	opts    Options
	names   *idNames
	skip    *skipper
	targets []*target
	groups  []*seedGroup // targets by chunker
	live    atomic.Int64 // targets not failed
	stop    context.CancelCauseFunc

	minChunk, maxChunk int // smallest Min and largest Max of the groups

	jobs     chan *fileJob
	dirSlots chan struct{} // bounds directory walkers beyond the first
	bigSlots chan struct{} // bounds files streamed through the chunker at once

	files, dirs, others, bytes, unchanged, errs atomic.Uint64

	bufs      sync.Pool // *[]byte for streaming, the largest Max plus a read block
	smallBufs sync.Pool // *[]byte of minChunk bytes, for regions that are one chunk
	midBufs   sync.Pool // *[]byte of up to maxChunk bytes, for regions cut in memory
	encBufs   sync.Pool // *[]byte, a chunk encoded once for several targets
}

// target is one Target during the run.
type target struct {
	Target
	idx   int // in archiver.targets
	group *seedGroup
	mark  repo.SaveMark
	// ctx is cancelled when the target fails or the run stops; every
	// call into its repository uses it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	newBytes, unchanged atomic.Uint64
	failed              atomic.Bool
	once                sync.Once
	err                 error // set once, before failed
}

// seedGroup is the targets that cut chunks alike: same chunker seed and
// parameters, so a file is chunked and hashed once for all of them.
type seedGroup struct {
	idx     int
	table   *chunker.Table
	cp      chunker.Params
	targets []*target
}

func newArchiver(ctx context.Context, stop context.CancelCauseFunc, targets []Target, opts Options, skip *skipper) *archiver {
	a := &archiver{
		opts: opts, names: newIDNames(), skip: skip, stop: stop,
		jobs:     make(chan *fileJob, opts.Workers),
		dirSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		bigSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	type key struct {
		seed chunker.Seed
		cp   chunker.Params
	}
	byKey := map[key]*seedGroup{}
	for _, tg := range targets {
		t := &target{Target: tg, idx: len(a.targets), mark: tg.Repo.SaveMark()}
		t.ctx, t.cancel = context.WithCancelCause(ctx)
		st := tg.Repo.Settings()
		k := key{st.ChunkerSeed, st.Chunker}
		g := byKey[k]
		if g == nil {
			g = &seedGroup{idx: len(a.groups), table: tg.Repo.ChunkerTable(), cp: st.Chunker}
			byKey[k] = g
			a.groups = append(a.groups, g)
			if len(a.groups) == 1 || st.Chunker.Min < a.minChunk {
				a.minChunk = st.Chunker.Min
			}
			a.maxChunk = max(a.maxChunk, st.Chunker.Max)
		}
		g.targets = append(g.targets, t)
		t.group = g
		a.targets = append(a.targets, t)
	}
	a.live.Store(int64(len(a.targets)))
	a.bufs.New = func() any { b := make([]byte, a.maxChunk+(1<<20)); return &b }
	a.smallBufs.New = func() any { b := make([]byte, a.minChunk); return &b }
	a.midBufs.New = func() any { return new([]byte) }
	a.encBufs.New = func() any { return new([]byte) }
	return a
}

// fail drops target t from the rest of the backup with err; the last
// target to fail stops the walk.
func (a *archiver) fail(t *target, err error) {
	t.once.Do(func() {
		t.err = err
		t.failed.Store(true)
		t.cancel(err)
		if a.live.Add(-1) == 0 {
			a.stop(errAllFailed)
		}
	})
}

// repoErr handles err from target t's repository: when the run itself was
// stopped that is the error, returned for the caller to pass up; anything
// else fails t alone and nil is returned.
func (a *archiver) repoErr(ctx context.Context, t *target, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	a.fail(t, err)
	return nil
}

func (a *archiver) reportProgress(start time.Time) (stop func()) {
	if a.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				a.opts.Progress(a.progress(start))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		a.opts.Progress(a.progress(start))
	}
}

func (a *archiver) progress(start time.Time) Progress {
	var newBytes uint64
	for _, t := range a.targets {
		newBytes += t.newBytes.Load()
	}
	return Progress{
		Files: a.files.Load(), Dirs: a.dirs.Load(), Bytes: a.bytes.Load(),
		NewBytes: newBytes, Unchanged: a.unchanged.Load(), Errors: a.errs.Load(),
		Elapsed: time.Since(start),
	}
}

func (a *archiver) report(path string, err error) {
	a.errs.Add(1)
	if a.opts.OnError != nil {
		a.opts.OnError(path, err)
	}
}

// xattrsReported reads the xattrs of the entry at path with x, reporting
// a failure other than the entry having vanished.
func (a *archiver) xattrsReported(path string, x xattrReader) []repo.Xattr {
	xa, err := readXattrs(x)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		a.report(path, fmt.Errorf("xattrs: %w", err))
	}
	return xa
}

// xattrsFd reads the xattrs of the open entry fd at path.
func (a *archiver) xattrsFd(path string, fd int) []repo.Xattr {
	return a.xattrsReported(path, fdXattrs(fd))
}

// xattrsAt reads the xattrs of entry name of directory dirfd, at path.
func (a *archiver) xattrsAt(path string, dirfd int, name string) []repo.Xattr {
	return a.xattrsReported(path, pathXattrs(atPath(dirfd, name, path)))
}
