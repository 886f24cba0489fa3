#!/usr/bin/env bash
# bench-mount.sh measures reading backups through a FUSE mount: `cairn mount`
# side by side with `restic mount` (0.19.1 from ../shared/peers or
# $RESTIC, default settings) in one run, on the same data. Baselines for reads of the plain file: a minimal
# go-fuse loopback mount (go-fuse's defaults, which as root on Linux 6.9+
# means FUSE passthrough: the kernel reads the backing file directly), the
# same loopback with passthrough withheld (every read a FUSE READ answered by
# the process: the cost of the FUSE data path), and dd without FUSE.
#
#   read     dd if=FILE of=/dev/null bs=1M of a 256 MiB file (half random,
#            half compressible text): cold (fresh mount process after
#            dropping the page cache), then warm (again in the same mount)
#   restore  cairn/restic restore --include of that file (cold), to set the
#            mount read against
#   find     find TREE | wc -l over the gosrc snapshot (cold, then warm)
#   ls -l    ls -l DIR > /dev/null of one directory of 100,000 files of
#            0-100 bytes (cold, then warm)
#   cp -a    cp -a of the whole gosrc snapshot out of the mount into a fresh
#            directory, against a full restore of the same snapshot (both
#            cold, both checked against the source with diff -r); baselines:
#            cp -a of gosrc itself, and through the go-fuse loopback of it
#            (what FUSE round trips cost any file system here)
#   RSS      peak RSS (VmHWM) of every mount process, read just before
#            unmounting; the cp -a mount also reads the file, finds the tree
#            and lists the directory afterwards, so its RSS is the peak after
#            all of the above in one process
#
# Each tool gets one fresh repository (default settings) holding three
# snapshots: the file, the directory, then gosrc (so latest is gosrc).
# "Cold" means a fresh mount process started after `sync; echo 3 >
# /proc/sys/vm/drop_caches`; where dropping the page cache is not permitted,
# only the mount process is fresh (and the summary says so). Restic's local
# cache ($XDG_CACHE_HOME/restic, filled by its backup) is kept, as a user's
# would be.
#
# Data sets are prepared once under $BENCH_DIR/data and reused (gosrc is the
# same copy of $(go env GOROOT)/src that bench.sh uses). Raw numbers go to
# bench/mount.txt, the table to bench/mount-summary.txt and stdout.
#
# Environment:
#   BENCH_DIR    where data sets, repositories, mounts and copies live
#                (default /tmp/cairn-bench; about 1.5 GB for the full run)
#   BENCH_RUNS   rounds of the cheap measurements: reads, restore --include,
#                find, ls -l (default 3; medians reported)
#   BENCH_CP_RUNS  rounds of cp -a and full restore of gosrc (default 1)
#   BENCH_QUICK  1: smoke test (32 MiB file, 10,000-file directory,
#                GOROOT/src/net)
#   BENCH_DROP_CACHES  0: never drop the page cache (default: try)
#   BENCH_TIMEOUT  seconds any one measured command may take (default 1800)
#   CAIRN        cairn binary (default bin/cairn)
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/cairn-bench}
# RESTIC= and KOPIA= choose the peers (default: ../shared/peers/).
source "$ROOT/scripts/peers.sh"
RUNS=${BENCH_RUNS:-3}
CP_RUNS=${BENCH_CP_RUNS:-1}
QUICK=${BENCH_QUICK:-0}
WANT_DROP=${BENCH_DROP_CACHES:-1}
CMD_TIMEOUT=${BENCH_TIMEOUT:-1800}
MOUNT_TIMEOUT=120
CAIRN=${CAIRN:-$ROOT/bin/cairn}
GO=${GO:-go}

DATA=$BENCH_DIR/data
WORK=$BENCH_DIR/mount-work
LOGS=$WORK/logs
OUT=$ROOT/bench
RAW=$OUT/mount.txt
SUMMARY=$OUT/mount-summary.txt

log() { printf 'bench-mount: %s\n' "$*" >&2; }
die() { printf '\nbench-mount: FAILED: %s\n' "$*" >&2; exit 1; }

for v in RUNS CP_RUNS CMD_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ -x $CAIRN ]] || die "$CAIRN not found; run 'make build' (or 'make bench-mount')"
command -v restic >/dev/null || die "restic not found; run scripts/deps.sh"
command -v "$GO" >/dev/null || die "go not found; needed to build the loopback baseline"
for c in dd find ls cp diff cmp flock timeout mountpoint fusermount3 umount; do
	command -v "$c" >/dev/null || die "$c not found; run scripts/deps.sh"
done
[[ -e /dev/fuse ]] || die "/dev/fuse does not exist"

unset CAIRN_PASSWORD_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE
export CAIRN_PASSWORD=cairn-bench-password
export RESTIC_PASSWORD=cairn-bench-password
export XDG_CACHE_HOME=$WORK/cache

mkdir -p "$DATA" "$WORK" "$OUT"
# The same lock as bench.sh: the two never run at once on one bench dir.
exec 9>"$BENCH_DIR/lock"
flock -n 9 || die "another bench.sh or bench-mount.sh is running on $BENCH_DIR"

