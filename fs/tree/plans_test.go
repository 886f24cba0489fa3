package tree_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/fs/tree/treetest"
	"github.com/cairn-backup/cairn/plan"
)

const (
	validPlan   = "{\"sources\": [\"/home/alice\"], \"repos\": [\"local\"]}\n"
	validPlan2  = "{\"sources\": [\"/srv\"], \"repos\": [\"offsite\"]}\n"
	invalidPlan = "{\"sources\": [\"relative\"], \"repos\": [\"local\"]}\n"
)

var ctx = context.Background()

func newPlansRoot(t *testing.T) (tree.Dir, *treetest.Plans) {
	t.Helper()
	p := treetest.NewPlans(map[string]string{"home": validPlan})
	return tree.NewRoot(nil, p), p
}

func lookup(t *testing.T, d tree.Node, path string) tree.Node {
	t.Helper()
	n, err := lookupErr(d, path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func lookupErr(n tree.Node, path string) (tree.Node, error) {
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		d, ok := n.(tree.Dir)
		if !ok {
			return nil, fmt.Errorf("%s: not a directory", part)
		}
		var err error
		if n, err = d.Lookup(ctx, part); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func names(t *testing.T, n tree.Node) []string {
	t.Helper()
	es, err := n.(tree.Dir).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// readAll reads a handle (a tree.Handle or a tree.WriteHandle) to its end.
func readAll(t *testing.T, h interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 7) // small, to cross reads
	for off := int64(0); ; {
		n, err := h.ReadAt(ctx, buf, off)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

func read(t *testing.T, root tree.Dir, path string) string {
	t.Helper()
	h, err := lookup(t, root, path).(tree.File).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return readAll(t, h)
}

func openWrite(t *testing.T, root tree.Dir, path string, flags tree.OpenFlags) tree.WriteHandle {
	t.Helper()
	h, err := lookup(t, root, path).(tree.WriteOpener).OpenWrite(ctx, flags)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func write(t *testing.T, h tree.WriteHandle, off int64, s string) {
	t.Helper()
	if n, err := h.WriteAt(ctx, []byte(s), off); err != nil || n != len(s) {
		t.Fatalf("write %q at %d: %d, %v", s, off, n, err)
	}
}

func size(t *testing.T, root tree.Dir, path string) uint64 {
	t.Helper()
	a, err := lookup(t, root, path).Attr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return a.Size
}

func TestPlansListingAndMkdirRmdir(t *testing.T) {
	root, p := newPlansRoot(t)
	if got := names(t, root); !slices.Equal(got, []string{"README.txt", "plans", "repos"}) {
		t.Fatalf("root lists %v", got)
	}
	plans := lookup(t, root, "plans")
	if got := names(t, plans); !slices.Equal(got, []string{"home"}) {
		t.Fatalf("plans lists %v", got)
	}
	if got := names(t, lookup(t, root, "plans/home")); !slices.Equal(got, []string{"log", "plan.json", "run", "status"}) {
		t.Fatalf("plans/home lists %v", got)
	}
	if _, err := plans.(tree.Mkdirer).Mkdir(ctx, "work", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := plans.(tree.Mkdirer).Mkdir(ctx, "work", 0o755); !errors.Is(err, plan.ErrExist) {
		t.Fatalf("second mkdir: %v", err)
	}
	// A name a snapshot label cannot carry is refused (EINVAL through
	// the mount) and leaves no plan behind.
	for _, bad := range []string{"bad name", ".hidden", "a:b"} {
		if _, err := plans.(tree.Mkdirer).Mkdir(ctx, bad, 0o755); !errors.Is(err, plan.ErrInvalid) {
			t.Errorf("mkdir plans/%q: %v, want ErrInvalid", bad, err)
		}
	}
	if got := names(t, plans); !slices.Equal(got, []string{"home", "work"}) {
		t.Fatalf("plans lists %v after mkdir", got)
	}
	if got := read(t, root, "plans/work/plan.json"); got != treetest.Template {
		t.Fatalf("new plan reads %q", got)
	}
	// Changes behind the mount's back show at once.
	if err := p.Remove(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if _, err := lookupErr(root, "plans/home"); !errors.Is(err, tree.ErrNotExist) {
		t.Fatalf("removed plan: %v", err)
	}

	// rm -r: unlink every file (control files: no-ops), then rmdir.
	dir := lookup(t, root, "plans/work")
	if _, _, err := dir.(tree.Creator).Create(ctx, "junk", 0o600, tree.OpenFlags{}); err != nil {
		t.Fatal(err)
	}
	if err := plans.(tree.Rmdirer).Rmdir(ctx, "work"); !errors.Is(err, tree.ErrNotEmpty) {
		t.Fatalf("rmdir with a scratch file: %v", err)
	}
	for _, name := range names(t, dir) {
		if err := dir.(tree.Unlinker).Unlink(ctx, name); err != nil {
			t.Fatalf("unlink %s: %v", name, err)
		}
	}
	p.SetRunning("work", true)
	if err := plans.(tree.Rmdirer).Rmdir(ctx, "work"); !errors.Is(err, plan.ErrBusy) {
		t.Fatalf("rmdir of a running plan: %v", err)
	}
	p.SetRunning("work", false)
	if err := plans.(tree.Rmdirer).Rmdir(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, plans); len(got) != 0 {
		t.Fatalf("plans lists %v after rmdir", got)
	}
	// A plan made again under the name starts clean.
	if _, err := plans.(tree.Mkdirer).Mkdir(ctx, "work", 0o755); err != nil {
		t.Fatal(err)
	}
	if got := names(t, lookup(t, root, "plans/work")); slices.Contains(got, "junk") {
		t.Fatalf("old scratch file came back: %v", got)
	}
}

func TestPlansWithoutModel(t *testing.T) {
	root := tree.NewRoot(nil, nil)
	plans := lookup(t, root, "plans")
	if got := names(t, plans); len(got) != 0 {
		t.Fatalf("plans lists %v", got)
	}
	if _, err := plans.(tree.Mkdirer).Mkdir(ctx, "x", 0o755); !errors.Is(err, tree.ErrReadOnly) {
		t.Fatalf("mkdir: %v", err)
	}
	if w, ok := plans.(tree.Writable); ok && w.Writable() {
		t.Fatal("plans/ without a model is writable")
	}
	if u, ok := plans.(tree.Uncached); ok && u.Uncached() {
		t.Fatal("plans/ without a model is uncached")
	}
}

func TestReadControlFiles(t *testing.T) {
	root, p := newPlansRoot(t)
	if got := read(t, root, "plans/home/plan.json"); got != validPlan {
		t.Fatalf("plan.json reads %q", got)
	}
	if got := size(t, root, "plans/home/plan.json"); got != uint64(len(validPlan)) {
		t.Fatalf("plan.json size %d", got)
	}
	if got := read(t, root, "plans/home/run"); got != "idle\n" {
		t.Fatalf("run reads %q", got)
	}
	p.SetRunning("home", true)
	if got := read(t, root, "plans/home/run"); got != "running\n" {
		t.Fatalf("run reads %q while running", got)
	}
	if got := size(t, root, "plans/home/run"); got != uint64(len("running\n")) {
		t.Fatalf("run size %d", got)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(read(t, root, "plans/home/status")), &st); err != nil || st["plan"] != "home" {
		t.Fatalf("status %v, %v", st, err)
	}
	if p.Runs("home") != 0 {
		t.Fatal("reading started a run")
	}
	if _, err := lookup(t, root, "plans/home/status").(tree.WriteOpener).OpenWrite(ctx, tree.OpenFlags{}); !errors.Is(err, tree.ErrAccess) {
		t.Fatalf("status opened for writing: %v", err)
	}
	a, _ := lookup(t, root, "plans/home/plan.json").Attr(ctx)
	if a.Mode != tree.ModeFile|0o644 || !a.Mtime.Equal(p.Modified("home")) {
		t.Fatalf("plan.json mode %o mtime %v", a.Mode, a.Mtime)
	}
}

// The real model lets plans make their log public.
var _ tree.OutputPublisher = (*plan.Manager)(nil)

// TestLogPrivateUnlessPublicOutput: a plan's log, which holds its hooks'
// output, is 0400 (the mount's owner only) unless the plan sets
// hooks.public_output, and with a model that cannot say; status is 0444.
func TestLogPrivateUnlessPublicOutput(t *testing.T) {
	mode := func(root tree.Dir, path string) uint32 {
		t.Helper()
		a, err := lookup(t, root, path).Attr(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return a.Mode
	}
	check := func(root tree.Dir, plan string, log uint32) {
		t.Helper()
		if got := mode(root, "plans/"+plan+"/log"); got != tree.ModeFile|log {
			t.Errorf("plans/%s/log mode %o, want %o", plan, got&0o7777, log)
		}
		if got := mode(root, "plans/"+plan+"/status"); got != tree.ModeFile|0o444 {
			t.Errorf("plans/%s/status mode %o, want 444", plan, got&0o7777)
		}
	}

	root, _ := newPlansRoot(t) // a model without OutputPublisher
	check(root, "home", 0o400)

	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"repos": {"local": {"url": "/srv/backup"}},
  "plans": {"home": {"sources": ["/home/alice"], "repos": ["local"], "hooks": {"before": ["env"]}},
            "shared": {"sources": ["/srv"], "repos": ["local"], "hooks": {"before": ["env"], "public_output": true}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := plan.NewManager(t.Context(), cfg, nil, plan.ManagerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root = tree.NewRoot(nil, m)
	check(root, "home", 0o400)
	check(root, "shared", 0o444)
	if _, err := lookup(t, root, "plans").(tree.Mkdirer).Mkdir(ctx, "draft", 0o755); err != nil {
		t.Fatal(err)
	}
	check(root, "draft", 0o400)

	// The mode follows the definition.
	define := func(plan, def string) {
		t.Helper()
		h := openWrite(t, root, "plans/"+plan+"/plan.json", tree.OpenFlags{Truncate: true})
		write(t, h, 0, def)
		if err := h.Release(ctx); err != nil {
			t.Fatalf("defining %s: %v", plan, err)
		}
	}
	define("home", `{"sources": ["/home/alice"], "repos": ["local"], "hooks": {"public_output": true}}`)
	check(root, "home", 0o444)
	define("shared", `{"sources": ["/srv"], "repos": ["local"], "hooks": {"public_output": false}}`)
	check(root, "shared", 0o400)
}

func TestWriteDefines(t *testing.T) {
	root, p := newPlansRoot(t)
	// echo > plan.json: open with O_TRUNC, a flush before the write
	// (the shell's dup and close), write, flush.
	h := openWrite(t, root, "plans/home/plan.json", tree.OpenFlags{Truncate: true})
	if err := h.Flush(ctx); err != nil {
		t.Fatalf("flush before writing: %v", err)
	}
	if got := size(t, root, "plans/home/plan.json"); got != 0 {
		t.Fatalf("truncated draft has size %d", got)
	}
	write(t, h, 0, validPlan2[:10])
	write(t, h, 10, validPlan2[10:])
	if got := readAll(t, h); got != validPlan2 {
		t.Fatalf("handle reads back %q", got)
	}
	if got := size(t, root, "plans/home/plan.json"); got != uint64(len(validPlan2)) {
		t.Fatalf("draft size %d", got)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Definition("home"); string(got) != validPlan2 {
		t.Fatalf("defined %q", got)
	}
	if got := read(t, root, "plans/home/plan.json"); got != validPlan2 {
		t.Fatalf("plan.json reads %q", got)
	}
	if p.Defines() != 1 {
		t.Fatalf("%d defines", p.Defines())
	}

	// Writing at an offset into the definition, without truncating
	// (O_RDWR, patching in place): the draft starts from the definition.
	h = openWrite(t, root, "plans/home/plan.json", tree.OpenFlags{})
	off := int64(strings.Index(validPlan2, "/srv"))
	write(t, h, off, "/opt")
	if err := h.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(validPlan2, "/srv", "/opt", 1)
	if got, _ := p.Definition("home"); string(got) != want {
		t.Fatalf("defined %q after fsync", got)
	}
	if err := h.Flush(ctx); err != nil || p.Defines() != 2 {
		t.Fatalf("flush after fsync: %v, %d defines", err, p.Defines())
	}
	h.Release(ctx)

	// O_TRUNC and O_APPEND: writes land at the end whatever the offset.
	h = openWrite(t, root, "plans/home/plan.json", tree.OpenFlags{Truncate: true, Append: true})
	write(t, h, 0, validPlan[:5])
	write(t, h, 0, validPlan[5:])
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.Release(ctx)
	if got := read(t, root, "plans/home/plan.json"); got != validPlan {
		t.Fatalf("after appends plan.json reads %q", got)
	}
}

func TestInvalidWriteRefused(t *testing.T) {
	root, p := newPlansRoot(t)
	h := openWrite(t, root, "plans/home/plan.json", tree.OpenFlags{Truncate: true})
	write(t, h, 0, invalidPlan)
	err := h.Flush(ctx)
	if !errors.Is(err, plan.ErrInvalid) {
		t.Fatalf("flush of an invalid plan: %v", err)
	}
	h.Release(ctx)
	if got := read(t, root, "plans/home/plan.json"); got != validPlan {
		t.Fatalf("plan.json reads %q after a refusal", got)
	}
	if !strings.Contains(read(t, root, "plans/home/status"), "line 1, column") {
		t.Fatalf("status does not name the error: %s", read(t, root, "plans/home/status"))
	}
	// ftruncate counts as a write: truncate -s 0 fails at close.
	zero := uint64(0)
	h = openWrite(t, root, "plans/home/plan.json", tree.OpenFlags{})
	if err := lookup(t, root, "plans/home/plan.json").(tree.Setattrer).Setattr(ctx, h, tree.SetAttr{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := h.Flush(ctx); !errors.Is(err, plan.ErrInvalid) {
		t.Fatalf("flush after ftruncate: %v", err)
	}
	h.Release(ctx)
	// Truncate by path: a write of its own, refused.
	if err := lookup(t, root, "plans/home/plan.json").(tree.Setattrer).Setattr(ctx, nil, tree.SetAttr{Size: &zero}); !errors.Is(err, plan.ErrInvalid) {
		t.Fatalf("truncate by path: %v", err)
	}
	if got, _ := p.Definition("home"); string(got) != validPlan {
		t.Fatalf("definition %q", got)
	}
	// A truncation without a write is committed at release (: > plan.json).
	h = openWrite(t, root, "plans/home/plan.json", tree.OpenFlags{Truncate: true})
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); !errors.Is(err, plan.ErrInvalid) {
		t.Fatalf("release of a truncated plan.json: %v", err)
	}
	// chmod of a control file is refused, unless it changes nothing.
	mode := uint32(0o600)
	if err := lookup(t, root, "plans/home/plan.json").(tree.Setattrer).Setattr(ctx, nil, tree.SetAttr{Mode: &mode}); !errors.Is(err, tree.ErrPerm) {
		t.Fatalf("chmod plan.json: %v", err)
	}
	mode = 0o644
	if err := lookup(t, root, "plans/home/plan.json").(tree.Setattrer).Setattr(ctx, nil, tree.SetAttr{Mode: &mode}); err != nil {
		t.Fatalf("chmod plan.json to its mode: %v", err)
	}
}

func TestScratchRename(t *testing.T) {
	root, p := newPlansRoot(t)
	dir := lookup(t, root, "plans/home")
	create := func(name, content string) {
		t.Helper()
		_, h, err := dir.(tree.Creator).Create(ctx, name, 0o600, tree.OpenFlags{})
		if err != nil {
			t.Fatal(err)
		}
		write(t, h, 0, content)
		if err := h.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		h.Release(ctx)
	}
	if _, _, err := dir.(tree.Creator).Create(ctx, "plan.json", 0o644, tree.OpenFlags{}); !errors.Is(err, tree.ErrExist) {
		t.Fatalf("create plan.json: %v", err)
	}
	// sed -i: temporary file, chmod and chown to match, rename.
	create("sedAbc123", invalidPlan)
	f := lookup(t, root, "plans/home/sedAbc123")
	mode, uid := uint32(0o644), uint32(4242)
	if err := f.(tree.Setattrer).Setattr(ctx, nil, tree.SetAttr{Mode: &mode, UID: &uid}); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Attr(ctx); a.Mode != tree.ModeFile|0o644 || a.UID != 4242 || a.Size != uint64(len(invalidPlan)) {
		t.Fatalf("scratch attr %+v", a)
	}
	if got := read(t, root, "plans/home/sedAbc123"); got != invalidPlan {
		t.Fatalf("scratch reads %q", got)
	}
	ren := dir.(tree.Renamer)
	if err := ren.Rename(ctx, "sedAbc123", dir, "plan.json", false); !errors.Is(err, plan.ErrInvalid) {
		t.Fatalf("rename of an invalid plan: %v", err)
	}
	if got := names(t, dir); !slices.Contains(got, "sedAbc123") {
		t.Fatalf("refused scratch file gone: %v", got)
	}
	if got := read(t, root, "plans/home/plan.json"); got != validPlan {
		t.Fatalf("plan.json %q after refused rename", got)
	}
	if err := dir.(tree.Unlinker).Unlink(ctx, "sedAbc123"); err != nil {
		t.Fatal(err)
	}

	create("sedXyz", validPlan2)
	if err := ren.Rename(ctx, "sedXyz", dir, "plan.json", true); !errors.Is(err, tree.ErrExist) {
		t.Fatalf("rename with noReplace: %v", err)
	}
	if err := ren.Rename(ctx, "sedXyz", dir, "plan.json", false); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"log", "plan.json", "run", "status"}) {
		t.Fatalf("after rename lists %v", got)
	}
	if got := read(t, root, "plans/home/plan.json"); got != validPlan2 {
		t.Fatalf("plan.json %q after rename", got)
	}

	// Scratch to scratch (vim's swap juggling), replacing.
	create("a", "A")
	create("b", "B")
	if err := ren.Rename(ctx, "a", dir, "b", false); err != nil {
		t.Fatal(err)
	}
	if got := read(t, root, "plans/home/b"); got != "A" {
		t.Fatalf("b reads %q", got)
	}
	// Control files stay put; plan.json onto itself is harmless.
	if err := ren.Rename(ctx, "plan.json", dir, "plan.json~", false); !errors.Is(err, tree.ErrPerm) {
		t.Fatalf("rename plan.json away: %v", err)
	}
	if err := ren.Rename(ctx, "plan.json", dir, "plan.json", false); err != nil {
		t.Fatalf("rename plan.json onto itself: %v", err)
	}
	if err := ren.Rename(ctx, "b", dir, "status", false); !errors.Is(err, tree.ErrPerm) {
		t.Fatalf("rename onto status: %v", err)
	}
	plans := lookup(t, root, "plans")
	plans.(tree.Mkdirer).Mkdir(ctx, "other", 0o755)
	if err := ren.Rename(ctx, "b", lookup(t, root, "plans/other"), "b", false); !errors.Is(err, tree.ErrCrossDir) {
		t.Fatalf("rename to another plan: %v", err)
	}
	if p.Runs("home") != 0 {
		t.Fatal("a run started")
	}
}

func TestRunStartsOnWrite(t *testing.T) {
	root, p := newPlansRoot(t)
	// cat run: no run.
	read(t, root, "plans/home/run")
	// echo > run: truncate, a flush before the write, write, flush.
	h := openWrite(t, root, "plans/home/run", tree.OpenFlags{})
	zero := uint64(0)
	if err := lookup(t, root, "plans/home/run").(tree.Setattrer).Setattr(ctx, h, tree.SetAttr{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	h.Flush(ctx)
	write(t, h, 0, "\n")
	h.Flush(ctx)
	h.Release(ctx)
	if n := p.Runs("home"); n != 1 {
		t.Fatalf("%d runs after echo > run", n)
	}
	// A write without truncation starts one too; an open for writing
	// that neither writes nor truncates starts none.
	h = openWrite(t, root, "plans/home/run", tree.OpenFlags{})
	write(t, h, 0, "go")
	write(t, h, 2, "go")
	h.Release(ctx)
	h = openWrite(t, root, "plans/home/run", tree.OpenFlags{})
	h.Flush(ctx)
	h.Release(ctx)
	if n := p.Runs("home"); n != 2 {
		t.Fatalf("%d runs", n)
	}
	// O_TRUNC alone (: > run) starts one at the flush.
	h = openWrite(t, root, "plans/home/run", tree.OpenFlags{Truncate: true})
	h.Flush(ctx)
	if n := p.Runs("home"); n != 3 {
		t.Fatalf("%d runs after : > run", n)
	}
	h.Release(ctx)
	if n := p.Runs("home"); n != 3 {
		t.Fatalf("%d runs after close", n)
	}
}
