package tree

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// snapshotRoot returns a new directory object for the root of snapshot
// s. The tree keeps none: each lookup makes one, as for every node below
// it, and it lives as long as the adapter holds it (the kernel's inode)
// or a node below it does (parent), so that browsing many snapshots
// costs memory only for as long as the kernel keeps them. While the
// kernel holds the inode, the adapter answers lookups with the object it
// has, and the one made here is dropped.
func (rp *Repo) snapshotRoot(s *repo.Snapshot, ino uint64) *snapDir {
	return &snapDir{rp: rp, snap: s, ino: ino, tree: s.Tree}
}

// snapDir is a directory inside a snapshot (node nil: the snapshot's
// root). Its tree blob is decoded on first use and kept for as long as the
// object lives.
type snapDir struct {
	rp   *Repo
	snap *repo.Snapshot
	node *repo.Node
	ino  uint64
	tree repo.ID

	mu      sync.Mutex // guards decoded
	decoded *repo.Tree

	parent *snapDir     // nil for the snapshot's root
	ahead  dirAhead     // read-ahead of the files of this directory
	read   atomic.Int64 // when a file below it was last opened (UnixNano)
}

// readingFor is how long a directory counts as being read after a file
// below it was opened: its subdirectories start their read-ahead as soon
// as they are listed.
const readingFor = 2 * time.Second

func (d *snapDir) Immutable() bool { return true }

func (d *snapDir) Attr(ctx context.Context) (Attr, error) {
	if d.node == nil {
		t := d.snap.Time
		return Attr{Ino: d.ino, Mode: ModeDir | 0o555, Nlink: 2, Atime: t, Mtime: t, Ctime: t}, nil
	}
	a := nodeAttr(d.node, d.ino)
	a.Nlink = 2
	return a, nil
}

func (d *snapDir) load(ctx context.Context) (*repo.Tree, error) {
	d.mu.Lock()
	t := d.decoded
	d.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := d.rp.r.LoadTree(ctx, d.tree)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.decoded == nil {
		d.decoded = t
	}
	t = d.decoded
	d.mu.Unlock()
	return t, nil
}

func (d *snapDir) Lookup(ctx context.Context, name string) (Node, error) {
	t, err := d.load(ctx)
	if err != nil {
		return nil, err
	}
	n := t.Find(name)
	if n == nil {
		return nil, ErrNotExist
	}
	return d.child(n), nil
}

func (d *snapDir) List(ctx context.Context) ([]Entry, error) {
	t, err := d.load(ctx)
	if err != nil {
		return nil, err
	}
	if d.parent.beingRead() {
		d.ahead.listed(d.rp, t, d.inoOf(t))
	}
	out := make([]Entry, len(t.Nodes))
	for i, n := range t.Nodes {
		out[i] = Entry{Name: n.Name, Ino: d.childIno(n), Mode: typeBits(n.Type)}
	}
	return out, nil
}

// opened starts the read-ahead over the files after n, which was just
// opened, and marks this directory and those above it as being read.
func (d *snapDir) opened(n *repo.Node) {
	now := time.Now().UnixNano()
	for p := d; p != nil && p.read.Load() != now; p = p.parent {
		p.read.Store(now)
	}
	t := d.loaded() // n was looked up, so its tree is decoded
	if t == nil {
		return
	}
	if i, ok := t.Index(n.Name); ok {
		d.ahead.opened(d.rp, t, i, d.inoOf(t))
	}
}

func (d *snapDir) loaded() *repo.Tree {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.decoded
}

func (d *snapDir) inoOf(t *repo.Tree) func(int) uint64 {
	return func(k int) uint64 { return d.childIno(t.Nodes[k]) }
}

// beingRead reports whether a file below d was opened lately.
func (d *snapDir) beingRead() bool {
	return d != nil && time.Since(time.Unix(0, d.read.Load())) < readingFor
}

func (d *snapDir) childIno(n *repo.Node) uint64 {
	if n.Type != repo.NodeDir && n.Links > 1 {
		return linkIno(d.snap.ID(), n.Device, n.Inode)
	}
	return childIno(d.ino, n.Name)
}

func (d *snapDir) child(n *repo.Node) Node {
	ino := d.childIno(n)
	switch n.Type {
	case repo.NodeDir:
		return &snapDir{rp: d.rp, snap: d.snap, node: n, ino: ino, tree: *n.Subtree, parent: d}
	case repo.NodeFile:
		return &snapFile{rp: d.rp, node: n, ino: ino, dir: d}
	case repo.NodeSymlink:
		return &snapLink{snapNode{node: n, ino: ino}}
	default:
		return &snapNode{node: n, ino: ino}
	}
}

// Xattrs of a snapshot root: user.cairn.snapshot describes the snapshot,
// and travels with cp -a and rsync -X (replication uses it).
func (d *snapDir) Xattrs(ctx context.Context) ([]repo.Xattr, error) {
	if d.node != nil {
		return d.node.Xattrs, nil
	}
	s := d.snap
	info := map[string]any{
		"id": s.ID().String(), "label": s.Label, "time": s.Time, "host": s.Host, "plan": s.Plan,
		"paths": s.Paths, "tags": s.Tags, "files": s.Summary.Files, "bytes": s.Summary.Bytes,
		"repository": d.rp.r.ID(),
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return []repo.Xattr{{Name: SnapshotXattr, Value: b}}, nil
}

// SnapshotXattr names the xattr of a snapshot directory.
const SnapshotXattr = "user.cairn.snapshot"

// snapNode is a device node, FIFO or socket of a snapshot; the other node
// kinds embed it for attributes and xattrs.
type snapNode struct {
	node *repo.Node
	ino  uint64
}

func (n *snapNode) Immutable() bool                                  { return true }
func (n *snapNode) Attr(ctx context.Context) (Attr, error)           { return nodeAttr(n.node, n.ino), nil }
func (n *snapNode) Xattrs(ctx context.Context) ([]repo.Xattr, error) { return n.node.Xattrs, nil }

type snapLink struct{ snapNode }

func (l *snapLink) Readlink(ctx context.Context) (string, error) { return l.node.LinkTarget, nil }

func nodeAttr(n *repo.Node, ino uint64) Attr {
	links := uint32(1)
	if n.Links > 1 && n.Type != repo.NodeDir {
		links = uint32(n.Links)
	}
	return Attr{
		Ino: ino, Mode: typeBits(n.Type) | n.Mode, Nlink: links, UID: n.UID, GID: n.GID,
		Size: n.Size, Blocks: (n.Size + 511) / 512, Rdev: n.Rdev,
		Atime: n.ATime, Mtime: n.MTime, Ctime: n.CTime,
	}
}

func typeBits(t repo.NodeType) uint32 {
	switch t {
	case repo.NodeDir:
		return ModeDir
	case repo.NodeSymlink:
		return ModeSymlink
	case repo.NodeDev:
		return ModeBlock
	case repo.NodeCharDev:
		return ModeChar
	case repo.NodeFIFO:
		return ModeFIFO
	case repo.NodeSocket:
		return ModeSocket
	}
	return ModeFile
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
}

var (
	_ Dir       = (*snapDir)(nil)
	_ Xattrer   = (*snapDir)(nil)
	_ Immutable = (*snapDir)(nil)
	_ Node      = (*snapNode)(nil)
	_ Xattrer   = (*snapNode)(nil)
	_ Immutable = (*snapNode)(nil)
	_ Symlink   = (*snapLink)(nil)
	_ Xattrer   = (*snapLink)(nil)
	_ Immutable = (*snapLink)(nil)
)
