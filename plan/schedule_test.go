package plan

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin and America/New_York without the system's zone files
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"48h", 48 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"1w2d3h4m5s", (9*24+3)*time.Hour + 4*time.Minute + 5*time.Second, ""},
		{"90m", 90 * time.Minute, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"", 0, "empty duration"},
		{"10", 0, "missing unit"},
		{"-5m", 0, "negative"},
		{"1.5d", 0, "whole number of days"},
		{"2x", 0, `unknown unit "x"`},
		{"d", 0, "want a number"},
		{"1y", 0, `unknown unit "y"`},
		{"99999999999999w", 0, "whole number of weeks"},
		{"200000d", 0, "too long"},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSchedules(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		spec  string
		after time.Time
		want  time.Time
	}{
		{"0 4 * * *", utc("2026-11-21T03:00:00Z"), utc("2026-11-21T04:00:00Z")},
		{"0 4 * * *", utc("2026-11-21T04:00:00Z"), utc("2026-11-22T04:00:00Z")},
		{"*/15 * * * *", utc("2026-11-21T04:07:30Z"), utc("2026-11-21T04:15:00Z")},
		{"30 2 * * MON", utc("2026-11-21T00:00:00Z"), utc("2026-11-23T02:30:00Z")}, // the 21st is a Saturday
		{"0 0 1 JAN,JUL *", utc("2026-02-01T00:00:00Z"), utc("2026-07-01T00:00:00Z")},
		{"0 0 29 2 *", utc("2026-03-01T00:00:00Z"), utc("2028-02-29T00:00:00Z")},
		{"@daily", utc("2026-11-21T04:00:00Z"), utc("2026-11-22T00:00:00Z")},
		{"@hourly", utc("2026-11-21T04:59:59Z"), utc("2026-11-21T05:00:00Z")},
		{"@weekly", utc("2026-11-21T04:00:00Z"), utc("2026-11-22T00:00:00Z")}, // Sunday midnight
		{"@monthly", utc("2026-11-21T04:00:00Z"), utc("2026-12-01T00:00:00Z")},
		{"@yearly", utc("2026-11-21T04:00:00Z"), utc("2027-01-01T00:00:00Z")},
		{"@every 1h", utc("2026-11-21T04:00:00Z"), utc("2026-11-21T05:00:00Z")},
		{"@every 1d", utc("2026-11-21T04:00:00Z"), utc("2026-11-22T04:00:00Z")},
		{"@every 90m", utc("2026-11-21T04:00:00Z"), utc("2026-11-21T05:30:00Z")},
		// In the location of after: 04:00 in Berlin is 03:00 UTC in
		// winter and 02:00 UTC once summer time began on 2026-03-29.
		{"0 4 * * *", utc("2026-03-28T12:00:00Z").In(berlin), utc("2026-03-29T02:00:00Z")},
		{"0 4 * * *", utc("2026-03-27T12:00:00Z").In(berlin), utc("2026-03-28T03:00:00Z")},
		// 02:30 does not exist in Berlin on 2026-03-29; cron runs it at 03:30 CEST.
		{"30 2 * * *", utc("2026-03-28T12:00:00Z").In(berlin), utc("2026-03-29T01:30:00Z")},
		{"CRON_TZ=America/New_York 0 4 * * *", utc("2026-11-21T00:00:00Z"), utc("2026-11-21T09:00:00Z")},
		{"CRON_TZ=Europe/Berlin 30 2 * * *", utc("2026-03-28T12:00:00Z"), utc("2026-03-29T01:30:00Z")},
		// Summer time ends in Berlin on 2026-10-25 (03:00 CEST becomes
		// 02:00 CET): 02:30 happens twice, a fixed-time job runs once.
		{"30 2 * * *", utc("2026-10-24T12:00:00Z").In(berlin), utc("2026-10-25T01:30:00Z")},
		{"30 2 * * *", utc("2026-10-25T00:00:00Z").In(berlin), utc("2026-10-25T01:30:00Z")},
		{"30 2 * * *", utc("2026-10-25T00:30:00Z").In(berlin), utc("2026-10-26T01:30:00Z")},
		{"30 2 * * *", utc("2026-10-25T01:30:00Z").In(berlin), utc("2026-10-26T01:30:00Z")},
		// An every-hour job runs in both 02:00 hours.
		{"0 * * * *", utc("2026-10-24T23:30:00Z").In(berlin), utc("2026-10-25T00:00:00Z")},
		{"0 * * * *", utc("2026-10-25T00:00:00Z").In(berlin), utc("2026-10-25T01:00:00Z")},
		{"0 * * * *", utc("2026-10-25T01:00:00Z").In(berlin), utc("2026-10-25T02:00:00Z")},
		{"*/30 * * * *", utc("2026-03-29T00:30:00Z").In(berlin), utc("2026-03-29T01:00:00Z")},
	} {
		p := Plan{Schedule: tc.spec}
		got, err := p.Next(tc.after)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q after %v: got %v, %v; want %v", tc.spec, tc.after, got, err, tc.want)
		}
	}
}

func TestBadSchedules(t *testing.T) {
	for _, spec := range []string{
		"61 * * * *", "* * * *", "0 0 4 * * *", "@reboot", "@every", "@every 0s", "@every -1h", "@every 10",
		"0 0 30 2 *", "0 4 * * FUNDAY", "CRON_TZ=Mars/Olympus 0 4 * * *", "",
	} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", spec)
		}
	}
	if _, err := (Plan{}).Next(time.Now()); !errors.Is(err, ErrNoSchedule) {
		t.Errorf("no schedule: %v", err)
	}
}

func TestJitter(t *testing.T) {
	if d, err := (Plan{Jitter: "10m"}).JitterDuration(); err != nil || d != 10*time.Minute {
		t.Fatal(d, err)
	}
	if d, err := (Plan{}).JitterDuration(); err != nil || d != 0 {
		t.Fatal(d, err)
	}
}
