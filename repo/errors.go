package repo

import (
	"errors"
	"fmt"
)

// ErrCorrupt: stored data failed verification. Errors that say which
// object is damaged are *CorruptError and match ErrCorrupt with errors.Is.
var ErrCorrupt = errors.New("repository data is corrupt")

// ErrBlobNotFound: the index names no blob with that ID.
var ErrBlobNotFound = errors.New("blob not in the index")

// CorruptError names the damaged object and, where known, the blob.
type CorruptError struct {
	Object string // e.g. "data/ab/ab12…", "index/…", "config"
	Blob   ID     // zero when the damage is not in one blob
	Err    error
}

func (e *CorruptError) Error() string {
	if e.Blob.IsNull() {
		return fmt.Sprintf("%s is corrupt: %v", e.Object, e.Err)
	}
	return fmt.Sprintf("%s: blob %s is corrupt: %v", e.Object, e.Blob.Short(), e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }
