package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
)

// backupMemory is the soft heap limit of a backup: the working set is
// about three 16 MiB packs (one filling, one uploading, one waiting) plus
// GOMAXPROCS chunker buffers of 9 MiB, and without a limit Go lets the heap
// grow to twice that. The limit only makes the collector run sooner.
const backupMemory = 80 << 20

// restoreMemory is the soft heap limit of a restore: its chunk and tree
// caches (24 MiB) plus the workers' pack ranges of up to 8 MiB.
const restoreMemory = 64 << 20

// softMemoryLimit sets Go's soft memory limit unless $GOMEMLIMIT does.
func softMemoryLimit(n int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n)
	}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// absPaths makes paths absolute and sorted, as the archiver records them.
func absPaths(args []string) []string {
	var out []string
	for _, a := range args {
		if p, err := filepath.Abs(a); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
