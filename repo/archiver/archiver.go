package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	Parent *repo.Snapshot // unchanged files are taken from it; nil for none
	Host   string         // default: os.Hostname
	User   string
	Label  string // default: <UTC time>_<host>, made unique
	// Snapshots are the repository's snapshots as the caller listed them,
	// to make the label unique; nil lists them again.
	Snapshots []*repo.Snapshot
	Plan      string
	Tags      []string
	Program   string

	// Exclude, if set, is asked for every entry below a source; true
	// leaves it (and a directory's whole subtree) out.
	Exclude func(path string, isDir bool) bool
	// OneFileSystem keeps the walk on the filesystem of each source.
	OneFileSystem bool

	Workers  int                          // file readers; 0: GOMAXPROCS+2
	OnError  func(path string, err error) // per-file problems; the backup goes on
	Progress func(Progress)               // called about 4 times a second and once at the end

	// beforeOpen is a test hook run before a file is opened.
	beforeOpen func(path string)
}

// Progress counts what the backup has done so far.
type Progress struct {
	Files, Dirs, Bytes, NewBytes, Unchanged, Errors uint64
	Elapsed                                         time.Duration
}

// ErrSourceMissing: a source path given to Backup does not exist.
var ErrSourceMissing = errors.New("source path does not exist")

// ErrChanged: a file changed while it was read; the snapshot holds what
// was read.
var ErrChanged = errors.New("file changed while it was read")

type archiver struct {
	repo  *repo.Repository
	opts  Options
	names *idNames
	table *chunker.Table
	cp    chunker.Params

	jobs     chan *fileJob
	dirSlots chan struct{} // bounds directory walkers beyond the first
	bigSlots chan struct{} // bounds files streamed through the chunker at once

	files, dirs, others, bytes, newBytes, unchanged, errs atomic.Uint64

	zeroMu    sync.Mutex // guards zeroIDs
	zeroIDs   map[int]repo.ID
	bufs      sync.Pool // *[]byte for the chunker, Max plus a read block
	smallBufs sync.Pool // *[]byte of Min bytes, for regions that are one chunk
	midBufs   sync.Pool // *[]byte of up to Max bytes, for regions cut in memory
}

type fileJob struct {
	path string
	node *repo.Node
	st   unix.Stat_t
	done chan struct{}
	ok   bool // false: leave the node out
	err  error
}

// Backup reads paths (files or directories, made absolute) and saves them
// as one snapshot. Per-file problems go to opts.OnError; an error return
// means no snapshot was saved.
func Backup(ctx context.Context, r *repo.Repository, paths []string, opts Options) (*repo.Snapshot, error) {
	start := time.Now()
	if len(paths) == 0 {
		return nil, errors.New("nothing to back up")
	}
	var sources []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(abs); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: %w", p, ErrSourceMissing)
			}
			return nil, err
		}
		sources = append(sources, abs)
	}
	sources = dropNested(sources)
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0) + 2
	}
	a := &archiver{
		repo: r, opts: opts, names: newIDNames(),
		table: r.ChunkerTable(), cp: r.Settings().Chunker,
		jobs:     make(chan *fileJob, opts.Workers),
		dirSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		bigSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		zeroIDs:  map[int]repo.ID{},
	}
	a.bufs.New = func() any { b := make([]byte, a.cp.Max+(1<<20)); return &b }
	a.smallBufs.New = func() any { b := make([]byte, a.cp.Min); return &b }
	a.midBufs.New = func() any { return new([]byte) }

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := 0; i < opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.worker(ctx, cancel)
		}()
	}
	stopProgress := a.reportProgress(start)

	var parentRoot *repo.Tree
	if opts.Parent != nil {
		if t, err := r.LoadTree(ctx, opts.Parent.Tree); err == nil {
			parentRoot = t
		}
	}
	rootID, err := a.saveRoot(ctx, sources, parentRoot)
	close(a.jobs)
	wg.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		err = r.Flush(ctx)
	} else {
		// Index what did reach storage so a retry can reuse it.
		_ = r.Flush(context.WithoutCancel(ctx))
	}
	stopProgress()
	if err != nil {
		return nil, err
	}

	snap := &repo.Snapshot{
		Time: start, Host: opts.Host, User: opts.User, Plan: opts.Plan,
		Paths: sources, Tags: opts.Tags, Tree: rootID, Program: opts.Program,
		Summary: repo.Summary{
			Files: a.files.Load(), Dirs: a.dirs.Load(), Others: a.others.Load(),
			Bytes: a.bytes.Load(), NewBytes: a.newBytes.Load(),
			Unreadable: a.errs.Load(), Unchanged: a.unchanged.Load(),
			Duration: time.Since(start).Seconds(),
		},
	}
	if opts.Parent != nil {
		pid := opts.Parent.ID()
		snap.Parent = &pid
	}
	existing := opts.Snapshots
	if existing == nil {
		if existing, err = r.Snapshots(ctx); err != nil {
			return nil, err
		}
	}
	label := opts.Label
	if label == "" {
		label = repo.LabelTime(start) + "_" + opts.Host
	}
	snap.Label = repo.UniqueLabel(existing, label)
	if _, err := r.SaveSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	return snap, nil
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
	return Progress{
		Files: a.files.Load(), Dirs: a.dirs.Load(), Bytes: a.bytes.Load(),
		NewBytes: a.newBytes.Load(), Unchanged: a.unchanged.Load(), Errors: a.errs.Load(),
		Elapsed: time.Since(start),
	}
}

