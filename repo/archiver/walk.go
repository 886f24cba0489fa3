package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
)

// nodes is one entry of a directory as each target records it: element i
// for target i, nil where target i failed. The metadata are the same for
// all; a file's Content and a directory's Subtree may differ (different
// chunkers, different parents). Targets whose records agree share one
// *repo.Node, which is how a directory's tree is seen to be the same for
// them and encoded once. A nil nodes (no slice) is an entry left out.
type nodes []*repo.Node

// at returns element i; a nil nodes has none.
func (ns nodes) at(i int) *repo.Node {
	if ns == nil {
		return nil
	}
	return ns[i]
}

// same records node alike in every live target.
func (a *archiver) same(node *repo.Node) nodes {
	out := make(nodes, len(a.targets))
	for i, t := range a.targets {
		if !t.failed.Load() {
			out[i] = node
		}
	}
	return out
}

// withSubtrees records directory node in every live target with its tree
// ids[i]; targets with the same id share a node.
func (a *archiver) withSubtrees(node *repo.Node, ids []repo.ID) nodes {
	out := make(nodes, len(a.targets))
	used := false
	for i, t := range a.targets {
		if t.failed.Load() {
			continue
		}
		for j := range i {
			if out[j] != nil && ids[j] == ids[i] {
				out[i] = out[j]
				break
			}
		}
		if out[i] != nil {
			continue
		}
		n := node
		if used {
			c := *node
			n = &c
		}
		used = true
		id := ids[i]
		n.Subtree = &id
		out[i] = n
	}
	return out
}

// findAll looks name up in each target's parent tree.
func findAll(trees []*repo.Tree, name string) nodes {
	if trees == nil {
		return nil
	}
	out := make(nodes, len(trees))
	for i, t := range trees {
		out[i] = t.Find(name)
	}
	return out
}

// subtreeIDs returns the tree ids of the parents' directory nodes (nil
// where a parent has no such directory; nil for none at all).
func subtreeIDs(parents nodes) []*repo.ID {
	var ids []*repo.ID
	for i, p := range parents {
		if p != nil && p.Type == repo.NodeDir && p.Subtree != nil {
			if ids == nil {
				ids = make([]*repo.ID, len(parents))
			}
			ids[i] = p.Subtree
		}
	}
	return ids
}

// loadTrees loads the tree that ids[i] names in each live target's
// repository (nil ids: none at all). A tree that cannot be loaded counts
// as none, and its id is cleared so that it is not reused. Targets whose
// ids agree share one decoded tree: a tree id is the hash of its contents.
func (a *archiver) loadTrees(ids []*repo.ID) []*repo.Tree {
	if ids == nil {
		return nil
	}
	trees := make([]*repo.Tree, len(ids))
	for i, id := range ids {
		t := a.targets[i]
		if id == nil || t.failed.Load() {
			continue
		}
		for j := range i {
			if trees[j] != nil && *ids[j] == *id {
				trees[i] = trees[j]
				break
			}
		}
		if trees[i] != nil {
			continue
		}
		tree, err := t.Repo.LoadTree(t.ctx, *id)
		if err != nil {
			ids[i] = nil
			continue
		}
		trees[i] = tree
	}
	return trees
}

