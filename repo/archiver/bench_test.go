package archiver

import (
	"context"
	"fmt"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backend/mem"
)

// benchSource writes a generated source of about 61 MiB: two files
// streamed through the chunker, files cut in memory, and many small ones.
func benchSource(b *testing.B) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	var size int64
	n := 0
	add := func(name string, len int) {
		write(b, dir+"/"+name, randBytes(uint64(n), len))
		size += int64(len)
		n++
	}
	for i := range 2 {
		add(fmt.Sprintf("big/%d", i), 20<<20)
	}
	for i := range 40 {
		add(fmt.Sprintf("mid/%d/%d", i%4, i), 512<<10)
	}
	for i := range 400 {
		add(fmt.Sprintf("small/%d/%d", i%20, i), 4<<10)
	}
	return dir, size
}

func benchRepo(b *testing.B, from *repo.Repository) *repo.Repository {
	b.Helper()
	opts := repo.InitOptions{KDF: repo.TestKDF}
	if from != nil {
		st := from.Settings()
		opts.ChunkerFrom = &st
	}
	r, err := repo.Init(context.Background(), mem.New(), "pw", opts)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkBackupOneRepo is the baseline of BenchmarkBackupTwoRepos: a
// first backup of the generated tree into one in-memory repository.
func BenchmarkBackupOneRepo(b *testing.B) {
	dir, size := benchSource(b)
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		r := benchRepo(b, nil)
		b.StartTimer()
		if _, err := Backup(context.Background(), r, []string{dir}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBackupTwoRepos backs the tree of BenchmarkBackupOneRepo up into
// two in-memory repositories at once, sharing the chunker (same-seed: one
// chunking, hashing and compression, two seals) or not (other-seed: two of
// each); the source is read once either way. MB/s counts source bytes, so
// the ratio to BenchmarkBackupOneRepo is the cost of the second repository.
func BenchmarkBackupTwoRepos(b *testing.B) {
	dir, size := benchSource(b)
	for _, bc := range []struct {
		name     string
		sameSeed bool
	}{{"same-seed", true}, {"other-seed", false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				b.StopTimer()
				r1 := benchRepo(b, nil)
				var from *repo.Repository
				if bc.sameSeed {
					from = r1
				}
				r2 := benchRepo(b, from)
				b.StartTimer()
				res, err := BackupMany(context.Background(), []Target{{Repo: r1}, {Repo: r2}}, []string{dir}, Options{})
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
		})
	}
}
