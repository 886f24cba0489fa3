package fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend"
)

func TestToErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{tree.ErrNotExist, syscall.ENOENT},
		{fmt.Errorf("lookup x: %w", tree.ErrNotExist), syscall.ENOENT},
		{fmt.Errorf("snap: %w", repo.ErrNoSnapshot), syscall.ENOENT},
		{tree.ErrReadOnly, syscall.EROFS},
		{tree.ErrNoAttr, syscall.ENODATA},
		{tree.ErrNoData, syscall.ENXIO},
		{fmt.Errorf("load: %w", context.Canceled), syscall.EINTR},
		{fmt.Errorf("load: %w", context.DeadlineExceeded), syscall.EINTR},
		{context.Cause(expired(t)), syscall.EINTR},
		{&repo.CorruptError{Object: "data/ab", Err: errors.New("bad")}, syscall.EIO},
		{fmt.Errorf("x: %w", repo.ErrBlobNotFound), syscall.EIO},
		{fmt.Errorf("x: %w", backend.ErrPermission), syscall.EACCES},
		{fmt.Errorf("x: %w", syscall.ENOSPC), syscall.ENOSPC},
		{fmt.Errorf("plan x: %w", plan.ErrNoPlan), syscall.ENOENT},
		{fmt.Errorf("plan x: %w", &plan.Error{Line: 2, Column: 3, Msg: "bad"}), syscall.EINVAL},
		{plan.ErrInvalid, syscall.EINVAL},
		{fmt.Errorf("plan x: %w", plan.ErrExist), syscall.EEXIST},
		{tree.ErrExist, syscall.EEXIST},
		{fmt.Errorf("plan x: %w", plan.ErrBusy), syscall.EBUSY},
		{tree.ErrNotEmpty, syscall.ENOTEMPTY},
		{fmt.Errorf("rmdir x: %w", tree.ErrNotDir), syscall.ENOTDIR},
		{tree.ErrIsDir, syscall.EISDIR},
		{tree.ErrPerm, syscall.EPERM},
		{tree.ErrAccess, syscall.EACCES},
		{tree.ErrCrossDir, syscall.EXDEV},
		{tree.ErrTooLarge, syscall.EFBIG},
		{errors.New("something unknown"), syscall.EIO},
	} {
		if got := toErrno(c.err); got != c.want {
			t.Errorf("toErrno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// expired returns a context whose deadline has passed.
func expired(t *testing.T) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	t.Cleanup(cancel)
	return ctx
}
