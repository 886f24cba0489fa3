package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/backend"
)

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Creator = (*Backend)(nil)
)

// tmpPrefix starts the names of files that are not objects yet.
const tmpPrefix = ".tmp-"

// modes are the permissions of new files and directories, before the umask.
type modes struct {
	file, dir os.FileMode
}

// privateModes keep the repository, key files included, to its owner.
var privateModes = modes{file: 0o600, dir: 0o700}

// modesOf returns the modes that follow config's group bits, as restic's
// group-accessible repositories do: a group that may read config may read
// (and enter) everything, a group that may write it may write everything.
func modesOf(config os.FileMode) modes {
	m := privateModes
	if config&0o040 != 0 {
		m.file |= 0o040
		m.dir |= 0o050
	}
	if config&0o020 != 0 {
		m.file |= 0o020
		m.dir |= 0o020
	}
	return m
}

// Backend stores objects in a directory. It holds no open files between
// calls; all state is on disk, so several processes may share a root.
type Backend struct {
	root string

	closed atomic.Bool
	// perm is nil until config has been seen, then the modes it decided;
	// see Backend.modes.
	perm atomic.Pointer[modes]
	// noRenameat2 is set once the filesystem has refused renameat2 with
	// EINVAL or ENOSYS; Save then commits with link(2) and unlink(2).
	noRenameat2 atomic.Bool
}

// Open returns a backend for the repository at root. The directory need
// not exist: Create makes it, and other calls on a missing repository fail
// with errors wrapping backend.ErrNotExist.
func Open(root string) (*Backend, error) {
	if root == "" {
		return nil, errors.New("local: empty repository path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	b := &Backend{root: abs}
	b.modes() // follow the repository's config as it is now, if there is one
	return b, nil
}

// modes returns the permissions for new files and directories: those that
// follow config's group bits (modesOf), privateModes without a config. The first config
// found decides, at Open or, for a repository that had no config then
// (not created yet, or being created), at a later call. Until then each
// call costs a stat, and private is assumed.
func (b *Backend) modes() modes {
	if m := b.perm.Load(); m != nil {
		return *m
	}
	fi, err := os.Stat(filepath.Join(b.root, "config"))
	if err != nil {
		// No config yet, or one we cannot see: nothing tells us the
		// repository is shared, so keep new files private.
		return privateModes
	}
	m := modesOf(fi.Mode().Perm())
	// A racing call may have decided first, from an older mode of config;
	// all calls return the same modes from here on.
	b.perm.CompareAndSwap(nil, &m)
	return *b.perm.Load()
}

// Location implements backend.Backend: the absolute root directory.
func (b *Backend) Location() string { return b.root }

// dirOf returns the directory holding h.
func (b *Backend) dirOf(h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return b.root
	case backend.PackFile:
		return filepath.Join(b.root, string(backend.PackFile), h.Name[:2])
	default:
		return filepath.Join(b.root, string(h.Type))
	}
}

// pathOf returns the file holding h.
func (b *Backend) pathOf(h backend.Handle) string {
	if h.Type == backend.ConfigFile {
		return filepath.Join(b.root, "config")
	}
	return filepath.Join(b.dirOf(h), h.Name)
}

// check runs the checks every method taking a handle starts with.
func (b *Backend) check(ctx context.Context, op string, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("%s %v: %w", op, h, err)
	}
	if h.Type != backend.ConfigFile && strings.HasPrefix(h.Name, tmpPrefix) {
		return fmt.Errorf("%s %v: names starting with %q are reserved for temporary files", op, h, tmpPrefix)
	}
	if b.closed.Load() {
		return fmt.Errorf("%s %v: %w", op, h, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %v: %w", op, h, err)
	}
	return nil
}

// Create implements backend.Creator. It makes the directory tree and fails
// with ErrExist if root exists and is not empty, so it never adopts a
// directory that holds something else.
func (b *Backend) Create(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("create %s: %w", b.root, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create %s: %w", b.root, err)
	}
	empty, err := isEmptyDir(b.root)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("create: %w", translate(err))
	}
	if err == nil && !empty {
		return fmt.Errorf("create: %s is not empty: %w", b.root, backend.ErrExist)
	}

	dirs := make([]string, 0, len(backend.FileTypes)+256)
	for _, t := range backend.FileTypes {
		if t != backend.ConfigFile {
			dirs = append(dirs, filepath.Join(b.root, string(t)))
		}
	}
	data := filepath.Join(b.root, string(backend.PackFile))
	for i := range 256 {
		dirs = append(dirs, filepath.Join(data, fmt.Sprintf("%02x", i)))
	}
	// There is no config in an empty directory, so these are private
	// unless a config appeared since the check above.
	dirMode := b.modes().dir
	for _, d := range dirs {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return fmt.Errorf("create: %w", translate(err))
		}
	}
	for _, d := range []string{data, b.root, filepath.Dir(b.root)} {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("create: %w", translate(err))
		}
	}
	return nil
}

