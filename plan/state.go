package plan

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Event is one line of a plan's log: what happened during a run.
type Event struct {
	Time  time.Time `json:"time"`
	Run   int       `json:"run"`   // the run's number since the process started
	Event string    `json:"event"` // start, hook, hook_output, backup, file_error, snapshot, repo_error, forget, skipped, done
	Repo  string    `json:"repo,omitempty"`
	// Snapshot is the label of the snapshot saved or forgotten.
	Snapshot string `json:"snapshot,omitempty"`
	Path     string `json:"path,omitempty"` // the file of a file_error
	Hook     string `json:"hook,omitempty"` // before, after, on_error
	Command  string `json:"command,omitempty"`
	Message  string `json:"message,omitempty"`
	Error    string `json:"error,omitempty"`
}

// String is the event as one log line, without the plan's name: its kind,
// then those of repository, snapshot, path, hook, message and error that
// are set, e.g. "done: success" or "repo_error offsite: lock: timeout".
func (e Event) String() string {
	s := e.Event
	for _, w := range []string{e.Repo, e.Snapshot, e.Path, e.Hook} {
		if w != "" {
			s += " " + w
		}
	}
	for _, w := range []string{e.Message, e.Error} {
		if w != "" {
			s += ": " + w
		}
	}
	return s
}

// RunResult is what one run did.
type RunResult struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Trigger  string    `json:"trigger"` // manual or schedule
	// Result is success (every repository has its snapshot and every
	// file was read), partial (some repository failed or some file was
	// unreadable) or failed (no snapshot was saved).
	Result string       `json:"result"`
	Error  string       `json:"error,omitempty"`
	Repos  []RepoResult `json:"repos"`
}

// RepoResult is what a run did in one repository.
type RepoResult struct {
	Repo       string  `json:"repo"`
	OK         bool    `json:"ok"`
	Snapshot   string  `json:"snapshot,omitempty"` // id
	Label      string  `json:"label,omitempty"`
	Error      string  `json:"error,omitempty"`
	Files      uint64  `json:"files"`
	Bytes      uint64  `json:"bytes"`
	NewBytes   uint64  `json:"new_bytes"`
	Unchanged  uint64  `json:"unchanged"`
	Unreadable uint64  `json:"unreadable"`
	Forgotten  int     `json:"forgotten"`
	Duration   float64 `json:"duration"` // seconds
}

// Progress is the state of a run going on.
type Progress struct {
	Started    time.Time `json:"started"`
	Elapsed    float64   `json:"elapsed"` // seconds
	Files      uint64    `json:"files"`
	Dirs       uint64    `json:"dirs"`
	Bytes      uint64    `json:"bytes"`
	TotalBytes uint64    `json:"total_bytes,omitempty"` // estimate from the last snapshot; 0: unknown
	NewBytes   uint64    `json:"new_bytes"`
	Errors     uint64    `json:"errors"`
	Rate       float64   `json:"rate"`                  // bytes per second
	ETA        float64   `json:"eta_seconds,omitempty"` // with a total
}

// Status is the content of plans/<name>/status.
type Status struct {
	Plan            string     `json:"plan"`
	State           string     `json:"state"` // idle or running
	Defined         bool       `json:"defined"`
	Repos           []string   `json:"repos,omitempty"`
	Schedule        string     `json:"schedule,omitempty"`
	Phase           string     `json:"phase,omitempty"` // of a run: before, open, backup, retention, after
	Progress        *Progress  `json:"progress,omitempty"`
	LastRun         *RunResult `json:"last_run,omitempty"`
	NextRun         *time.Time `json:"next_run,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	DefinitionError string     `json:"definition_error,omitempty"`
	ConfigError     string     `json:"config_error,omitempty"`
	Updated         time.Time  `json:"updated"`
}

// logLimit bounds the events a plan keeps.
const logLimit = 2000

// planState is what a Manager knows of a plan beyond its definition:
// its runs, status and log.
type planState struct {
	name string

	mu        sync.Mutex // guards the fields below
	mod       time.Time
	defErr    string
	cancel    context.CancelFunc // of the run going on; nil when idle
	phase     string
	progress  Progress
	last      *RunResult
	lastErr   string
	next      time.Time // of the scheduler; zero: none
	nextSpec  string    // schedule and jitter next was computed for
	runs      int
	log       [][]byte // ring of JSON lines, oldest first
	onEvent   func(Event)
	startedAt time.Time
}

func newPlanState(name string, now time.Time) *planState {
	return &planState{name: name, mod: now}
}

func (s *planState) touch(t time.Time) {
	s.mu.Lock()
	s.mod = t
	s.mu.Unlock()
}

func (s *planState) modified() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mod
}

func (s *planState) setDefinitionError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.defErr = ""
		return
	}
	s.defErr = err.Error()
}

func (s *planState) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancel != nil
}

// begin marks a run started; false if one is going.
func (s *planState) begin(cancel context.CancelFunc, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return false
	}
	s.cancel = cancel
	s.runs++
	s.phase = "start"
	s.progress = Progress{Started: now}
	s.startedAt = now
	return true
}

func (s *planState) end(res *RunResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel = nil
	s.phase = ""
	s.last = res
	if res.Error != "" {
		s.lastErr = res.Error
	} else {
		for _, r := range res.Repos {
			if r.Error != "" {
				s.lastErr = r.Repo + ": " + r.Error
			}
		}
	}
}

func (s *planState) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

func (s *planState) setProgress(p Progress) {
	s.mu.Lock()
	p.Started = s.startedAt
	s.progress = p
	s.mu.Unlock()
}

// event appends ev to the log (stamped with the current run's number).
func (s *planState) event(now time.Time, ev Event) {
	s.mu.Lock()
	ev.Time = now
	ev.Run = s.runs
	line, err := json.Marshal(ev)
	if err == nil {
		if len(s.log) >= logLimit {
			s.log = append(s.log[:0], s.log[len(s.log)-logLimit+1:]...)
		}
		s.log = append(s.log, line)
	}
	fn := s.onEvent
	s.mu.Unlock()
	if fn != nil {
		fn(ev)
	}
}

func (s *planState) logLines() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []byte
	for _, l := range s.log {
		out = append(append(out, l...), '\n')
	}
	return out
}

func (s *planState) status(now time.Time) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Plan: s.name, State: "idle", LastRun: s.last, LastError: s.lastErr,
		DefinitionError: s.defErr, Updated: now}
	if s.cancel != nil {
		st.State = "running"
		st.Phase = s.phase
		p := s.progress
		p.Elapsed = now.Sub(p.Started).Seconds()
		if p.Elapsed > 0 {
			p.Rate = float64(p.Bytes) / p.Elapsed
		}
		if p.TotalBytes > p.Bytes && p.Rate > 0 {
			p.ETA = float64(p.TotalBytes-p.Bytes) / p.Rate
		}
		st.Progress = &p
	}
	if !s.next.IsZero() {
		n := s.next
		st.NextRun = &n
	}
	return st
}
