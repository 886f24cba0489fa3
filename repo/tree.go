package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// NodeType is what a tree entry is.
type NodeType string

// Node types.
const (
	NodeFile    NodeType = "file"
	NodeDir     NodeType = "dir"
	NodeSymlink NodeType = "symlink"
	NodeDev     NodeType = "dev"     // block device
	NodeCharDev NodeType = "chardev" // character device
	NodeFIFO    NodeType = "fifo"
	NodeSocket  NodeType = "socket"
)

// Xattr is one extended attribute.
type Xattr struct {
	Name    string `json:"name"`
	NameRaw []byte `json:"name_raw,omitempty"` // see rawNames
	Value   []byte `json:"value"`
}

// Node is one entry of a directory listing, with everything backup
// records about it. Times are UTC with nanoseconds.
type Node struct {
	Name  string    `json:"name"`
	Type  NodeType  `json:"type"`
	Mode  uint32    `json:"mode"` // permission bits plus setuid, setgid, sticky (st_mode & 07777)
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	User  string    `json:"user,omitempty"`
	Group string    `json:"group,omitempty"`
	Size  uint64    `json:"size,omitempty"`
	MTime time.Time `json:"mtime"`
	ATime time.Time `json:"atime"`
	CTime time.Time `json:"ctime"`
	// Inode, Device and Links identify hard links: entries of one snapshot
	// with the same Device and Inode and Links > 1 are one file.
	Inode  uint64 `json:"inode,omitempty"`
	Device uint64 `json:"device,omitempty"`
	Links  uint64 `json:"links,omitempty"`
	Rdev   uint64 `json:"rdev,omitempty"` // device nodes
	// LinkTarget is a symlink's target, byte for byte.
	LinkTarget string  `json:"linktarget,omitempty"`
	Xattrs     []Xattr `json:"xattrs,omitempty"`
	// Content lists a file's chunks in order. A hole of the source is
	// stored as chunks of zeros (up to the maximum chunk size each); restore
	// writes every all-zero chunk as a hole.
	Content []ID `json:"content,omitempty"`
	// Subtree is a directory's tree blob.
	Subtree *ID `json:"subtree,omitempty"`

	// NameRaw and LinkTargetRaw carry names that are not valid UTF-8; see
	// rawNames. They are set only while encoding and decoding.
	NameRaw       []byte `json:"name_raw,omitempty"`
	LinkTargetRaw []byte `json:"linktarget_raw,omitempty"`
}

// Names, symlink targets and xattr names are byte strings on Linux, not
// necessarily UTF-8, and JSON strings cannot carry invalid UTF-8. Such a
// value is stored base64-encoded in the sibling field with the suffix
// "_raw", its string field left empty. toRaw moves invalid values into
// those fields for encoding; fromRaw moves them back.
func (n *Node) toRaw() {
	if !utf8.ValidString(n.Name) {
		n.NameRaw, n.Name = []byte(n.Name), ""
	}
	if !utf8.ValidString(n.LinkTarget) {
		n.LinkTargetRaw, n.LinkTarget = []byte(n.LinkTarget), ""
	}
	for i := range n.Xattrs {
		if x := &n.Xattrs[i]; !utf8.ValidString(x.Name) {
			x.NameRaw, x.Name = []byte(x.Name), ""
		}
	}
}

func (n *Node) fromRaw() {
	if n.NameRaw != nil {
		n.Name, n.NameRaw = string(n.NameRaw), nil
	}
	if n.LinkTargetRaw != nil {
		n.LinkTarget, n.LinkTargetRaw = string(n.LinkTargetRaw), nil
	}
	for i := range n.Xattrs {
		if x := &n.Xattrs[i]; x.NameRaw != nil {
			x.Name, x.NameRaw = string(x.NameRaw), nil
		}
	}
}

// Tree is a directory listing, sorted by name.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// ErrBadName: a tree entry has a name that could escape its directory.
var ErrBadName = errors.New("invalid entry name")

// ValidName rejects names that restore must never create.
func ValidName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w %q", ErrBadName, name)
	}
	return nil
}

// Sort orders the nodes by name.
func (t *Tree) Sort() {
	slices.SortFunc(t.Nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
}

// Find returns the node called name, by binary search. A nil tree has no
// nodes.
func (t *Tree) Find(name string) *Node {
	i, ok := t.Index(name)
	if !ok {
		return nil
	}
	return t.Nodes[i]
}

// Index returns the position of the node called name in t.Nodes.
func (t *Tree) Index(name string) (int, bool) {
	if t == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(t.Nodes, name, func(n *Node, name string) int { return strings.Compare(n.Name, name) })
}

// EncodeTree returns the deterministic encoding of t: JSON with nodes sorted
// by name, times normalised to UTC, xattrs sorted by name.
func EncodeTree(t *Tree) ([]byte, error) {
	t.Sort()
	for i, n := range t.Nodes {
		if err := ValidName(n.Name); err != nil {
			return nil, err
		}
		if i > 0 && t.Nodes[i-1].Name == n.Name {
			return nil, fmt.Errorf("duplicate entry %q", n.Name)
		}
		n.MTime, n.ATime, n.CTime = n.MTime.UTC(), n.ATime.UTC(), n.CTime.UTC()
		slices.SortFunc(n.Xattrs, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	}
	if t.Nodes == nil {
		t.Nodes = []*Node{}
	}
	for _, n := range t.Nodes {
		n.toRaw()
	}
	buf, err := json.Marshal(t)
	for _, n := range t.Nodes {
		n.fromRaw()
	}
	if err != nil {
		return nil, err
	}
	return append(buf, '\n'), nil
}

// DecodeTree parses a tree blob and checks what restore relies on: valid,
// unique names in sorted order.
func DecodeTree(data []byte) (*Tree, error) {
	var t Tree
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, err
	}
	for i, n := range t.Nodes {
		if n == nil {
			return nil, errors.New("null node")
		}
		n.fromRaw()
		if err := ValidName(n.Name); err != nil {
			return nil, err
		}
		if i > 0 && t.Nodes[i-1].Name >= n.Name {
			return nil, fmt.Errorf("entries not sorted or duplicated at %q", n.Name)
		}
		switch n.Type {
		case NodeDir:
			if n.Subtree == nil {
				return nil, fmt.Errorf("directory %q without subtree", n.Name)
			}
		case NodeFile, NodeSymlink, NodeDev, NodeCharDev, NodeFIFO, NodeSocket:
		default:
			return nil, fmt.Errorf("entry %q has unknown type %q", n.Name, n.Type)
		}
	}
	return &t, nil
}

// SaveTree encodes and saves t, returning its blob id.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (ID, error) {
	data, err := EncodeTree(t)
	if err != nil {
		return ID{}, err
	}
	id := Hash(data)
	_, err = r.SaveBlob(ctx, TreeBlob, id, data)
	return id, err
}

// LoadTree loads and decodes a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	data, err := r.LoadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTree(data)
	if err != nil {
		loc, _ := r.idx.Lookup(id)
		return nil, &CorruptError{Object: packHandle(loc.Pack).String(), Blob: id, Err: fmt.Errorf("tree: %w", err)}
	}
	return t, nil
}
