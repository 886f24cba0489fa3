package backend

import (
	"context"
	"errors"
	"fmt"
)

// FileType is the kind of a stored object; each kind lives in its own
// namespace (a directory, a key prefix).
type FileType string

// The object kinds of DESIGN.md §3.
const (
	ConfigFile   FileType = "config"
	KeyFile      FileType = "keys"
	PackFile     FileType = "data"
	IndexFile    FileType = "index"
	SnapshotFile FileType = "snapshots"
	LockFile     FileType = "locks"
	// MarkFile holds prune's marks (docs/FORMAT.md §15): repositories
	// made before marks existed have no marks/ directory until the
	// first prune writes one.
	MarkFile FileType = "marks"
)

// FileTypes lists every kind, in a fixed order.
var FileTypes = []FileType{ConfigFile, KeyFile, PackFile, IndexFile, SnapshotFile, LockFile, MarkFile}

// Handle names one object. For ConfigFile the name is ignored: there is one
// config per repository.
type Handle struct {
	Type FileType
	Name string
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return "config"
	}
	return string(h.Type) + "/" + h.Name
}

// Valid reports whether t is one of FileTypes.
func (t FileType) Valid() error {
	switch t {
	case ConfigFile, KeyFile, PackFile, IndexFile, SnapshotFile, LockFile, MarkFile:
		return nil
	}
	return fmt.Errorf("invalid file type %q", t)
}

// Canonical is h as backends key it: the config handle has no name.
func (h Handle) Canonical() Handle {
	if h.Type == ConfigFile {
		return Handle{Type: ConfigFile}
	}
	return h
}

// ReportedName is the name Stat and List report for h: "config" for the
// config object.
func (h Handle) ReportedName() string {
	if h.Type == ConfigFile {
		return "config"
	}
	return h.Name
}

// Valid reports whether h can name an object.
func (h Handle) Valid() error {
	if err := h.Type.Valid(); err != nil {
		return err
	}
	if h.Type == ConfigFile {
		return nil
	}
	if h.Name == "" {
		return errors.New("empty object name")
	}
	for _, c := range h.Name {
		if c == '/' || c == 0 || c == '\\' {
			return fmt.Errorf("invalid object name %q", h.Name)
		}
	}
	if h.Name == "." || h.Name == ".." {
		return fmt.Errorf("invalid object name %q", h.Name)
	}
	if h.Type == PackFile && len(h.Name) < 2 {
		return fmt.Errorf("pack name %q too short", h.Name)
	}
	return nil
}

// FileInfo describes a stored object as a listing returns it.
type FileInfo struct {
	Name string
	Size int64
}

// Sentinel errors. Backends wrap their native errors so that errors.Is with
// these works; callers never look at SDK or syscall errors directly.
var (
	// ErrNotExist: the object (or the repository) does not exist.
	ErrNotExist = errors.New("object does not exist")
	// ErrExist: Save found an object of that name already stored.
	ErrExist = errors.New("object already exists")
	// ErrPermission: the store refused access (bad credentials, modes).
	ErrPermission = errors.New("permission denied")
	// ErrNoSpace: the store is full.
	ErrNoSpace = errors.New("no space left on the repository's storage")
	// ErrTransient: a failure that may succeed when tried again (timeouts,
	// 5xx, connection resets). Only errors wrapping it are retried.
	ErrTransient = errors.New("transient storage error")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("backend closed")
)

// Backend is the storage contract. All methods are safe for concurrent use.
//
// Guarantees a backend must give:
//   - Save is atomic and create-only: a reader sees either no object or the
//     whole object, never a prefix; if the name is already taken it returns
//     an error wrapping ErrExist and leaves the stored object unchanged.
//   - Load of a missing object returns an error wrapping ErrNotExist.
//   - Remove of a missing object succeeds (deletes are idempotent, so a
//     lagging listing never turns a retry into a failure).
//   - A process sees its own completed Saves in Load and Stat at once.
//     Listings may lag on eventually consistent stores; callers that must
//     see their own objects keep track of them.
//   - Errors are wrapped in the sentinels above where one fits.
type Backend interface {
	// Location names the storage for messages, without credentials.
	Location() string

	// Save stores data under h (create-only, atomic).
	Save(ctx context.Context, h Handle, data []byte) error

	// Load returns length bytes of h starting at offset. length 0 means up
	// to the end. A range reaching past the end returns an error.
	Load(ctx context.Context, h Handle, offset int64, length int) ([]byte, error)

	// Stat returns the object's size.
	Stat(ctx context.Context, h Handle) (FileInfo, error)

	// Remove deletes h; a missing object is success.
	Remove(ctx context.Context, h Handle) error

	// List calls fn for every object of type t, in no particular order.
	// An error from fn stops the listing and is returned.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error

	// Close releases resources. Further calls return ErrClosed.
	Close() error
}

// Creator is implemented by backends that can create their storage
// (a directory, a bucket). Create fails with ErrExist if the storage
// already holds objects.
type Creator interface {
	Create(ctx context.Context) error
}
