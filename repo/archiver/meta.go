package archiver

import (
	"errors"
	"os/user"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
)

// nodeFromStat fills the metadata of a node from lstat data.
func nodeFromStat(name string, st *unix.Stat_t, names *idNames) *repo.Node {
	n := &repo.Node{
		Name:   name,
		Mode:   st.Mode & 07777,
		UID:    st.Uid,
		GID:    st.Gid,
		User:   names.user(st.Uid),
		Group:  names.group(st.Gid),
		MTime:  recordable(st.Mtim),
		ATime:  recordable(st.Atim),
		CTime:  recordable(st.Ctim),
		Inode:  st.Ino,
		Device: st.Dev,
		Links:  uint64(st.Nlink),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type = repo.NodeFile
		n.Size = uint64(st.Size)
	case unix.S_IFDIR:
		n.Type = repo.NodeDir
		n.Links = 0 // a directory's link count says nothing worth keeping
	case unix.S_IFLNK:
		n.Type = repo.NodeSymlink
		n.Size = uint64(st.Size)
	case unix.S_IFBLK:
		n.Type = repo.NodeDev
		n.Rdev = st.Rdev
	case unix.S_IFCHR:
		n.Type = repo.NodeCharDev
		n.Rdev = st.Rdev
	case unix.S_IFIFO:
		n.Type = repo.NodeFIFO
	case unix.S_IFSOCK:
		n.Type = repo.NodeSocket
	}
	return n
}

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// recordable converts a timestamp, clamped to the years 1 to 9999 that
// the format's RFC 3339 times can hold (a file dated 30000 AD must not
// stop a backup).
func recordable(ts unix.Timespec) time.Time {
	t := time.Unix(ts.Sec, ts.Nsec).UTC()
	if t.Before(minTime) {
		return minTime
	}
	if t.After(maxTime) {
		return maxTime
	}
	return t
}

// xattrReader lists and reads one entry's extended attributes: by
// descriptor or by a path whose last component is not followed.
type xattrReader struct {
	list func(buf []byte) (int, error)
	get  func(name string, buf []byte) (int, error)
}

// fdXattrs reads the xattrs of an open file or directory.
func fdXattrs(fd int) xattrReader {
	return xattrReader{
		list: func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
		get:  func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) },
	}
}

// pathXattrs reads the xattrs of path, not following a symlink there.
func pathXattrs(path string) xattrReader {
	return xattrReader{
		list: func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) },
		get:  func(name string, buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) },
	}
}

// readXattrs returns all extended attributes that x reads. Filesystems
// without xattr support yield none.
func readXattrs(x xattrReader) ([]repo.Xattr, error) {
	buf := make([]byte, 1024)
	var size int
	for {
		n, err := x.list(buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		size = n
		break
	}
	if size == 0 {
		return nil, nil
	}
	var out []repo.Xattr
	val := make([]byte, 256)
	for _, name := range splitNull(buf[:size]) {
		for {
			n, err := x.get(name, val)
			if errors.Is(err, unix.ERANGE) {
				val = make([]byte, len(val)*4)
				continue
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENODATA) {
				break // removed meanwhile
			}
			if err != nil {
				return out, err
			}
			out = append(out, repo.Xattr{Name: name, Value: append([]byte{}, val[:n]...)})
			break
		}
	}
	return out, nil
}

func splitNull(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// idNames caches uid and gid to name lookups.
type idNames struct {
	mu     sync.Mutex // guards the maps
	users  map[uint32]string
	groups map[uint32]string
}

func newIDNames() *idNames {
	return &idNames{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (c *idNames) user(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.users[id]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.Itoa(int(id))); err == nil {
		n = u.Username
	}
	c.users[id] = n
	return n
}

func (c *idNames) group(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.groups[id]; ok {
		return n
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.Itoa(int(id))); err == nil {
		n = g.Name
	}
	c.groups[id] = n
	return n
}
