package restorer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testenv"
	"github.com/cairn-backup/cairn/repo/restorer"
)

// otherUID owns the symlinks that a restore must not follow.
const otherUID = 12345

// plant makes a symlink at link pointing to dest and owned by uid.
func plant(t *testing.T, dest, link string, uid int) {
	t.Helper()
	if err := os.Symlink(dest, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// listAll returns every path below dir, relative to it.
func listAll(t *testing.T, dir string) []string {
	t.Helper()
	var all []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			all = append(all, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// refused runs a restore into target that must fail on the symlink link
// and checks that the error names it, its owner and its destination.
func refused(t *testing.T, target, link, dest string) {
	t.Helper()
	b := newBuilder(t)
	snap := b.snapshot(b.dir("etc", b.file("passwd", []byte("restored"), mib)))
	res, err := restorer.Restore(context.Background(), b.r, snap, target, restorer.Options{
		OnError: func(p string, err error) { t.Errorf("OnError(%s, %v)", p, err) },
	})
	if err == nil {
		t.Errorf("restore into %s succeeded: %+v", target, res)
		return
	}
	var se *restorer.SymlinkError
	if !errors.Is(err, restorer.ErrUntrustedSymlink) || !errors.As(err, &se) {
		t.Fatalf("err %v, want a SymlinkError", err)
	}
	if se.Link != link || se.UID != otherUID || se.Dest != dest {
		t.Errorf("SymlinkError %+v, want link %s uid %d dest %s", se, link, otherUID, dest)
	}
	for _, want := range []string{link, "uid 12345", "-> " + dest, "refusing to follow"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestTargetSymlinkOfAnotherUser: a target that is a symlink owned by
// someone else is refused and nothing is written, neither where it points
// nor next to it.
func TestTargetSymlinkOfAnotherUser(t *testing.T) {
	if !isRoot() {
		testenv.Skip(t, "needs root to chown a symlink")
	}
	for _, tc := range []struct{ name, sub string }{
		{"to a directory", ""},
		{"to a missing directory", "made/by/restore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared, elsewhere := t.TempDir(), t.TempDir()
			dest := filepath.Join(elsewhere, tc.sub)
			link := filepath.Join(shared, "restore-here")
			plant(t, dest, link, otherUID)
			refused(t, link, link, dest)
			// With a trailing slash too: that still names the link.
			refused(t, link+"/", link, dest)
			if got := listAll(t, elsewhere); len(got) != 0 {
				t.Errorf("restore wrote into the symlinked directory: %v", got)
			}
			if got := listAll(t, shared); len(got) != 1 {
				t.Errorf("restore wrote next to the symlink: %v", got)
			}
		})
	}
}

// TestTargetSymlinkInPath: a symlink of another user anywhere on the path
// to the target is refused as well, also when reached through a symlink
// that is trusted and also for a relative target.
func TestTargetSymlinkInPath(t *testing.T) {
	if !isRoot() {
		testenv.Skip(t, "needs root to chown a symlink")
	}
	shared, elsewhere := t.TempDir(), t.TempDir()
	mid := filepath.Join(shared, "mid")
	plant(t, elsewhere, mid, otherUID)
	refused(t, filepath.Join(mid, "sub", "target"), mid, elsewhere)
	// An existing directory below the link changes nothing.
	if err := os.MkdirAll(filepath.Join(elsewhere, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	refused(t, filepath.Join(mid, "sub"), mid, elsewhere)

	// root's own link leading to the foreign one.
	plant(t, "mid", filepath.Join(shared, "trusted"), 0)
	refused(t, filepath.Join(shared, "trusted", "sub"), mid, elsewhere)
	// Relative, through "..": still resolved by the real directories.
	t.Chdir(elsewhere)
	refused(t, filepath.Join("..", filepath.Base(shared), "trusted", "sub"), mid, elsewhere)

	if got := listAll(t, elsewhere); len(got) != 1 || got[0] != "sub" {
		t.Errorf("restore wrote into the symlinked directory: %v", got)
	}
	if got := listAll(t, shared); len(got) != 2 {
		t.Errorf("restore wrote next to the symlinks: %v", got)
	}
}

// TestTargetSymlinkOwnedByUser: a symlink of the user running the restore
// (or of root) is followed, on the way to the target and as the target,
// and missing directories behind it are created.
func TestTargetSymlinkOwnedByUser(t *testing.T) {
	b := newBuilder(t)
	snap := b.snapshot(b.dir("etc", b.file("passwd", []byte("restored"), mib)))
	base, real := t.TempDir(), t.TempDir()
	uid := os.Geteuid()
	plant(t, real, filepath.Join(base, "abs"), uid)                       // the target itself
	plant(t, "abs/new/dir", filepath.Join(base, "rel"), uid)              // relative, to missing dirs
	plant(t, filepath.Join(base, "abs"), filepath.Join(base, "mid"), uid) // on the way
	for _, tc := range []struct{ target, landed string }{
		{filepath.Join(base, "abs"), real},
		{filepath.Join(base, "rel"), filepath.Join(real, "new/dir")},
		{filepath.Join(base, "mid", "below"), filepath.Join(real, "below")},
	} {
		res, list := restore(t, b, snap, tc.target, restorer.Options{})
		noErrors(t, res, list)
		checkContent(t, filepath.Join(tc.landed, "etc/passwd"), []byte("restored"))
	}
	if got := listAll(t, base); len(got) != 3 {
		t.Errorf("symlinks replaced or written next to: %v", got)
	}
}
