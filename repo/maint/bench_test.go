package maint_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/local"
	"github.com/cairn-backup/cairn/repo/maint"
)

// BenchmarkCheck checks a local repository of 48 MiB in 4 MiB packs: 20
// directories of 30 files of one to four chunks (16-256 KiB, half of them
// compressible), in two snapshots that share half of the directories.
// "structure" walks the trees; "read-data" also reads every pack whole
// and decodes every blob.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	be, err := local.Open(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Init(ctx, be, "pw", repo.InitOptions{KDF: repo.TestKDF, PackSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var total int64
	chunk := func() repo.ID {
		buf := make([]byte, 16<<10+rng.IntN(240<<10))
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			for i := range buf {
				buf[i] = 'a' + buf[i]%4
			}
		}
		total += int64(len(buf))
		id := repo.Hash(buf)
		if _, err := r.SaveBlob(ctx, repo.DataBlob, id, buf); err != nil {
			b.Fatal(err)
		}
		return id
	}
	tree := func(nodes []*repo.Node) repo.ID {
		id, err := r.SaveTree(ctx, &repo.Tree{Nodes: nodes})
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	var dirs []*repo.Node
	for d := range 20 {
		var files []*repo.Node
		for f := range 30 {
			var content []repo.ID
			for range 1 + rng.IntN(4) {
				content = append(content, chunk())
			}
			files = append(files, &repo.Node{Name: fmt.Sprintf("f%02d", f), Type: repo.NodeFile, Mode: 0o644, Content: content})
		}
		sub := tree(files)
		dirs = append(dirs, &repo.Node{Name: fmt.Sprintf("d%02d", d), Type: repo.NodeDir, Mode: 0o755, Subtree: &sub})
	}
	roots := []repo.ID{tree(dirs), tree(dirs[:10])}
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for i, root := range roots {
		if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Label: fmt.Sprint("s", i), Time: time.Now(), Host: "h", Paths: []string{"/"}, Tree: root}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		opts maint.CheckOptions
	}{{"structure", maint.CheckOptions{}}, {"read-data", maint.CheckOptions{ReadData: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.opts.ReadData {
				b.SetBytes(total)
			}
			for b.Loop() {
				res, err := maint.Check(ctx, r, bc.opts)
				if err != nil || res.Errors+res.Warnings != 0 || res.Trees != 22 {
					b.Fatal(res, err)
				}
			}
		})
	}
}
