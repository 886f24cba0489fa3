// Package location is the registry of storage schemes: it turns a
// repository's location (a path, s3://host/bucket/prefix, …) into storage
// and into an open repository, and shows it with its credentials redacted.
//
// Each kind of storage registers a Scheme once (local.go, s3.go): the
// prefixes that select it, how to open it, the form by which a process
// shares one open repository (Key), and its defaults as a repository:
// remote or not, the settle time of exclusive locks (DESIGN.md §7), how
// many packs upload at once, the decorators around the storage (retries)
// and whether metadata is cached on local disk. Adding a backend is its
// package under repo/backend plus one Register call here; nothing else
// names a scheme.
//
// faulty.go registers a test aid, "faulty+LOCATION?PARAMS": any location
// behind the fault injector of repo/backend/faulty (Hidden: messages that
// list the supported forms leave it out).
//
// Parse only recognises the scheme and checks what every URL needs; the
// scheme's Open parses the rest, so a configuration naming an unreachable
// or malformed store still loads and reports the problem when the
// repository is opened. Secrets (passwords, credentials) are never part of
// a Location's display form.
package location
