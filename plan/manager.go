package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// Repos gives a Manager the repositories it runs plans into, by the
// names of the configuration.
type Repos interface {
	// Acquire returns the named repository, opened and with its index
	// loaded, for one run. The returned context is cancelled when the
	// repository's lock is lost (DESIGN.md §7); release ends the use.
	// Plans that share a repository are given the same *repo.Repository
	// (one lock, one uploader), so Acquire may be called concurrently.
	Acquire(ctx context.Context, name string, def RepoDef) (r *repo.Repository, lockCtx context.Context, release func(), err error)
}

// ManagerOptions tune a Manager.
type ManagerOptions struct {
	// SkipPaths are never entered by a backup: the mount point of the
	// mount running the plans, which would deadlock a walk over it.
	SkipPaths []string
	// IncludeVirtual lets backups descend into FUSE and virtual
	// filesystems (/proc, /sys); by default they are left out.
	IncludeVirtual bool
	// Host is recorded in snapshots; default os.Hostname.
	Host string
	// Program is recorded in snapshots ("cairn v…").
	Program string
	// OnSnapshot is called after a run saved or forgot snapshots of a
	// repository (the mount refreshes its listing at once).
	OnSnapshot func(repo string)
	// OnEvent, if set, sees every event of every run as it is logged
	// (the CLI prints them).
	OnEvent func(plan string, ev Event)
	// OnProgress, if set, sees a run's progress about four times a
	// second (the CLI's progress bar).
	OnProgress func(plan string, p Progress)
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Manager owns the plans of one configuration file for a long-running
// process (the mount) or a single run (cairn backup --plan): it reads and
// writes their definitions, runs them into their repositories, schedules
// them, and keeps each plan's status and log. It implements the model of
// the mounted plans/ directory.
//
// The configuration file is re-read when it changes on disk, so plans
// edited by hand show up; definitions written through the Manager are
// saved atomically (Config.Save).
//
// Lock order: Manager.mu, then planState.mu. Manager.mu is held while
// the configuration file is stat'ed, re-read and saved, so that a
// definition and the file change together (a small local file; a slow
// disk slows the plans/ tree, never a run). Neither lock is held while
// running a backup or a hook.
type Manager struct {
	path  string
	repos Repos
	opts  ManagerOptions
	bg    context.Context // lifetime of the Manager: runs are tied to it
	runs  sync.WaitGroup

	mu     sync.Mutex // guards the fields below
	cfg    *Config
	stamp  fileStamp       // of the configuration file as last read
	loadE  error           // the last failure to re-read it
	drafts map[string]bool // plans made by Create, not yet defined
	states map[string]*planState
}

// fileStamp identifies a version of a file without reading it.
type fileStamp struct {
	ino, size uint64
	mtime     int64
}

func statFile(path string) (fileStamp, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileStamp{}, false
	}
	return fileStamp{ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim.Nano()}, true
}

// NewManager reads the configuration file at path (a missing one is
// empty) and returns a Manager whose runs live until bg is cancelled.
func NewManager(bg context.Context, path string, repos Repos, opts ManagerOptions) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	m := &Manager{path: path, repos: repos, opts: opts, bg: bg,
		drafts: map[string]bool{}, states: map[string]*planState{}}
	stamp, _ := statFile(path)
	cfg, err := Load(path)
	if err != nil {
		return nil, err
	}
	m.cfg, m.stamp = cfg, stamp
	return m, nil
}

// Wait waits for the runs in progress to end (after bg is cancelled,
// they stop early).
func (m *Manager) Wait() { m.runs.Wait() }

// Config returns the configuration as last read (re-reading it first if
// the file changed). The caller must not modify it.
func (m *Manager) Config() *Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	return m.cfg
}

// reloadLocked re-reads the configuration file if it changed. A file
// that no longer parses keeps the last good configuration; the error is
// remembered for status.
func (m *Manager) reloadLocked() {
	stamp, ok := statFile(m.path)
	if ok && stamp == m.stamp {
		return
	}
	if !ok && m.stamp == (fileStamp{}) {
		return
	}
	cfg, err := Load(m.path)
	m.stamp = stamp
	if err != nil {
		m.loadE = err
		return
	}
	m.cfg, m.loadE = cfg, nil
	for name := range m.cfg.Plans {
		delete(m.drafts, name)
		m.stateLocked(name).touch(m.opts.Now())
	}
}

func (m *Manager) stateLocked(name string) *planState {
	s, ok := m.states[name]
	if !ok {
		s = newPlanState(name, m.opts.Now())
		if fn := m.opts.OnEvent; fn != nil {
			s.onEvent = func(ev Event) { fn(name, ev) }
		}
		m.states[name] = s
	}
	return s
}

