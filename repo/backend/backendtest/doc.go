// Package backendtest is the conformance suite every backend.Backend runs
// (mem, local, S3 against a real MinIO, decorators). It checks the
// guarantees written on the Backend interface, so a repository behaves the
// same whatever it is stored on.
//
// Conventions the suite fixes where the interface leaves room:
//   - Stat and List report the config object under the name "config",
//     whatever name the handle carried.
//   - Load at offset == size with length 0 returns no bytes and no error;
//     any range reaching past the end is an error that wraps neither
//     ErrNotExist nor ErrTransient (retrying cannot help).
//   - A method called with a cancelled context returns an error wrapping
//     context.Canceled and has no effect.
//   - Invalid handles and file types are rejected by every method.
package backendtest
