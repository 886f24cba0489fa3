package repo_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/maint"
	"github.com/cairn-backup/cairn/repo/restorer"
)

// Golden repositories: one per released format, generated once by
// `go test ./repo -run TestGolden -update-golden` and committed. Every
// later release must still open and restore them.
var updateGolden = flag.Bool("update-golden", false, "regenerate testdata/golden/v<FormatVersion>")

const (
	goldenPassword = "golden"
	goldenSource   = "/cairn-golden-source" // recorded path inside the snapshot
)

// goldenTree writes the source tree every golden repository was made
// from, byte for byte and time for time.
func goldenTree(t *testing.T, dir string) {
	t.Helper()
	mtime := time.Date(2026, 11, 21, 4, 0, 0, 123456789, time.UTC)
	files := map[string][]byte{
		"README":           []byte("cairn golden repository\n"),
		"docs/a.txt":       bytes.Repeat([]byte("a line of text\n"), 4000),
		"docs/empty":       nil,
		"bin/data":         pseudoRandom(3 << 20),
		"deep/x/y/z/leaf":  []byte("leaf"),
		"names/ünïcødé 名前": []byte("utf-8 name"),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "bin/data"), 0o4755)
	os.Symlink("../README", filepath.Join(dir, "docs/link"))
	os.Link(filepath.Join(dir, "README"), filepath.Join(dir, "README.hard"))
	f, _ := os.Create(filepath.Join(dir, "sparse"))
	f.WriteAt([]byte("tail"), 20<<20)
	f.Close()
	os.Mkdir(filepath.Join(dir, "emptydir"), 0o700)
	unix.Lsetxattr(filepath.Join(dir, "docs/a.txt"), "user.cairn.test", []byte("xattr value"), 0)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
			unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
	// Directories' times after their contents.
	for _, d := range []string{"docs", "bin", "deep/x/y/z", "deep/x/y", "deep/x", "deep", "names", "emptydir", "."} {
		ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, d), ts, 0)
	}
}

func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestGolden(t *testing.T) {
	ctx := context.Background()
	if *updateGolden {
		dir := filepath.Join("..", "testdata", "golden", "v1")
		os.RemoveAll(dir)
		// The source lives at a fixed absolute path so that the snapshot
		// records the same paths wherever it is generated.
		os.RemoveAll(goldenSource)
		goldenTree(t, goldenSource)
		defer os.RemoveAll(goldenSource)
		be, _ := local.Open(filepath.Join(dir, "repo"))
		r, err := repo.Init(ctx, be, goldenPassword, repo.InitOptions{KDF: repo.TestKDF, PackSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archiver.Backup(ctx, r, []string{goldenSource}, archiver.Options{Host: "golden", Label: "golden-v1", Program: "cairn golden"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, version := range []string{"v1"} {
		t.Run(version, func(t *testing.T) {
			be, err := local.Open(filepath.Join("..", "testdata", "golden", version, "repo"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := repo.Open(ctx, be, goldenPassword)
			if err != nil {
				t.Fatal(err)
			}
			res, err := maint.Check(ctx, r, maint.CheckOptions{ReadData: true})
			if err != nil || res.Errors > 0 || res.Warnings > 0 {
				t.Fatalf("check: %v %+v", err, res.Problems)
			}
			if err := r.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			snaps, err := r.Snapshots(ctx)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := repo.FindSnapshot(snaps, "golden-"+version)
			if err != nil {
				t.Fatal(err)
			}
			target := t.TempDir()
			var problems []string
			if _, err := restorer.Restore(ctx, r, snap, target, restorer.Options{
				OnError: func(p string, err error) { problems = append(problems, p+": "+err.Error()) },
			}); err != nil || len(problems) > 0 {
				t.Fatalf("restore: %v %v", err, problems)
			}
			want := t.TempDir()
			goldenTree(t, want)
			compareTrees(t, want, filepath.Join(target, goldenSource))
		})
	}
}

// compareTrees checks content, type, mode, mtime, symlink targets and
// hard-link groups of two trees.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	inodes := map[uint64]uint64{}
	filepath.Walk(want, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		var ws, gs unix.Stat_t
		unix.Lstat(p, &ws)
		if err := unix.Lstat(q, &gs); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if ws.Mode != gs.Mode || ws.Size != gs.Size || ws.Nlink != gs.Nlink {
			t.Errorf("%s: mode %o size %d links %d, want %o %d %d", rel, gs.Mode, gs.Size, gs.Nlink, ws.Mode, ws.Size, ws.Nlink)
		}
		if ws.Mtim != gs.Mtim {
			t.Errorf("%s: mtime %v, want %v", rel, gs.Mtim, ws.Mtim)
		}
		switch {
		case fi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs", rel)
			}
			if ws.Nlink > 1 {
				if prev, ok := inodes[ws.Ino]; ok && prev != gs.Ino {
					t.Errorf("%s: hard link group broken", rel)
				}
				inodes[ws.Ino] = gs.Ino
			}
		case fi.Mode()&os.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(q)
			if a != b {
				t.Errorf("%s: link target %q, want %q", rel, b, a)
			}
		}
		wx := make([]byte, 256)
		gx := make([]byte, 256)
		n1, _ := unix.Lgetxattr(p, "user.cairn.test", wx)
		n2, _ := unix.Lgetxattr(q, "user.cairn.test", gx)
		if n1 > 0 && !bytes.Equal(wx[:n1], gx[:max(n2, 0)]) {
			t.Errorf("%s: xattr differs", rel)
		}
		return nil
	})
}
