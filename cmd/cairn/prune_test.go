package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/plan"
	"github.com/cairn-backup/cairn/repo/maint"
)

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]float64{"50%": 0.5, "0%": 0, "100": 1, " 12.5% ": 0.125} {
		if got, err := parsePercent(in); err != nil || got != want {
			t.Errorf("parsePercent(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "%", "-1%", "101%", "half"} {
		if _, err := parsePercent(in); err == nil {
			t.Errorf("parsePercent(%q) accepted", in)
		}
	}
}

func TestPruneSummary(t *testing.T) {
	res := &maint.PruneResult{Snapshots: 3, Packs: 10, PackBytes: 100 << 20, Marked: 2, MarkedBytes: 32 << 20,
		Deleted: 1, DeletedBytes: 16 << 20, Repacked: 1, RepackedBytes: 16 << 20, CopiedBlobs: 4, NewPacks: 1, NewBytes: 4 << 20}
	got := pruneSummary(plan.Bare("/srv/b"), res, time.Hour)
	for _, want := range []string{"deleted 1 pack (16.0 MiB)", "marked 2 unreferenced packs", "repacked 1 sparse pack", "freed 16.0 MiB now", "frees about 44.0 MiB more"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	res.DryRun = true
	got = pruneSummary(plan.Bare("/srv/b"), res, time.Hour)
	for _, want := range []string{"would delete 1 pack ", "would mark 2", "would repack 1", "would free 16.0 MiB now", "dry run: nothing changed"} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run summary lacks %q:\n%s", want, got)
		}
	}
}
