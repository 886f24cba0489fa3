package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressRate: the bar shows no rate until enough time has passed,
// and then the bytes over the real elapsed time, never the bar's own
// rate (which once made 4 MiB in 0.2 s "153 GB/s").
func TestProgressRate(t *testing.T) {
	now := time.Now()
	var buf bytes.Buffer
	o := &output{stdout: &buf, stderr: &buf, start: now.Add(-200 * time.Millisecond)}
	o.showBar("backup", 1<<20, 100<<20, now)
	time.Sleep(250 * time.Millisecond) // past the bar's throttle: it draws again
	o.showBar("backup", 4<<20, 100<<20, now.Add(250*time.Millisecond))
	o.done()
	if got := buf.String(); strings.Contains(got, "/s") || !strings.Contains(got, "backup 4.0 MiB") {
		t.Errorf("4 MiB after 0.45 s shows %q, want the bytes and no rate", got)
	}

	buf.Reset()
	o = &output{stdout: &buf, stderr: &buf, start: now.Add(-10 * time.Second)}
	o.showBar("restore", 1<<30, 2<<30, now)
	o.done()
	got := buf.String()
	if !strings.Contains(got, "restore 1.0 GiB, 102.4 MiB/s [10s, 10s left]") {
		t.Errorf("1 GiB after 10 s shows %q, want 102.4 MiB/s", got)
	}
	if strings.Count(got, "/s") != 1 {
		t.Errorf("1 GiB after 10 s shows %q, want one rate", got)
	}
}

func TestProgressText(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, -1, 0, "backup 0 B [0s]"},
		{4 << 20, 100 << 20, 200 * time.Millisecond, "backup 4.0 MiB [0s]"},
		{4 << 20, -1, 1900 * time.Millisecond, "backup 4.0 MiB [1s]"},
		{4 << 20, -1, 2 * time.Second, "backup 4.0 MiB, 2.0 MiB/s [2s]"},
		{4 << 20, 10 << 20, 2 * time.Second, "backup 4.0 MiB, 2.0 MiB/s [2s, 3s left]"},
		{0, 10 << 20, time.Minute, "backup 0 B [1m0s]"},
	} {
		if got := progressText("backup", c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("progressText(%d, %v) = %q, want %q", c.done, c.elapsed, got, c.want)
		}
	}
}