// Names lists the plans, defined and new, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	names := sortedKeys(m.cfg.Plans)
	for name := range m.drafts {
		if _, ok := m.cfg.Plans[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// lookup returns the plan's definition; ok false for a new plan without
// one. A plan that is neither is ErrNoPlan.
func (m *Manager) lookup(name string) (p Plan, ok bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	if p, ok := m.cfg.Plans[name]; ok {
		return p, true, nil
	}
	if m.drafts[name] {
		return Plan{}, false, nil
	}
	return Plan{}, false, fmt.Errorf("%s: %w", name, ErrNoPlan)
}

// planTemplate is plan.json of a plan made by mkdir, before it has a
// definition: the fields to fill in.
const planTemplate = `{
  "sources": [],
  "repos": []
}
`

// Definition is the plan's plan.json.
func (m *Manager) Definition(name string) ([]byte, error) {
	p, ok, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return []byte(planTemplate), nil
	}
	return MarshalPlan(p)
}

// MarshalPlan encodes a plan as plan.json shows it: indented JSON, empty
// settings left out, ending in a newline.
func MarshalPlan(p Plan) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Define validates data as the plan's definition and saves it into the
// configuration file. An invalid one is refused (an *Error, matching
// ErrInvalid, with line and column) and recorded for status; the old
// definition stays.
func (m *Manager) Define(ctx context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	_, defined := m.cfg.Plans[name]
	if !defined && !m.drafts[name] {
		return fmt.Errorf("%s: %w", name, ErrNoPlan)
	}
	st := m.stateLocked(name)
	p, err := m.cfg.ParsePlan(data)
	if err != nil {
		st.setDefinitionError(err)
		return err
	}
	cfg := m.cfg.clone()
	cfg.Plans[name] = p
	if err := cfg.Save(m.path); err != nil {
		st.setDefinitionError(err)
		return fmt.Errorf("save %s: %w", m.path, err)
	}
	m.cfg = cfg
	m.stamp, _ = statFile(m.path)
	delete(m.drafts, name)
	st.setDefinitionError(nil)
	st.touch(m.opts.Now())
	return nil
}

// clone copies the configuration deeply enough to change its maps.
func (c *Config) clone() *Config {
	n := &Config{Repos: make(map[string]RepoDef, len(c.Repos)), Plans: make(map[string]Plan, len(c.Plans))}
	for k, v := range c.Repos {
		n.Repos[k] = v
	}
	for k, v := range c.Plans {
		n.Plans[k] = v
	}
	return n
}

// Create makes a new plan without a definition (mkdir plans/NAME). It
// exists in this Manager only until a valid definition is written, which
// saves it into the configuration file.
func (m *Manager) Create(name string) error {
	if err := validPlanName(name); err != nil {
		return &Error{Msg: "plan " + err.Error()}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	if _, ok := m.cfg.Plans[name]; ok || m.drafts[name] {
		return fmt.Errorf("%s: %w", name, ErrExist)
	}
	m.drafts[name] = true
	m.stateLocked(name).touch(m.opts.Now())
	return nil
}

// Remove deletes the plan from the configuration file (or forgets a new
// one). A running plan is ErrBusy. Its snapshots stay in their
// repositories.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	if st, ok := m.states[name]; ok && st.running() {
		return fmt.Errorf("%s: %w", name, ErrBusy)
	}
	if m.drafts[name] {
		delete(m.drafts, name)
		delete(m.states, name)
		return nil
	}
	if _, ok := m.cfg.Plans[name]; !ok {
		return fmt.Errorf("%s: %w", name, ErrNoPlan)
	}
	cfg := m.cfg.clone()
	delete(cfg.Plans, name)
	if err := cfg.Save(m.path); err != nil {
		return fmt.Errorf("save %s: %w", m.path, err)
	}
	m.cfg = cfg
	m.stamp, _ = statFile(m.path)
	delete(m.states, name)
	return nil
}

// Modified is when the plan's definition last changed as this Manager
// saw it.
func (m *Manager) Modified(name string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateLocked(name).modified()
}

// Running reports whether the plan is running.
func (m *Manager) Running(name string) bool {
	m.mu.Lock()
	st, ok := m.states[name]
	m.mu.Unlock()
	return ok && st.running()
}

// Status is the plan's status as JSON (see Status).
func (m *Manager) Status(name string) ([]byte, error) {
	p, defined, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	st := m.stateLocked(name)
	loadErr := m.loadE
	m.mu.Unlock()
	s := st.status(m.opts.Now())
	s.Defined = defined
	if defined {
		s.Repos = p.Repos
		s.Schedule = p.Schedule
	}
	if loadErr != nil {
		s.ConfigError = loadErr.Error()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Log is the plan's recent events as JSON lines.
func (m *Manager) Log(name string) ([]byte, error) {
	if _, _, err := m.lookup(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	st := m.stateLocked(name)
	m.mu.Unlock()
	return st.logLines(), nil
}

// PublicOutput reports whether the plan lets every user read its log,
// which holds its hooks' output (Hooks.PublicOutput); false for a plan
// without a definition or none at all.
func (m *Manager) PublicOutput(name string) bool {
	p, ok, err := m.lookup(name)
	return err == nil && ok && p.Hooks.PublicOutput
}

// ErrNoDefinition: a run was asked of a plan made by mkdir whose
// plan.json has not been written yet.
// It matches ErrInvalid, so that the write to run fails with EINVAL.
var ErrNoDefinition error = &Error{Msg: "the plan has no definition yet: write plan.json first"}

// Run starts a run of the plan in the background and returns at once. A
// run already going is not started twice.
func (m *Manager) Run(name string) error {
	_, err := m.start(name, "manual")
	return err
}

// RunWait runs the plan now and waits for the run to end (cairn backup
// --plan). It returns the run's result.
func (m *Manager) RunWait(ctx context.Context, name string) (*RunResult, error) {
	done, err := m.start(name, "manual")
	if err != nil {
		return nil, err
	}
	if done == nil {
		return nil, fmt.Errorf("plan %s: %w", name, ErrBusy)
	}
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// start launches a run unless one is going (then done is nil).
func (m *Manager) start(name, trigger string) (done <-chan *RunResult, err error) {
	p, ok, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("plan %s: %w", name, ErrNoDefinition)
	}
	m.mu.Lock()
	cfg := m.cfg
	st := m.stateLocked(name)
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(m.bg)
	if !st.begin(cancel, m.opts.Now()) {
		cancel()
		return nil, nil
	}
	ch := make(chan *RunResult, 1)
	m.runs.Add(1)
	go func() {
		defer m.runs.Done()
		defer cancel()
		res := m.run(ctx, name, p, cfg, st, trigger)
		st.end(res)
		ch <- res
	}()
	return ch, nil
}
