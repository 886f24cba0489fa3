package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// Retention is a plan's policy for which snapshots to keep; forget
// removes the others. A snapshot is kept if any rule keeps it.
type Retention struct {
	KeepLast    int `json:"keep_last,omitempty"`    // the newest n snapshots
	KeepHourly  int `json:"keep_hourly,omitempty"`  // the newest snapshot of each of the newest n hours that have one
	KeepDaily   int `json:"keep_daily,omitempty"`   // … days
	KeepWeekly  int `json:"keep_weekly,omitempty"`  // … ISO weeks (Monday to Sunday)
	KeepMonthly int `json:"keep_monthly,omitempty"` // … months
	KeepYearly  int `json:"keep_yearly,omitempty"`  // … years
	// KeepWithin keeps every snapshot younger than this duration ("48h",
	// "7d", "2w"; days count on the calendar, so across a change to
	// daylight saving time "1d" is 23 or 25 hours).
	KeepWithin string   `json:"keep_within,omitempty"`
	KeepTags   []string `json:"keep_tags,omitempty"` // every snapshot with any of these tags
}

// Empty reports whether the policy has no rule. An empty policy keeps
// every snapshot: it never means "forget everything".
func (r Retention) Empty() bool {
	return r.KeepLast <= 0 && r.KeepHourly <= 0 && r.KeepDaily <= 0 && r.KeepWeekly <= 0 &&
		r.KeepMonthly <= 0 && r.KeepYearly <= 0 && len(r.KeepTags) == 0 && !r.hasWithin()
}

// hasWithin reports whether KeepWithin is set to more than nothing; "0s"
// keeps nothing and so is no rule.
func (r Retention) hasWithin() bool {
	if r.KeepWithin == "" {
		return false
	}
	days, rest, err := parseDuration(r.KeepWithin)
	return err != nil || days > 0 || rest > 0 // an invalid one is a rule Apply honours by keeping all
}

// Validate checks the policy: no negative counts, a valid duration, no
// empty tags.
func (r Retention) Validate() error { return r.validate("") }

func (r Retention) validate(path string) error {
	for _, k := range []struct {
		name string
		n    int
	}{
		{"keep_last", r.KeepLast}, {"keep_hourly", r.KeepHourly}, {"keep_daily", r.KeepDaily},
		{"keep_weekly", r.KeepWeekly}, {"keep_monthly", r.KeepMonthly}, {"keep_yearly", r.KeepYearly},
	} {
		if k.n < 0 {
			return &Error{Path: joinKey(path, k.name), Msg: fmt.Sprintf("%d is negative", k.n)}
		}
	}
	if r.KeepWithin != "" {
		if _, err := ParseDuration(r.KeepWithin); err != nil {
			return &Error{Path: joinKey(path, "keep_within"), Msg: err.Error()}
		}
	}
	if len(r.KeepTags) > 0 {
		return checkTags(r.KeepTags, joinKey(path, "keep_tags"))
	}
	return nil
}

// String describes the policy, e.g. "keep the last 3, 7 daily, 4 weekly
// snapshots, all within 48h, all tagged important".
func (r Retention) String() string {
	if r.Empty() {
		return "keep everything (empty policy)"
	}
	var counts, rest []string
	for _, k := range []struct {
		n    int
		what string
	}{
		{r.KeepLast, "last %d"}, {r.KeepHourly, "%d hourly"}, {r.KeepDaily, "%d daily"},
		{r.KeepWeekly, "%d weekly"}, {r.KeepMonthly, "%d monthly"}, {r.KeepYearly, "%d yearly"},
	} {
		if k.n > 0 {
			counts = append(counts, fmt.Sprintf(k.what, k.n))
		}
	}
	switch {
	case len(counts) == 1 && r.KeepLast == 1:
		rest = append(rest, "the last snapshot")
	case len(counts) == 1 && counts[0][:2] == "1 ":
		rest = append(rest, "the "+counts[0]+" snapshot")
	case len(counts) > 0:
		rest = append(rest, "the "+strings.Join(counts, ", ")+" snapshots")
	}
	if r.hasWithin() {
		rest = append(rest, "all within "+r.KeepWithin)
	}
	if len(r.KeepTags) > 0 {
		rest = append(rest, "all tagged "+strings.Join(r.KeepTags, " or "))
	}
	return "keep " + strings.Join(rest, ", ")
}

// Reasons for keeping a snapshot, as Apply reports them.
const (
	ReasonEmptyPolicy = "policy is empty"
	ReasonFuture      = "newer than now (clock skew?)"
	ReasonLastResort  = "newest snapshot (the policy keeps none; forget never removes them all)"
)

// bucketKey identifies a period: an hour, day, ISO week, month, year, or
// for keep_last one snapshot.
type bucketKey struct{ a, b int64 }

