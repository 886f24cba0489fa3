package treetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/fs/tree"
	"github.com/cairn-backup/cairn/plan"
)

// Template is the definition of a plan that has none yet.
const Template = "{\n  \"sources\": [],\n  \"repos\": []\n}\n"

// Plans is an in-memory tree.Plans. Define checks plans with
// plan.ParsePlan (strict JSON, absolute sources, at least one repository,
// repositories not checked against a configuration); Run only counts.
type Plans struct {
	mu       sync.Mutex // guards the fields below
	defs     map[string][]byte
	modified map[string]time.Time
	lastErr  map[string]string
	running  map[string]bool
	runs     map[string]int
	defines  int
}

var _ tree.Plans = (*Plans)(nil)

// NewPlans returns a model holding the plans given (name → definition,
// which is not validated).
func NewPlans(defs map[string]string) *Plans {
	p := &Plans{defs: map[string][]byte{}, modified: map[string]time.Time{}, lastErr: map[string]string{},
		running: map[string]bool{}, runs: map[string]int{}}
	for name, d := range defs {
		p.defs[name] = []byte(d)
		p.modified[name] = time.Now()
	}
	return p
}

func (p *Plans) Names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.defs))
	for name := range p.defs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (p *Plans) Definition(name string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.defs[name]
	if !ok {
		return nil, fmt.Errorf("plan %q: %w", name, plan.ErrNoPlan)
	}
	if d == nil {
		return []byte(Template), nil
	}
	return bytes.Clone(d), nil
}

func (p *Plans) Define(ctx context.Context, name string, data []byte) error {
	_, perr := plan.ParsePlan(data)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.defines++
	if _, ok := p.defs[name]; !ok {
		return fmt.Errorf("plan %q: %w", name, plan.ErrNoPlan)
	}
	if perr != nil {
		p.lastErr[name] = perr.Error()
		return fmt.Errorf("plan %s: %w", name, perr)
	}
	p.defs[name] = bytes.Clone(data)
	p.modified[name] = time.Now()
	delete(p.lastErr, name)
	return nil
}

func (p *Plans) Create(name string) error {
	if err := plan.ValidPlanName(name); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.defs[name]; ok {
		return fmt.Errorf("plan %q: %w", name, plan.ErrExist)
	}
	p.defs[name] = nil
	p.modified[name] = time.Now()
	return nil
}

func (p *Plans) Remove(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.defs[name]; !ok {
		return fmt.Errorf("plan %q: %w", name, plan.ErrNoPlan)
	}
	if p.running[name] {
		return fmt.Errorf("plan %q: %w", name, plan.ErrBusy)
	}
	delete(p.defs, name)
	delete(p.modified, name)
	delete(p.lastErr, name)
	return nil
}

func (p *Plans) Run(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.defs[name]; !ok {
		return fmt.Errorf("plan %q: %w", name, plan.ErrNoPlan)
	}
	p.runs[name]++
	return nil
}

func (p *Plans) Running(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running[name]
}

// SetRunning sets what Running reports (and makes Remove ErrBusy).
func (p *Plans) SetRunning(name string, running bool) {
	p.mu.Lock()
	p.running[name] = running
	p.mu.Unlock()
}

// Runs is how often Run was called for the plan.
func (p *Plans) Runs(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[name]
}

// Defines is how often Define was called, accepted or not.
func (p *Plans) Defines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.defines
}

// Status is JSON: {"plan", "state", "runs", "last_error"}.
func (p *Plans) Status(name string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.defs[name]; !ok {
		return nil, fmt.Errorf("plan %q: %w", name, plan.ErrNoPlan)
	}
	state := "idle"
	if p.running[name] {
		state = "running"
	}
	b, err := json.MarshalIndent(map[string]any{"plan": name, "state": state, "runs": p.runs[name],
		"last_error": p.lastErr[name]}, "", "  ")
	return append(b, '\n'), err
}

// Log has one JSON line per run started.
func (p *Plans) Log(name string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.defs[name]; !ok {
		return nil, fmt.Errorf("plan %q: %w", name, plan.ErrNoPlan)
	}
	var b bytes.Buffer
	for i := range p.runs[name] {
		fmt.Fprintf(&b, "{\"event\":\"start\",\"run\":%d}\n", i+1)
	}
	return b.Bytes(), nil
}

func (p *Plans) Modified(name string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.modified[name]
}
