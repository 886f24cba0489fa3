// Package plan owns backup plans and repository definitions (DESIGN.md
// §4): the configuration file, its strict parser, schedules, exclude
// patterns and retention policies; the Manager that runs plans (one walk
// into every repository), their hooks and the scheduler; and the engine's
// choices that plan runs and the command line share: opening the
// repository a definition names (Opener, over repo/location), sharing
// open repositories with a lock per run (RepoPool, over repo/pool), the
// parent of a new snapshot (Parent) and applying a retention policy
// (Forget).
//
// The configuration file is JSON:
//
//	{
//	  "repos": {
//	    "local":   {"url": "/srv/backup", "password_file": "/etc/cairn/local.pass"},
//	    "offsite": {"url": "s3://s3.example.com/backups/alice", "password_command": "pass show cairn",
//	                "access_key_id_env": "OFFSITE_KEY", "secret_access_key_env": "OFFSITE_SECRET"}
//	  },
//	  "plans": {
//	    "home": {
//	      "sources": ["/home/alice"], "exclude": ["**/.cache", "*.tmp"],
//	      "repos": ["local", "offsite"], "schedule": "0 4 * * *", "jitter": "10m",
//	      "retention": {"keep_last": 7, "keep_daily": 14, "keep_within": "48h"},
//	      "hooks": {"before": ["mysqldump …"], "env": ["MYSQL_HOST"], "timeout": "5m"}, "tags": ["laptop"]
//	    }
//	  }
//	}
//
// Parsing is strict, because a typo in a retention policy silently keeps
// or loses backups: an unknown field, a repeated field, a value of the
// wrong type and an invalid setting are errors of type *Error, which name
// the field's path ("plans.home.retention.keep_dayly") and its line and
// column. The standard decoder gives neither for unknown fields, so the
// text is read token by token into positioned nodes and decoded by hand.
//
// Definitions hold references to secrets (a password file, the names of
// environment variables, a command), never secrets, so a Config can be
// printed, saved and shown in the mounted tree as it is. Hooks run with
// a minimal environment, not cairn's, and hooks.env may not name a
// variable cairn reads a password or credential from; its NAME=value
// entries are shown like the rest, so they are for settings, not
// secrets. Save writes atomically (temporary file, fsync, rename, fsync
// of the directory).
//
// Retention.Apply decides which snapshots a policy keeps, with restic's
// semantics, in a given time zone; it never forgets every snapshot.
// Forget applies it to a repository's snapshots, group by group, and
// removes the records it does not keep, under the caller's shared lock.
//
// Opener turns a RepoDef into an open repository: the storage from the
// location registry, the password from the definition's source (file,
// environment variable or command, else the command line's), credentials
// from the variables it names. Storage is opened before a password is
// asked for.
package plan
