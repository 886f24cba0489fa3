package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMountShowsEveryMode backs up a file and a directory with each mode
// from 0000 to 7777 and stats them through a real mount: each shows the
// mode it was backed up with. go-fuse replaces a mode without permission
// bits by 0644 (0755 for directories) unless told not to, which turned a
// private file world-readable for cp -a out of the mount (issue 15).
func TestMountShowsEveryMode(t *testing.T) {
	requireRoot(t)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	e := newEnv(t)
	src := t.TempDir()
	for _, kind := range []string{"f", "d"} {
		if err := os.Mkdir(filepath.Join(src, kind), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for m := range 0o10000 {
		f, d := modePath(src, "f", m), modePath(src, "d", m)
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		// chmod after creation: the mode bits open() and mkdir() take are
		// not all of them (setuid, sticky).
		for _, p := range []string{f, d} {
			if err := syscall.Chmod(p, uint32(m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.ok("backup", src)
	m := startMount(t, mountDir(t), e.password, e.repo)
	in := filepath.Join(snapshotsDir(m.dir, e.repo), "latest", src)
	wrong := 0
	for mode := range 0o10000 {
		for _, kind := range []string{"f", "d"} {
			var st syscall.Stat_t
			p := modePath(in, kind, mode)
			if err := syscall.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			want := uint32(syscall.S_IFREG)
			if kind == "d" {
				want = syscall.S_IFDIR
			}
			if st.Mode != want|uint32(mode) {
				if wrong++; wrong <= 10 {
					t.Errorf("%s: mode %06o through the mount, backed up as %06o", p, st.Mode, want|uint32(mode))
				}
			}
		}
	}
	if wrong > 10 {
		t.Errorf("... %d wrong modes in all", wrong)
	}
}

func modePath(root, kind string, mode int) string {
	return filepath.Join(root, kind, fmt.Sprintf("%04o", mode))
}
