// Package retry is a backend.Backend decorator that retries operations
// failing with a transient error, so that the layers above it (repo,
// archiver, prune) see a store that fails only when failing is the right
// answer.
//
// # What is retried
//
// An operation is retried when its error wraps backend.ErrTransient and
// wraps none of the errors retrying cannot fix: backend.ErrNotExist,
// ErrExist, ErrPermission, ErrNoSpace, ErrClosed and the context errors
// (an error may wrap several sentinels; a permanent one wins). Errors
// wrapping no sentinel, such as a ranged Load past the end, are returned at
// once. Tries are spaced by capped exponential backoff with full jitter: the
// wait before try n+1 is uniform in [0, min(Max, Base·2^(n-1))), so many
// clients failing together do not retry together. The context is honoured
// during the wait; a cancelled wait returns an error wrapping only the
// context's error (the last storage error is in its text), so an outer
// retry layer does not retry it. Close is never retried.
//
// # Save after a lost response
//
// A Save can store the object and still fail transiently (the response was
// lost: a timeout, a connection reset after the upload). Its retry then
// finds the name taken. Every cairn object is named by the SHA-256 of its
// content (locks too), so the name being taken usually means our own
// earlier try landed; but a Save that failed before doing anything and then
// lost a race for the name looks the same. So ErrExist on a retry after a
// transient failure is checked: the stored object is read back and Save
// succeeds if it holds exactly our bytes, and returns the ErrExist error if
// it holds someone else's. ErrExist on the first try is returned as is.
//
// To know what "first try" means, Save first Stats the handle and returns
// ErrExist without uploading when the object is already there. Without that
// look, a Save whose first try failed transiently could not tell an
// identical object stored long before (which must give ErrExist: Save is
// create-only) from its own landed try. The Stat costs one small request per
// Save, which for cairn's few large Saves (packs) is noise, and it saves
// the upload when a pack is already stored (a resumed backup, a rival
// process that wrote the same pack).
//
// Remove needs no such care: removing a missing object is success, so
// retrying a Remove whose response was lost just succeeds.
//
// # List
//
// A failed listing is restarted from the beginning. The callback is never
// called twice for one name: the names already passed to it are
// remembered across restarts and skipped. Deduplicating rather than
// buffering keeps the callback streaming (progress, early stop) at the
// cost of a set of names per listing; a name listed by a failed try and
// removed before the next one is still reported, as an eventually
// consistent listing may report it anyway. An error from the callback ends
// the listing at once and is returned unchanged, never retried, whatever it
// wraps.
//
// # Creator
//
// Backend always implements backend.Creator. Create is delegated (with
// retries) when the inner backend implements it; otherwise it returns an
// error wrapping errors.ErrUnsupported rather than pretend storage was
// created.
package retry