# ---------------------------------------------------------------------------
# Mounts and clean-up. Every mount point and process this script starts is
# recorded, and the EXIT trap takes down whatever is left, however the
# script ends.

declare -A MOUNT_PID=() # mount point -> pid of the process serving it

mounts_under() { # mount points below $1, from /proc/self/mounts
	awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts
}

# force_unmount MNT: umount, then fusermount3 -u, then a lazy umount.
force_unmount() {
	local mnt=$1
	mountpoint -q "$mnt" 2>/dev/null || return 0
	timeout 30 umount "$mnt" 2>/dev/null && return 0
	timeout 30 fusermount3 -u "$mnt" 2>/dev/null && return 0
	log "warning: $mnt would not unmount; detaching it (umount -l)"
	umount -l "$mnt" 2>/dev/null || true
}

# stop_pid PID: wait up to 30 s for it to exit (it should, once unmounted),
# then SIGTERM, then SIGKILL; reap it.
stop_pid() {
	local pid=$1 i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "warning: mount process $pid still running after unmount; terminating it"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? mnt left
	set +e
	for mnt in "${!MOUNT_PID[@]}"; do
		force_unmount "$mnt"
		stop_pid "${MOUNT_PID[$mnt]}"
		unset 'MOUNT_PID[$mnt]'
	done
	left=$(mounts_under "$WORK")
	if [[ -n $left ]]; then
		# Never rm -rf across a mount: the loopback one shows the data set.
		log "warning: still mounted, leaving $WORK in place: $left"
	else
		rm -rf --one-file-system "$WORK"/repo-* "$WORK"/restore-* "$WORK"/cp-* \
			"$WORK"/mnt-* "$WORK"/loopback "$WORK/cache"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Mounts left by an earlier run that was killed hard.
for mnt in $(mounts_under "$WORK"); do
	log "unmounting $mnt, left over from an earlier run"
	force_unmount "$mnt"
done
[[ -z $(mounts_under "$WORK") ]] || die "could not unmount leftovers under $WORK"
rm -rf --one-file-system "$WORK"
mkdir -p "$WORK" "$LOGS" "$XDG_CACHE_HOME"

# ---------------------------------------------------------------------------
# Data generation (deterministic, as in bench.sh).

random_bytes() {
	local n=$1 seed=$2
	if command -v openssl >/dev/null; then
		local key
		key=$(printf 'cairn-bench %s' "$seed" | sha256sum | cut -c1-32)
		head -c "$n" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000
	else
		head -c "$n" /dev/urandom
	fi
}

text_bytes() {
	local seed
	seed=$(($(printf '%s' "$2" | cksum | cut -d' ' -f1) % 2147483647))
	awk -v n="$1" -v seed="$seed" 'BEGIN {
		srand(seed)
		k = split("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima " \
			"mike november oscar papa quebec romeo sierra tango uniform victor whiskey " \
			"xray yankee zulu backup restore snapshot chunk pack index tree blob repository " \
			"encrypt compress verify prune forget mount read write open close error ok", w, " ")
		total = 0
		for (i = 0; total < n; i++) {
			line = sprintf("%010d %s level=%d %s %s id=%08x took=%.3fms %s\n", i,
				w[int(rand() * k) + 1], int(rand() * 5), w[int(rand() * k) + 1],
				w[int(rand() * k) + 1], int(rand() * 2147483647), rand() * 100,
				w[int(rand() * k) + 1])
			if (total + length(line) > n)
				line = substr(line, 1, n - total)
			printf "%s", line
			total += length(line)
		}
	}'
}

# gen_many DIR COUNT SEED: COUNT files of 0-100 bytes of text in DIR.
gen_many() {
	local dir=$1 count=$2 seed=$3
	awk -v dir="$dir" -v count="$count" -v seed="$seed" 'BEGIN {
		srand(seed)
		chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;-_\n"
		nc = length(chars)
		for (i = 0; i < 20000; i++) pool = pool substr(chars, int(rand() * nc) + 1, 1)
		for (i = 0; i < count; i++) {
			f = sprintf("%s/f%06d", dir, i)
			printf "%s", substr(pool, int(rand() * 19800) + 1, int(rand() * 101)) >f
			close(f)
		}
	}'
	local n
	n=$(find "$dir" -type f | wc -l)
	((n == count)) || die "gen_many made $n files in $dir, not $count"
}

# prepare NAME creates data set NAME in $DATA/NAME unless complete (NAME.done).
prepare() {
	local name=$1 dir=$DATA/$1
	[[ -e $dir.done ]] && return
	rm -rf "$dir"
	mkdir -p "$dir"
	case $name in
	gosrc | gosrc-net)
		local src
		src=$("$GO" env GOROOT)/src
		[[ $name == gosrc-net ]] && src+=/net
		log "copying $src to $dir (once)"
		cp -a "$src/." "$dir/"
		"$GO" version >"$dir.done"
		;;
	mount-file)
		log "generating $dir/file (once; 256 MiB)"
		{ random_bytes $((128 << 20)) mountfile; text_bytes $((128 << 20)) mountfile; } >"$dir/file"
		date -u >"$dir.done"
		;;
	mount-file-quick)
		log "generating $dir/file (once; 32 MiB)"
		{ random_bytes $((16 << 20)) mountfile; text_bytes $((16 << 20)) mountfile; } >"$dir/file"
		date -u >"$dir.done"
		;;
	mount-many)
		log "generating $dir (once; 100,000 files of 0-100 bytes)"
		gen_many "$dir" 100000 7
		date -u >"$dir.done"
		;;
	mount-many-quick)
		log "generating $dir (once; 10,000 files of 0-100 bytes)"
		gen_many "$dir" 10000 7
		date -u >"$dir.done"
		;;
	*) die "unknown data set $name" ;;
	esac
}