// isEmptyDir reports whether dir has no entries, reading at most one.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := b.check(ctx, "save", h); err != nil {
		return err
	}
	dir := b.dirOf(h)
	tmp, err := b.writeTemp(h, dir, data, b.modes())
	if err != nil {
		return fmt.Errorf("save %v: %w", h, translate(err))
	}
	// Last chance to honour a cancellation: after the move the object is
	// stored and the Save can no longer be "not done".
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save %v: %w", h, err)
	}
	if err := b.commit(tmp, b.pathOf(h)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save %v: %w", h, translate(err))
	}
	// The object is in place, but without the directory sync it may not
	// survive a crash, so the caller must not count it as stored.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save %v: %w", h, translate(err))
	}
	return nil
}

// writeTemp writes data to a new temporary file in dir, fsyncs and closes
// it, and returns its path. The file, and dir if it has to be made, are
// created with m. On failure it leaves no file behind.
func (b *Backend) writeTemp(h backend.Handle, dir string, data []byte, m modes) (string, error) {
	f, err := createTemp(dir, m.file)
	if errors.Is(err, unix.ENOENT) && (h.Type == backend.PackFile || h.Type == backend.MarkFile) {
		// A pack prefix outside 00..ff, or the marks/ of a repository
		// made before marks existed. Mkdir, not MkdirAll: if data/ (or
		// the root) is missing the repository is, and Save must say so.
		if err := os.Mkdir(dir, m.dir); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", err
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return "", err
		}
		f, err = createTemp(dir, m.file)
	}
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// createTemp creates a new temporary file in dir with mode perm. Unlike
// os.CreateTemp (always 0600) it takes the mode, so committed objects need
// no chmod, and an object is never readable by more users than its final
// mode allows, not even while it is being written.
func createTemp(dir string, perm os.FileMode) (*os.File, error) {
	for range 10 {
		name := filepath.Join(dir, fmt.Sprintf("%s%016x", tmpPrefix, rand.Uint64()))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create temporary file in %s: too many name collisions", dir)
}

// commit moves tmp to final unless final exists, in which case the error
// wraps EEXIST and final is untouched.
func (b *Backend) commit(tmp, final string) error {
	if !b.noRenameat2.Load() {
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
			return &os.LinkError{Op: "renameat2", Old: tmp, New: final, Err: err}
		}
		b.noRenameat2.Store(true)
	}
	// link(2) fails with EEXIST rather than replace, which is what makes
	// this fallback create-only too.
	if err := os.Link(tmp, final); err != nil {
		return err
	}
	// The object is stored. A temporary name that survives a failed unlink
	// is harmless garbage: List skips it.
	os.Remove(tmp)
	return nil
}

// syncDir fsyncs a directory so that entries made in it survive a crash.
// Filesystems that cannot sync directories (EINVAL, ENOTSUP) are accepted.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	err = f.Sync()
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	return err
}

// Load implements backend.Backend with one pread of the requested range.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	if err := b.check(ctx, "load", h); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("load %v: invalid range offset %d length %d", h, offset, length)
	}
	f, err := os.Open(b.pathOf(h))
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, translate(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, translate(err))
	}
	// Check the range against the size before allocating, so a bad length
	// cannot ask for a huge buffer.
	size := fi.Size()
	end := size
	if length > 0 {
		end = offset + int64(length)
	}
	if offset > size || end > size {
		return nil, fmt.Errorf("load %v: range %d+%d beyond size %d: %w", h, offset, length, size, io.ErrUnexpectedEOF)
	}
	buf := make([]byte, end-offset)
	n, err := f.ReadAt(buf, offset)
	if err == io.EOF && n == len(buf) {
		err = nil
	}
	if err == io.EOF {
		// The file shrank since Stat: objects never do, so it is damaged.
		return nil, fmt.Errorf("load %v: short read of %d bytes at %d, want %d: %w", h, n, offset, len(buf), io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, translate(err))
	}
	return buf, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.check(ctx, "stat", h); err != nil {
		return backend.FileInfo{}, err
	}
	fi, err := os.Stat(b.pathOf(h))
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %v: %w", h, translate(err))
	}
	return backend.FileInfo{Name: h.ReportedName(), Size: fi.Size()}, nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.check(ctx, "remove", h); err != nil {
		return err
	}
	err := os.Remove(b.pathOf(h))
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %v: %w", h, translate(err))
	}
	return nil
}

