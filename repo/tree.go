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
	Name  string `json:"name"`
	Value []byte `json:"value"`
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
}

// Names, symlink targets and xattr names are byte strings on Linux, not
// necessarily UTF-8, and JSON strings cannot carry invalid UTF-8. Such a
// value is stored base64-encoded in a sibling field with the suffix "_raw"
// ("name_raw", "linktarget_raw"), its string field left empty.

type nodeAlias Node

type nodeJSON struct {
	*nodeAlias
	NameRaw       []byte `json:"name_raw,omitempty"`
	LinkTargetRaw []byte `json:"linktarget_raw,omitempty"`
}

// MarshalJSON keeps non-UTF-8 names byte for byte.
func (n *Node) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(n.Name) && utf8.ValidString(n.LinkTarget) {
		return json.Marshal((*nodeAlias)(n))
	}
	c := *n
	j := nodeJSON{nodeAlias: (*nodeAlias)(&c)}
	if !utf8.ValidString(n.Name) {
		j.NameRaw, c.Name = []byte(n.Name), ""
	}
	if !utf8.ValidString(n.LinkTarget) {
		j.LinkTargetRaw, c.LinkTarget = []byte(n.LinkTarget), ""
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (n *Node) UnmarshalJSON(b []byte) error {
	j := nodeJSON{nodeAlias: (*nodeAlias)(n)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.NameRaw != nil {
		n.Name = string(j.NameRaw)
	}
	if j.LinkTargetRaw != nil {
		n.LinkTarget = string(j.LinkTargetRaw)
	}
	return nil
}

type xattrJSON struct {
	Name    string `json:"name"`
	NameRaw []byte `json:"name_raw,omitempty"`
	Value   []byte `json:"value"`
}

// MarshalJSON keeps non-UTF-8 attribute names byte for byte.
func (x Xattr) MarshalJSON() ([]byte, error) {
	j := xattrJSON{Name: x.Name, Value: x.Value}
	if !utf8.ValidString(x.Name) {
		j.Name, j.NameRaw = "", []byte(x.Name)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (x *Xattr) UnmarshalJSON(b []byte) error {
	var j xattrJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	x.Name, x.Value = j.Name, j.Value
	if j.NameRaw != nil {
		x.Name = string(j.NameRaw)
	}
	return nil
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
	if t == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(t.Nodes, name, func(n *Node, name string) int { return strings.Compare(n.Name, name) })
	if !ok {
		return nil
	}
	return t.Nodes[i]
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
	buf, err := json.Marshal(t)
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
