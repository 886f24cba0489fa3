package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/cairn-backup/cairn/repo"
)

// backupMemory is the soft heap limit of a backup into r: its working set
// is a pack per upload slot plus one filling and one waiting, a chunker
// buffer (the largest chunk plus a 1 MiB read block) per core, and about
// 64 MiB for compressors, index, trees and room to collect in. Without a
// limit Go lets the heap grow to twice the working set; a limit at or
// under it would make the collector run without pause (an 80 MiB limit
// cost a 550 MB backup of large files a quarter of its time in
// collections and page faults).
func backupMemory(r *repo.Repository) int64 {
	st := r.Settings()
	return int64(r.Uploads()+2)*int64(st.PackSize) +
		int64(runtime.GOMAXPROCS(0))*int64(st.Chunker.Max+1<<20) + 64<<20
}

// restoreMemory is the soft heap limit of a restore: its chunk and tree
// caches (24 MiB) plus the workers' pack ranges of up to 8 MiB.
const restoreMemory = 64 << 20

// softMemoryLimit sets Go's soft memory limit unless $GOMEMLIMIT does.
func softMemoryLimit(n int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n)
	}
}
