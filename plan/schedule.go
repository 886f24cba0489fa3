package plan

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrNoSchedule: the plan has no schedule; it runs only when asked.
var ErrNoSchedule = errors.New("the plan has no schedule")

// Schedule says when a plan runs next.
type Schedule interface {
	// Next returns the first time after t, in t's location, at which
	// the plan runs.
	Next(t time.Time) time.Time
}

// cronParser reads five-field cron expressions (minute hour day-of-month
// month day-of-week) and descriptors (@yearly, @monthly, @weekly, @daily,
// @hourly, @every). Names (JAN, MON), ranges, lists and steps work as in
// cron(8). A leading "CRON_TZ=Europe/Berlin " sets the time zone.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a schedule: a cron expression of five fields such
// as "0 4 * * *", or a descriptor: "@daily", "@hourly", "@weekly",
// "@monthly", "@yearly", or "@every D" with a duration D as ParseDuration
// reads it ("@every 6h", "@every 1d"). Cron expressions are evaluated in
// the location of the time given to Next (the scheduler gives local
// time) unless they start with CRON_TZ=. Across changes to and from
// daylight saving time they behave as in cron(8): an expression with
// fixed hours runs once per wall-clock time (a time that is skipped runs
// when the clocks have moved on), one for every hour runs by real time.
func ParseSchedule(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("invalid schedule %q: %v", spec, err)
		}
		if d < time.Second {
			return nil, fmt.Errorf("invalid schedule %q: @every needs at least 1s", spec)
		}
		return cron.Every(d), nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron expression %q: %v", spec, err)
	}
	// robfig/cron gives up after five years: a date that never comes
	// (February 30th) would silently never run.
	if s.Next(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("invalid cron expression %q: it never fires", spec)
	}
	if spec, ok := s.(*cron.SpecSchedule); ok && spec.Hour&allHours != allHours {
		return newWallClock(spec), nil
	}
	return s, nil
}

const allHours = 1<<24 - 1

// wallClock runs a cron expression with fixed hours by the wall clock, as
// cron(8) does, where robfig/cron counts real time: a daily "30 2 * * *"
// then runs once on the day daylight saving time ends (not in both 02:30s)
// and at 03:30 on the day it begins (not skipped for lack of a 02:30).
// Expressions for every hour ("*/15 * * * *") keep real time, so they run
// through both repeated hours.
type wallClock struct {
	spec cron.SpecSchedule // in UTC, a zone without daylight saving time
	loc  *time.Location    // from CRON_TZ=; nil: the location of Next's argument
}

func newWallClock(s *cron.SpecSchedule) *wallClock {
	w := &wallClock{spec: *s}
	if s.Location != time.Local {
		w.loc = s.Location
	}
	w.spec.Location = time.UTC
	return w
}

func (w *wallClock) Next(t time.Time) time.Time {
	loc := w.loc
	if loc == nil {
		loc = t.Location()
	}
	lt := t.In(loc)
	wall := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), lt.Nanosecond(), time.UTC)
	// A wall time in the repeated hour may map to an instant before t;
	// step past it. An hour has at most 60 such times.
	for range 120 {
		nw := w.spec.Next(wall)
		if nw.IsZero() {
			return time.Time{}
		}
		// time.Date moves a wall time that does not exist (in the hour
		// skipped when daylight saving time begins) forward by the gap.
		n := time.Date(nw.Year(), nw.Month(), nw.Day(), nw.Hour(), nw.Minute(), nw.Second(), 0, loc)
		if n.After(t) {
			return n.In(t.Location())
		}
		wall = nw
	}
	return time.Time{}
}

// Next returns when the plan runs next after after, without jitter (the
// scheduler adds a random delay up to Jitter). It returns ErrNoSchedule
// if the plan has none.
func (p Plan) Next(after time.Time) (time.Time, error) {
	if p.Schedule == "" {
		return time.Time{}, ErrNoSchedule
	}
	s, err := ParseSchedule(p.Schedule)
	if err != nil {
		return time.Time{}, err
	}
	next := s.Next(after)
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("schedule %q: no run within five years", p.Schedule)
	}
	return next, nil
}

// JitterDuration returns the plan's jitter, 0 if it has none.
func (p Plan) JitterDuration() (time.Duration, error) {
	if p.Jitter == "" {
		return 0, nil
	}
	return ParseDuration(p.Jitter)
}
