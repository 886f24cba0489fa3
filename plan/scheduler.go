package plan

import (
	"context"
	"math/rand/v2"
	"time"
)

// schedulerTick is how often the scheduler looks at the clock and at the
// configuration file.
const schedulerTick = time.Second

// Schedule runs the plans by their schedules until ctx is cancelled: the
// mount process is the scheduler (DESIGN.md §4). Each plan's next time is
// its schedule's next time after now plus a random delay up to its
// jitter, so plans sharing a minute do not stampede. A plan still running
// when its time comes is not started twice: that time is skipped (and
// logged). Plans edited in the configuration file are picked up within a
// tick.
func (m *Manager) Schedule(ctx context.Context) {
	t := time.NewTicker(schedulerTick)
	defer t.Stop()
	for {
		m.scheduleOnce()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scheduleOnce starts the plans that are due and computes next times.
func (m *Manager) scheduleOnce() {
	now := m.opts.Now()
	m.mu.Lock()
	m.reloadLocked()
	plans := m.cfg.Plans
	due := map[string]bool{}
	for name, p := range plans {
		st := m.stateLocked(name)
		spec := p.Schedule + "\x00" + p.Jitter
		st.mu.Lock()
		if st.nextSpec != spec || st.next.IsZero() && p.Schedule != "" {
			st.next, st.nextSpec = nextRun(p, now), spec
		}
		if !st.next.IsZero() && !now.Before(st.next) {
			due[name] = true
			st.next = nextRun(p, now)
		}
		st.mu.Unlock()
	}
	for name, st := range m.states {
		if _, ok := plans[name]; !ok {
			st.mu.Lock()
			st.next, st.nextSpec = time.Time{}, ""
			st.mu.Unlock()
		}
	}
	m.mu.Unlock()
	for name := range due {
		done, err := m.start(name, "schedule")
		if err == nil && done == nil {
			m.mu.Lock()
			st := m.stateLocked(name)
			m.mu.Unlock()
			st.event(now, Event{Event: "skipped", Message: "scheduled run skipped: the previous run is still going"})
		}
	}
}

// nextRun is the plan's next scheduled time after now with its jitter;
// zero without a schedule.
func nextRun(p Plan, now time.Time) time.Time {
	next, err := p.Next(now)
	if err != nil {
		return time.Time{}
	}
	if j, err := p.JitterDuration(); err == nil && j > 0 {
		next = next.Add(rand.N(j))
	}
	return next
}
