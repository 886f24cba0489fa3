package archiver

import (
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// skipper knows Options.SkipPaths. The walk recognises one by its parent
// directory's device and inode and its name, so that no stat of the
// skipped path itself is needed (on our own FUSE mount it could block) and
// a path reached through a symlink or bind mount is still recognised.
type skipper struct {
	paths []string // absolute, also with the parent's symlinks resolved
	keys  map[skipKey]bool
}

type skipKey struct {
	dev, ino uint64
	name     string
}

func newSkipper(paths []string) (*skipper, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	s := &skipper{keys: map[skipKey]bool{}}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		s.paths = append(s.paths, abs)
		if abs == "/" {
			continue
		}
		dir, name := filepath.Split(abs)
		if real, err := filepath.EvalSymlinks(dir); err == nil && real != filepath.Clean(dir) {
			s.paths = append(s.paths, filepath.Join(real, name))
		}
		var st unix.Stat_t
		if unix.Stat(dir, &st) == nil {
			s.keys[skipKey{st.Dev, st.Ino, name}] = true
		}
	}
	return s, nil
}

// covers returns the skipped path that path is or lies inside, or "".
func (s *skipper) covers(path string) string {
	if s == nil {
		return ""
	}
	for _, p := range s.paths {
		if path == p || p == "/" || strings.HasPrefix(path, p+"/") {
			return p
		}
	}
	return ""
}

// skips reports whether entry name of the directory with stat dir is a
// skipped path.
func (s *skipper) skips(dir *unix.Stat_t, name string) bool {
	return s != nil && s.keys[skipKey{dir.Dev, dir.Ino, name}]
}

// Filesystem types (statfs f_type) that SkipVirtual keeps the walk out of:
// FUSE, whatever serves it (another cairn mount, sshfs, a stalled network
// filesystem), and the kernel's virtual filesystems, whose files are not
// data worth a backup and may block or never end (/proc/kcore, trace_pipe).
// Not all have a name in x/sys/unix.
var virtualFS = map[uint32]string{
	unix.FUSE_SUPER_MAGIC:     "fuse",
	0x65735543:                "fusectl",
	unix.PROC_SUPER_MAGIC:     "proc",
	unix.SYSFS_MAGIC:          "sysfs",
	unix.DEVPTS_SUPER_MAGIC:   "devpts",
	unix.CGROUP_SUPER_MAGIC:   "cgroup",
	unix.CGROUP2_SUPER_MAGIC:  "cgroup2",
	unix.DEBUGFS_MAGIC:        "debugfs",
	unix.TRACEFS_MAGIC:        "tracefs",
	unix.SECURITYFS_MAGIC:     "securityfs",
	unix.PSTOREFS_MAGIC:       "pstore",
	unix.BPF_FS_MAGIC:         "bpf",
	0x62656570:                "configfs",
	0x19800202:                "mqueue",
	unix.HUGETLBFS_MAGIC:      "hugetlbfs",
	unix.AUTOFS_SUPER_MAGIC:   "autofs",
	unix.BINFMTFS_MAGIC:       "binfmt_misc",
	unix.EFIVARFS_MAGIC:       "efivarfs",
	unix.SELINUX_MAGIC:        "selinuxfs",
	unix.SMACK_MAGIC:          "smackfs",
	unix.NSFS_MAGIC:           "nsfs",
	unix.RDTGROUP_SUPER_MAGIC: "resctrl",
	0x67596969:                "rpc_pipefs",
}

// isVirtual reports whether directory path is the root of a filesystem of
// virtualFS. The walk asks only where st_dev changes, so a statfs per
// mount point is all it costs.
func isVirtual(path string) bool {
	var fs unix.Statfs_t
	if unix.Statfs(path, &fs) != nil {
		return false
	}
	_, ok := virtualFS[uint32(fs.Type)]
	return ok
}
