package maint_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/archiver"
	"github.com/cairn-backup/cairn/repo/backend/faulty"
	"github.com/cairn-backup/cairn/repo/backend/mem"
	"github.com/cairn-backup/cairn/repo/backend/retry"
	"github.com/cairn-backup/cairn/repo/maint"
	"github.com/cairn-backup/cairn/repo/restorer"
)

// TestBackupThroughTransientFaults backs up and restores through storage
// that fails and loses responses, behind the retry decorator: the backup
// completes, the repository checks clean, and the restore is identical.
func TestBackupThroughTransientFaults(t *testing.T) {
	ctx := context.Background()
	fb := faulty.New(mem.New(), faulty.Options{Seed: 42, ErrorRate: 0.15, LostResponseRate: 0.15, Latency: time.Millisecond})
	be := retry.New(fb, retry.Options{Attempts: 30, Base: time.Millisecond, Max: 5 * time.Millisecond})
	r, err := repo.Init(ctx, be, "pw", repo.InitOptions{KDF: repo.TestKDF, PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7919 >> 9)
	}
	os.WriteFile(filepath.Join(src, "big"), data, 0o644)
	for i := range 40 {
		os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), bytes.Repeat([]byte{byte(i)}, 1000+i*100), 0o644)
	}
	snap, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatalf("backup through faults: %v", err)
	}
	if fb.Injected() < 5 {
		t.Fatalf("only %d faults injected: the test tests nothing", fb.Injected())
	}
	res, err := maint.Check(ctx, r, maint.CheckOptions{ReadData: true})
	if err != nil || res.Errors > 0 {
		t.Fatalf("check: %v %+v", err, res.Problems)
	}
	target := t.TempDir()
	if _, err := restorer.Restore(ctx, r, snap, target, restorer.Options{
		OnError: func(p string, err error) { t.Errorf("restore %s: %v", p, err) },
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(target, src, "big"))
	if !bytes.Equal(got, data) {
		t.Fatal("restored content differs")
	}
}