// saveRoot builds the root tree of each target: each source under its
// absolute path, with the directories on the way recorded with their own
// metadata. parents and parentIDs are the targets' parent snapshots' root
// trees. The walk starts at a descriptor of "/" and goes down by
// descriptors (dirfd.go).
func (a *archiver) saveRoot(ctx context.Context, sources []string, parents []*repo.Tree, parentIDs []*repo.ID) ([]repo.ID, error) {
	root, err := rootFD()
	if err != nil {
		return nil, err
	}
	if len(sources) == 1 && sources[0] == "/" {
		var st unix.Stat_t
		if err := unix.Fstat(root, &st); err != nil {
			unix.Close(root)
			return nil, err
		}
		return a.saveDir(ctx, root, "/", &st, parents, parentIDs)
	}
	defer unix.Close(root)
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
	return a.saveAncestor(ctx, func(ctx context.Context, add func(nodes)) error {
		for _, g := range groups {
			n, err := a.saveSources(ctx, root, "/"+g.name, g.rest, findAll(parents, g.name))
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

// saveSources returns the entry for path, entry of directory dirfd, where
// rest lists the sources relative to path ("" = path itself is a source).
func (a *archiver) saveSources(ctx context.Context, dirfd int, path string, rest []string, parents nodes) (nodes, error) {
	name := filepath.Base(path)
	if slices.Contains(rest, "") {
		var st unix.Stat_t
		if err := lstatAt(dirfd, name, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return a.saveEntry(ctx, dirfd, path, &st, parents)
	}
	// A directory on the way to a source is followed if it is a symlink
	// of root's or the backup user's (/var/run -> /run): the snapshot
	// records the path as given.
	var hops int
	fd, st, err := openFollow(dirfd, name, &hops)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s is not a directory", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	node := nodeFromStat(name, &st, a.names)
	node.Xattrs = a.xattrsFd(path, fd)
	ptrees := a.loadTrees(subtreeIDs(parents))
	var groups [][2]string // child name, rest
	for _, r := range rest {
		first, sub, _ := strings.Cut(r, "/")
		groups = append(groups, [2]string{first, sub})
	}
	ids, err := a.saveAncestor(ctx, func(ctx context.Context, add func(nodes)) error {
		for i := 0; i < len(groups); {
			j := i
			var sub []string
			for j < len(groups) && groups[j][0] == groups[i][0] {
				sub = append(sub, groups[j][1])
				j++
			}
			n, err := a.saveSources(ctx, fd, path+"/"+groups[i][0], sub, findAll(ptrees, groups[i][0]))
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
	return a.withSubtrees(node, ids), nil
}

// saveAncestor saves the trees of a directory on the way to sources, whose
// entries fill adds.
func (a *archiver) saveAncestor(ctx context.Context, fill func(context.Context, func(nodes)) error) ([]repo.ID, error) {
	var entries []nodes
	if err := fill(ctx, func(n nodes) { entries = append(entries, n) }); err != nil {
		return nil, err
	}
	return a.saveTrees(ctx, entries, nil, nil)
}

// saveEntry records entry path of directory dirfd, with lstat data st,
// other than a file below a directory (those go through the workers), and
// for a directory its whole subtree. A nil entry and nil error mean: left
// out (reported already).
func (a *archiver) saveEntry(ctx context.Context, dirfd int, path string, st *unix.Stat_t, parents nodes) (nodes, error) {
	name := filepath.Base(path)
	node := nodeFromStat(name, st, a.names)
	switch node.Type {
	case repo.NodeDir:
		fd, _, err := openDir(dirfd, name, st)
		if err != nil {
			// Keep the directory itself, empty; a directory swapped
			// for something else is reported like a changed file.
			a.report(path, err)
			fd = -1
		} else {
			node.Xattrs = a.xattrsFd(path, fd)
		}
		pids := subtreeIDs(parents)
		ptrees := a.loadTrees(pids)
		ids, err := a.saveDir(ctx, fd, path, st, ptrees, pids)
		if err != nil {
			return nil, err
		}
		return a.withSubtrees(node, ids), nil
	case repo.NodeSymlink:
		node.Xattrs = a.xattrsAt(path, dirfd, name)
		target, err := readlinkAt(dirfd, name, st.Size)
		if err != nil {
			a.report(path, err)
			return nil, nil
		}
		node.LinkTarget = target
		a.others.Add(1)
	case repo.NodeFile:
		// A source that is a file.
		job := a.newJob(dirfd, path, st, node, parents)
		if !a.needsRead(job) {
			return job.out, nil
		}
		if err := a.saveFile(ctx, job); err != nil {
			if isFatal(err) {
				return nil, err
			}
			a.report(path, err)
			return nil, nil
		}
		return job.out, nil
	default:
		node.Xattrs = a.xattrsAt(path, dirfd, name)
		a.others.Add(1)
	}
	return a.same(node), nil
}

// saveDir saves the trees of directory path, open as fd (-1: unreadable,
// saved empty), which it closes. Files go to the workers; subdirectories
// are walked by goroutines of their own while a dirSlots slot is free,
// else here, depth first. A slot is only ever tried, never waited for, so
// a walker never blocks on another.
//
// Everything started with fd is waited for before fd is closed, on every
// return: a closed descriptor's number is soon another's, and an openat
// through it would read a directory the walk never checked.
//
// parents and parentIDs are the parent snapshots' trees for this
// directory, per target: a target for which every entry turns out the same
// reuses its parent's tree without encoding a new one.
func (a *archiver) saveDir(ctx context.Context, fd int, path string, st *unix.Stat_t, parents []*repo.Tree, parentIDs []*repo.ID) ([]repo.ID, error) {
	type result struct {
		entry nodes
		err   error
		done  chan struct{} // closed when entry and err are set
		job   *fileJob      // or: a file read by the workers
	}
	var results []*result
	defer func() {
		for _, res := range results {
			switch {
			case res.job != nil:
				<-res.job.done // workers finish every job, even after a failure
			case res.done != nil:
				<-res.done
			}
		}
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	var names []string
	if fd >= 0 {
		var err error
		if names, err = readNames(fd); err != nil {
			a.report(path, err)
			names = nil // keep the directory itself, empty
		}
	}
	slices.Sort(names)

	results = make([]*result, 0, len(names))
	for _, name := range names {
		if a.skip.skips(st, name) {
			continue // not even a stat: it may be our own mount
		}
		child := path + "/" + name
		if path == "/" {
			child = "/" + name
		}
		var cst unix.Stat_t
		if err := lstatAt(fd, name, &cst); err != nil {
			a.report(child, err)
			continue
		}
		isDir := cst.Mode&unix.S_IFMT == unix.S_IFDIR
		if a.opts.Exclude != nil && a.opts.Exclude(child, isDir) {
			continue
		}
		pnodes := findAll(parents, name)
		if cst.Mode&unix.S_IFMT == unix.S_IFREG {
			job := a.newJob(fd, child, &cst, nodeFromStat(name, &cst, a.names), pnodes)
			if !a.needsRead(job) {
				results = append(results, &result{entry: job.out})
				continue
			}
			job.done = make(chan struct{})
			select {
			case a.jobs <- job:
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
			results = append(results, &result{job: job})
			continue
		}
		if isDir && cst.Dev != st.Dev {
			if a.opts.OneFileSystem {
				continue
			}
			if a.opts.SkipVirtual && isVirtual(atPath(fd, name, child)) {
				e, err := a.emptyDir(ctx, name, &cst)
				results = append(results, &result{entry: e, err: err})
				continue
			}
		}
		res := &result{done: make(chan struct{})}
		results = append(results, res)
		if isDir {
			select {
			case a.dirSlots <- struct{}{}:
				go func() {
					defer func() { <-a.dirSlots }()
					defer close(res.done)
					res.entry, res.err = a.saveEntry(ctx, fd, child, &cst, pnodes)
				}()
				continue
			default:
			}
		}
		res.entry, res.err = a.saveEntry(ctx, fd, child, &cst, pnodes)
		close(res.done)
	}

	entries := make([]nodes, 0, len(results))
	var firstErr error
	for _, res := range results {
		switch {
		case res.job != nil:
			<-res.job.done
			if res.job.ok {
				entries = append(entries, res.job.out)
			}
			continue
		case res.done != nil:
			<-res.done
		}
		if res.err != nil && firstErr == nil {
			firstErr = res.err
		}
		if res.entry != nil {
			entries = append(entries, res.entry)
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	a.dirs.Add(1)
	return a.saveTrees(ctx, entries, parents, parentIDs)
}

// emptyDir records a mount point the walk does not enter as an empty
// directory. Its xattrs are not read: the filesystem behind it may be a
// FUSE one that a request could block on.
func (a *archiver) emptyDir(ctx context.Context, name string, st *unix.Stat_t) (nodes, error) {
	ids, err := a.saveTrees(ctx, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	a.dirs.Add(1)
	return a.withSubtrees(nodeFromStat(name, st, a.names), ids), nil
}

// saveTrees saves one directory's listing in each live target, from the
// entries per target, and returns the tree ids (zero for failed targets).
// A target whose listing equals its parent tree (parents[i], parentIDs[i])
// reuses that tree; targets with identical listings share one encoding.
// Only an error of the run itself is returned; a repository's fails its
// target.
func (a *archiver) saveTrees(ctx context.Context, entries []nodes, parents []*repo.Tree, parentIDs []*repo.ID) ([]repo.ID, error) {
	ids := make([]repo.ID, len(a.targets))
	type encoding struct {
		of   int // the target whose listing it is
		id   repo.ID
		data []byte
	}
	var encs []encoding
	list := make([]*repo.Node, len(entries))
targets:
	for i, t := range a.targets {
		if t.failed.Load() {
			continue
		}
		for k, e := range entries {
			if e[i] == nil {
				// Only a failed target has holes; it failed before
				// this check, so this is a bug, not a crash.
				a.fail(t, fmt.Errorf("internal error: entry %d of a tree missing", k))
				continue targets
			}
			list[k] = e[i]
		}
		if parentIDs != nil && parentIDs[i] != nil && sameNodes(list, parents[i]) && t.Repo.HasBlob(*parentIDs[i]) {
			ids[i] = *parentIDs[i]
			continue
		}
		var enc *encoding
		for k := range encs {
			if sameEntries(entries, encs[k].of, i) {
				enc = &encs[k]
				break
			}
		}
		if enc == nil {
			data, err := repo.EncodeTree(&repo.Tree{Nodes: list})
			if err != nil {
				return nil, err
			}
			encs = append(encs, encoding{of: i, id: repo.Hash(data), data: data})
			enc = &encs[len(encs)-1]
		}
		if _, err := t.Repo.SaveBlob(t.ctx, repo.TreeBlob, enc.id, enc.data); err != nil {
			if err := a.repoErr(ctx, t, fmt.Errorf("save tree: %w", err)); err != nil {
				return nil, err
			}
			continue
		}
		ids[i] = enc.id
	}
	return ids, nil
}

// sameEntries reports whether targets i and j record every entry with the
// same node.
func sameEntries(entries []nodes, i, j int) bool {
	for _, e := range entries {
		if e[i] != e[j] {
			return false
		}
	}
	return true
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

// readError marks a problem with the source file, as opposed to one that
// stops the run (a repository's problem fails its target instead).
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func isFatal(err error) bool {
	var re *readError
	return !errors.As(err, &re)
}
