package diskcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/repo/backend"
)

// Backend decorates a backend with the cache.
type Backend struct {
	backend.Backend
	dir string
}

var _ backend.Backend = (*Backend)(nil)

// cached says which object kinds are kept: small, immutable, read often.
func cached(t backend.FileType) bool {
	return t == backend.KeyFile || t == backend.IndexFile || t == backend.SnapshotFile
}

// New caches be's metadata under dir (created as needed).
func New(be backend.Backend, dir string) *Backend {
	return &Backend{Backend: be, dir: dir}
}

// Dir is where the cache lives.
func (b *Backend) Dir() string { return b.dir }

func (b *Backend) path(h backend.Handle) string {
	return filepath.Join(b.dir, string(h.Type), h.Name)
}

// Load serves whole cached objects from disk.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset int64, length int) ([]byte, error) {
	if !cached(h.Type) || offset != 0 || length != 0 {
		return b.Backend.Load(ctx, h, offset, length)
	}
	p := b.path(h)
	if data, err := os.ReadFile(p); err == nil {
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) == h.Name {
			return data, nil
		}
		os.Remove(p) // damaged copy: fetch anew
	}
	data, err := b.Backend.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	b.store(p, data)
	return data, nil
}

// Save writes through and keeps a copy.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	err := b.Backend.Save(ctx, h, data)
	if err == nil && cached(h.Type) {
		b.store(b.path(h), data)
	}
	return err
}

// Remove drops the cached copy too.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if cached(h.Type) {
		os.Remove(b.path(h))
	}
	return b.Backend.Remove(ctx, h)
}

// store writes a copy atomically; failures only cost a later download.
func (b *Backend) store(p string, data []byte) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// List lists the remote storage: new objects must be seen. For a cached
// type, a listing that ran to its end also drops the cached copies of
// objects it no longer has (removed by another host: forgotten snapshots,
// replaced index files), so the cache does not grow with the history of
// the repository. A copy dropped because a lagging listing did not show
// its object yet only costs a later download.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if !cached(t) {
		return b.Backend.List(ctx, t, fn)
	}
	live := map[string]bool{}
	err := b.Backend.List(ctx, t, func(fi backend.FileInfo) error {
		live[fi.Name] = true
		return fn(fi)
	})
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(b.dir, string(t)))
	if err != nil {
		return nil // nothing cached yet
	}
	for _, e := range entries {
		if !live[e.Name()] && !strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(b.dir, string(t), e.Name()))
		}
	}
	return nil
}

// CacheDir returns the default cache root: $XDG_CACHE_HOME/cairn, else
// ~/.cache/cairn.
func CacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "cairn"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "cairn"), nil
}
