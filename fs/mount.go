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

// Mount serves root at dir until the returned server is unmounted.
func Mount(dir string, root tree.Dir, opts Options) (*fuse.Server, error) {
	neg := time.Second
	mo := fuse.MountOptions{
		FsName:       "cairn",
		Name:         "cairn",
		AllowOther:   opts.AllowOther,
		DirectMount:  true, // as root no fusermount3 is needed; falls back to it otherwise
		MaxReadAhead: 1 << 20,
		MaxWrite:     1 << 20,
		Debug:        opts.Debug,
	}
	if opts.AllowOther {
		mo.Options = append(mo.Options, "default_permissions")
	}
	server, err := gofuse.Mount(dir, &node{t: root}, &gofuse.Options{
		MountOptions:    mo,
		NegativeTimeout: &neg,
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return server, nil
}
