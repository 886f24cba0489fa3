package location

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/backend"
)

// TestFaultyWrapsItsInnerLocation: faulty+ takes any location and the
// fault parameters, shows the inner location redacted, settles at least
// as long as its lags, retries the faults it injects (so that a 30%
// error rate still stores and loads), and refuses parameters it does not
// know (issue 14).
func TestFaultyWrapsItsInnerLocation(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	l, err := Parse("faulty+" + dir + "?errors=0.3&lost=0.2&listlag=2s&deletelag=3s&latency=1ms&seed=7")
	if err != nil {
		t.Fatal(err)
	}
	if l.Scheme() != Faulty {
		t.Fatalf("scheme %s, want faulty", l.Scheme().Name)
	}
	if d := l.Defaults(); d.Settle != 3*time.Second || len(d.Decorators) != 1 {
		t.Errorf("defaults: settle %v, %d decorators; want 3s and the retries", d.Settle, len(d.Decorators))
	}
	if s := Display("faulty+s3://key:secret@host/b?errors=0.1"); strings.Contains(s, "secret") || !strings.HasPrefix(s, "faulty+s3://") {
		t.Errorf("Display: %q", s)
	}
	if strings.Contains(Supported(), "faulty") {
		t.Errorf("Supported() advertises the test aid: %s", Supported())
	}
	be, err := l.Open(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.(backend.Creator).Create(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		h := backend.Handle{Type: backend.SnapshotFile, Name: strings.Repeat("ab", 31) + string(rune('a'+i%6)) + string(rune('a'+i/6))}
		if err := be.Save(ctx, h, []byte("x")); err != nil {
			t.Fatalf("save %d through retries: %v", i, err)
		}
		if _, err := be.Load(ctx, h, 0, 0); err != nil {
			t.Fatalf("load %d through retries: %v", i, err)
		}
	}
	for _, bad := range []string{"?errors=2", "?latency=fast", "?bogus=1", "?only=save,teleport"} {
		l, err := Parse("faulty+" + dir + bad)
		if err == nil {
			_, err = l.Open(ctx, Options{})
		}
		if err == nil || !strings.Contains(err.Error(), "faulty+ parameter") {
			t.Errorf("faulty+%s%s: %v, want a parameter error", dir, bad, err)
		}
	}
	if _, err := Parse("faulty+?errors=0.1"); err == nil {
		_, err = Faulty.Open(ctx, "faulty+?errors=0.1", Options{})
		if err == nil {
			t.Error("faulty+ without a location opened")
		}
	}
}
