package archiver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The walk reads the source tree through directory descriptors: each
// directory is opened relative to its parent's descriptor with
// O_NOFOLLOW|O_DIRECTORY and checked against the parent's listing (device
// and inode), and every entry below it is stat'ed, opened, read as a link
// or asked for its xattrs relative to that descriptor. A user who may
// change part of the tree while root backs it up can therefore swap a
// directory for a symlink (renameat2 RENAME_EXCHANGE in a loop) without
// pulling any file from outside the tree into the snapshot: the swap is
// seen and reported like a file that changed (issue 18). Paths serve only
// names in reports, excludes and the skipper.

// errReplaced: a directory entry is no longer the one its parent's listing
// showed (another inode, or a symlink now).
var errReplaced = fmt.Errorf("%w: replaced while the backup read it", ErrChanged)

// ErrUntrustedLink: a symlink on the way to a source is owned by a user
// other than root or the one running the backup, so following it could let
// that user choose what is backed up.
var ErrUntrustedLink = errors.New("symlink owned by another user is not followed")

// maxLinkHops bounds the symlinks followed to resolve one source, as the
// kernel's 40 does.
const maxLinkHops = 40

// openDir opens directory name of dirfd, as listed with lstat data want,
// without following a symlink, and returns the descriptor and its fstat.
// An entry that is no longer that directory gives errReplaced.
func openDir(dirfd int, name string, want *unix.Stat_t) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := openatRetry(dirfd, name, flags|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		fd, err = openatRetry(dirfd, name, flags)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, st, errReplaced
	}
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if want != nil && (st.Dev != want.Dev || st.Ino != want.Ino) {
		unix.Close(fd)
		return -1, st, errReplaced
	}
	return fd, st, nil
}

// openFile opens regular file name of dirfd for reading, without
// following a symlink; O_NONBLOCK keeps a FIFO swapped in for the file
// from blocking the open (it changes nothing for regular files).
func openFile(dirfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := openatRetry(dirfd, name, flags|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		// O_NOATIME needs ownership of the file (or CAP_FOWNER).
		fd, err = openatRetry(dirfd, name, flags)
	}
	if errors.Is(err, unix.ELOOP) {
		return -1, errReplaced
	}
	return fd, err
}

func openatRetry(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// lstatAt is lstat of name relative to dirfd.
func lstatAt(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// readNames returns the names in directory fd, unsorted, without . and ..
func readNames(fd int) ([]string, error) {
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// readlinkAt returns the target of symlink name of dirfd; size is its
// lstat size, a hint.
func readlinkAt(dirfd int, name string, size int64) (string, error) {
	buf := make([]byte, max(size+1, 128))
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*2) // grew since the lstat
	}
}

// fdReader reads a descriptor at offsets; it has no position.
type fdReader int

func (fd fdReader) ReadAt(b []byte, off int64) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Pread(int(fd), b[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// procFD reports whether /proc/self/fd is there to name an entry relative
// to a descriptor (for the calls that have no *at form here: the xattrs
// of symlinks and device nodes, which cannot be opened).
var procFD = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// atPath returns a path that names entry name of dirfd without resolving
// anything the walk has not checked: /proc/self/fd/N is the directory
// itself whatever was renamed since, and the last component is not
// followed by the l* calls. Without /proc it falls back to path.
func atPath(dirfd int, name, path string) string {
	if !procFD() {
		return path
	}
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// rootFD opens "/", where the walk of every source starts.
func rootFD() (int, error) {
	return openatRetry(unix.AT_FDCWD, "/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// trustedLink reports whether the walk may follow a symlink of lstat data
// st on the way to a source: root's and the backup user's own links only.
// Anyone else's could point the backup at what that user may not read
// (the idea of the kernel's fs.protected_symlinks).
func trustedLink(st *unix.Stat_t) bool {
	return st.Uid == 0 || st.Uid == uint32(os.Geteuid())
}

// openPath opens directory p, relative to start (absolute paths from
// "/"), component by component: directories without following symlinks
// and checked against their lstat, symlinks only when trustedLink allows.
// hops counts the symlinks followed so far. The caller owns start.
func openPath(start int, p string, hops *int) (int, unix.Stat_t, error) {
	if strings.HasPrefix(p, "/") {
		root, err := rootFD()
		if err != nil {
			return -1, unix.Stat_t{}, err
		}
		defer unix.Close(root)
		start = root
	}
	cur, owned := start, false
	var st unix.Stat_t
	for comp := range strings.SplitSeq(p, "/") {
		if comp == "" || comp == "." {
			continue
		}
		next, nst, err := openFollow(cur, comp, hops)
		if owned {
			unix.Close(cur)
		}
		if err != nil {
			return -1, nst, err
		}
		cur, owned, st = next, true, nst
	}
	if !owned { // p names start itself
		return openDir(cur, ".", nil)
	}
	return cur, st, nil
}

// openFollow opens directory name of dirfd for a path that a user named:
// a symlink is followed when trustedLink allows, a directory is opened
// without following and checked against its lstat.
func openFollow(dirfd int, name string, hops *int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := lstatAt(dirfd, name, &st); err != nil {
		return -1, st, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return openDir(dirfd, name, &st)
	case unix.S_IFLNK:
		if !trustedLink(&st) {
			return -1, st, fmt.Errorf("%s: %w (uid %d)", name, ErrUntrustedLink, st.Uid)
		}
		if *hops++; *hops > maxLinkHops {
			return -1, st, unix.ELOOP
		}
		target, err := readlinkAt(dirfd, name, st.Size)
		if err != nil {
			return -1, st, err
		}
		return openPath(dirfd, target, hops)
	default:
		return -1, st, unix.ENOTDIR
	}
}

// realPath resolves directory p as openPath does and returns the path the
// kernel knows it by.
func realPath(p string) (string, error) {
	var hops int
	fd, _, err := openPath(unix.AT_FDCWD, p, &hops)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
}
