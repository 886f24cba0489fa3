package fs

import (
	"fmt"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cairn-backup/cairn/fs/tree"
)

// Options tune a mount.
type Options struct {
	// AllowOther lets other users in, with the kernel checking the
	// recorded modes (default_permissions).
	AllowOther bool
	Debug      bool
}

// Mounted is a live mount.
type Mounted struct {
	*fuse.Server
	root *node
}

// InvalidateLatest drops the kernel's cached target of
// repos/<repo>/snapshots/latest (symlink targets are cached).
func (m *Mounted) InvalidateLatest(repo string) {
	in := m.root.EmbeddedInode()
	for _, name := range []string{"repos", repo, "snapshots", "latest"} {
		if in = in.GetChild(name); in == nil {
			return // never looked up: nothing cached
		}
	}
	in.NotifyContent(0, 0)
}

// Mount serves root at dir until unmounted.
func Mount(dir string, root tree.Dir, opts Options) (*Mounted, error) {
	neg := time.Second
	mo := fuse.MountOptions{
		FsName:       "cairn",
		Name:         "cairn",
		AllowOther:   opts.AllowOther,
		DirectMount:  true, // as root no fusermount3 is needed; falls back to it otherwise
		MaxReadAhead: 1 << 20,
		MaxWrite:     1 << 20,
		// Paths through snapshots/latest would otherwise cost a READLINK
		// per lookup; latest's inode is invalidated when it moves.
		EnableSymlinkCaching: true,
		// O_TRUNC then reaches Open. Otherwise the kernel truncates with
		// a SETATTR that names no handle, indistinguishable from
		// truncate(1), which defines plan.json (empty: refused) at once.
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
		Debug:             opts.Debug,
	}
	if opts.AllowOther {
		mo.Options = append(mo.Options, "default_permissions")
	}
	rootNode := &node{t: root}
	server, err := gofuse.Mount(dir, rootNode, &gofuse.Options{
		MountOptions:    mo,
		NegativeTimeout: &neg,
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return &Mounted{Server: server, root: rootNode}, nil
}
