// Package diskcache keeps local copies of a remote repository's immutable
// metadata objects (keys, index files, snapshots), so that listing
// snapshots or starting a mount does not download them again. Every
// cached object is verified on use: its name is the SHA-256 of its bytes,
// and a copy that does not match is dropped and fetched anew.
//
// Listings always go to the remote storage (new objects must be seen);
// only the content of objects is cached. Objects removed remotely leave
// the cache at the next complete listing of their type.
package diskcache
