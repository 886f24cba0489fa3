// Package s3 is a Backend on an S3 bucket (AWS S3, MinIO and other
// S3-compatible stores), built on minio-go. It is the only package of cairn
// that imports minio-go: everything above it sees backend.Backend and the
// backend sentinels.
//
// # URLs
//
//	s3://host[:port]/bucket[/prefix...]        HTTPS
//	s3+http://host[:port]/bucket[/prefix...]   plain HTTP (e.g. a MinIO on loopback)
//
// Credentials never appear in a URL; they come in Config (the command line
// reads them from the environment or the config file). Location is the URL,
// so it is safe to print.
//
// # Layout
//
// Object keys under the prefix are exactly the local backend's relative
// paths, so a repository copied object by object between a directory and a
// bucket opens unchanged:
//
//	<prefix>/config
//	<prefix>/keys/<name>
//	<prefix>/data/<first two characters of name>/<name>
//	<prefix>/index/<name>
//	<prefix>/snapshots/<name>
//	<prefix>/locks/<name>
//
// List reports only keys of that shape: "directory" markers, deeper keys and
// packs filed under the wrong two-character directory are skipped.
//
// # Create-only Save
//
// Save is one PUT with "If-None-Match: *", so the store itself refuses to
// replace an object: a taken name fails with 412 Precondition Failed, which
// becomes backend.ErrExist, and two racing Saves cannot both win. AWS S3
// (since August 2024) and MinIO honour the header; a store that ignores it
// would silently overwrite, which the conformance suite detects. The PUT
// carries Content-MD5, so a body damaged in transit is refused by the
// store (BadDigest, an ErrTransient). Saves are never split into multipart
// uploads: objects are in memory already and one request is cheapest.
//
// # Retries
//
// The backend makes one attempt per call: minio-go's own retries (ten by
// default) are turned off. Retrying is the job of the retry decorator
// (repo/backend/retry), which retries errors wrapping ErrTransient; two
// layers would multiply attempts and delay failures. It matters for Save
// in particular: a PUT retried after its response was lost would find the
// object the first attempt stored and report ErrExist for a Save that
// succeeded, and only the layer that knows it retried can tell. The Go
// HTTP transport still resends idempotent requests that fail on a reused
// keep-alive connection before any response.
//
// # Errors
//
// translate is the one place that maps S3 and network errors to the
// backend sentinels; errors.Is finds both the sentinel and the original
// minio-go or net error, and messages keep the store's own text. A missing
// bucket is ErrNotExist with the bucket named. Remove of a missing object
// succeeds, but Remove in a missing bucket fails: that is a configuration
// error worth seeing.
package s3
