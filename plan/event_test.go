package plan

import "testing"

func TestEventString(t *testing.T) {
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{Event{Event: "done", Message: "success"}, "done: success"},
		{Event{Event: "done", Message: "failed", Error: "no source"}, "done: failed: no source"},
		{Event{Event: "repo_error", Repo: "offsite", Error: "lock: timeout"}, "repo_error offsite: lock: timeout"},
		{Event{Event: "skipped", Repo: "local", Message: "already running"}, "skipped local: already running"},
		{Event{Event: "snapshot", Repo: "local", Snapshot: "2026-11-21T040000Z_home"}, "snapshot local 2026-11-21T040000Z_home"},
	} {
		if got := c.ev.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.ev, got, c.want)
		}
	}
}
