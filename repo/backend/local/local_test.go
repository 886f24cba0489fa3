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

	"github.com/cairn-backup/cairn/internal/testenv"
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
	for h, rel := range objects {
		if err := b.Save(t.Context(), h, []byte(rel)); err != nil {
			t.Fatalf("Save(%v): %v", h, err)
		}
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Fatalf("%v not stored at %s: %v", h, rel, err)
		}
	}
}

// noUmask clears the umask for the rest of the test, so that modes can be
// compared exactly. The umask is per process: tests calling this must not
// be parallel.
func noUmask(t *testing.T) {
	old := unix.Umask(0)
	t.Cleanup(func() { unix.Umask(old) })
}

// wantMode fails the test unless root/rel has the permissions want.
func wantMode(t *testing.T, root, rel string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("stat %s: %v", rel, err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", rel, got, want)
	}
}

// saveEveryKind saves one object of each type, and packs whose directories
// Save has to make (data/zz, and data/ab if removed beforehand). It returns
// the objects' paths under the root.
func saveEveryKind(t *testing.T, b *Backend, config bool) []string {
	t.Helper()
	name := strings.Repeat("ab12", 16)
	objects := map[backend.Handle]string{
		{Type: backend.KeyFile, Name: name}:          "keys/" + name,
		{Type: backend.PackFile, Name: name}:         "data/ab/" + name,
		{Type: backend.PackFile, Name: "zz"}:         "data/zz/zz",
		{Type: backend.IndexFile, Name: name}:        "index/" + name,
		{Type: backend.SnapshotFile, Name: name}:     "snapshots/" + name,
		{Type: backend.LockFile, Name: name + "-lk"}: "locks/" + name + "-lk",
	}
	if config {
		objects[backend.Handle{Type: backend.ConfigFile}] = "config"
	}
	var saved []string
	for h, rel := range objects {
		if err := b.Save(t.Context(), h, []byte(rel)); err != nil {
			t.Fatalf("Save(%v): %v", h, err)
		}
		saved = append(saved, rel)
	}
	return saved
}

// TestPrivateModes: a new repository is its owner's alone, key files
// included, so no other local user can copy a key and guess the password.
func TestPrivateModes(t *testing.T) {
	noUmask(t)
	root := filepath.Join(t.TempDir(), "repo")
	b := create(t, root)
	dirs := []string{".", "keys", "data", "index", "snapshots", "locks"}
	for i := range 256 {
		dirs = append(dirs, fmt.Sprintf("data/%02x", i))
	}
	for _, d := range dirs {
		wantMode(t, root, d, 0o700)
	}
	for _, rel := range saveEveryKind(t, b, true) {
		wantMode(t, root, rel, 0o600)
	}
	wantMode(t, root, "data/zz", 0o700)

	// Reopened, the repository stays private.
	b2 := open(t, root)
	defer b2.Close()
	h := backend.Handle{Type: backend.KeyFile, Name: "second"}
	if err := b2.Save(t.Context(), h, []byte("k")); err != nil {
		t.Fatal(err)
	}
	wantMode(t, root, "keys/second", 0o600)
}

// TestGroupModes: once an admin has made config group-readable to share
// the repository, objects and directories made later are group-readable
// too, whether config was so when the backend was opened or only became
// visible afterwards.
func TestGroupModes(t *testing.T) {
	noUmask(t)
	check := func(t *testing.T, root string, b *Backend) {
		t.Helper()
		// Save makes pack directories that are missing; they must be
		// group-readable for the packs in them to be.
		if err := os.Remove(filepath.Join(root, "data", "ab")); err != nil {
			t.Fatal(err)
		}
		for _, rel := range saveEveryKind(t, b, false) {
			wantMode(t, root, rel, 0o640)
		}
		wantMode(t, root, "data/ab", 0o750)
		wantMode(t, root, "data/zz", 0o750)
	}

	// shared creates a repository, sets its config's mode and reopens it.
	shared := func(t *testing.T, mode os.FileMode) (string, *Backend) {
		root := filepath.Join(t.TempDir(), "repo")
		b := create(t, root)
		if err := b.Save(t.Context(), backend.Handle{Type: backend.ConfigFile}, []byte("config")); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := os.Chmod(filepath.Join(root, "config"), mode); err != nil {
			t.Fatal(err)
		}
		b = open(t, root)
		t.Cleanup(func() { b.Close() })
		return root, b
	}

	t.Run("at open", func(t *testing.T) {
		root, b := shared(t, 0o640)
		check(t, root, b)
	})

	// The backend was opened before the repository had a config, as when
	// another process was still creating it.
	// A group that may write config may write everything, as in restic.
	t.Run("group-writable", func(t *testing.T) {
		root, b := shared(t, 0o660)
		for _, rel := range saveEveryKind(t, b, false) {
			wantMode(t, root, rel, 0o660)
		}
		wantMode(t, root, "data/zz", 0o770)
	})

	t.Run("config seen later", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "repo")
		b := open(t, root)
		defer b.Close()
		other := create(t, root)
		if err := other.Save(t.Context(), backend.Handle{Type: backend.ConfigFile}, []byte("config")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, "config"), 0o640); err != nil {
			t.Fatal(err)
		}
		check(t, root, b)
	})
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
		testenv.Skip(t, "mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Skip(t, fmt.Sprintf("cannot mount a tmpfs (no CAP_SYS_ADMIN?): %v", err))
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
