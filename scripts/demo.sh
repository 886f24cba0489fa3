#!/usr/bin/env bash
# demo.sh shows cairn on its own source tree (run it with `make run`):
#
#   demo/password  the repository password (random, created once)
#   demo/repo      a local repository (created once)
#   demo/src       a fresh copy of the project's files (those git tracks or
#                  would track), backed up on every run
#
# Running it again makes a new snapshot of demo/src; unchanged files cost
# almost nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CAIRN=${CAIRN:-bin/cairn}
DEMO=demo
REPO=$DEMO/repo
SRC=$ROOT/$DEMO/src

[[ -x $CAIRN ]] || { echo "demo: $CAIRN not found; run 'make run' or 'make build' first" >&2; exit 1; }
command -v git >/dev/null || { echo "demo: git is needed to list the project's files" >&2; exit 1; }

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

mkdir -p "$DEMO"
if [[ ! -s $DEMO/password ]]; then
	(umask 077 && head -c 24 /dev/urandom | base64 >"$DEMO/password")
	echo "demo: created a random password in $DEMO/password"
fi
export CAIRN_PASSWORD_FILE=$ROOT/$DEMO/password
unset CAIRN_PASSWORD

# The source to back up: the project's files as git sees them (tracked plus
# untracked-but-not-ignored, so bin/, demo/ and friends stay out), copied
# with their directory structure. cairn has no excludes yet, hence the copy.
# It is staged and then synced into demo/src so that files which did not
# change keep their inode and times, and the next backup sees them unchanged.
stage=$DEMO/.stage
rm -rf "$stage"
mkdir -p "$stage" "$SRC"
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do
		# Skip files deleted in the work tree but still in the index.
		if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
	done |
	xargs -0 --no-run-if-empty cp -d -p --parents -t "$stage"
rsync -a --delete "$stage/" "$SRC/"
rm -rf "$stage"
echo "demo: synced $(find "$SRC" -type f | wc -l) project files to $SRC"

if [[ ! -e $REPO/config ]]; then
	step "cairn init --repo $REPO"
	"$CAIRN" init --repo "$REPO"
fi

step "cairn backup --repo $REPO --tag demo $SRC"
rc=0
"$CAIRN" backup --repo "$REPO" --tag demo "$SRC" || rc=$?
case $rc in
0) ;;
3) echo "demo: backup finished, but some files were unreadable (see above)" >&2 ;;
*) echo "demo: backup failed (exit $rc)" >&2; exit "$rc" ;;
esac

step "cairn snapshots --repo $REPO"
"$CAIRN" snapshots --repo "$REPO"

step "cairn ls --repo $REPO latest | head -n 20"
# Capture first so that head closing the pipe cannot fail the listing.
listing=$("$CAIRN" ls --repo "$REPO" latest)
head -n 20 <<<"$listing"
total=$(wc -l <<<"$listing")
if ((total > 20)); then echo "... ($total entries)"; fi

cat <<EOF

Try next (the password is read from \$CAIRN_PASSWORD_FILE):

  export CAIRN_PASSWORD_FILE=$ROOT/$DEMO/password

  # restore the latest snapshot; it holds the source under its absolute path
  $CAIRN restore --repo $REPO latest --target $DEMO/restore
  diff -r $DEMO/src $DEMO/restore$SRC && echo identical

  # restore only one directory
  $CAIRN restore --repo $REPO latest --target $DEMO/restore-cmd --include $SRC/cmd

  # list one directory of the snapshot, or all snapshots as JSON
  $CAIRN ls --repo $REPO latest $SRC/cmd
  $CAIRN snapshots --repo $REPO --json

  # back up again (make run): unchanged files are not stored twice
  $CAIRN backup --repo $REPO $SRC
EOF