// List implements backend.Backend. Listing a missing repository fails with
// ErrNotExist; temporary files and anything not a regular file are skipped.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	if b.closed.Load() {
		return fmt.Errorf("list %s: %w", t, backend.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}

	switch t {
	case backend.ConfigFile:
		return b.listConfig(fn)
	case backend.PackFile:
		return b.listPacks(ctx, fn)
	case backend.MarkFile:
		// Made on demand (see writeTemp); a repository with none has no marks.
		if _, err := os.Stat(b.root); err != nil {
			return fmt.Errorf("list %s: %w", t, translate(err))
		}
		return listDir(ctx, t, filepath.Join(b.root, string(t)), true, fn)
	default:
		return listDir(ctx, t, filepath.Join(b.root, string(t)), false, fn)
	}
}

func (b *Backend) listConfig(fn func(backend.FileInfo) error) error {
	fi, err := os.Stat(filepath.Join(b.root, "config"))
	if errors.Is(err, unix.ENOENT) {
		// No config yet; still an error if there is no repository at all.
		if _, err := os.Stat(b.root); err != nil {
			return fmt.Errorf("list config: %w", translate(err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("list config: %w", translate(err))
	}
	return fn(backend.FileInfo{Name: "config", Size: fi.Size()})
}

// listPacks lists every directory under data/, not only 00..ff, because
// Save makes directories for other prefixes on demand.
func (b *Backend) listPacks(ctx context.Context, fn func(backend.FileInfo) error) error {
	data := filepath.Join(b.root, string(backend.PackFile))
	entries, err := os.ReadDir(data)
	if err != nil {
		return fmt.Errorf("list %s: %w", backend.PackFile, translate(err))
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := listDir(ctx, backend.PackFile, filepath.Join(data, e.Name()), true, fn); err != nil {
			return err
		}
	}
	return nil
}

// listDir calls fn for the objects in dir, reading the directory in
// batches so that huge directories need not fit in memory. If missingOK,
// a missing dir lists nothing. Errors from fn are returned unwrapped.
func listDir(ctx context.Context, t backend.FileType, dir string, missingOK bool, fn func(backend.FileInfo) error) error {
	f, err := os.Open(dir)
	if missingOK && errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", t, translate(err))
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		entries, err := f.ReadDir(1024)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, unix.ENOENT) {
				continue // removed while we listed
			}
			if err != nil {
				return fmt.Errorf("list %s: %w", t, translate(err))
			}
			if err := fn(backend.FileInfo{Name: e.Name(), Size: fi.Size()}); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, translate(err))
		}
	}
}

// Close implements backend.Backend. There is nothing to release; later
// calls, Close included, fail with ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("close %s: %w", b.root, backend.ErrClosed)
	}
	return nil
}

// fsError pairs a native error with the sentinel it maps to. Its message is
// the native error's (which names the path); errors.Is finds both.
type fsError struct {
	sentinel error
	err      error
}

func (e *fsError) Error() string   { return e.err.Error() }
func (e *fsError) Unwrap() []error { return []error{e.sentinel, e.err} }

// translate is the one place that maps filesystem errors to the backend
// sentinels. Errors without a sentinel are returned unchanged.
func translate(err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err
	}
	var sentinel error
	switch errno {
	case unix.ENOENT:
		sentinel = backend.ErrNotExist
	case unix.EEXIST:
		sentinel = backend.ErrExist
	case unix.EACCES, unix.EPERM, unix.EROFS:
		sentinel = backend.ErrPermission
	case unix.ENOSPC, unix.EDQUOT:
		sentinel = backend.ErrNoSpace
	default:
		return err
	}
	return &fsError{sentinel: sentinel, err: err}
}
