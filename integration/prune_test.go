package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeState makes version i of a source tree in dir: two files every
// version shares, one of its own, and a small changing note.
func writeState(t *testing.T, dir string, i int) {
	t.Helper()
	random := func(seed uint64, n int) []byte {
		rng := rand.New(rand.NewPCG(seed, seed*31+7))
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"shared/a":    random(1, 3<<20),
		"shared/b":    random(2, 1<<20),
		"unique.bin":  random(uint64(100+i), 2<<20),
		"notes/state": []byte(fmt.Sprintf("state %d\n", i)),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// repoSize is the stored size of the repository's packs and index.
func repoSize(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	for _, sub := range []string{"data", "index"} {
		err := filepath.Walk(filepath.Join(root, sub), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// Twenty slightly different snapshots, the older half forgotten: the first
// prune only marks, the second (grace 0) frees the space of the forgotten
// versions' own data; check reads everything clean and every kept
// snapshot restores identical to its source.
func TestPruneFreesForgottenData(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	for i := range 20 {
		writeState(t, src, i)
		e.ok("backup", "--label", fmt.Sprintf("S%02d", i), "--host", "H", src)
	}
	e.ok("forget", "--keep-last", "10")
	before := repoSize(t, e.repo)

	r := e.ok("prune", "--grace", "0s", "--json")
	ev := jsonLines(t, r.stdout)
	if len(ev) != 1 || ev[0]["type"] != "summary" || ev[0]["packs_marked"].(float64) == 0 || ev[0]["packs_deleted"].(float64) != 0 {
		t.Fatalf("first prune: %s", r.stdout)
	}
	if r.stderr != "" {
		t.Fatalf("stderr under --json: %q", r.stderr)
	}
	marked := repoSize(t, e.repo)
	if marked > before {
		t.Fatalf("first prune grew the repository: %d -> %d", before, marked)
	}
	if n := len(sortedNames(t, filepath.Join(e.repo, "marks"))); n != 1 {
		t.Fatalf("%d mark objects after the first prune", n)
	}
	e.ok("check", "--read-data")

	// A dry run says what would go and changes nothing.
	r = e.ok("prune", "--grace", "0s", "--dry-run")
	if !strings.Contains(r.stdout, "would delete") || !strings.Contains(r.stdout, "dry run: nothing changed") {
		t.Fatalf("dry run output:\n%s", r.stdout)
	}
	if got := repoSize(t, e.repo); got != marked {
		t.Fatalf("dry run changed the size: %d -> %d", marked, got)
	}

	r = e.ok("prune", "--grace", "0s", "--json")
	ev = jsonLines(t, r.stdout)
	if len(ev) != 1 || ev[0]["packs_deleted"].(float64) == 0 || ev[0]["bytes_freed"].(float64) <= 0 {
		t.Fatalf("second prune: %s", r.stdout)
	}
	after := repoSize(t, e.repo)
	t.Logf("repository: %d bytes before prune, %d after marking, %d after the second prune (%d freed)", before, marked, after, before-after)
	// Ten forgotten versions held 2 MiB of their own data each.
	if before-after < 15<<20 {
		t.Fatalf("prune freed only %d bytes (before %d, after %d)", before-after, before, after)
	}
	e.ok("check", "--read-data")
	if locks := sortedNames(t, filepath.Join(e.repo, "locks")); len(locks) != 0 {
		t.Fatalf("locks left: %v", locks)
	}

	labels := snapshotLabels(e)
	if len(labels) != 10 || labels[0] != "S10" {
		t.Fatalf("snapshots left: %v", labels)
	}
	for i := 10; i < 20; i++ {
		want := filepath.Join(t.TempDir(), "want")
		writeState(t, want, i)
		target := t.TempDir()
		e.ok("restore", fmt.Sprintf("S%02d", i), "--target", target)
		if out, err := exec.Command("diff", "-r", want, filepath.Join(target, src)).CombinedOutput(); err != nil {
			t.Fatalf("S%02d restores different: %v\n%s", i, err, out)
		}
	}

	// Against a fresh repository holding only what is kept: what prune
	// leaves over is the first version's own file, which shares a pack
	// with the data every version keeps (live 4 MiB of 6, above the 50%
	// repack threshold).
	fresh := newEnv(t)
	for i := 10; i < 20; i++ {
		writeState(t, src, i)
		fresh.ok("backup", "--label", fmt.Sprintf("S%02d", i), "--host", "H", src)
	}
	freshSize := repoSize(t, fresh.repo)
	t.Logf("a fresh backup of the kept versions: %d bytes; pruned repository %.2fx that", freshSize, float64(after)/float64(freshSize))
	if after > freshSize+3<<20 {
		t.Fatalf("pruned repository %d bytes, a fresh one of what is kept %d", after, freshSize)
	}

	// forget --prune: forgetting more and pruning in one go marks their
	// data at once.
	r = e.ok("forget", "--keep-last", "5", "--prune", "--json")
	var sum map[string]any
	for _, l := range jsonLines(t, r.stdout) {
		if l["command"] == "prune" {
			sum = l
		}
	}
	if sum == nil || sum["packs_marked"].(float64) == 0 {
		t.Fatalf("forget --prune: %s", r.stdout)
	}
	e.ok("check", "--read-data")
}
