package archiver

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// TestIsUnchangedComparesEveryField: the parent's record stands for a file
// only when size, inode, mtime and ctime all agree and the repository
// still has every blob of the parent's content; each difference alone
// makes the file be read again (issue 19).
func TestIsUnchangedComparesEveryField(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	data := []byte("content")
	id := repo.Hash(data)
	if _, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	file := func() *repo.Node {
		return &repo.Node{Name: "f", Type: repo.NodeFile, Size: 7, Inode: 42, MTime: at, CTime: at.Add(time.Second),
			Content: []repo.ID{id}}
	}
	if !isUnchanged(r, file(), file()) {
		t.Fatal("identical records: not unchanged")
	}
	for name, change := range map[string]func(p *repo.Node){
		"no parent":      nil,
		"size":           func(p *repo.Node) { p.Size++ },
		"inode":          func(p *repo.Node) { p.Inode++ },
		"mtime":          func(p *repo.Node) { p.MTime = p.MTime.Add(time.Nanosecond) },
		"ctime":          func(p *repo.Node) { p.CTime = p.CTime.Add(time.Nanosecond) },
		"type":           func(p *repo.Node) { p.Type = repo.NodeSymlink },
		"missing blob":   func(p *repo.Node) { p.Content = append(p.Content, repo.Hash([]byte("never saved"))) },
		"only blob gone": func(p *repo.Node) { p.Content = []repo.ID{repo.Hash([]byte("gone"))} },
	} {
		var parent *repo.Node
		if change != nil {
			parent = file()
			change(parent)
		}
		if isUnchanged(r, file(), parent) {
			t.Errorf("%s differs: the parent's record would stand for the file", name)
		}
	}
}

// TestCtimeOnlyChangeIsReread: a file rewritten with the same size and its
// mtime put back (what some tools and attackers do) differs only in ctime;
// the next backup must read it again.
func TestCtimeOnlyChangeIsReread(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	write(t, dir+"/f", []byte("before"))
	fi, err := os.Stat(dir + "/f")
	if err != nil {
		t.Fatal(err)
	}
	first, err := Backup(ctx, r, []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir+"/f", []byte("after!"))
	// The ctime clock is coarse: change the ctime until it differs.
	for {
		st, err := os.Stat(dir + "/f")
		if err != nil {
			t.Fatal(err)
		}
		if !ctime(st).Equal(ctime(fi)) {
			break
		}
		os.Chmod(dir+"/f", 0o644)
	}
	if err := os.Chtimes(dir+"/f", fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	second, err := Backup(ctx, r, []string{dir}, Options{Parent: first})
	if err != nil {
		t.Fatal(err)
	}
	n := lookup(t, r, second, dir+"/f")
	if got := string(content(t, r, n)); got != "after!" {
		t.Fatalf("content %q: a file changed in ctime only was not read again", got)
	}
}

func ctime(fi os.FileInfo) time.Time {
	st := fi.Sys().(*syscall.Stat_t)
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
}