// Apply divides snaps (any order) by the policy, with restic's rules:
//
// Snapshots are taken newest first. keep_last keeps the n newest.
// keep_hourly/daily/weekly/monthly/yearly each keep the newest snapshot
// of each of the n newest periods that hold a snapshot, counted on the
// calendar in loc (ISO weeks, Monday to Sunday); a count that is not used
// up also keeps the oldest snapshot, to keep as much history as the
// policy allows ("oldest daily snapshot"). keep_within keeps every
// snapshot newer than now minus the duration; keep_tags every snapshot
// with one of the tags. The rules add up: a snapshot any rule keeps is
// kept.
//
// For safety: an empty policy keeps everything; a snapshot newer than now
// is kept and counts for no rule (another host's clock may be ahead); if
// the rules keep nothing at all, the newest snapshot is kept anyway; and
// an unparsable keep_within (which Validate refuses) keeps everything.
//
// keep and forget are newest first; reasons holds why each kept snapshot
// is kept ("last snapshot", "daily snapshot", "within 48h", "tagged x").
// Hours are hours of real time: the hour repeated when daylight saving
// time ends counts twice.
func (r Retention) Apply(snaps []*repo.Snapshot, now time.Time, loc *time.Location) (keep, forget []*repo.Snapshot, reasons map[*repo.Snapshot][]string) {
	if loc == nil {
		loc = time.Local
	}
	list := slices.Clone(snaps)
	slices.SortStableFunc(list, func(a, b *repo.Snapshot) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Label, a.Label)
	})
	reasons = make(map[*repo.Snapshot][]string)
	keepAll := func(why string) ([]*repo.Snapshot, []*repo.Snapshot, map[*repo.Snapshot][]string) {
		for _, s := range list {
			reasons[s] = []string{why}
		}
		return list, nil, reasons
	}
	if r.Empty() {
		return keepAll(ReasonEmptyPolicy)
	}
	var cutoff time.Time
	if r.hasWithin() {
		days, rest, err := parseDuration(r.KeepWithin)
		if err != nil {
			return keepAll(fmt.Sprintf("keep_within is invalid (%v)", err))
		}
		cutoff = now.In(loc).AddDate(0, 0, -days).Add(-rest)
	}

	buckets := []struct {
		count  int
		key    func(t time.Time, nr int) bucketKey
		reason string
		last   bucketKey
		seen   bool
	}{
		{count: r.KeepLast, key: func(_ time.Time, nr int) bucketKey { return bucketKey{int64(nr), 0} }, reason: "last snapshot"},
		{count: r.KeepHourly, key: hourKey, reason: "hourly snapshot"},
		{count: r.KeepDaily, key: func(t time.Time, _ int) bucketKey {
			return bucketKey{int64(t.Year()*10000 + int(t.Month())*100 + t.Day()), 0}
		}, reason: "daily snapshot"},
		{count: r.KeepWeekly, key: func(t time.Time, _ int) bucketKey {
			y, w := t.ISOWeek()
			return bucketKey{int64(y*100 + w), 0}
		}, reason: "weekly snapshot"},
		{count: r.KeepMonthly, key: func(t time.Time, _ int) bucketKey {
			return bucketKey{int64(t.Year()*100 + int(t.Month())), 0}
		}, reason: "monthly snapshot"},
		{count: r.KeepYearly, key: func(t time.Time, _ int) bucketKey { return bucketKey{int64(t.Year()), 0} }, reason: "yearly snapshot"},
	}

	for nr, s := range list {
		var why []string
		if s.Time.After(now) {
			why = append(why, ReasonFuture)
		} else {
			for _, tag := range r.KeepTags {
				if slices.Contains(s.Tags, tag) {
					why = append(why, "tagged "+tag)
				}
			}
			if !cutoff.IsZero() && s.Time.After(cutoff) {
				why = append(why, "within "+r.KeepWithin)
			}
			t := s.Time.In(loc)
			oldest := nr == len(list)-1
			for i := range buckets {
				b := &buckets[i]
				if b.count <= 0 {
					continue
				}
				k := b.key(t, nr)
				switch {
				case !b.seen || k != b.last:
					why = append(why, b.reason)
				case oldest:
					why = append(why, "oldest "+b.reason)
				default:
					continue
				}
				b.last, b.seen = k, true
				b.count--
			}
		}
		if len(why) > 0 {
			keep = append(keep, s)
			reasons[s] = why
		} else {
			forget = append(forget, s)
		}
	}
	if len(keep) == 0 && len(forget) > 0 {
		newest := forget[0]
		keep, forget = forget[:1:1], forget[1:]
		reasons[newest] = []string{ReasonLastResort}
	}
	return keep, forget, reasons
}

// hourKey is the hour of t on the clock together with the offset from
// UTC, so that the hour repeated at the end of daylight saving time is
// two hours, as it is in real time.
func hourKey(t time.Time, _ int) bucketKey {
	_, off := t.Zone()
	return bucketKey{int64(t.Year())*1000000 + int64(t.Month())*10000 + int64(t.Day())*100 + int64(t.Hour()), int64(off)}
}
