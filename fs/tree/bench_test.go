package tree

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/cache"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
	"github.com/cairn-backup/cairn/repo/backend/local"
)

// BenchmarkColdDirRead reads every file of a snapshot directory whole, in
// cp -a's order (by inode number), with an empty chunk cache: the work of
// the read-ahead (batched ranged reads of a local repository, decoding on
// every core) against a reader that wants each file in turn. The directory
// holds 300 small files (2-64 KiB, half of them compressible) and three of
// 3 MiB.
func BenchmarkColdDirRead(b *testing.B) {
	ctx := context.Background()
	be, err := local.Open(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Init(ctx, be, "pw", repo.InitOptions{KDF: repo.TestKDF})
	if err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(b.TempDir(), "d")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var total int64
	write := func(name string, n int) {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			for i := range buf {
				buf[i] = 'a' + buf[i]%4 // compressible
			}
		}
		if err := os.WriteFile(filepath.Join(src, name), buf, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(n)
	}
	for i := range 300 {
		write(fmt.Sprintf("f%03d", i), 2<<10+rng.IntN(62<<10))
	}
	for i := range 3 {
		write(fmt.Sprintf("big%d", i), 3<<20)
	}
	if _, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "h"}); err != nil {
		b.Fatal(err)
	}
	c := cache.New[repo.ID](256 << 20)
	root := NewRoot([]*Repo{NewRepo(ctx, "main", r, c)}, nil)
	lookup := func(path string) Node {
		var n Node = root
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			if n, err = n.(Dir).Lookup(ctx, part); err != nil {
				b.Fatal(err)
			}
		}
		return n
	}
	label, err := lookup("repos/main/snapshots/latest").(Symlink).Readlink(ctx)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(total)
	for b.Loop() {
		b.StopTimer()
		c.Purge()
		d := lookup("repos/main/snapshots/" + label + src).(Dir) // a fresh directory: no read-ahead state
		es, err := d.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		slices.SortFunc(es, func(x, y Entry) int { return cmp.Compare(x.Ino, y.Ino) })
		b.StartTimer()
		for _, e := range es {
			n, err := d.Lookup(ctx, e.Name)
			if err != nil {
				b.Fatal(err)
			}
			h, err := n.(File).Open(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for off := int64(0); ; {
				k, err := h.ReadAt(ctx, buf, off)
				if err != nil {
					b.Fatal(err)
				}
				if k == 0 {
					break
				}
				off += int64(k)
			}
			h.Close()
		}
	}
}