func (a *archiver) report(path string, err error) {
	a.errs.Add(1)
	if a.opts.OnError != nil {
		a.opts.OnError(path, err)
	}
}

// saveRoot builds the root tree: each source under its absolute path,
// with the directories on the way recorded with their own metadata.
func (a *archiver) saveRoot(ctx context.Context, sources []string, parent *repo.Tree) (repo.ID, error) {
	if len(sources) == 1 && sources[0] == "/" {
		var st unix.Stat_t
		if err := unix.Lstat("/", &st); err != nil {
			return repo.ID{}, err
		}
		var pid *repo.ID
		if parent != nil {
			pid = &a.opts.Parent.Tree
		}
		return a.saveDir(ctx, "/", &st, parent, pid)
	}
	// Group sources by their first component.
	type group struct {
		name string
		rest []string // paths relative below name; "" means name itself is a source
	}
	var groups []*group
	for _, s := range sources {
		first, rest, _ := strings.Cut(strings.TrimPrefix(s, "/"), "/")
		if len(groups) == 0 || groups[len(groups)-1].name != first {
			groups = append(groups, &group{name: first})
		}
		g := groups[len(groups)-1]
		g.rest = append(g.rest, rest)
	}
	return a.saveAncestor(ctx, func(ctx context.Context, add func(*repo.Node)) error {
		for _, g := range groups {
			n, err := a.saveSources(ctx, "/"+g.name, g.rest, parent.Find(g.name))
			if err != nil {
				return err
			}
			if n != nil {
				add(n)
			}
		}
		return nil
	})
}

