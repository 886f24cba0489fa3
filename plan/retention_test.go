package plan

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// snaps makes one snapshot per time (RFC 3339), labelled with the time.
func snaps(t *testing.T, times ...string) []*repo.Snapshot {
	t.Helper()
	var out []*repo.Snapshot
	for _, s := range times {
		out = append(out, &repo.Snapshot{Label: s, Time: mustTime(t, s)})
	}
	return out
}

// every makes snapshots from first to last (inclusive), step apart.
func every(t *testing.T, first, last string, step time.Duration) []*repo.Snapshot {
	t.Helper()
	var out []*repo.Snapshot
	for tm := mustTime(t, first); !tm.After(mustTime(t, last)); tm = tm.Add(step) {
		out = append(out, &repo.Snapshot{Label: tm.Format(time.RFC3339), Time: tm})
	}
	return out
}

func labels(ss []*repo.Snapshot) []string {
	var l []string
	for _, s := range ss {
		l = append(l, s.Label)
	}
	return l
}

func timeZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// apply runs the policy and checks that keep and forget partition the
// input, newest first, and that every kept snapshot has reasons.
func apply(t *testing.T, r Retention, list []*repo.Snapshot, now string, loc *time.Location) (keep, forget []string, reasons map[string][]string) {
	t.Helper()
	k, f, why := r.Apply(list, mustTime(t, now), loc)
	if len(k)+len(f) != len(list) {
		t.Fatalf("%d kept + %d forgotten != %d", len(k), len(f), len(list))
	}
	for _, part := range [][]*repo.Snapshot{k, f} {
		if !slices.IsSortedFunc(part, func(a, b *repo.Snapshot) int { return b.Time.Compare(a.Time) }) {
			t.Fatalf("not newest first: %v", labels(part))
		}
	}
	reasons = make(map[string][]string)
	for _, s := range k {
		if len(why[s]) == 0 {
			t.Fatalf("%s kept without a reason", s.Label)
		}
		reasons[s.Label] = why[s]
	}
	for _, s := range f {
		if len(why[s]) != 0 {
			t.Fatalf("%s forgotten with reasons %v", s.Label, why[s])
		}
	}
	return labels(k), labels(f), reasons
}

