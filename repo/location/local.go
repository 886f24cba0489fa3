package location

import (
	"context"
	"path/filepath"

	"github.com/cairn-backup/cairn/repo/backend"
	"github.com/cairn-backup/cairn/repo/backend/local"
)

// Local is a directory on a local or mounted filesystem: a plain path,
// or "local:PATH".
var Local = &Scheme{
	Name:     "local",
	Prefixes: []string{"local:"},
	Paths:    true,
	Key: func(loc string) string {
		p := trimLocal(loc)
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return filepath.Clean(p)
	},
	Display: func(loc string) string { return loc },
	Open: func(ctx context.Context, loc string, o Options) (backend.Backend, error) {
		return local.Open(trimLocal(loc))
	},
}

func trimLocal(loc string) string { return trimPrefix(loc, "local:") }

func init() { Register(Local) }