// saveSources returns the node for path, where rest lists the sources
// relative to path ("" = path itself is a source).
func (a *archiver) saveSources(ctx context.Context, path string, rest []string, parent *repo.Node) (*repo.Node, error) {
	if slices.Contains(rest, "") {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return a.saveEntry(ctx, path, &st, parent)
	}
	// A directory on the way to a source is followed if it is a symlink
	// (/var/run -> /run): the snapshot records the path as given.
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	node := nodeFromStat(filepath.Base(path), &st, a.names)
	if node.Type != repo.NodeDir {
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	xa, err := readXattrs(real)
	if err != nil {
		a.report(path, err)
	}
	node.Xattrs = xa
	var ptree *repo.Tree
	if parent != nil && parent.Type == repo.NodeDir && parent.Subtree != nil {
		ptree, _ = a.repo.LoadTree(ctx, *parent.Subtree)
	}
	var groups [][2]string // child name, rest
	for _, r := range rest {
		first, sub, _ := strings.Cut(r, "/")
		groups = append(groups, [2]string{first, sub})
	}
	id, err := a.saveAncestor(ctx, func(ctx context.Context, add func(*repo.Node)) error {
		for i := 0; i < len(groups); {
			j := i
			var sub []string
			for j < len(groups) && groups[j][0] == groups[i][0] {
				sub = append(sub, groups[j][1])
				j++
			}
			n, err := a.saveSources(ctx, path+"/"+groups[i][0], sub, ptree.Find(groups[i][0]))
			if err != nil {
				return err
			}
			if n != nil {
				add(n)
			}
			i = j
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	node.Subtree = &id
	return node, nil
}

// saveAncestor saves the tree of a directory on the way to sources, whose
// entries fill adds.
func (a *archiver) saveAncestor(ctx context.Context, fill func(context.Context, func(*repo.Node)) error) (repo.ID, error) {
	var tree repo.Tree
	if err := fill(ctx, func(n *repo.Node) { tree.Nodes = append(tree.Nodes, n) }); err != nil {
		return repo.ID{}, err
	}
	return a.repo.SaveTree(ctx, &tree)
}

// saveEntry records one filesystem entry other than a file below a
// directory (those go through the workers), and for a directory its whole
// subtree. A nil node and nil error mean: left out (reported already).
func (a *archiver) saveEntry(ctx context.Context, path string, st *unix.Stat_t, parent *repo.Node) (*repo.Node, error) {
	name := filepath.Base(path)
	node := nodeFromStat(name, st, a.names)
	xa, err := readXattrs(path)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		a.report(path, fmt.Errorf("xattrs: %w", err))
	}
	node.Xattrs = xa

	switch node.Type {
	case repo.NodeDir:
		var ptree *repo.Tree
		var pid *repo.ID
		if parent != nil && parent.Type == repo.NodeDir && parent.Subtree != nil {
			if t, err := a.repo.LoadTree(ctx, *parent.Subtree); err == nil {
				ptree, pid = t, parent.Subtree
			}
		}
		id, err := a.saveDir(ctx, path, st, ptree, pid)
		if err != nil {
			return nil, err
		}
		node.Subtree = &id
	case repo.NodeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			a.report(path, err)
			return nil, nil
		}
		node.LinkTarget = target
		a.others.Add(1)
	case repo.NodeFile:
		// A source that is a file.
		job := &fileJob{path: path, st: *st, node: node}
		if a.isUnchanged(node, parent) {
			a.takeUnchanged(job, parent)
			return node, nil
		}
		if err := a.saveFile(ctx, job); err != nil {
			if isFatal(err) {
				return nil, err
			}
			a.report(path, err)
			return nil, nil
		}
	default:
		a.others.Add(1)
	}
	return node, nil
}

// saveDir saves the tree of directory path. Files go to the workers;
// subdirectories are walked by goroutines of their own while a dirSlots
// slot is free, else here, depth first. A slot is only ever tried, never
// waited for, so a walker never blocks on another.
//
// parentID is the parent snapshot's tree for this directory: when every
// entry turns out the same, it is reused without encoding a new tree.
func (a *archiver) saveDir(ctx context.Context, path string, st *unix.Stat_t, parent *repo.Tree, parentID *repo.ID) (repo.ID, error) {
	if err := ctx.Err(); err != nil {
		return repo.ID{}, err
	}
	f, err := os.Open(path)
	var names []string
	if err == nil {
		names, err = f.Readdirnames(-1)
		f.Close()
	}
	if err != nil {
		a.report(path, err)
		// Keep the directory itself, empty.
	}
	slices.Sort(names)

	type result struct {
		node *repo.Node
		err  error
		done chan struct{} // closed when node and err are set
		job  *fileJob      // or: a file read by the workers
	}
	results := make([]*result, 0, len(names))
	for _, name := range names {
		child := path + "/" + name
		if path == "/" {
			child = "/" + name
		}
		var cst unix.Stat_t
		if err := unix.Lstat(child, &cst); err != nil {
			a.report(child, err)
			continue
		}
		isDir := cst.Mode&unix.S_IFMT == unix.S_IFDIR
		if a.opts.Exclude != nil && a.opts.Exclude(child, isDir) {
			continue
		}
		pnode := parent.Find(name)
		if cst.Mode&unix.S_IFMT == unix.S_IFREG {
			job := &fileJob{path: child, st: cst, node: nodeFromStat(name, &cst, a.names)}
			if a.isUnchanged(job.node, pnode) {
				a.takeUnchanged(job, pnode)
				results = append(results, &result{node: job.node})
				continue
			}
			job.done = make(chan struct{})
			select {
			case a.jobs <- job:
			case <-ctx.Done():
				return repo.ID{}, context.Cause(ctx)
			}
			results = append(results, &result{job: job})
			continue
		}
		if isDir && a.opts.OneFileSystem && cst.Dev != st.Dev {
			continue
		}
		res := &result{done: make(chan struct{})}
		results = append(results, res)
		if isDir {
			select {
			case a.dirSlots <- struct{}{}:
				go func() {
					defer func() { <-a.dirSlots }()
					defer close(res.done)
					res.node, res.err = a.saveEntry(ctx, child, &cst, pnode)
				}()
				continue
			default:
			}
		}
		res.node, res.err = a.saveEntry(ctx, child, &cst, pnode)
		close(res.done)
	}

	tree := repo.Tree{Nodes: make([]*repo.Node, 0, len(results))}
	var firstErr error
	for _, res := range results {
		switch {
		case res.job != nil:
			<-res.job.done // workers finish every job, even after a failure
			if res.job.ok {
				tree.Nodes = append(tree.Nodes, res.job.node)
			}
			continue
		case res.done != nil:
			<-res.done
		}
		if res.err != nil && firstErr == nil {
			firstErr = res.err
		}
		if res.node != nil {
			tree.Nodes = append(tree.Nodes, res.node)
		}
	}
	if firstErr != nil {
		return repo.ID{}, firstErr
	}
	a.dirs.Add(1)
	if parentID != nil && sameNodes(tree.Nodes, parent) && a.repo.HasBlob(*parentID) {
		return *parentID, nil
	}
	return a.repo.SaveTree(ctx, &tree)
}

// sameNodes reports whether nodes (sorted by name) equal the parent tree's
// in every recorded field, so the parent's tree blob can stand for them.
func sameNodes(nodes []*repo.Node, parent *repo.Tree) bool {
	if parent == nil || len(nodes) != len(parent.Nodes) {
		return false
	}
	for i, n := range nodes {
		if !sameNode(n, parent.Nodes[i]) {
			return false
		}
	}
	return true
}

func sameNode(a, b *repo.Node) bool {
	if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID ||
		a.User != b.User || a.Group != b.Group || a.Size != b.Size ||
		!a.MTime.Equal(b.MTime) || !a.ATime.Equal(b.ATime) || !a.CTime.Equal(b.CTime) ||
		a.Inode != b.Inode || a.Device != b.Device || a.Links != b.Links || a.Rdev != b.Rdev ||
		a.LinkTarget != b.LinkTarget || !slices.Equal(a.Content, b.Content) ||
		(a.Subtree == nil) != (b.Subtree == nil) || (a.Subtree != nil && *a.Subtree != *b.Subtree) ||
		len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for i, x := range a.Xattrs {
		if x.Name != b.Xattrs[i].Name || !bytes.Equal(x.Value, b.Xattrs[i].Value) {
			return false
		}
	}
	return true
}

// isUnchanged reports whether the parent snapshot's node can stand for n.
func (a *archiver) isUnchanged(n, p *repo.Node) bool {
	if p == nil || p.Type != repo.NodeFile || p.Size != n.Size || p.Inode != n.Inode ||
		!p.MTime.Equal(n.MTime) || !p.CTime.Equal(n.CTime) {
		return false
	}
	for _, id := range p.Content {
		if !a.repo.HasBlob(id) {
			return false
		}
	}
	return true
}

// takeUnchanged fills the job's node from the parent snapshot's.
func (a *archiver) takeUnchanged(job *fileJob, p *repo.Node) {
	job.node.Content = p.Content
	xa, err := readXattrs(job.path)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		a.report(job.path, fmt.Errorf("xattrs: %w", err))
	}
	job.node.Xattrs = xa
	a.files.Add(1)
	a.unchanged.Add(1)
	a.bytes.Add(job.node.Size)
}

func (a *archiver) worker(ctx context.Context, fail context.CancelCauseFunc) {
	for job := range a.jobs {
		if ctx.Err() == nil {
			err := a.saveFile(ctx, job)
			switch {
			case err == nil:
				job.ok = true
			case isFatal(err):
				fail(err)
			default:
				a.report(job.path, err)
			}
		}
		close(job.done)
	}
}

// readError marks a problem with the source file, as opposed to one with
// the repository, which stops the backup.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func isFatal(err error) bool {
	var re *readError
	return !errors.As(err, &re)
}

