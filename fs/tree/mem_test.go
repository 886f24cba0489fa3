package tree

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// memFixture is a tree of memDirs with hooks that record what they see,
// as a writable directory of its own (a pending snapshot) would use them.
type memFixture struct {
	root *memDir

	mu      sync.Mutex
	commits []string // content committed by the files' hook
	renames []string // target names the rename hook was asked about
}

func newMemFixture(t *testing.T) *memFixture {
	fx := &memFixture{}
	var seq uint64
	fx.root = newMemDir(Attr{Ino: 7, Mode: 0o755}, memDirOptions{
		uid: 1, gid: 2,
		ino: func() uint64 { seq++; return 100 + seq }, // called under no lock of ours, from one goroutine here
		file: memFileOptions{
			maxSize: 64,
			commit: func(ctx context.Context, f *memFile, data []byte) error {
				fx.mu.Lock()
				defer fx.mu.Unlock()
				fx.commits = append(fx.commits, string(data))
				return nil
			},
		},
		// A file renamed into place is complete: "refused" is refused,
		// "taken" is taken by the hook (it leaves the tree), the others
		// move.
		rename: func(ctx context.Context, n Node, dir *memDir, newName string) (bool, error) {
			fx.mu.Lock()
			fx.renames = append(fx.renames, newName)
			fx.mu.Unlock()
			switch newName {
			case "refused":
				return false, ErrPerm
			case "taken":
				data, err := n.(*memFile).Content(ctx)
				if err != nil {
					return false, err
				}
				fx.mu.Lock()
				fx.commits = append(fx.commits, "taken:"+string(data))
				fx.mu.Unlock()
				return true, nil
			}
			return false, nil
		},
	})
	return fx
}

// takeCommits returns and clears what was committed.
func (fx *memFixture) takeCommits() []string {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	c := fx.commits
	fx.commits = nil
	return c
}