if [[ $QUICK == 1 ]]; then
	SET_FILE=mount-file-quick SET_MANY=mount-many-quick SET_TREE=gosrc-net
else
	SET_FILE=mount-file SET_MANY=mount-many SET_TREE=gosrc
fi
for s in $SET_FILE $SET_MANY $SET_TREE; do prepare "$s"; done
FILEDIR=$DATA/$SET_FILE
FILE=$FILEDIR/file
MANY=$DATA/$SET_MANY
TREE=$DATA/$SET_TREE
FILE_BYTES=$(stat -c %s "$FILE")
MANY_FILES=$(find "$MANY" -type f | wc -l)
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
TREE_ENTRIES=$(find "$TREE" | wc -l)

# ---------------------------------------------------------------------------
# The loopback baselines: go-fuse's loopback file system, mounted as go-fuse
# does by default (as root on Linux 6.9 or later that means FUSE passthrough:
# the kernel reads the backing file itself and reads never reach the
# process), and with passthrough withheld (-no-passthrough), so that every
# read is a FUSE READ served by the process, with go-fuse's default open
# flags (no FOPEN_KEEP_CACHE: each open drops the file's page cache).

build_loopback() {
	local dir=$WORK/loopback
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<-'EOF'
	module cairn-bench/loopback

	go 1.26

	require github.com/hanwen/go-fuse/v2 v2.12.1
	EOF
	cat >"$dir/main.go" <<-'EOF'
	// loopback [-no-passthrough] MOUNTPOINT ORIGINAL serves ORIGINAL read-only at
	// MOUNTPOINT with go-fuse's loopback file system.
	package main

	import (
		"context"
		"flag"
		"fmt"
		"os"
		"os/signal"
		"syscall"

		"github.com/hanwen/go-fuse/v2/fs"
		"github.com/hanwen/go-fuse/v2/fuse"
	)

	// node is a loopback node whose open files withhold their descriptor from
	// the kernel, so that reads are FUSE READ requests served by this process.
	type node struct{ *fs.LoopbackNode }

	func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
		fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
		if errno != 0 {
			return nil, 0, errno
		}
		return file{fh.(*fs.LoopbackFile)}, fl, 0
	}

	type file struct{ *fs.LoopbackFile }

	func (file) PassthroughFd() (int, bool) { return -1, false }

	func fail(err error) {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}

	func main() {
		noPassthrough := flag.Bool("no-passthrough", false, "serve every read from this process (no FUSE passthrough)")
		flag.Parse()
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "usage: loopback [-no-passthrough] MOUNTPOINT ORIGINAL")
			os.Exit(2)
		}
		mnt, orig := flag.Arg(0), flag.Arg(1)
		var root fs.InodeEmbedder
		if *noPassthrough {
			var st syscall.Stat_t
			if err := syscall.Stat(orig, &st); err != nil {
				fail(err)
			}
			lr := &fs.LoopbackRoot{Path: orig, Dev: uint64(st.Dev)}
			lr.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
				return &node{&fs.LoopbackNode{RootData: r}}
			}
			root = lr.NewNode(lr, nil, "", &st)
			lr.RootNode = root
		} else {
			var err error
			if root, err = fs.NewLoopbackRoot(orig); err != nil {
				fail(err)
			}
		}
		server, err := fs.Mount(mnt, root, &fs.Options{MountOptions: fuse.MountOptions{
			DirectMount: true,
			FsName:      "loopback",
			Name:        "loopback",
			Options:     []string{"ro"}, // it shows the data set: never write to it
		}})
		if err != nil {
			fail(err)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		go func() { <-sig; server.Unmount() }()
		server.Wait()
	}
	EOF
	cp "$ROOT/go.sum" "$dir/go.sum"
	(cd "$dir" && "$GO" mod tidy && "$GO" fmt ./... && "$GO" build -o loopback .) >"$LOGS/loopback-build.log" 2>&1 ||
		{ tail -n 20 "$LOGS/loopback-build.log" >&2; die "building the go-fuse loopback failed"; }
	LOOPBACK=$dir/loopback
}

# ---------------------------------------------------------------------------
# Measurement helpers.

