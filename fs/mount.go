package fs

import (
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

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
		// Replies carry data already in memory: splicing it through a
		// pipe saves nothing, and a 1 MiB READ (with the read-ahead below)
		// does not fit the default pipe-max-size, which go-fuse would log
		// on every read before writing the reply anyway.
		DisableSplice: true,
	}
	if opts.AllowOther {
		mo.Options = append(mo.Options, "default_permissions")
	}
	rootNode := &node{t: root}
	server, err := gofuse.Mount(dir, rootNode, &gofuse.Options{
		MountOptions:    mo,
		NegativeTimeout: &neg,
		// A mode of 000 is what was backed up, not a mode left unset:
		// go-fuse would show 0644 (0755 for directories) instead, and
		// cp -a out of the mount would make a private file readable.
		NullPermissions: true,
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	if err := setReadAhead(dir, readAheadKB); err != nil && opts.Debug {
		log.Printf("read-ahead left at the kernel's default: %v", err)
	}
	return &Mounted{Server: server, root: rootNode}, nil
}

// readAheadKB is the kernel's read-ahead window for the mount. Its
// default, 128 KiB, keeps about one READ in flight per sequential reader,
// so a reader of a file waits on one chunk at a time; 4 MiB keeps several
// chunks loading at once, which uses every core for decoding (a cold read
// of 256 MiB: 311-337 MB/s at 128 KiB, 386-463 MB/s at 4 MiB; 16 MiB
// gains nothing more).
const readAheadKB = 4096

// setReadAhead sets the read-ahead of the file system mounted at dir
// through its backing device's sysfs entry, which only root may write.
func setReadAhead(dir string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(p, []byte(strconv.Itoa(kb)), 0)
}
