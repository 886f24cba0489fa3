// Package local is a Backend on a directory of the local filesystem.
//
// Layout under the root directory, one file per object:
//
//	config
//	keys/<name>
//	data/<first two characters of name>/<name>
//	index/<name>
//	snapshots/<name>
//	locks/<name>
//
// Create makes every directory, including the 256 data/<xx> directories of
// hex pack names, so a Save normally needs no mkdir. Packs whose names do
// not start with two lowercase hex digits still work: Save makes their
// directory on demand.
//
// Save writes the object to a temporary file named ".tmp-<random>" in the
// object's directory, fsyncs it, moves it into place without replacing an
// existing file (renameat2 with RENAME_NOREPLACE, or link+unlink where the
// filesystem lacks renameat2) and fsyncs the directory. Readers therefore
// see no object or the whole object, a crash leaves at most a temporary
// file, and two racing Saves of one name cannot both win. List skips
// temporary files, and object names starting with ".tmp-" are refused.
//
// Objects are created with mode 0600 and directories with 0700, both
// reduced by the umask. Everything stored is encrypted, but keys/<id> holds
// the master key wrapped by a password-derived key: anyone who can copy it
// can guess the password offline, at their own pace. A repository is shared
// with a group as in restic's group-accessible repositories: new objects
// and directories get the group bits of config (chmod -R g+rX by an admin:
// 0640 and 0750; g+rwX: 0660 and 0770). The mode of config is looked at when
// the backend is opened and, while there is no config, by every Save, until
// one is found; from then on the modes stay as decided.
//
// Native errors are wrapped so that errors.Is finds both the backend
// sentinel and the original error: ENOENT is ErrNotExist, EEXIST ErrExist,
// EACCES, EPERM and EROFS ErrPermission, ENOSPC and EDQUOT ErrNoSpace.
package local