DROP=0
if [[ $WANT_DROP == 1 ]] && { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
	DROP=1
	COLD_DESC="fresh mount process after sync; echo 3 > /proc/sys/vm/drop_caches"
else
	COLD_DESC="fresh mount process only: dropping the page cache is not permitted here (or BENCH_DROP_CACHES=0), so repository files may be cached"
	log "warning: cannot drop the page cache; cold = fresh mount process only"
fi

drop_caches() {
	sync
	((DROP)) || return 0
	echo 3 >/proc/sys/vm/drop_caches
}

# rec TOOL OP ROUND VALUE BYTES appends one raw result.
rec() { printf '%s %s %s %s %s\n' "$@" >>"$RAW"; }

# timed TOOL OP ROUND BYTES CMD... runs CMD (bounded by $CMD_TIMEOUT) with
# its output in a log, records its wall time in seconds (microsecond clock)
# and prints it. BYTES is what the operation moves ("-" if not a rate).
timed() {
	local tool=$1 op=$2 round=$3 bytes=$4
	shift 4
	local logf=$LOGS/$tool-$op-$round.log t0 t1 secs
	t0=$EPOCHREALTIME
	if ! timeout "$CMD_TIMEOUT" "$@" </dev/null >"$logf" 2>&1; then
		{
			echo "--- command: $*"
			tail -n 20 "$logf"
		} >&2
		die "$tool $op failed (round $round); log: $logf"
	fi
	t1=$EPOCHREALTIME
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
	rec "$tool" "$op" "$round" "$secs" "$bytes"
	if [[ $bytes == - ]]; then
		printf '  %-13s %-14s %10.3f s\n' "$tool" "$op" "$secs" >&2
	else
		printf '  %-13s %-14s %10.3f s %9.1f MB/s\n' "$tool" "$op" "$secs" \
			"$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print (s > 0 ? b / 1e6 / s : 0) }')" >&2
	fi
	LAST_LOG=$logf
}

# read_file TOOL OP ROUND PATH: timed dd of PATH; checks that dd read it all.
read_file() {
	timed "$1" "$2" "$3" "$FILE_BYTES" dd if="$4" of=/dev/null bs=1M
	local got
	got=$(awk '/bytes/ && /copied/ { n = $1 } END { print n + 0 }' "$LAST_LOG")
	((got == FILE_BYTES)) || die "$1 $2: dd read $got bytes of $4, not $FILE_BYTES"
}

# count_entries TOOL OP ROUND DIR: timed `find DIR | wc -l`; checks the count.
count_entries() {
	# shellcheck disable=SC2016 # $1 is the inner shell's
	timed "$1" "$2" "$3" - bash -c 'find "$1" | wc -l' _ "$4"
	local got
	got=$(tail -n1 "$LAST_LOG")
	[[ $got == "$TREE_ENTRIES" ]] || die "$1 $2: find saw $got entries in $4, the source has $TREE_ENTRIES"
}

# list_dir TOOL OP ROUND DIR: timed `ls -l DIR > /dev/null`.
list_dir() {
	# shellcheck disable=SC2016 # $1 is the inner shell's
	timed "$1" "$2" "$3" - bash -c 'ls -l "$1" >/dev/null' _ "$4"
}

# same_tree WHAT SRC COPY: diff -r, failing with the first differences.
same_tree() {
	local what=$1 src=$2 copy=$3 out=$LOGS/diff-${1// /-}.txt
	[[ -d $copy ]] || die "$what: $copy does not exist"
	if ! diff -r --no-dereference "$src" "$copy" >"$out" 2>&1; then
		head -n 20 "$out" >&2
		die "$what differs from the source ($(wc -l <"$out") lines of diff in $out)"
	fi
}

REPO_cairn=$WORK/repo-cairn
REPO_restic=$WORK/repo-restic
declare -A SNAP=() # TOOL:SET -> snapshot directory name in the mount

# mnt_root TOOL: where the snapshots of TOOL's repository appear.
mnt_root() {
	case $1 in
	cairn) echo "$WORK/mnt-cairn/repos/$(basename "$REPO_cairn")/snapshots" ;;
	restic) echo "$WORK/mnt-restic/snapshots" ;;
	loopback*) echo "$WORK/mnt-$1" ;;
	esac
}

# in_mount TOOL SET PATH: PATH (absolute, in the source) as the mount shows it.
in_mount() {
	if [[ $1 == loopback* ]]; then
		echo "$(mnt_root "$1")${3#"$FILEDIR"}"
	else
		echo "$(mnt_root "$1")/${SNAP[$1:$2]}$3"
	fi
}

