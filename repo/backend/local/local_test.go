package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/backendtest"
)

func TestSuite(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return open(t, filepath.Join(t.TempDir(), "repo"))
	})
}

// TestSuiteLinkFallback runs the suite with Save committing through
// link+unlink, the path taken on filesystems without renameat2.
func TestSuiteLinkFallback(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b := open(t, filepath.Join(t.TempDir(), "repo"))
		b.noRenameat2.Store(true)
		return b
	})
}

func open(t testing.TB, root string) *Backend {
	t.Helper()
	b, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%q): %v", root, err)
	}
	return b
}

func create(t testing.TB, root string) *Backend {
	t.Helper()
	b := open(t, root)
	if err := b.Create(t.Context()); err != nil {
		t.Fatalf("Create(%q): %v", root, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// tempFiles returns the temporary files anywhere under root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return found
}

func TestLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	b := create(t, root)
	for i := range 256 {
		if fi, err := os.Stat(filepath.Join(root, "data", fmt.Sprintf("%02x", i))); err != nil || !fi.IsDir() {
			t.Fatalf("data/%02x after Create: %v", i, err)
		}
	}
	name := strings.Repeat("ab12", 16)
	objects := map[backend.Handle]string{
		{Type: backend.ConfigFile}:                   "config",
		{Type: backend.KeyFile, Name: name}:          "keys/" + name,
		{Type: backend.PackFile, Name: name}:         "data/ab/" + name,
		{Type: backend.PackFile, Name: "zz"}:         "data/zz/zz",
		{Type: backend.IndexFile, Name: name}:        "index/" + name,
		{Type: backend.SnapshotFile, Name: name}:     "snapshots/" + name,
		{Type: backend.LockFile, Name: name + "-lk"}: "locks/" + name + "-lk",
	}
	umask := unix.Umask(0)
	unix.Umask(umask)
	for h, rel := range objects {
		if err := b.Save(t.Context(), h, []byte(rel)); err != nil {
			t.Fatalf("Save(%v): %v", h, err)
		}
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatalf("%v not stored at %s: %v", h, rel, err)
		}
		if want := fs.FileMode(fileMode &^ umask); fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", rel, fi.Mode(), want)
		}
	}
}

func TestCreateRefusesNonEmpty(t *testing.T) {
	root := t.TempDir()
	other := filepath.Join(root, "notes.txt")
	if err := os.WriteFile(other, []byte("not a repository"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := open(t, root)
	if err := b.Create(t.Context()); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("Create on non-empty dir = %v, want ErrExist", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("refused Create changed the directory: %d entries", len(entries))
	}

	// An existing empty directory is fine; a created one is not empty.
	empty := t.TempDir()
	b = create(t, empty)
	if err := b.Create(t.Context()); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second Create = %v, want ErrExist", err)
	}
}

func TestMissingRepository(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nothing-here")
	b := open(t, root)
	h := backend.Handle{Type: backend.PackFile, Name: "abcdef"}
	if err := b.Save(t.Context(), h, []byte("x")); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Save into missing repository = %v, want ErrNotExist", err)
	}
	if err := b.Save(t.Context(), backend.Handle{Type: backend.PackFile, Name: "zzzz"}, []byte("x")); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Save of unusual pack prefix into missing repository = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Save created the repository directory: %v", err)
	}
	_, err := b.Load(t.Context(), h, 0, 0)
	if !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Load = %v, want ErrNotExist", err)
	}
	// The native error is still there for those who want it.
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("Load error %v does not wrap the native ENOENT", err)
	}
	if _, err := b.Stat(t.Context(), h); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat = %v, want ErrNotExist", err)
	}
	for _, typ := range backend.FileTypes {
		if err := b.List(t.Context(), typ, func(backend.FileInfo) error { return nil }); !errors.Is(err, backend.ErrNotExist) {
			t.Errorf("List(%s) = %v, want ErrNotExist", typ, err)
		}
	}
	if err := b.Remove(t.Context(), h); err != nil {
		t.Errorf("Remove = %v, want success", err)
	}
}

func TestNoTempLeftAfterFailedSave(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	b := create(t, root)
	h := backend.Handle{Type: backend.IndexFile, Name: "0123"}
	if err := b.Save(t.Context(), h, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(t.Context(), h, []byte("second")); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second Save = %v, want ErrExist", err)
	}
	b.noRenameat2.Store(true)
	if err := b.Save(t.Context(), h, []byte("third")); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second Save through link = %v, want ErrExist", err)
	}
	if got := tempFiles(t, root); len(got) != 0 {
		t.Fatalf("temporary files left: %v", got)
	}
}

