// Package backend defines the storage interface every cairn repository sits
// on, the sentinel errors backends translate their native errors into, and
// the handles that name stored objects. It imports nothing of cairn's.
//
// A backend stores opaque, named byte strings. It knows nothing of
// encryption, packs or indexes; the repo package builds those on top.
package backend