# mount_start TOOL ROUND [ORIG READY]: starts TOOL's mount in the
# background and waits (bounded) until its tree is visible; records the
# time that took. A loopback shows ORIG (default: the file's directory)
# and is ready once READY (default: file) shows in it.
mount_start() {
	local tool=$1 round=$2 mnt=$WORK/mnt-$1 ready pid t0 t1 deadline orig=${3:-$FILEDIR}
	mountpoint -q "$mnt" && die "$mnt is still mounted"
	mkdir -p "$mnt"
	local logf=$LOGS/mount-$tool-$round.log
	t0=$EPOCHREALTIME
	case $tool in
	cairn) "$CAIRN" mount "$mnt" --repo "$REPO_cairn" </dev/null >"$logf" 2>&1 & ;;
	restic) restic -r "$REPO_restic" mount "$mnt" </dev/null >"$logf" 2>&1 & ;;
	loopback) "$LOOPBACK" "$mnt" "$orig" </dev/null >"$logf" 2>&1 & ;;
	loopback-nopt) "$LOOPBACK" -no-passthrough "$mnt" "$orig" </dev/null >"$logf" 2>&1 & ;;
	esac
	pid=$!
	MOUNT_PID[$mnt]=$pid
	case $tool in
	cairn | restic) ready=$(mnt_root "$tool")/latest ;;
	loopback*) ready=$mnt/${4:-file} ;;
	esac
	deadline=$((SECONDS + MOUNT_TIMEOUT))
	until [[ -e $ready ]]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$logf" >&2
			die "$tool mount exited before $ready appeared; log: $logf"
		fi
		((SECONDS < deadline)) || die "$tool mount: $ready did not appear within ${MOUNT_TIMEOUT}s; log: $logf"
		sleep 0.01
	done
	t1=$EPOCHREALTIME
	local secs
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
	[[ $round == probe ]] || rec "$tool" mount-ready "$round" "$secs" -
}

# mount_stop TOOL ROUND SESSION: records the mount process's peak RSS as
# rss-SESSION, unmounts it and waits for the process to end.
mount_stop() {
	local tool=$1 round=$2 session=$3 mnt=$WORK/mnt-$1 pid hwm
	pid=${MOUNT_PID[$mnt]}
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
	[[ -n $hwm ]] || die "$tool mount process $pid is gone before unmounting (log: $LOGS/mount-$tool-$round.log)"
	[[ $round == probe ]] || rec "$tool" "rss-$session" "$round" "$hwm" -
	[[ $round == probe ]] || printf '  %-13s %-14s %10d MiB\n' "$tool" "rss-$session" $((hwm / 1024)) >&2
	if [[ $tool == loopback* ]]; then
		# Read syscalls of the process (mostly on /dev/fuse): a handful when
		# the kernel reads the backing file itself (passthrough), one per
		# READ request otherwise.
		rec "$tool" io-syscr "$round" "$(awk '/^syscr:/ { print $2 }' "/proc/$pid/io")" -
	fi
	if ! timeout 60 umount "$mnt"; then
		log "warning: umount $mnt failed; trying harder"
		force_unmount "$mnt"
	fi
	stop_pid "$pid"
	unset 'MOUNT_PID[$mnt]'
}

# order ROUND TOOLS...: TOOLS, reversed in even rounds (so neither tool
# always goes first).
order() {
	local round=$1
	shift
	local t=("$@") i
	if ((round % 2 == 0)); then
		for ((i = ${#t[@]} - 1; i >= 0; i--)); do printf '%s\n' "${t[i]}"; done
	else
		printf '%s\n' "${t[@]}"
	fi
}

# ---------------------------------------------------------------------------

restic_version=$(restic version)
cairn_version="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) (bin sha256 $(sha256sum "$CAIRN" | cut -c1-12))"
log "restic: $restic_version"
log "cairn:  $cairn_version"
log "cold:   $COLD_DESC"

{
	echo "# cairn bench-mount $(date -u +%Y-%m-%dT%H:%M:%SZ), runs=$RUNS cp_runs=$CP_RUNS quick=$QUICK drop_caches=$DROP"
	echo "# host: $(nproc) cpus, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# restic: $restic_version"
	echo "# cairn: $cairn_version"
	echo "# cold: $COLD_DESC"
	echo "# file $FILE bytes=$FILE_BYTES"
	echo "# many $MANY files=$MANY_FILES"
	echo "# tree $TREE entries=$TREE_ENTRIES bytes=$TREE_BYTES"
	echo "# columns: tool op round value bytes (value: seconds; kib for rss-*; bytes: data moved, - if not a rate)"
} >"$RAW"

log "building the go-fuse loopback baseline"
build_loopback

# Repositories: one per tool, snapshots of the file, the directory, gosrc.
log "backing up $FILEDIR, $MANY, $TREE with each tool"
"$CAIRN" init --repo "$REPO_cairn" >"$LOGS/cairn-init.log" 2>&1 || die "cairn init failed; log: $LOGS/cairn-init.log"
restic -r "$REPO_restic" init >"$LOGS/restic-init.log" 2>&1 || die "restic init failed; log: $LOGS/restic-init.log"
for set in file many tree; do
	case $set in file) src=$FILEDIR ;; many) src=$MANY ;; tree) src=$TREE ;; esac
	timed cairn "backup-$set" 0 - "$CAIRN" backup --repo "$REPO_cairn" "$src"
	timed restic "backup-$set" 0 - restic -r "$REPO_restic" backup "$src"
	sleep 1 # restic names snapshots by the second
done
rec cairn repo-bytes 0 "$(du -sb "$REPO_cairn" | cut -f1)" -
rec restic repo-bytes 0 "$(du -sb "$REPO_restic" | cut -f1)" -