func TestListSkipsTempAndReservedNames(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	b := create(t, root)
	// What a crash mid-Save leaves behind.
	for _, p := range []string{"snapshots/.tmp-0123456789abcdef", "data/ab/.tmp-0123456789abcdef"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []backend.FileType{backend.SnapshotFile, backend.PackFile} {
		err := b.List(t.Context(), typ, func(fi backend.FileInfo) error {
			return fmt.Errorf("listed %q", fi.Name)
		})
		if err != nil {
			t.Errorf("List(%s): %v", typ, err)
		}
	}
	h := backend.Handle{Type: backend.SnapshotFile, Name: ".tmp-0123456789abcdef"}
	if err := b.Save(t.Context(), h, []byte("x")); err == nil {
		t.Errorf("Save(%v) of a reserved name succeeded", h)
	}
	if err := b.Remove(t.Context(), h); err == nil {
		t.Errorf("Remove(%v) of a reserved name succeeded", h)
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		errno unix.Errno
		want  error
	}{
		{unix.ENOENT, backend.ErrNotExist},
		{unix.EEXIST, backend.ErrExist},
		{unix.EACCES, backend.ErrPermission},
		{unix.EPERM, backend.ErrPermission},
		{unix.EROFS, backend.ErrPermission},
		{unix.ENOSPC, backend.ErrNoSpace},
		{unix.EDQUOT, backend.ErrNoSpace},
		{unix.EIO, nil},
	}
	for _, tt := range tests {
		native := &fs.PathError{Op: "open", Path: "/repo/x", Err: tt.errno}
		err := fmt.Errorf("load x: %w", translate(native))
		if !errors.Is(err, tt.errno) {
			t.Errorf("%v: translated error %v lost the errno", tt.errno, err)
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%v: translated error %v does not wrap %v", tt.errno, err, tt.want)
		}
		for _, s := range []error{backend.ErrNotExist, backend.ErrExist, backend.ErrPermission, backend.ErrNoSpace, backend.ErrTransient} {
			if s != tt.want && errors.Is(err, s) {
				t.Errorf("%v: translated error also wraps %v", tt.errno, s)
			}
		}
		if got, want := err.Error(), "load x: "+native.Error(); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
	}
	if plain := errors.New("plain"); translate(plain) != plain {
		t.Errorf("translate changed an error without errno")
	}
}

// TestNoSpace fills a 1 MiB tmpfs: the Save fails with ErrNoSpace, leaves
// no temporary file, and earlier objects stay readable.
func TestNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs (no CAP_SYS_ADMIN?): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})

	root := filepath.Join(mnt, "repo")
	b := create(t, root)
	small := backend.Handle{Type: backend.PackFile, Name: "aa01"}
	smallData := bytes.Repeat([]byte("cairn"), 20000)
	if err := b.Save(t.Context(), small, smallData); err != nil {
		t.Fatalf("Save of 100 kB into 1 MiB: %v", err)
	}

	big := backend.Handle{Type: backend.PackFile, Name: "bb01"}
	err := b.Save(t.Context(), big, make([]byte, 4<<20))
	if !errors.Is(err, backend.ErrNoSpace) {
		t.Fatalf("Save of 4 MiB into 1 MiB = %v, want ErrNoSpace", err)
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("error %v does not wrap ENOSPC", err)
	}
	if got := tempFiles(t, root); len(got) != 0 {
		t.Errorf("temporary files left: %v", got)
	}
	if _, err := b.Stat(t.Context(), big); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat of failed Save = %v, want ErrNotExist", err)
	}
	got, err := b.Load(t.Context(), small, 0, 0)
	if err != nil || !bytes.Equal(got, smallData) {
		t.Fatalf("Load of earlier object = %d bytes, %v", len(got), err)
	}
	// The space of the failed Save was given back.
	if err := b.Save(t.Context(), backend.Handle{Type: backend.PackFile, Name: "cc01"}, smallData); err != nil {
		t.Fatalf("Save after a full disk: %v", err)
	}
}

func BenchmarkLocalSave16MiB(b *testing.B) {
	be := create(b, filepath.Join(b.TempDir(), "repo"))
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		h := backend.Handle{Type: backend.PackFile, Name: fmt.Sprintf("%02x%06d", i%256, i)}
		if err := be.Save(b.Context(), h, data); err != nil {
			b.Fatal(err)
		}
		// Keep the disk footprint at one pack, outside the timing.
		b.StopTimer()
		if err := be.Remove(b.Context(), h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
