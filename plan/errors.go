package plan

import "errors"

// Sentinel errors of plan definitions and runs, besides ErrInvalid. The
// mount maps them to errnos: ErrNoPlan to ENOENT, ErrExist to EEXIST,
// ErrBusy to EBUSY.
var (
	// ErrNoPlan: no plan of that name.
	ErrNoPlan = errors.New("no such plan")
	// ErrExist: a plan of that name exists already.
	ErrExist = errors.New("plan exists already")
	// ErrBusy: the plan is running; the change must wait for the run.
	ErrBusy = errors.New("plan is running")
)