# Find each snapshot's directory by looking for its source in the mount, and
# check the layout: snapshots/<name>/<absolute source path>, latest -> gosrc.
for tool in cairn restic; do
	mount_start "$tool" probe
	root=$(mnt_root "$tool")
	{
		echo "## $tool mount: ls -la $root"
		ls -la "$root"
	} >>"$LOGS/layout.txt"
	for set in file many tree; do
		case $set in file) p=$FILE ;; many) p=$MANY ;; tree) p=$TREE ;; esac
		for d in "$root"/*/; do
			d=$(basename "$d")
			[[ $d == latest ]] && continue
			if [[ -e $root/$d$p ]]; then
				[[ -z ${SNAP[$tool:$set]:-} ]] || die "$tool mount: $p is in two snapshots (${SNAP[$tool:$set]}, $d)"
				SNAP[$tool:$set]=$d
			fi
		done
		[[ -n ${SNAP[$tool:$set]:-} ]] || die "$tool mount: no snapshot under $root holds $p (see $LOGS/layout.txt)"
	done
	[[ -L $root/latest ]] || die "$tool mount: $root/latest is not a symlink"
	latest=$(readlink "$root/latest")
	[[ ${latest%/} == "${SNAP[$tool:tree]}" ]] || die "$tool mount: latest -> $latest, expected ${SNAP[$tool:tree]}"
	echo "# $tool snapshots: file=${SNAP[$tool:file]} many=${SNAP[$tool:many]} tree=${SNAP[$tool:tree]} (latest)" >>"$RAW"
	mount_stop "$tool" probe probe
done

# 1, 2. Sequential reads: cold in a fresh mount, then warm in the same one.
for ((round = 1; round <= RUNS; round++)); do
	log "sequential read of $FILE ($((FILE_BYTES >> 20)) MiB), round $round/$RUNS"
	for tool in $(order "$round" cairn restic loopback loopback-nopt plain); do
		drop_caches
		if [[ $tool == plain ]]; then
			read_file plain read-cold "$round" "$FILE"
			read_file plain read-warm "$round" "$FILE"
			continue
		fi
		mount_start "$tool" "$round"
		read_file "$tool" read-cold "$round" "$(in_mount "$tool" file "$FILE")"
		read_file "$tool" read-warm "$round" "$(in_mount "$tool" file "$FILE")"
		mount_stop "$tool" "$round" read
	done
done

# The same file by restore --include (cold).
for ((round = 1; round <= RUNS; round++)); do
	log "restore --include $FILE, round $round/$RUNS"
	for tool in $(order "$round" cairn restic); do
		tgt=$WORK/restore-$tool
		rm -rf "$tgt"
		mkdir -p "$tgt"
		drop_caches
		case $tool in
		cairn) timed cairn restore-file "$round" "$FILE_BYTES" \
			"$CAIRN" restore --repo "$REPO_cairn" "${SNAP[cairn:file]}" --target "$tgt" --include "$FILE" ;;
		restic) timed restic restore-file "$round" "$FILE_BYTES" \
			restic -r "$REPO_restic" restore latest --path "$FILEDIR" --include "$FILE" --target "$tgt" ;;
		esac
		if ((round == 1)); then
			cmp "$FILE" "$tgt$FILE" || die "$tool restore --include: $tgt$FILE differs from $FILE"
		fi
		rm -rf "$tgt"
	done
done

# 4. find over the gosrc snapshot.
for ((round = 1; round <= RUNS; round++)); do
	log "find | wc -l over $TREE, round $round/$RUNS"
	for tool in $(order "$round" cairn restic); do
		drop_caches
		mount_start "$tool" "$round"
		count_entries "$tool" find-cold "$round" "$(in_mount "$tool" tree "$TREE")"
		count_entries "$tool" find-warm "$round" "$(in_mount "$tool" tree "$TREE")"
		mount_stop "$tool" "$round" find
	done
done

# 5. ls -l of the directory of many small files.
for ((round = 1; round <= RUNS; round++)); do
	log "ls -l of $MANY ($MANY_FILES files), round $round/$RUNS"
	for tool in $(order "$round" cairn restic); do
		drop_caches
		mount_start "$tool" "$round"
		list_dir "$tool" ls-cold "$round" "$(in_mount "$tool" many "$MANY")"
		list_dir "$tool" ls-warm "$round" "$(in_mount "$tool" many "$MANY")"
		mount_stop "$tool" "$round" ls
	done
done

# 3, 6. cp -a of gosrc out of a fresh mount; then, in the same mount, read
# the file (cmp), find the tree and list the directory, and take the peak
# RSS after all of it. Then full restores of the same snapshot.
for ((round = 1; round <= CP_RUNS; round++)); do
	log "cp -a of $TREE out of the mount, round $round/$CP_RUNS"
	for tool in $(order "$round" cairn restic); do
		tgt=$WORK/cp-$tool
		rm -rf "$tgt"
		mkdir -p "$tgt"
		drop_caches
		mount_start "$tool" "$round"
		timed "$tool" cp "$round" "$TREE_BYTES" cp -a "$(in_mount "$tool" tree "$TREE")" "$tgt/"
		cmp "$FILE" "$(in_mount "$tool" file "$FILE")" || die "$tool mount: the file differs from $FILE"
		n=$(find "$(in_mount "$tool" tree "$TREE")" | wc -l)
		[[ $n == "$TREE_ENTRIES" ]] || die "$tool mount: find saw $n entries, the source has $TREE_ENTRIES"
		# shellcheck disable=SC2010 # counting what ls -l shows is the point
		n=$(ls -l "$(in_mount "$tool" many "$MANY")" | grep -c '^-')
		[[ $n == "$MANY_FILES" ]] || die "$tool mount: ls -l listed $n files, the source has $MANY_FILES"
		mount_stop "$tool" "$round" all
		if ((round == 1)); then same_tree "$tool cp -a" "$TREE" "$tgt/$(basename "$TREE")"; fi
		rm -rf "$tgt"
	done
	log "cp -a of $TREE itself and through the go-fuse loopback, round $round/$CP_RUNS"
	for tool in $(order "$round" loopback plain); do
		tgt=$WORK/cp-$tool
		rm -rf "$tgt"
		mkdir -p "$tgt"
		drop_caches
		if [[ $tool == plain ]]; then
			timed plain cp "$round" "$TREE_BYTES" cp -a "$TREE" "$tgt/"
		else
			mount_start loopback "cp-$round" "$TREE" "$(ls "$TREE" | head -n 1)"
			timed loopback cp "$round" "$TREE_BYTES" cp -a "$(mnt_root loopback)" "$tgt/"
			mount_stop loopback "cp-$round" cp
		fi
		rm -rf "$tgt"
	done
	log "restore of $TREE, round $round/$CP_RUNS"
	for tool in $(order "$round" cairn restic); do
		tgt=$WORK/restore-$tool
		rm -rf "$tgt"
		mkdir -p "$tgt"
		drop_caches
		case $tool in
		cairn) timed cairn restore "$round" "$TREE_BYTES" "$CAIRN" restore --repo "$REPO_cairn" latest --target "$tgt" ;;
		restic) timed restic restore "$round" "$TREE_BYTES" restic -r "$REPO_restic" restore latest --target "$tgt" ;;
		esac
		if ((round == 1)); then same_tree "$tool restore" "$TREE" "$tgt$TREE"; fi
		rm -rf "$tgt"
	done
done
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW"

# ---------------------------------------------------------------------------
# Summary.

summarize() {
	awk -v runs="$RUNS" -v cpruns="$CP_RUNS" -v cold="$COLD_DESC" -v ncpu="$(nproc)" \
		-v file="$FILE" -v fbytes="$FILE_BYTES" -v many="$MANY" -v nmany="$MANY_FILES" \
		-v tree="$TREE" -v tentries="$TREE_ENTRIES" -v tbytes="$TREE_BYTES" '
	function median(list,    a, n, i, j, t) {
		n = split(list, a, " ")
		if (n == 0) return ""
		for (i = 2; i <= n; i++) {
			t = a[i] + 0
			for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
			a[j + 1] = t
		}
		return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function maxof(list,    a, n, i, m) {
		n = split(list, a, " ")
		if (n == 0) return ""
		m = a[1] + 0
		for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0
		return m
	}
	function secs(tool, op) { return median(v[tool, op]) }
	function mbs(tool, op,    s) { s = secs(tool, op); return (s == "" || s == 0) ? "" : b[tool, op] / 1e6 / s }
	function rss(tool, op,    m) { m = maxof(v[tool, op]); return m == "" ? "" : m / 1024 }
	function f(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
	function ratio(num, den) { return (num == "" || den == "" || den == 0) ? "-" : sprintf("%.2fx", num / den) }
	function row(name, c, r, rat, l, n, p) {
		printf "%-34s %9s %9s %8s %9s %9s %9s\n", name, c, r, rat, l, n, p
	}
	# rate row: ratio cairn/restic; time row: ratio restic/cairn.
	function raterow(name, op, base,    c, r) {
		c = mbs("cairn", op); r = mbs("restic", op)
		row(name, f(c, "%.1f"), f(r, "%.1f"), ratio(c, r), base ? f(mbs("loopback", op), "%.1f") : "",
			base ? f(mbs("loopback-nopt", op), "%.1f") : "", base ? f(mbs("plain", op), "%.1f") : "")
	}
	function timerow(name, op, base, fmt,    c, r, p) {
		c = secs("cairn", op); r = secs("restic", op); p = secs("plain", op)
		row(name, f(c, fmt), f(r, fmt), ratio(r, c), base ? f(secs("loopback", op), fmt) : "",
			base ? f(secs("loopback-nopt", op), fmt) : "", base && p != "" ? f(p, fmt) : "")
	}
	function rssrow(name, op, base,    c, r) {
		c = rss("cairn", op); r = rss("restic", op)
		row(name, f(c, "%.0f"), f(r, "%.0f"), ratio(r, c), base ? f(rss("loopback", op), "%.0f") : "",
			base ? f(rss("loopback-nopt", op), "%.0f") : "", "")
	}
	/^# host:/ { sub(/.*load at start: /, ""); load0 = $1 }
	/^# load at end:/ { load1 = $5 }
	/^#/ { next }
	{ v[$1, $2] = v[$1, $2] " " $4; b[$1, $2] = $5 }
	END {
		# Passthrough: the default loopback made far fewer read syscalls
		# than the one serving every READ itself.
		a = median(v["loopback", "io-syscr"]); n = median(v["loopback-nopt", "io-syscr"])
		pt = (a == "" || n == "") ? "unknown" : (a * 4 < n ? "yes" : "no") sprintf(", %d vs %d read syscalls per mount", a, n)
		printf "\n== mount: cairn mount vs restic mount — medians of %d rounds (cp -a and full restore: %d) ==\n", runs, cpruns
		printf "file: %s, %.1f MiB, half random, half text\n", file, fbytes / 1048576
		printf "dir:  %s, %d files of 0-100 bytes\n", many, nmany
		printf "tree: %s, %d entries, %.1f MB\n", tree, tentries, tbytes / 1e6
		printf "cold: %s\n", cold
		printf "ratio > 1 means cairn is better: cairn/restic for MB/s, restic/cairn for seconds and RSS\n"
		printf "peak RSS: VmHWM of the mount process just before unmounting, highest over the rounds\n"
		printf "baselines on the plain file: loopback = minimal go-fuse loopback mount, go-fuse defaults (FUSE passthrough: %s);\n", pt
		printf "lb no-pt = the same loopback with passthrough withheld, every read a FUSE READ; no FUSE = dd of the file itself\n"
		printf "baselines of cp -a: loopback = the go-fuse loopback of the tree; no FUSE = cp -a of the tree itself\n"
		printf "load average (1 min) at start %s, at end %s on %d cpus; MB = 10^6 bytes\n\n", load0, load1, ncpu
		row("measurement", "cairn", "restic", "ratio", "loopback", "lb no-pt", "no FUSE")
		timerow("mount ready (every fresh mount), s", "mount-ready", 1, "%.3f")
		raterow("seq read cold (dd), MB/s", "read-cold", 1)
		raterow("seq read warm (dd), MB/s", "read-warm", 1)
		raterow("restore --include file, MB/s", "restore-file", 0)
		timerow("find | wc -l gosrc cold, s", "find-cold", 0, "%.3f")
		timerow("find | wc -l gosrc warm, s", "find-warm", 0, "%.3f")
		timerow(sprintf("ls -l %d files cold, s", nmany), "ls-cold", 0, "%.3f")
		timerow(sprintf("ls -l %d files warm, s", nmany), "ls-warm", 0, "%.3f")
		timerow("cp -a gosrc out of mount, s", "cp", 1, "%.2f")
		timerow("restore gosrc, s", "restore", 0, "%.2f")
		rssrow("peak RSS, read session, MiB", "rss-read", 1)
		rssrow("peak RSS, find session, MiB", "rss-find")
		rssrow("peak RSS, ls -l session, MiB", "rss-ls")
		rssrow("peak RSS, cp -a + all reads, MiB", "rss-all")
		printf "\n"
		printf "cairn: cold mount read / restore --include:  %s / %s MB/s = %s\n",
			f(mbs("cairn", "read-cold"), "%.1f"), f(mbs("cairn", "restore-file"), "%.1f"), ratio(mbs("cairn", "read-cold"), mbs("cairn", "restore-file"))
		printf "restic: cold mount read / restore --include: %s / %s MB/s = %s\n",
			f(mbs("restic", "read-cold"), "%.1f"), f(mbs("restic", "restore-file"), "%.1f"), ratio(mbs("restic", "read-cold"), mbs("restic", "restore-file"))
		printf "cairn warm read / loopback warm read:        %s / %s MB/s = %s\n",
			f(mbs("cairn", "read-warm"), "%.1f"), f(mbs("loopback", "read-warm"), "%.1f"), ratio(mbs("cairn", "read-warm"), mbs("loopback", "read-warm"))
		printf "cairn warm read / lb no-pt warm read:        %s / %s MB/s = %s\n",
			f(mbs("cairn", "read-warm"), "%.1f"), f(mbs("loopback-nopt", "read-warm"), "%.1f"), ratio(mbs("cairn", "read-warm"), mbs("loopback-nopt", "read-warm"))
		printf "cp -a / restore (time): cairn mount / cairn restore %s; restic mount / restic restore %s; restic mount / cairn restore %s\n",
			ratio(secs("cairn", "cp"), secs("cairn", "restore")), ratio(secs("restic", "cp"), secs("restic", "restore")),
			ratio(secs("restic", "cp"), secs("cairn", "restore"))
		printf "cp -a baselines / cairn restore (time): through the go-fuse loopback %s; of the tree itself, without FUSE %s\n",
			ratio(secs("loopback", "cp"), secs("cairn", "restore")), ratio(secs("plain", "cp"), secs("cairn", "restore"))
		printf "repository size, MB: cairn %s, restic %s\n", f(median(v["cairn", "repo-bytes"]) / 1e6, "%.1f"), f(median(v["restic", "repo-bytes"]) / 1e6, "%.1f")
	}' "$RAW"
}

{
	echo "restic: $restic_version"
	echo "cairn:  $cairn_version"
	summarize
} | tee "$SUMMARY"
log "raw results: $RAW; table: $SUMMARY; logs: $LOGS"
