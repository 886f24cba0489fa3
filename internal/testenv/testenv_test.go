package testenv

import (
	"fmt"
	"testing"
)

// recorder notes whether a test would have failed or been skipped.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }

func TestSkipFailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	Skip(r, "no /dev/fuse")
	if r.failed == "" || r.skipped != "" {
		t.Fatalf("in CI: failed %q, skipped %q; want a failure", r.failed, r.skipped)
	}
	t.Setenv("CI", "")
	r = &recorder{TB: t}
	Skip(r, "no /dev/fuse")
	if r.failed != "" || r.skipped == "" {
		t.Fatalf("outside CI: failed %q, skipped %q; want a skip", r.failed, r.skipped)
	}
}
