package fs

import (
	"context"
	"errors"
	"log"
	"syscall"

	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

// toErrno is the one place errors become errnos. go-fuse's own ToErrno
// does not unwrap %w chains, so this one uses errors.Is on our sentinels.
// Errors that mean damage or an unknown failure are logged, naming what
// the error names (pack, blob), and become EIO.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, tree.ErrNotExist), errors.Is(err, repo.ErrNoSnapshot), errors.Is(err, plan.ErrNoPlan):
		return syscall.ENOENT
	case errors.Is(err, plan.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, tree.ErrExist), errors.Is(err, plan.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, plan.ErrBusy):
		return syscall.EBUSY
	case errors.Is(err, tree.ErrNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, tree.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, tree.ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, tree.ErrPerm):
		return syscall.EPERM
	case errors.Is(err, tree.ErrAccess):
		return syscall.EACCES
	case errors.Is(err, tree.ErrCrossDir):
		return syscall.EXDEV
	case errors.Is(err, tree.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, tree.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, tree.ErrNoAttr):
		return syscall.ENODATA
	case errors.Is(err, tree.ErrNoData):
		return syscall.ENXIO
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	case errors.Is(err, backend.ErrPermission):
		log.Printf("cairn: %v", err)
		return syscall.EACCES
	case errors.As(err, &errno):
		return errno
	default:
		log.Printf("cairn: %v", err)
		return syscall.EIO
	}
}
