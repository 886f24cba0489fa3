#!/usr/bin/env bash
# demo.sh shows cairn on its own source tree (run it with `make run`):
#
#   demo/password  the repository password (random, created once)
#   demo/demo      a local repository (created once), repos/demo in the mount
#   demo/config.json  the configuration (created once): repository demo and
#                  plan src, which backs up demo/src into it
#   demo/src       a fresh copy of the project's files (those git tracks or
#                  would track), backed up on every run
#   mnt            where the demo ends: the repository mounted in the
#                  foreground until Ctrl-C or `umount mnt`
#
# Running it again makes a new snapshot of demo/src; unchanged files cost
# almost nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CAIRN=${CAIRN:-bin/cairn}
DEMO=demo
REPO=$DEMO/demo
SRC=$ROOT/$DEMO/src
MNT=mnt

[[ -x $CAIRN ]] || { echo "demo: $CAIRN not found; run 'make run' or 'make build' first" >&2; exit 1; }
command -v git >/dev/null || { echo "demo: git is needed to list the project's files" >&2; exit 1; }

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

mkdir -p "$DEMO"
# Earlier versions of this script kept the repository in demo/repo.
if [[ -e $DEMO/repo/config && ! -e $REPO ]]; then
	mv "$DEMO/repo" "$REPO"
	echo "demo: moved $DEMO/repo to $REPO (a mount shows it as repos/demo)"
fi
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

CONFIG=$ROOT/$DEMO/config.json
if [[ ! -e $CONFIG ]]; then
	cat >"$CONFIG" <<-EOF
	{
	  "repos": {"demo": {"url": "$ROOT/$REPO", "password_file": "$ROOT/$DEMO/password"}},
	  "plans": {"src": {"sources": ["$SRC"], "repos": ["demo"], "tags": ["demo"], "retention": {"keep_last": 20}}}
	}
	EOF
	echo "demo: wrote $CONFIG (repository demo, plan src)"
fi

step "cairn backup --plan src --config $CONFIG"
rc=0
"$CAIRN" backup --plan src --config "$CONFIG" || rc=$?
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

# Last, the mount: it runs in the foreground until it is stopped.
if [[ ! -e /dev/fuse ]]; then
	echo "demo: /dev/fuse is missing, so the repository cannot be mounted" \
		"(load the fuse module, or give the container the device)" >&2
	exit 1
fi

# is_mounted DIR says whether the absolute path DIR is a mount point. It
# reads /proc/self/mounts because a FUSE mount whose process was killed is
# still listed there, while stat on it fails ("Transport endpoint is not
# connected"). That file writes a space in a path as \040.
is_mounted() {
	local want=${1// /\\040} point rest
	while read -r _ point rest; do
		if [[ $point == "$want" ]]; then return 0; fi
	done </proc/self/mounts
	return 1
}

if is_mounted "$ROOT/$MNT"; then
	# Left by a killed run; if another run still serves it, this ends that.
	echo "demo: unmounting $MNT, left mounted by an earlier run"
	fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null ||
		fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"
fi
mkdir -p "$MNT"

name=$(basename "$REPO")
snaps=$MNT/repos/$name/snapshots
cat <<EOF

Last, the repository is mounted at ./$MNT until this is stopped. Once it
says "cairn: mounted at ...", try in another terminal:

  cd $ROOT
  # one directory per snapshot, and latest; then the repository's status
  ls $snaps
  cat $MNT/repos/$name/status

  # each snapshot holds its sources under their absolute paths
  ls $snaps/latest$SRC
  rm -rf /tmp/restored && cp -a $snaps/latest$SRC /tmp/restored
  diff -r $DEMO/src /tmp/restored && echo identical
  getfattr -n user.cairn.snapshot --only-values $snaps/latest; echo

  # run the plan through the mount: a new snapshot appears at once
  cat $MNT/plans/src/plan.json
  echo > $MNT/plans/src/run; sleep 2; cat $MNT/plans/src/status
  ls $snaps

  # define a plan of your own with any editor (an invalid one is refused)
  mkdir $MNT/plans/mine
  echo '{"sources": ["$SRC/docs"], "repos": ["demo"]}' > $MNT/plans/mine/plan.json

  # a backup from elsewhere appears in snapshots/ within seconds too
  export CAIRN_PASSWORD_FILE=$ROOT/$DEMO/password
  $CAIRN backup --repo $REPO $SRC

  # the command line reaches the same snapshots
  $CAIRN restore --repo $REPO latest --target /tmp/restore-cli --include $SRC/cmd
  $CAIRN snapshots --repo $REPO --json

Stop it with Ctrl-C here, or with: umount $MNT (fusermount3 -u $MNT when not root).
EOF

step "cairn mount $MNT --config $CONFIG"
exec "$CAIRN" mount "$MNT" --config "$CONFIG"
