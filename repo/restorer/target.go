package restorer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUntrustedSymlink: the path to the restore target goes through a
// symlink that the restore does not follow. The error is a *SymlinkError.
var ErrUntrustedSymlink = errors.New("untrusted symlink on the target path")

// SymlinkError names a symlink on the path to the restore target that is
// owned by neither root nor the user running the restore.
type SymlinkError struct {
	Target string // the target as given
	Link   string // the symlink: its real directory and its name
	UID    uint32 // the symlink's owner
	Dest   string // what the symlink points to
	Whole  bool   // the symlink is the target itself, not a directory on its way
}

func (e *SymlinkError) Error() string {
	what := "target " + e.Link
	if !e.Whole {
		what = fmt.Sprintf("target %s: %s", e.Target, e.Link)
	}
	return fmt.Sprintf("%s is a symlink owned by uid %d (-> %s); refusing to follow it: name the real directory instead",
		what, e.UID, e.Dest)
}

func (e *SymlinkError) Unwrap() error { return ErrUntrustedSymlink }

// maxSymlinks bounds the symlinks followed while resolving the target, as
// the kernel's MAXSYMLINKS does.
const maxSymlinks = 40

// openTarget resolves target one component at a time and returns a
// descriptor of the directory it names, creating missing directories
// (mode 0700) on the way.
//
// Root runs restores into paths that other users can change, so the
// target is not simply opened: a symlink on its path is followed only if
// it is owned by root or by the effective user, in the spirit of the
// kernel's fs.protected_symlinks; any other is refused with a
// *SymlinkError before anything is created. The walk goes by descriptors
// (openat with O_NOFOLLOW from the directory reached so far), and a
// symlink's owner and contents are read from one descriptor of the link
// itself, so swapping a component between the check and the use does not
// lead anywhere the check did not see. Directories to create are only
// noted during the walk and created once the whole path is resolved.
func openTarget(target string) (int, error) {
	fail := func(op, p string, err error) error {
		return fmt.Errorf("target %s: %w", target, &os.PathError{Op: op, Path: p, Err: err})
	}
	if target == "" {
		return -1, errors.New("no target directory given")
	}
	start, where := ".", "."
	if path.IsAbs(target) {
		start, where = "/", "/"
	} else if wd, err := unix.Getwd(); err == nil {
		where = wd // the real working directory, for messages
	}
	fd, err := unix.Open(start, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fail("open", start, err)
	}
	defer func() { unix.Close(fd) }()
	euid := uint32(unix.Geteuid())

	queue := strings.Split(target, "/") // components still to resolve
	var missing []string                // below fd, to create
	followed := 0
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		switch {
		case name == "" || name == ".":
			continue
		case name == ".." && len(missing) > 0:
			missing = missing[:len(missing)-1]
			continue
		case len(missing) > 0:
			missing = append(missing, name)
			continue
		}
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && name != ".." {
			missing = append(missing, name)
			continue
		}
		p := path.Join(where, name)
		if err != nil {
			return -1, fail("open", p, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(next, &st); err != nil {
			unix.Close(next)
			return -1, fail("stat", p, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			unix.Close(fd)
			fd, where = next, p
		case unix.S_IFLNK:
			dest, err := readlink(next, st.Size)
			unix.Close(next)
			if err != nil {
				return -1, fail("readlink", p, err)
			}
			if st.Uid != 0 && st.Uid != euid {
				return -1, &SymlinkError{Target: target, Link: p, UID: st.Uid, Dest: dest, Whole: followed == 0 && onlyDots(queue)}
			}
			if followed++; followed > maxSymlinks {
				return -1, fail("open", p, unix.ELOOP)
			}
			queue = append(strings.Split(dest, "/"), queue...)
			if path.IsAbs(dest) {
				root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return -1, fail("open", "/", err)
				}
				unix.Close(fd)
				fd, where = root, "/"
			}
		default:
			unix.Close(next)
			return -1, fail("open", p, unix.ENOTDIR)
		}
	}
	for _, name := range missing {
		p := path.Join(where, name)
		if err := unix.Mkdirat(fd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fail("mkdir", p, err)
		}
		// Created by someone else meanwhile: fine if it is a directory,
		// never followed if it is a symlink.
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fail("open", p, err)
		}
		unix.Close(fd)
		fd, where = next, p
	}
	// An O_PATH descriptor serves *at calls only; reopening "." of it
	// gives a full one of the same directory.
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fail("open", where, err)
	}
	return dfd, nil
}

// readlink reads the symlink that fd (opened O_PATH|O_NOFOLLOW) is, size
// being its recorded length.
func readlink(fd int, size int64) (string, error) {
	buf := make([]byte, max(size+1, 256))
	for {
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// onlyDots reports whether the components left name the directory reached
// so far itself ("link/." is the link).
func onlyDots(names []string) bool {
	for _, n := range names {
		if n != "" && n != "." {
			return false
		}
	}
	return true
}