// saveFile reads, chunks and saves one file; job.node gets its content.
func (a *archiver) saveFile(ctx context.Context, job *fileJob) error {
	if a.opts.beforeOpen != nil {
		a.opts.beforeOpen(job.path)
	}
	f, err := os.OpenFile(job.path, os.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(job.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return &readError{err}
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &readError{err}
	}
	if st.Ino != job.st.Ino || st.Dev != job.st.Dev {
		return &readError{fmt.Errorf("%w: replaced", ErrChanged)}
	}
	xa, err := readXattrs(job.path)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		a.report(job.path, fmt.Errorf("xattrs: %w", err))
	}
	job.node.Xattrs = xa

	var content []repo.ID
	var read int64
	size := st.Size
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		// Find the next data region; holes become zero chunks.
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = size // only a hole remains
		} else if err != nil {
			data = off // no SEEK_DATA support: all data
		}
		if data > off {
			ids, err := a.zeroChunks(ctx, data-off)
			if err != nil {
				return err
			}
			content = append(content, ids...)
			read += data - off
			off = data
			continue
		}
		hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		var next func() ([]byte, error)
		if n := hole - off; n <= int64(a.cp.Max) {
			// A region of at most Max bytes is read whole and cut in
			// memory: same boundaries as the streaming chunker, with a
			// buffer the size of the region rather than Max plus a block.
			pool := &a.smallBufs
			if n > int64(a.cp.Min) {
				pool = &a.midBufs
			}
			bp := pool.Get().(*[]byte)
			defer pool.Put(bp)
			if int64(cap(*bp)) < n {
				*bp = make([]byte, (n+1<<20-1)&^(1<<20-1)) // whole MiBs, for reuse
			}
			data := (*bp)[:n]
			if _, err := f.ReadAt(data, off); err != nil {
				return &readError{err}
			}
			next = func() ([]byte, error) {
				if len(data) == 0 {
					return nil, io.EOF
				}
				k := chunker.Cut(a.table, a.cp, data)
				chunk := data[:k]
				data = data[k:]
				return chunk, nil
			}
		} else {
			// Streaming needs a buffer of Max plus a block; GOMAXPROCS
			// streams keep the cores busy, more would only hold memory.
			select {
			case a.bigSlots <- struct{}{}:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			defer func() { <-a.bigSlots }()
			bufp := a.bufs.Get().(*[]byte)
			defer a.bufs.Put(bufp)
			next = chunker.New(a.table, a.cp, io.NewSectionReader(f, off, hole-off), *bufp).Next
		}
		for {
			chunk, err := next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return &readError{err}
			}
			id := repo.Hash(chunk)
			if !a.repo.HasBlob(id) {
				known, err := a.repo.SaveBlob(ctx, repo.DataBlob, id, chunk)
				if err != nil {
					return err
				}
				if !known {
					a.newBytes.Add(uint64(len(chunk)))
				}
			}
			content = append(content, id)
			read += int64(len(chunk))
			a.bytes.Add(uint64(len(chunk)))
		}
		off = hole
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return &readError{err}
	}
	job.node.Content = content
	job.node.Size = uint64(read)
	a.files.Add(1)
	if after.Size != size || after.Mtim != st.Mtim || read != size {
		// Keep what was read, but say so.
		a.report(job.path, ErrChanged)
	}
	return nil
}

// zeroChunks returns the chunk list of n zero bytes (a hole), saving the
// zero blobs once per length.
func (a *archiver) zeroChunks(ctx context.Context, n int64) ([]repo.ID, error) {
	var ids []repo.ID
	for n > 0 {
		l := int(min(n, int64(a.cp.Max)))
		a.zeroMu.Lock()
		id, ok := a.zeroIDs[l]
		a.zeroMu.Unlock()
		if !ok {
			zero := make([]byte, l)
			id = repo.Hash(zero)
			if !a.repo.HasBlob(id) {
				if _, err := a.repo.SaveBlob(ctx, repo.DataBlob, id, zero); err != nil {
					return nil, err
				}
			}
			a.zeroMu.Lock()
			a.zeroIDs[l] = id
			a.zeroMu.Unlock()
		}
		ids = append(ids, id)
		a.bytes.Add(uint64(l))
		n -= int64(l)
	}
	return ids, nil
}
