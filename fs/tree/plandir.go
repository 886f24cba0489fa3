package tree

import (
	"context"
	"slices"
	"time"
)

// The control files of a plan's directory.
const (
	planJSONName = "plan.json"
	runName      = "run"
	statusName   = "status"
	logName      = "log"
)

// controlNames are the control files, sorted.
var controlNames = []string{logName, planJSONName, runName, statusName}

func isControl(name string) bool { return slices.Contains(controlNames, name) }

// planDir is plans/<name>/: the control files plan.json, run, status and
// log, and the scratch files editors make beside plan.json (kept in the
// plan's state, a memDir).
type planDir struct {
	root *plansDir
	name string
	ino  uint64
}

func (d *planDir) Writable() bool    { return true }
func (d *planDir) Uncached() bool    { return true }
func (d *planDir) state() *planState { return d.root.state(d.name) }
func (d *planDir) plans() Plans      { return d.root.p }
func (d *planDir) modified() time.Time {
	if t := d.plans().Modified(d.name); !t.IsZero() {
		return t
	}
	return d.root.start
}

// OutputPublisher is implemented by a Plans model that lets a plan make
// its log public (plan.Manager, from the plan's hooks.public_output).
//
// A plan's log holds its hooks' output, which may hold anything a hook
// prints, so it is private to the mount's owner (0400) unless the model
// says the plan opts in (0444). With --allow-other the kernel enforces
// the mode (default_permissions). status stays 0444: it names hooks'
// commands and exit statuses, as plan.json (0644) does, never their
// output.
type OutputPublisher interface {
	PublicOutput(name string) bool
}

// publicOutput reports whether the plan's log may be read by everyone.
func (d *planDir) publicOutput() bool {
	p, ok := d.plans().(OutputPublisher)
	return ok && p.PublicOutput(d.name)
}

func (d *planDir) Attr(ctx context.Context) (Attr, error) {
	if !d.root.exists(d.name) {
		return Attr{}, ErrNotExist
	}
	t := d.modified()
	return Attr{Ino: d.ino, Mode: ModeDir | 0o755, Nlink: 2, UID: d.root.uid, GID: d.root.gid,
		Atime: t, Mtime: t, Ctime: t}, nil
}

func (d *planDir) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	cur, err := d.Attr(ctx)
	if err != nil {
		return err
	}
	return fixedAttrs(a, cur)
}

func (d *planDir) control(name string) Node {
	ino := childIno(d.ino, name)
	switch name {
	case planJSONName:
		return &planFile{d: d}
	case runName:
		return &runFile{d: d, ino: ino}
	case statusName:
		return &infoFile{d: d, ino: ino, gen: d.plans().Status, public: func() bool { return true }}
	case logName:
		return &infoFile{d: d, ino: ino, gen: d.plans().Log, public: d.publicOutput}
	}
	return nil
}

func (d *planDir) Lookup(ctx context.Context, name string) (Node, error) {
	if !d.root.exists(d.name) {
		return nil, ErrNotExist
	}
	if isControl(name) {
		return d.control(name), nil
	}
	return d.state().scratch.Lookup(ctx, name)
}

func (d *planDir) List(ctx context.Context) ([]Entry, error) {
	if !d.root.exists(d.name) {
		return nil, ErrNotExist
	}
	scratch, err := d.state().scratch.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(controlNames)+len(scratch))
	for _, name := range controlNames {
		out = append(out, Entry{Name: name, Ino: childIno(d.ino, name), Mode: ModeFile})
	}
	out = append(out, scratch...)
	sortEntries(out)
	return out, nil
}

// Create makes a scratch file (an editor's swap file, sed's temporary).
func (d *planDir) Create(ctx context.Context, name string, mode uint32, flags OpenFlags) (File, WriteHandle, error) {
	if isControl(name) {
		return nil, nil, ErrExist
	}
	if !d.root.exists(d.name) {
		return nil, nil, ErrNotExist
	}
	return d.state().scratch.Create(ctx, name, mode, flags)
}

// Unlink removes a scratch file. Unlinking a control file succeeds and
// does nothing, so that rm -r can empty the directory before its rmdir.
func (d *planDir) Unlink(ctx context.Context, name string) error {
	if isControl(name) {
		return nil
	}
	return d.state().scratch.Unlink(ctx, name)
}

// Rename moves scratch files within the directory. Renaming one onto
// plan.json defines the plan with its content (the scratch directory's
// rename hook, newState): refused (the Define error, ErrInvalid for plan)
// the scratch file stays; accepted it is gone. Control files cannot be
// renamed (ErrPerm), but plan.json onto itself is harmless.
func (d *planDir) Rename(ctx context.Context, name string, newDir Node, newName string, noReplace bool) error {
	to, ok := newDir.(*planDir)
	same := ok && to.root == d.root && to.name == d.name
	if isControl(name) {
		if same && name == newName && !noReplace {
			return nil
		}
		return ErrPerm
	}
	if !same {
		return ErrCrossDir
	}
	scratch := d.state().scratch
	if _, err := scratch.Lookup(ctx, name); err != nil {
		return err
	}
	switch {
	case newName == planJSONName && noReplace:
		return ErrExist
	case newName != planJSONName && isControl(newName):
		return ErrPerm
	}
	return scratch.Rename(ctx, name, scratch, newName, noReplace)
}

var (
	_ Dir       = (*planDir)(nil)
	_ Creator   = (*planDir)(nil)
	_ Unlinker  = (*planDir)(nil)
	_ Renamer   = (*planDir)(nil)
	_ Setattrer = (*planDir)(nil)
	_ Writable  = (*planDir)(nil)
	_ Uncached  = (*planDir)(nil)
)
