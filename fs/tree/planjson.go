package tree

import "context"

// planFile is plans/<name>/plan.json: the plan's definition, which writes
// replace. It is the plan state's memFile laid over the definition: writes
// go to a draft, made on the first write or truncation and shared by the
// plan's handles, and the handle that wrote commits it with Define when it
// is flushed (close), synced or released (see memFile for which of these
// commit). Refused (plan.ErrInvalid), the draft is dropped and the old
// definition stays; the error is what close(2) returns.
//
// Its mode and owner are fixed and its times are the definition's.
type planFile struct {
	d *planDir
}

func (f *planFile) Writable() bool { return true }
func (f *planFile) Uncached() bool { return true }
func (f *planFile) Dynamic() bool  { return true }

func (f *planFile) mem() *memFile { return f.d.state().planJSON }

func (f *planFile) Attr(ctx context.Context) (Attr, error) {
	a, err := f.mem().Attr(ctx)
	if err != nil {
		return Attr{}, err
	}
	t := f.d.modified()
	a.Atime, a.Mtime, a.Ctime = t, t, t
	return a, nil
}

func (f *planFile) Open(ctx context.Context) (Handle, error) { return f.mem().Open(ctx) }

func (f *planFile) OpenWrite(ctx context.Context, flags OpenFlags) (WriteHandle, error) {
	return f.mem().OpenWrite(ctx, flags)
}

// Setattr truncates: through a handle, as part of its writing; by path
// (truncate(1)), as a complete write of its own, defined at once. Other
// changes are refused unless they change nothing.
func (f *planFile) Setattr(ctx context.Context, h WriteHandle, a SetAttr) error {
	cur, err := f.Attr(ctx)
	if err != nil {
		return err
	}
	size := a.Size
	a.Size = nil
	if err := fixedAttrs(a, cur); err != nil || size == nil {
		return err
	}
	return f.mem().Setattr(ctx, h, SetAttr{Size: size})
}

var (
	_ File        = (*planFile)(nil)
	_ WriteOpener = (*planFile)(nil)
	_ Setattrer   = (*planFile)(nil)
	_ Writable    = (*planFile)(nil)
	_ Uncached    = (*planFile)(nil)
	_ Dynamic     = (*planFile)(nil)
)