func (fx *memFixture) create(t *testing.T, d *memDir, name string) (*memFile, WriteHandle) {
	t.Helper()
	f, h, err := d.Create(context.Background(), name, 0o640, OpenFlags{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return f.(*memFile), h
}

func memWrite(t *testing.T, h WriteHandle, off int64, s string) {
	t.Helper()
	if n, err := h.WriteAt(context.Background(), []byte(s), off); err != nil || n != len(s) {
		t.Fatalf("write %q at %d: %d, %v", s, off, n, err)
	}
}

func memRead(t *testing.T, h interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}) string {
	t.Helper()
	buf := make([]byte, 128)
	n, err := h.ReadAt(context.Background(), buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func memNames(t *testing.T, d *memDir) []string {
	t.Helper()
	es, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// The writable file on its own: writes, truncations and the commit hook at
// close, as editors, shells and cp drive them.
func TestMemFileWriteTruncateCommit(t *testing.T) {
	ctx := context.Background()
	fx := newMemFixture(t)
	f, h := fx.create(t, fx.root, "f")
	if a, _ := f.Attr(ctx); a.Mode != ModeFile|0o640 || a.UID != 1 || a.GID != 2 || a.Size != 0 || a.Ino != 101 {
		t.Fatalf("new file %+v", a)
	}
	memWrite(t, h, 0, "hello")
	memWrite(t, h, 5, " world")
	memWrite(t, h, 20, "!") // past the end: a zero-filled gap
	if got := memRead(t, h); got != "hello world"+string(make([]byte, 9))+"!" {
		t.Fatalf("reads %q", got)
	}
	if a, _ := f.Attr(ctx); a.Size != 21 || a.Blocks != 1 {
		t.Fatalf("size %d blocks %d", a.Size, a.Blocks)
	}
	// ftruncate through the handle, then close: one commit.
	three := uint64(3)
	if err := f.Setattr(ctx, h, SetAttr{Size: &three}); err != nil {
		t.Fatal(err)
	}
	if c := fx.takeCommits(); len(c) != 0 {
		t.Fatalf("committed before close: %q", c)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.Flush(ctx) // a dup'ed descriptor's close: nothing new
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if c := fx.takeCommits(); !slices.Equal(c, []string{"hel"}) {
		t.Fatalf("commits %q, want [hel]", c)
	}

	// O_TRUNC, a flush before any write (a shell's dup and close), the
	// write, the close: one commit, of the write.
	h, err := f.OpenWrite(ctx, OpenFlags{Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Attr(ctx); a.Size != 0 {
		t.Fatalf("size %d after O_TRUNC", a.Size)
	}
	h.Flush(ctx)
	memWrite(t, h, 0, "new")
	h.Flush(ctx)
	h.Release(ctx)
	if c := fx.takeCommits(); !slices.Equal(c, []string{"new"}) {
		t.Fatalf("commits %q, want [new]", c)
	}
	// O_TRUNC alone (: > f) commits the empty file at the release.
	h, _ = f.OpenWrite(ctx, OpenFlags{Truncate: true})
	h.Flush(ctx)
	h.Release(ctx)
	if c := fx.takeCommits(); !slices.Equal(c, []string{""}) {
		t.Fatalf("commits %q, want one empty", c)
	}
	// O_APPEND writes at the end, whatever the offset; truncate(1) by
	// path commits at once; a handle that only read commits nothing.
	h, _ = f.OpenWrite(ctx, OpenFlags{Append: true})
	memWrite(t, h, 0, "ab")
	memWrite(t, h, 0, "cd")
	if got := memRead(t, h); got != "abcd" {
		t.Fatalf("appended reads %q", got)
	}
	h.Release(ctx)
	fx.takeCommits()
	two := uint64(2)
	if err := f.Setattr(ctx, nil, SetAttr{Size: &two}); err != nil {
		t.Fatal(err)
	}
	if c := fx.takeCommits(); !slices.Equal(c, []string{"ab"}) {
		t.Fatalf("truncate by path committed %q", c)
	}
	r, _ := f.Open(ctx)
	if got := memRead(t, r); got != "ab" {
		t.Fatalf("read handle reads %q", got)
	}
	r.Close()
	// The bound of the file.
	h, _ = f.OpenWrite(ctx, OpenFlags{})
	if _, err := h.WriteAt(ctx, []byte("x"), 64); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write past the bound: %v", err)
	}
	big := uint64(65)
	if err := f.Setattr(ctx, h, SetAttr{Size: &big}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("truncate past the bound: %v", err)
	}
	h.Release(ctx)
	if c := fx.takeCommits(); len(c) != 0 {
		t.Fatalf("refused writes committed %q", c)
	}
	// chmod, chown, utimes.
	mode, uid := uint32(0o600), uint32(42)
	if err := f.Setattr(ctx, nil, SetAttr{Mode: &mode, UID: &uid}); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Attr(ctx); a.Mode != ModeFile|0o600 || a.UID != 42 {
		t.Fatalf("after chmod and chown %+v", a)
	}
}

// A file over a base shows the base until it is changed, and again once
// the change is committed or discarded (plan.json over a definition).
func TestMemFileOverBase(t *testing.T) {
	ctx := context.Background()
	base := "base\n"
	var committed []string
	f := newMemFile(Attr{Ino: 3, Mode: 0o644}, memFileOptions{
		base: func(context.Context) ([]byte, error) { return []byte(base), nil },
		commit: func(ctx context.Context, _ *memFile, data []byte) error {
			committed = append(committed, string(data))
			if string(data) == "bad" {
				return ErrPerm
			}
			base = string(data)
			return nil
		},
	})
	if a, _ := f.Attr(ctx); a.Size != 5 {
		t.Fatalf("size %d, want the base's", a.Size)
	}
	h, _ := f.OpenWrite(ctx, OpenFlags{})
	memWrite(t, h, 0, "BA")
	if got := memRead(t, h); got != "BAse\n" {
		t.Fatalf("draft reads %q", got)
	}
	r, _ := f.Open(ctx) // read as at the open
	base = "changed behind our back\n"
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := memRead(t, r); got != "BAse\n" {
		t.Fatalf("reader opened before the commit reads %q", got)
	}
	if c, _ := f.Content(ctx); string(c) != "BAse\n" || !slices.Equal(committed, []string{"BAse\n"}) {
		t.Fatalf("content %q, commits %q", c, committed)
	}
	// Refused, the change is dropped and the base stays.
	h, _ = f.OpenWrite(ctx, OpenFlags{Truncate: true})
	memWrite(t, h, 0, "bad")
	if err := h.Release(ctx); !errors.Is(err, ErrPerm) {
		t.Fatalf("refused commit: %v", err)
	}
	if c, _ := f.Content(ctx); string(c) != "BAse\n" {
		t.Fatalf("content %q after a refused commit", c)
	}
	// discard drops a change not committed.
	h, _ = f.OpenWrite(ctx, OpenFlags{})
	memWrite(t, h, 0, "zz")
	f.discard()
	if c, _ := f.Content(ctx); string(c) != "BAse\n" {
		t.Fatalf("content %q after discard", c)
	}
	h.Release(ctx) // its change is gone: nothing to commit
	if len(committed) != 2 {
		t.Fatalf("commits %q", committed)
	}
}

// The writable directory: create, rename (with its hook), replace,
// remove, and directories.
func TestMemDirRenameHook(t *testing.T) {
	ctx := context.Background()
	fx := newMemFixture(t)
	d := fx.root
	tmp, h := fx.create(t, d, ".tmp")
	memWrite(t, h, 0, "data")
	h.Release(ctx)
	fx.takeCommits()
	if _, _, err := d.Create(ctx, ".tmp", 0o644, OpenFlags{}); !errors.Is(err, ErrExist) {
		t.Fatalf("create over a name: %v", err)
	}

	// Refused by the hook: nothing moves.
	if err := d.Rename(ctx, ".tmp", d, "refused", false); !errors.Is(err, ErrPerm) {
		t.Fatalf("refused rename: %v", err)
	}
	if got := memNames(t, d); !slices.Equal(got, []string{".tmp"}) {
		t.Fatalf("after a refused rename %v", got)
	}
	// Into place: the file moves, keeping its inode.
	ino := tmp.attr.Ino
	if err := d.Rename(ctx, ".tmp", d, "final", false); err != nil {
		t.Fatal(err)
	}
	n, err := d.Lookup(ctx, "final")
	if err != nil || n != Node(tmp) {
		t.Fatalf("final is %v, %v", n, err)
	}
	if a, _ := n.Attr(ctx); a.Ino != ino {
		t.Fatalf("inode %d after rename, was %d", a.Ino, ino)
	}
	// Taken by the hook: it leaves the directory.
	if err := d.Rename(ctx, "final", d, "taken", false); err != nil {
		t.Fatal(err)
	}
	if got := memNames(t, d); len(got) != 0 {
		t.Fatalf("after the hook took the file %v", got)
	}
	if c := fx.takeCommits(); !slices.Equal(c, []string{"taken:data"}) {
		t.Fatalf("hook committed %q", c)
	}
	fx.mu.Lock()
	if !slices.Equal(fx.renames, []string{"refused", "final", "taken"}) {
		t.Fatalf("hook asked about %v", fx.renames)
	}
	fx.mu.Unlock()

	// Replacing, and not.
	fx.create(t, d, "a")
	fx.create(t, d, "b")
	if err := d.Rename(ctx, "a", d, "b", true); !errors.Is(err, ErrExist) {
		t.Fatalf("rename with noReplace onto a file: %v", err)
	}
	if err := d.Rename(ctx, "a", d, "b", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Rename(ctx, "a", d, "c", false); !errors.Is(err, ErrNotExist) {
		t.Fatalf("rename of a missing name: %v", err)
	}

	// Directories: between them, onto them, removing them.
	sub, err := d.Mkdir(ctx, "sub", 0o750)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := d.Attr(ctx); a.Nlink != 3 {
		t.Fatalf("nlink %d with one subdirectory", a.Nlink)
	}
	if err := d.Rename(ctx, "b", sub, "b", false); err != nil {
		t.Fatal(err)
	}
	if got := memNames(t, sub.(*memDir)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("sub lists %v", got)
	}
	d.Mkdir(ctx, "empty", 0o755)
	fx.create(t, d, "file")
	for _, c := range []struct {
		from, to string
		want     error
	}{
		{"file", "sub", ErrIsDir},
		{"sub", "file", ErrNotDir},
		{"empty", "sub", ErrNotEmpty},
	} {
		if err := d.Rename(ctx, c.from, d, c.to, false); !errors.Is(err, c.want) {
			t.Errorf("rename %s onto %s: %v, want %v", c.from, c.to, err, c.want)
		}
	}
	if err := d.Rename(ctx, "sub", d, "empty", false); err != nil {
		t.Fatalf("directory onto an empty one: %v", err)
	}
	if err := d.Unlink(ctx, "empty"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("unlink of a directory: %v", err)
	}
	if err := d.Rmdir(ctx, "file"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("rmdir of a file: %v", err)
	}
	if err := d.Rmdir(ctx, "empty"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir of a full directory: %v", err)
	}
	if got := memNames(t, d); !slices.Equal(got, []string{"empty", "file"}) {
		t.Fatalf("lists %v", got)
	}
	other := newMemDir(Attr{Ino: 8}, memDirOptions{ino: func() uint64 { return 9 }})
	if err := d.Rename(ctx, "file", other, "file", false); !errors.Is(err, ErrCrossDir) {
		t.Fatalf("rename to another tree: %v", err)
	}
}