func wantLabels(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// The example of restic's documentation: a backup every Sunday for 12
// weeks; --keep-daily 4 keeps the last four.
func TestRetentionResticSundays(t *testing.T) {
	list := every(t, "2019-09-01T11:00:00Z", "2019-11-17T11:00:00Z", 7*24*time.Hour)
	if len(list) != 12 {
		t.Fatal(len(list))
	}
	keep, forget, why := apply(t, Retention{KeepDaily: 4}, list, "2019-11-18T00:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2019-11-17T11:00:00Z", "2019-11-10T11:00:00Z", "2019-11-03T11:00:00Z", "2019-10-27T11:00:00Z")
	if len(forget) != 8 || forget[7] != "2019-09-01T11:00:00Z" {
		t.Fatalf("forget %v", forget)
	}
	if !reflect.DeepEqual(why["2019-10-27T11:00:00Z"], []string{"daily snapshot"}) {
		t.Fatalf("reasons %v", why)
	}
	// The counts add up: the newest Sunday is kept daily and weekly.
	_, _, why = apply(t, Retention{KeepDaily: 1, KeepWeekly: 2}, list, "2019-11-18T00:00:00Z", time.UTC)
	if !reflect.DeepEqual(why["2019-11-17T11:00:00Z"], []string{"daily snapshot", "weekly snapshot"}) ||
		!reflect.DeepEqual(why["2019-11-10T11:00:00Z"], []string{"weekly snapshot"}) || len(why) != 2 {
		t.Fatalf("reasons %v", why)
	}
}

// The other example of restic's documentation: a backup every day for 100
// years and --keep-daily 7 --keep-weekly 5 --keep-monthly 12
// --keep-yearly 75 keep the 7 newest days, 4 more Sundays (the dailies
// hold one), 12 or 11 month ends and 75 or 74 year ends.
func TestRetentionResticHundredYears(t *testing.T) {
	list := every(t, "1926-06-15T12:00:00Z", "2026-06-15T12:00:00Z", 24*time.Hour) // the 15th is a Monday
	r := Retention{KeepDaily: 7, KeepWeekly: 5, KeepMonthly: 12, KeepYearly: 75}
	k, _, why := r.Apply(list, mustTime(t, "2026-06-15T13:00:00Z"), time.UTC)
	count := map[string]int{}
	for _, s := range k {
		only := why[s]
		for _, w := range only {
			count[w]++
		}
		d := s.Time
		newest := s == k[0]
		switch {
		case slices.Contains(only, "daily snapshot"):
			if mustTime(t, "2026-06-15T12:00:00Z").Sub(d) >= 7*24*time.Hour {
				t.Errorf("daily %v is older than a week", d)
			}
		case slices.Contains(only, "weekly snapshot") && !newest && d.Weekday() != time.Sunday:
			t.Errorf("weekly %v is not a Sunday", d)
		case slices.Contains(only, "monthly snapshot") && !newest && d.AddDate(0, 0, 1).Day() != 1:
			t.Errorf("monthly %v is not a month's last day", d)
		case slices.Contains(only, "yearly snapshot") && !newest && (d.Month() != 12 || d.Day() != 31):
			t.Errorf("yearly %v is not a year's last day", d)
		}
	}
	if want := map[string]int{"daily snapshot": 7, "weekly snapshot": 5, "monthly snapshot": 12, "yearly snapshot": 75}; !reflect.DeepEqual(count, want) {
		t.Fatalf("reasons counted %v, want %v", count, want)
	}
	// 7 daily; weekly: the newest is also daily, 4 more Sundays (one of
	// them, June 14th, is among the dailies too: 3 more); monthly: the
	// newest is daily, May 31st is a Sunday kept weekly, 10 more; yearly:
	// the newest and December 31st, 2025 (a month's end) are kept
	// already, 73 more.
	if len(k) != 7+3+10+73 {
		t.Fatalf("kept %d", len(k))
	}
}

func TestRetentionKeepLast(t *testing.T) {
	list := snaps(t, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z")
	keep, forget, why := apply(t, Retention{KeepLast: 2}, list, "2026-02-01T00:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-01-04T00:00:00Z", "2026-01-03T00:00:00Z")
	wantLabels(t, "forget", forget, "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")
	if !reflect.DeepEqual(why["2026-01-04T00:00:00Z"], []string{"last snapshot"}) {
		t.Fatal(why)
	}
	// More than there are keeps them all.
	_, forget, _ = apply(t, Retention{KeepLast: 10}, list, "2026-02-01T00:00:00Z", time.UTC)
	wantLabels(t, "forget", forget)
}

// A count not used up keeps the oldest snapshot too (restic ≥ 0.17), so
// a young repository keeps its whole history's span.
func TestRetentionKeepsOldestWhileCountsLast(t *testing.T) {
	list := every(t, "2026-05-01T00:00:00Z", "2026-05-03T23:00:00Z", time.Hour) // 3 days, hourly
	keep, _, why := apply(t, Retention{KeepDaily: 7}, list, "2026-05-04T00:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-05-03T23:00:00Z", "2026-05-02T23:00:00Z", "2026-05-01T23:00:00Z", "2026-05-01T00:00:00Z")
	if !reflect.DeepEqual(why["2026-05-01T00:00:00Z"], []string{"oldest daily snapshot"}) {
		t.Fatal(why)
	}
	// A count used up does not.
	keep, _, _ = apply(t, Retention{KeepDaily: 3}, list, "2026-05-04T00:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-05-03T23:00:00Z", "2026-05-02T23:00:00Z", "2026-05-01T23:00:00Z")
}

// Month ends: January has 31 days, February 28, or 29 in 2028.
func TestRetentionMonthEnds(t *testing.T) {
	for _, tc := range []struct {
		year    int
		febLast string
	}{{2027, "28"}, {2028, "29"}} {
		y := fmt.Sprint(tc.year)
		list := every(t, y+"-01-25T12:00:00Z", y+"-03-02T12:00:00Z", 24*time.Hour)
		keep, _, _ := apply(t, Retention{KeepMonthly: 3}, list, y+"-03-03T00:00:00Z", time.UTC)
		wantLabels(t, y, keep, y+"-03-02T12:00:00Z", y+"-02-"+tc.febLast+"T12:00:00Z", y+"-01-31T12:00:00Z")
	}
	// Days run across February 28th/29th into March in a leap year.
	list := snaps(t, "2028-02-28T22:00:00Z", "2028-02-28T23:00:00Z", "2028-02-29T01:00:00Z", "2028-02-29T23:59:59Z", "2028-03-01T00:00:00Z")
	keep, _, _ := apply(t, Retention{KeepDaily: 3}, list, "2028-03-02T00:00:00Z", time.UTC)
	wantLabels(t, "leap days", keep, "2028-03-01T00:00:00Z", "2028-02-29T23:59:59Z", "2028-02-28T23:00:00Z")
}

func TestRetentionYears(t *testing.T) {
	list := snaps(t, "2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z", "2027-06-01T00:00:00Z", "2028-02-29T00:00:00Z", "2028-12-31T00:00:00Z")
	keep, _, _ := apply(t, Retention{KeepYearly: 3}, list, "2029-01-01T00:00:00Z", time.UTC)
	wantLabels(t, "yearly", keep, "2028-12-31T00:00:00Z", "2027-06-01T00:00:00Z", "2025-01-01T00:00:00Z")
}

// ISO weeks run Monday to Sunday across the turn of the year: 2026-12-31
// (a Thursday) and 2027-01-01 (a Friday) are both in week 53 of 2026.
func TestRetentionISOWeeksAcrossYears(t *testing.T) {
	for _, d := range []string{"2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z", "2027-01-03T12:00:00Z"} {
		if y, w := mustTime(t, d).ISOWeek(); y != 2026 || w != 53 {
			t.Fatalf("%s is in week %d of %d", d, w, y)
		}
	}
	list := snaps(t, "2026-12-27T12:00:00Z", "2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z", "2027-01-04T12:00:00Z")
	keep, forget, _ := apply(t, Retention{KeepWeekly: 2}, list, "2027-01-05T00:00:00Z", time.UTC)
	wantLabels(t, "weekly", keep, "2027-01-04T12:00:00Z", "2027-01-01T12:00:00Z")
	wantLabels(t, "weekly forget", forget, "2026-12-31T12:00:00Z", "2026-12-27T12:00:00Z")
	// 2027-01-01 and 2026-12-31 share ISO week 53 of 2026, though not a
	// calendar year: a third week reaches back past both to 2026-12-27.
	keep, forget, _ = apply(t, Retention{KeepWeekly: 3}, list, "2027-01-05T00:00:00Z", time.UTC)
	wantLabels(t, "3 weekly", keep, "2027-01-04T12:00:00Z", "2027-01-01T12:00:00Z", "2026-12-27T12:00:00Z")
	wantLabels(t, "3 weekly forget", forget, "2026-12-31T12:00:00Z")
	// Years are calendar years: both sides of the turn are kept.
	keep, _, _ = apply(t, Retention{KeepYearly: 2}, list, "2027-01-05T00:00:00Z", time.UTC)
	wantLabels(t, "yearly", keep, "2027-01-04T12:00:00Z", "2026-12-31T12:00:00Z")
}

// A snapshot at 23:30 UTC is on the next day in UTC+2.
func TestRetentionTimeZones(t *testing.T) {
	list := snaps(t, "2026-06-09T12:00:00Z", "2026-06-10T21:00:00Z", "2026-06-10T23:30:00Z")
	keep, _, _ := apply(t, Retention{KeepDaily: 2}, list, "2026-06-12T00:00:00Z", time.UTC)
	wantLabels(t, "UTC", keep, "2026-06-10T23:30:00Z", "2026-06-09T12:00:00Z")
	keep, _, _ = apply(t, Retention{KeepDaily: 2}, list, "2026-06-12T00:00:00Z", time.FixedZone("UTC+2", 2*3600))
	wantLabels(t, "UTC+2", keep, "2026-06-10T23:30:00Z", "2026-06-10T21:00:00Z")
	// Weeks and months move with the zone too: Sunday 2026-05-31 23:30
	// UTC is Monday June 1st in UTC+2.
	list = snaps(t, "2026-04-20T12:00:00Z", "2026-05-31T20:00:00Z", "2026-05-31T23:30:00Z")
	for _, r := range []Retention{{KeepWeekly: 2}, {KeepMonthly: 2}} {
		keep, _, _ = apply(t, r, list, "2026-06-02T00:00:00Z", time.UTC)
		wantLabels(t, fmt.Sprintf("%v in UTC", r), keep, "2026-05-31T23:30:00Z", "2026-04-20T12:00:00Z")
		keep, _, _ = apply(t, r, list, "2026-06-02T00:00:00Z", time.FixedZone("UTC+2", 2*3600))
		wantLabels(t, fmt.Sprintf("%v in UTC+2", r), keep, "2026-05-31T23:30:00Z", "2026-05-31T20:00:00Z")
	}
}

// Summer time begins in Berlin on 2026-03-29 at 02:00 CET (01:00 UTC),
// so that day has 23 hours, and ends on 2026-10-25 at 03:00 CEST (01:00
// UTC), so that day has 25 and 02:00-03:00 comes twice.
func TestRetentionDST(t *testing.T) {
	berlin := timeZone(t, "Europe/Berlin")
	list := every(t, "2026-03-28T20:00:00Z", "2026-03-29T23:00:00Z", time.Hour)

	// Days in Berlin: March 29th runs from 23:00 UTC on the 28th to
	// 22:00 UTC on the 29th.
	keep, _, _ := apply(t, Retention{KeepDaily: 2}, list, "2026-03-30T12:00:00Z", berlin)
	wantLabels(t, "Berlin days", keep, "2026-03-29T23:00:00Z", "2026-03-29T21:00:00Z")
	keep, _, _ = apply(t, Retention{KeepDaily: 2}, list, "2026-03-30T12:00:00Z", time.UTC)
	wantLabels(t, "UTC days", keep, "2026-03-29T23:00:00Z", "2026-03-28T23:00:00Z")
	keep, _, _ = apply(t, Retention{KeepDaily: 3}, list, "2026-03-30T12:00:00Z", berlin)
	wantLabels(t, "Berlin days", keep, "2026-03-29T23:00:00Z", "2026-03-29T21:00:00Z", "2026-03-28T22:00:00Z")

	// Every real hour is its own hour, with or without a 02:00.
	keep, _, _ = apply(t, Retention{KeepHourly: 24}, list, "2026-03-30T12:00:00Z", berlin)
	newest := labels(list[len(list)-24:])
	slices.Reverse(newest)
	wantLabels(t, "Berlin hours", keep, newest...)

	// The repeated hour in October counts twice.
	list = snaps(t, "2026-10-24T23:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z")
	if a, b := list[1].Time.In(berlin), list[2].Time.In(berlin); a.Hour() != 2 || b.Hour() != 2 {
		t.Fatalf("%v %v", a, b)
	}
	keep, _, _ = apply(t, Retention{KeepHourly: 2}, list, "2026-10-26T00:00:00Z", berlin)
	wantLabels(t, "repeated hour", keep, "2026-10-25T01:30:00Z", "2026-10-25T00:30:00Z")

	// keep_within counts days on the calendar: "1d" before 00:00 CEST on
	// March 30th is 00:00 CET on March 29th, 23 hours earlier.
	list = snaps(t, "2026-03-28T22:30:00Z", "2026-03-29T12:00:00Z")
	now := "2026-03-29T22:00:00Z"
	keep, _, _ = apply(t, Retention{KeepWithin: "1d"}, list, now, berlin)
	wantLabels(t, "within 1d", keep, "2026-03-29T12:00:00Z")
	keep, _, _ = apply(t, Retention{KeepWithin: "24h"}, list, now, berlin)
	wantLabels(t, "within 24h", keep, "2026-03-29T12:00:00Z", "2026-03-28T22:30:00Z")
}

func TestRetentionWithinAndTags(t *testing.T) {
	list := snaps(t, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z")
	list[0].Tags = []string{"release", "x"}
	list[1].Tags = []string{"other"}
	keep, forget, why := apply(t, Retention{KeepWithin: "48h", KeepTags: []string{"release", "pinned"}}, list, "2026-01-10T12:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-01-10T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-01T00:00:00Z")
	wantLabels(t, "forget", forget, "2026-01-05T00:00:00Z")
	if !reflect.DeepEqual(why["2026-01-01T00:00:00Z"], []string{"tagged release"}) ||
		!reflect.DeepEqual(why["2026-01-09T00:00:00Z"], []string{"within 48h"}) {
		t.Fatal(why)
	}
	// Relative to now, not to the newest snapshot.
	keep, _, _ = apply(t, Retention{KeepWithin: "7d"}, list, "2026-01-11T23:00:00Z", time.UTC)
	wantLabels(t, "within 7d", keep, "2026-01-10T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-05T00:00:00Z")
	keep, _, _ = apply(t, Retention{KeepWithin: "7d"}, list, "2026-01-12T01:00:00Z", time.UTC)
	wantLabels(t, "within 7d", keep, "2026-01-10T00:00:00Z", "2026-01-09T00:00:00Z")
}

func TestRetentionSafety(t *testing.T) {
	list := snaps(t, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")

	// An empty policy keeps everything.
	for _, r := range []Retention{{}, {KeepWithin: "0s"}, {KeepLast: 0, KeepDaily: 0}} {
		keep, forget, why := apply(t, r, list, "2026-02-01T00:00:00Z", time.UTC)
		if len(keep) != 3 || len(forget) != 0 || why["2026-01-01T00:00:00Z"][0] != ReasonEmptyPolicy {
			t.Fatalf("%+v: keep %v forget %v", r, keep, forget)
		}
	}

	// A policy that would keep nothing keeps the newest.
	keep, forget, why := apply(t, Retention{KeepTags: []string{"nothing has it"}}, list, "2026-02-01T00:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-01-03T00:00:00Z")
	wantLabels(t, "forget", forget, "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")
	if why["2026-01-03T00:00:00Z"][0] != ReasonLastResort {
		t.Fatal(why)
	}
	keep, _, _ = apply(t, Retention{KeepWithin: "1h"}, list, "2026-02-01T00:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-01-03T00:00:00Z")

	// A snapshot from the future is kept and counts for nothing.
	keep, _, why = apply(t, Retention{KeepLast: 1}, list, "2026-01-02T12:00:00Z", time.UTC)
	wantLabels(t, "keep", keep, "2026-01-03T00:00:00Z", "2026-01-02T00:00:00Z")
	if why["2026-01-03T00:00:00Z"][0] != ReasonFuture || why["2026-01-02T00:00:00Z"][0] != "last snapshot" {
		t.Fatal(why)
	}

	// An invalid keep_within keeps everything.
	keep, _, _ = apply(t, Retention{KeepLast: 1, KeepWithin: "soon"}, list, "2026-02-01T00:00:00Z", time.UTC)
	if len(keep) != 3 {
		t.Fatal(keep)
	}

	// Nothing in, nothing out.
	k, f, _ := Retention{KeepLast: 1}.Apply(nil, time.Now(), time.UTC)
	if len(k)+len(f) != 0 {
		t.Fatal(k, f)
	}

	// Apply does not reorder its argument.
	orig := slices.Clone(list)
	Retention{KeepLast: 1}.Apply(list, time.Now(), nil)
	if !slices.Equal(orig, list) {
		t.Fatal("Apply reordered its argument")
	}
}

func TestRetentionTiesAreDeterministic(t *testing.T) {
	a := &repo.Snapshot{Label: "a", Time: mustTime(t, "2026-01-01T00:00:00Z")}
	b := &repo.Snapshot{Label: "b", Time: a.Time}
	for _, list := range [][]*repo.Snapshot{{a, b}, {b, a}} {
		keep, _, _ := Retention{KeepLast: 1}.Apply(list, mustTime(t, "2026-02-01T00:00:00Z"), time.UTC)
		if len(keep) != 1 || keep[0] != b {
			t.Fatalf("kept %v", labels(keep))
		}
	}
}

func TestRetentionString(t *testing.T) {
	for r, want := range map[*Retention]string{
		{}:                            "keep everything (empty policy)",
		{KeepLast: 3}:                 "keep the last 3 snapshots",
		{KeepDaily: 7, KeepWeekly: 4}: "keep the 7 daily, 4 weekly snapshots",
		{KeepLast: 1, KeepWithin: "48h", KeepTags: []string{"a", "b"}}: "keep the last snapshot, all within 48h, all tagged a or b",
		{KeepMonthly: 1}:            "keep the 1 monthly snapshot",
		{KeepLast: 1, KeepDaily: 1}: "keep the last 1, 1 daily snapshots",
	} {
		if got := r.String(); got != want {
			t.Errorf("%+v: %q, want %q", *r, got, want)
		}
	}
	if err := (Retention{KeepHourly: -2}).Validate(); err == nil || !strings.Contains(err.Error(), "keep_hourly: -2 is negative") {
		t.Fatal(err)
	}
}
