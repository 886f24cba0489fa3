package tree

import (
	"context"
	"time"
)

// Plans is the model behind plans/ (DESIGN.md §1, §4); plan.Manager
// implements it. Methods are safe for concurrent use and never block on a
// running backup. Errors are plan's sentinels (plan.ErrNoPlan,
// plan.ErrExist, plan.ErrBusy, plan.ErrInvalid), which the adapter maps
// to ENOENT, EEXIST, EBUSY and EINVAL.
type Plans interface {
	// Names lists the plans, sorted. Plans edited by hand in the
	// configuration file show up here.
	Names() []string
	// Definition is the content of plans/<name>/plan.json: indented JSON
	// ending in a newline (a template for a plan that has none yet).
	Definition(name string) ([]byte, error)
	// Define validates data as the plan's new definition and saves it.
	// An invalid one is refused with an error matching plan.ErrInvalid
	// that names the line and column; the old definition stays and
	// Status reports the error.
	Define(ctx context.Context, name string, data []byte) error
	// Create makes a new, empty plan (mkdir): plan.ErrExist if the name
	// is taken, plan.ErrInvalid if it cannot name a plan.
	Create(name string) error
	// Remove deletes the plan (rmdir, rm -r): plan.ErrBusy while it runs.
	Remove(ctx context.Context, name string) error
	// Run starts a run now and returns at once; a run already going is
	// not started twice (nil: the write to run succeeds).
	Run(name string) error
	// Running reports whether a run is going.
	Running(name string) bool
	// Status is plans/<name>/status: JSON ending in a newline.
	Status(name string) ([]byte, error)
	// Log is plans/<name>/log: JSON lines, the recent runs' events.
	Log(name string) ([]byte, error)
	// Modified is when the plan's definition last changed (plan.json's
	// mtime and the plan directory's).
	Modified(name string) time.Time
}
