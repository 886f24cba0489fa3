package restorer

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
)

// applyMeta sets owner, mode, xattrs and times of entry name in directory
// dirfd. fd is the entry's own descriptor when the caller has one (files,
// directories), else -1. Each failure is reported; the result says whether
// there was one.
func (rs *restorer) applyMeta(dirfd int, name string, fd int, n *repo.Node, p string) (failed bool) {
	fail := func(err error) {
		rs.report(p, err)
		failed = true
	}

	uid, gid := rs.owners.ids(n, rs.opts.NumericOwner)
	var err error
	if fd >= 0 {
		err = unix.Fchown(fd, uid, gid)
	} else {
		err = unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}
	// Without root, files keep the restoring user as owner, as with tar.
	if err != nil && (rs.root || !errors.Is(err, unix.EPERM)) {
		fail(fmt.Errorf("chown %d:%d: %w", uid, gid, err))
	}

	// After chown, which clears setuid and setgid.
	if n.Type != repo.NodeSymlink {
		mode := n.Mode & 0o7777
		if fd >= 0 {
			err = unix.Fchmod(fd, mode)
		} else {
			err = chmodAt(dirfd, name, mode)
		}
		if err != nil {
			fail(fmt.Errorf("chmod %04o: %w", mode, err))
		}
	}

	for _, x := range n.Xattrs {
		if fd >= 0 {
			err = unix.Fsetxattr(fd, x.Name, x.Value, 0)
		} else {
			// Through the directory we hold, never a path from the top:
			// /proc/self/fd/N is that directory itself, and lsetxattr does
			// not follow the entry if it is a symlink.
			err = unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name), x.Name, x.Value, 0)
		}
		if err != nil {
			fail(fmt.Errorf("xattr %s: %w", x.Name, err))
		}
	}

	ts := []unix.Timespec{timespec(n.ATime), timespec(n.MTime)}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		fail(fmt.Errorf("set times: %w", err))
	}
	return failed
}

// chmodAt changes the mode of a FIFO or device node without following a
// symlink that might have taken its place: fchmodat2 where the kernel has
// it (Linux 6.6), else the inode opened with O_PATH and changed through
// its /proc/self/fd link, as glibc does.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return chmodProc(dirfd, name, mode)
}

// chmodProc is chmodAt for kernels without fchmodat2.
func chmodProc(dirfd int, name string, mode uint32) error {
	pfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", pfd), mode)
}

// timespec converts t; a zero time leaves the file's time as it is.
func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// replace runs create and, if an entry of that name is in the way, removes
// it and runs create again. Entries are removed, never written through: a
// symlink is not followed and a hard link to a file outside the restore is
// left alone.
func replace(dirfd int, name string, create func() error) error {
	err := create()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := remove(dirfd, name); err != nil {
		return fmt.Errorf("replace existing entry: %w", err)
	}
	return create()
}

// remove unlinks name, or removes it if it is an empty directory.
func remove(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		// unlink of a directory: EISDIR on Linux, EPERM per POSIX.
		if err2 := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err2 == nil || !errors.Is(err2, unix.ENOTDIR) {
			return err2
		}
	}
	return err
}

// mkdirOpen creates directory name in dirfd, or reuses a directory already
// there, and opens it. Anything else in the way, a symlink above all, is
// removed first and never followed.
func mkdirOpen(dirfd int, name string) (int, error) {
	err := unix.Mkdirat(dirfd, name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err = unix.Unlinkat(dirfd, name, 0); err == nil {
				err = unix.Mkdirat(dirfd, name, 0o700)
			}
		}
	}
	if err != nil {
		return -1, fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open directory: %w", err)
	}
	return fd, nil
}

// openBeneath opens directory p (a path inside the snapshot) below root
// one component at a time, failing on a symlink or anything else that is
// not a directory. The descriptor is O_PATH: good for *at calls only.
func openBeneath(root int, p string) (int, error) {
	fd := root
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if name == "" {
			continue
		}
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if fd != root {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	if fd == root {
		return unix.Dup(root)
	}
	return fd, nil
}

// owners maps recorded user and group names to this system's ids,
// remembering each answer.
type owners struct {
	mu     sync.Mutex     // guards the maps; never held across a lookup
	users  map[string]int // -1: no such user here
	groups map[string]int // -1: no such group here
}

func newOwners() *owners {
	return &owners{users: make(map[string]int), groups: make(map[string]int)}
}

// ids returns the uid and gid to give n: those of its user and group names
// where this system knows them (unless numeric), else the recorded ids.
func (o *owners) ids(n *repo.Node, numeric bool) (uid, gid int) {
	uid, gid = int(n.UID), int(n.GID)
	if numeric {
		return uid, gid
	}
	if n.User != "" {
		if id := o.lookup(o.users, n.User, lookupUser); id >= 0 {
			uid = id
		}
	}
	if n.Group != "" {
		if id := o.lookup(o.groups, n.Group, lookupGroup); id >= 0 {
			gid = id
		}
	}
	return uid, gid
}

func (o *owners) lookup(m map[string]int, name string, look func(string) int) int {
	o.mu.Lock()
	id, ok := m[name]
	o.mu.Unlock()
	if ok {
		return id
	}
	id = look(name)
	o.mu.Lock()
	m[name] = id
	o.mu.Unlock()
	return id
}

func lookupUser(name string) int {
	u, err := user.Lookup(name)
	if err != nil {
		return -1
	}
	return parseID(u.Uid)
}

func lookupGroup(name string) int {
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1
	}
	return parseID(g.Gid)
}

func parseID(s string) int {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return -1
	}
	return int(id)
}
