package restorer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The fallbacks for older kernels, which the machine running the tests
// may not need.

func TestChmodProc(t *testing.T) {
	d := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(d, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := chmodProc(dfd, "fifo", 0o4751); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(d, "fifo"), &st); err != nil || st.Mode != unix.S_IFIFO|0o4751 {
		t.Errorf("fifo mode %o, %v", st.Mode, err)
	}
	if err := chmodProc(dfd, "link", 0o600); !errors.Is(err, unix.ELOOP) {
		t.Errorf("chmod through a symlink: %v, want ELOOP", err)
	}
}

func TestOpenBeneath(t *testing.T) {
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(d, "a"), filepath.Join(d, "s")); err != nil {
		t.Fatal(err)
	}
	root, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	for p, ok := range map[string]bool{"/a/b": true, "/": true, "/s/b": false, "/s": false, "/a/missing": false} {
		fd, err := openBeneath(root, p)
		if (err == nil) != ok {
			t.Errorf("openBeneath(%q): %v, want ok=%v", p, err, ok)
		}
		if err == nil {
			unix.Close(fd)
		}
	}
}
