#!/usr/bin/env bash
# bench-s3.sh times cairn and Debian's restic (default settings) side by side
# on S3 storage: a MinIO server that this script starts on a free loopback
# port (plain HTTP, one drive under $BENCH_DIR/s3-work), on two data sets:
#
#   gosrc  a copy of the Go distribution's source tree, $(go env GOROOT)/src
#          (the same copy bench.sh and bench-mount.sh use)
#   file   one generated 256 MiB file, half random, half compressible text
#
# For each data set, tool and round (rounds alternate which tool goes first),
# with a fresh bucket and a fresh, per-tool $XDG_CACHE_HOME:
#
#   init           init (creates the bucket)
#   backup         initial backup
#   re-backup      the same backup again, nothing changed
#   snapshots      `snapshots` run twice; the second run is timed (warm
#                  metadata cache)
#   snapshots, empty cache   `snapshots` with an empty $XDG_CACHE_HOME
#   restore        full restore of latest into an empty directory (warm
#                  cache), checked against the source with diff -r
#   mount          `cairn mount --background` until it returns /
#                  `restic mount` until the mount point appears (warm cache)
#   ls -l          the first `ls -l` of the source directory in the snapshot
#                  (.../snapshots/latest/<source path>) in that fresh mount
#   ls -lR         the first `ls -lR` of the same directory, in another fresh
#                  mount process
#
# Each step is timed (wall seconds, microsecond clock; peak RSS with GNU time,
# for mounts the VmHWM of the mount process) and the S3 requests it makes are
# counted from MinIO's metrics: the difference of the request counters per API
# before and after the step. MinIO's v2 endpoint (/minio/v2/metrics/cluster,
# minio_s3_requests_total{api=...}) serves values cached for several
# seconds, so the script reads the live v3 endpoint
# (/minio/metrics/v3/api/requests, minio_api_requests_total{name=...}) and
# records API names in v2's lower-case form; it falls back to v2 with an 11 s
# wait before each read if v3 is missing, and at the end compares the v3 total
# with v2's to check the counting. APIs are grouped as
#   PUT    putobject, putobjectpart, copyobject*, new/complete multipart,
#          putbucket* (bucket creation), makebucket
#   GET    getobject*          HEAD  head* (headobject, headbucket)
#   LIST   list*               DEL   delete*, abortmultipartupload
#   other  the rest (getbucketlocation, ...)
# Failed requests (4xx/5xx, e.g. HEAD of a missing object) count too; their
# number is recorded separately (req_errors).
#
# Data sets are prepared once under $BENCH_DIR/data and reused. Raw numbers go
# to bench/s3.txt, the tables to bench/s3-summary.txt and stdout.
#
# Environment:
#   BENCH_DIR        data sets, MinIO's drive, restores, mount points
#                    (default /tmp/cairn-bench; about 3 GB for the full run)
#   BENCH_RUNS       rounds per data set and tool (default 3; medians reported)
#   BENCH_QUICK      1: smoke test (GOROOT/src/net and a 32 MiB file)
#   BENCH_S3_SETS    data sets to run (default "gosrc file")
#   BENCH_S3_MOUNT   0: skip the mount measurements (default 1)
#   BENCH_TIMEOUT    seconds any one measured command may take (default 1800)
#   BENCH_LOCK_WAIT  seconds to wait for another bench script on $BENCH_DIR
#                    to finish (default 0: fail at once)
#   CAIRN            cairn binary (default bin/cairn)
#   CAIRN_MINIO      MinIO server binary (default
#                    ${CAIRN_TOOLS:-$HOME/.cache/cairn-tools}/minio, built with
#                    `scripts/deps.sh minio` when missing)
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/cairn-bench}
# RESTIC= and KOPIA= choose the peers (default: ../shared/peers/).
source "$ROOT/scripts/peers.sh"
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
SETS=${BENCH_S3_SETS:-gosrc file}
DO_MOUNT=${BENCH_S3_MOUNT:-1}
CMD_TIMEOUT=${BENCH_TIMEOUT:-1800}
LOCK_WAIT=${BENCH_LOCK_WAIT:-0}
CAIRN=${CAIRN:-$ROOT/bin/cairn}
TOOLS_DIR=${CAIRN_TOOLS:-$HOME/.cache/cairn-tools}
MINIO=${CAIRN_MINIO:-$TOOLS_DIR/minio}
GO=${GO:-go}
READY_TIMEOUT=60  # MinIO start
MOUNT_TIMEOUT=120 # a mount becoming ready
V2_CACHE_WAIT=11  # seconds MinIO's v2 metrics may lag (fallback only)

DATA=$BENCH_DIR/data
WORK=$BENCH_DIR/s3-work
LOGS=$WORK/logs
OUT=$ROOT/bench
RAW=$OUT/s3.txt
SUMMARY=$OUT/s3-summary.txt

log() { printf 'bench-s3: %s\n' "$*" >&2; }
die() { printf '\nbench-s3: FAILED: %s\n' "$*" >&2; exit 1; }

for v in RUNS CMD_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $LOCK_WAIT =~ ^[0-9]+$ ]] || die "BENCH_LOCK_WAIT must be a number of seconds, got '$LOCK_WAIT'"
[[ -x $CAIRN ]] || die "$CAIRN not found; run 'make build' (or 'make bench-s3')"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) not found; run scripts/deps.sh"
for c in restic curl flock timeout diff ss awk; do
	command -v "$c" >/dev/null || die "$c not found; run scripts/deps.sh"
done
if [[ $DO_MOUNT == 1 ]]; then
	for c in umount fusermount3; do
		command -v "$c" >/dev/null || die "$c not found; run scripts/deps.sh (or BENCH_S3_MOUNT=0)"
	done
	[[ -e /dev/fuse ]] || die "/dev/fuse does not exist (BENCH_S3_MOUNT=0 skips the mount measurements)"
fi
if [[ ! -x $MINIO ]]; then
	[[ -z ${CAIRN_MINIO:-} ]] || die "CAIRN_MINIO=$CAIRN_MINIO is not an executable"
	log "$MINIO is missing; building it with scripts/deps.sh minio (several minutes, once)"
	bash "$ROOT/scripts/deps.sh" minio
	[[ -x $MINIO ]] || die "scripts/deps.sh minio left no $MINIO"
fi

# Passwords and credentials come from the environment; make sure nothing the
# caller has set overrides them, points the tools elsewhere or sends loopback
# traffic through a proxy.
unset CAIRN_PASSWORD_FILE CAIRN_REPOSITORY RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND \
	RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_CACHE_DIR \
	AWS_SESSION_TOKEN AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
	AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL \
	http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export CAIRN_PASSWORD=cairn-bench-password
export RESTIC_PASSWORD=cairn-bench-password
MINIO_USER=cairn-bench
MINIO_SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AWS_ACCESS_KEY_ID=$MINIO_USER
export AWS_SECRET_ACCESS_KEY=$MINIO_SECRET

mkdir -p "$DATA" "$WORK" "$OUT"
# The same lock as bench.sh and bench-mount.sh: they never run at once on one
# bench dir (they would skew each other's timings).
exec 9>"$BENCH_DIR/lock"
if ! flock -n 9; then
	((LOCK_WAIT > 0)) || die "another bench script is running on $BENCH_DIR (BENCH_LOCK_WAIT=SECONDS waits for it)"
	log "another bench script is running on $BENCH_DIR; waiting up to ${LOCK_WAIT}s"
	flock -w "$LOCK_WAIT" 9 || die "another bench script still runs on $BENCH_DIR after ${LOCK_WAIT}s"
fi

# ---------------------------------------------------------------------------
# Clean-up: every mount and process this script starts is recorded, and the
# EXIT trap takes down whatever is left, however the script ends.

MINIO_PID=
declare -A MOUNT_PID=() # mount point -> pid of the process serving it ("" if unknown)

mounts_under() { # mount points below $1, from /proc/self/mounts
	awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts
}

# is_mounted MNT reads /proc/self/mounts: unlike mountpoint(1) it neither
# blocks on a FUSE server that does not answer nor misses a dead one.
is_mounted() {
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

# force_unmount MNT: umount, then fusermount3 -u, then a lazy umount.
force_unmount() {
	local mnt=$1
	is_mounted "$mnt" || return 0
	timeout 30 umount "$mnt" 2>/dev/null && return 0
	timeout 30 fusermount3 -u "$mnt" 2>/dev/null && return 0
	log "warning: $mnt would not unmount; detaching it (umount -l)"
	umount -l "$mnt" 2>/dev/null || true
}

# stop_pid PID WHAT [SECONDS]: wait up to SECONDS (default 30) for PID to
# exit (a mount process does once unmounted), then SIGTERM, then SIGKILL;
# reap it if it is our child.
stop_pid() {
	local pid=$1 what=$2 tenths=$((${3:-30} * 10)) i
	[[ -n $pid ]] || return 0
	for ((i = 0; i < tenths; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "warning: $what (pid $pid) still running; terminating it"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

stop_minio() {
	[[ -n $MINIO_PID ]] || return 0
	if kill -0 "$MINIO_PID" 2>/dev/null; then
		kill -TERM "$MINIO_PID" 2>/dev/null || true
		stop_pid "$MINIO_PID" minio
	fi
	wait "$MINIO_PID" 2>/dev/null || true
	MINIO_PID=
}

cleanup() {
	local rc=$? mnt left
	set +e
	for mnt in "${!MOUNT_PID[@]}"; do
		force_unmount "$mnt"
		stop_pid "${MOUNT_PID[$mnt]}" "mount process for $mnt" 5
		# It may have mounted meanwhile (stopped while starting), or died
		# leaving a dead mount behind.
		force_unmount "$mnt"
		unset 'MOUNT_PID[$mnt]'
	done
	for mnt in $(mounts_under "$WORK"); do force_unmount "$mnt"; done
	stop_minio
	left=$(mounts_under "$WORK")
	if [[ -n $left ]]; then
		log "warning: still mounted, leaving $WORK in place: $left"
	else
		rm -rf --one-file-system "$WORK"/minio "$WORK"/restore-* "$WORK"/mnt-* "$WORK"/cache-* \
			"$WORK"/req-*.txt* "$WORK"/time.txt
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
[[ -z $(mounts_under "$WORK") ]] || die "could not unmount everything under $WORK"
rm -rf --one-file-system "$WORK"/minio "$WORK"/restore-* "$WORK"/mnt-* "$WORK"/cache-* "$LOGS"
mkdir -p "$LOGS"

# ---------------------------------------------------------------------------
# Data generation, as in bench.sh: deterministic for a given seed.

# random_bytes N SEED writes N pseudo-random, incompressible bytes to stdout.
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

# text_bytes N SEED writes exactly N bytes of log-like text (unique lines that
# compress about 3-4x) to stdout.
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

# prepare NAME creates data set NAME in $DATA/NAME unless it is complete (a
# NAME.done marker next to it records completion).
prepare() {
	local name=$1 dir=$DATA/$1 size
	[[ -e $dir.done ]] && return
	rm -rf "$dir"
	mkdir -p "$dir"
	case $name in
	gosrc | gosrc-net)
		command -v "$GO" >/dev/null || die "go not found; needed for the gosrc data set"
		local src
		src=$("$GO" env GOROOT)/src
		[[ $name == gosrc-net ]] && src+=/net
		log "copying $src to $dir (once)"
		cp -a "$src/." "$dir/"
		"$GO" version >"$dir.done"
		;;
	s3-file | s3-file-quick)
		size=$((256 << 20))
		[[ $name == s3-file-quick ]] && size=$((32 << 20))
		log "generating $dir/file (once; $((size >> 20)) MiB, half random, half text)"
		{
			random_bytes $((size / 2)) s3file
			text_bytes $((size - size / 2)) s3file
		} >"$dir/file"
		date -u >"$dir.done"
		;;
	*) die "unknown data set $name" ;;
	esac
}

# ---------------------------------------------------------------------------
# MinIO.

MINIO_DIR=$WORK/minio
MINIO_ADDR=
METRICS= # v3 or v2

# free_port prints a loopback TCP port nobody listens on, below the
# ephemeral range (so no outgoing connection holds it either).
free_port() {
	local i p
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[[ -z $(ss -Hltn "( sport = :$p )" 2>/dev/null) ]] && { echo "$p"; return 0; }
	done
	die "found no free port"
}

# s3_probe prints the HTTP status of a signed GET of a bucket that does not
# exist: 404 once MinIO serves S3 with our credentials (503 while starting,
# 403 InvalidAccessKeyId from someone else's server).
s3_probe() {
	curl -s -o "$MINIO_DIR/probe.xml" -w '%{http_code}' --max-time 5 \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$MINIO_USER:$MINIO_SECRET" \
		"http://$MINIO_ADDR/cairn-bench-probe/" 2>/dev/null || true
}

# start_minio starts the server on fresh ports and waits until it answers S3
# requests; a few attempts in case another process takes a port in between.
start_minio() {
	local attempt api_port console_port deadline code pdeath=() unset_minio=() v
	for v in $(compgen -e); do
		if [[ $v == MINIO_* ]]; then unset_minio+=(-u "$v"); fi
	done
	if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
		# The server dies with this script even if it is killed hard.
		pdeath=(setpriv --pdeathsig KILL --)
	fi
	for ((attempt = 1; attempt <= 3; attempt++)); do
		rm -rf "$MINIO_DIR"
		mkdir -p "$MINIO_DIR/data" "$MINIO_DIR/certs"
		api_port=$(free_port)
		console_port=$(free_port)
		[[ $api_port != "$console_port" ]] || continue
		MINIO_ADDR=127.0.0.1:$api_port
		# Only our MINIO_* settings reach the server.
		env "${unset_minio[@]}" \
			MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_SECRET" \
			MINIO_PROMETHEUS_AUTH_TYPE=public MINIO_BROWSER=off MINIO_UPDATE=off \
			"${pdeath[@]}" "$MINIO" server --quiet \
			--address "$MINIO_ADDR" --console-address "127.0.0.1:$console_port" \
			--certs-dir "$MINIO_DIR/certs" "$MINIO_DIR/data" \
			</dev/null >"$MINIO_DIR/minio.log" 2>&1 &
		MINIO_PID=$!
		deadline=$((SECONDS + READY_TIMEOUT))
		code=
		while ((SECONDS < deadline)) && kill -0 "$MINIO_PID" 2>/dev/null; do
			if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$MINIO_ADDR/minio/health/live" || true) == 200 &&
				$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$MINIO_ADDR/minio/health/ready" || true) == 200 ]]; then
				# The health checks pass before the object layer is up;
				# wait for a real S3 answer.
				code=$(s3_probe)
				[[ $code == 404 ]] && grep -q NoSuchBucket "$MINIO_DIR/probe.xml" && break
			fi
			sleep 0.2
		done
		if kill -0 "$MINIO_PID" 2>/dev/null && [[ $code == 404 ]]; then
			log "minio pid $MINIO_PID serving on $MINIO_ADDR (drive $MINIO_DIR/data)"
			break
		fi
		local why="not ready after ${READY_TIMEOUT}s (last S3 probe: HTTP ${code:-none})"
		kill -0 "$MINIO_PID" 2>/dev/null || why="exited"
		stop_minio
		if grep -qi 'already in use' "$MINIO_DIR/minio.log" && ((attempt < 3)); then
			log "minio: port taken, trying other ports"
			continue
		fi
		tail -n 20 "$MINIO_DIR/minio.log" >&2 || true
		die "minio on $MINIO_ADDR $why"
	done
	[[ -n $MINIO_PID ]] || die "could not start minio"

	# Which metrics answer live? The probe above counted one request.
	if curl -s --max-time 5 "http://$MINIO_ADDR/minio/metrics/v3/api/requests" | grep -q '^minio_api_requests_total{'; then
		METRICS=v3
	else
		log "warning: MinIO has no v3 request metrics; using /minio/v2/metrics/cluster with ${V2_CACHE_WAIT}s waits"
		METRICS=v2
	fi
}

# scrape_once prints "api count" lines (v2 lower-case api names) and one
# "__errors N" line with the sum of failed requests.
scrape_once() {
	local out
	if [[ $METRICS == v3 ]]; then
		out=$(curl -sf --max-time 10 "http://$MINIO_ADDR/minio/metrics/v3/api/requests") ||
			die "cannot read MinIO metrics (is minio pid $MINIO_PID alive?)"
		awk '
			/^minio_api_requests_(total|errors_total)\{/ && /type="s3"/ {
				match($0, /name="[^"]*"/)
				api = tolower(substr($0, RSTART + 6, RLENGTH - 7))
				if ($0 ~ /^minio_api_requests_total/) n[api] += $NF; else err += $NF
			}
			END { for (a in n) printf "%s %d\n", a, n[a]; printf "__errors %d\n", err }' <<<"$out"
	else
		sleep "$V2_CACHE_WAIT"
		out=$(curl -sf --max-time 10 "http://$MINIO_ADDR/minio/v2/metrics/cluster") ||
			die "cannot read MinIO metrics (is minio pid $MINIO_PID alive?)"
		awk '
			/^minio_s3_requests_(total|errors_total)\{/ {
				match($0, /api="[^"]*"/)
				api = tolower(substr($0, RSTART + 5, RLENGTH - 6))
				if ($0 ~ /^minio_s3_requests_total/) n[api] += $NF; else err += $NF
			}
			END { for (a in n) printf "%s %d\n", a, n[a]; printf "__errors %d\n", err }' <<<"$out"
	fi | sort
}

# scrape FILE writes the current counters to FILE. MinIO counts a request
# when its handler returns, which may be just after the client got its
# answer, so read until two reads 50 ms apart agree (at most 2 s).
scrape() {
	local file=$1 i
	scrape_once >"$file"
	[[ $METRICS == v3 ]] || return 0
	for ((i = 0; i < 40; i++)); do
		sleep 0.05
		scrape_once >"$file.2"
		if cmp -s "$file" "$file.2"; then
			rm -f "$file.2"
			return 0
		fi
		mv "$file.2" "$file"
	done
	log "warning: MinIO request counters still moving after 2 s"
}

# record_requests SET TOOL ROUND LABEL BEFORE AFTER appends the per-API
# differences to the raw results.
record_requests() {
	local set=$1 tool=$2 round=$3 label=$4 before=$5 after=$6
	awk -v pre="$set $tool $round $label" '
		NR == FNR { old[$1] = $2; next }
		{
			d = $2 - old[$1]
			if ($1 == "__errors") { errs = d; next }
			if (d > 0) { printf "%s req_%s %d\n", pre, $1, d; total += d }
		}
		END { printf "%s req_total %d\n%s req_errors %d\n", pre, total, pre, errs }' \
		"$before" "$after" >>"$RAW"
}

# req_brief SET TOOL ROUND LABEL prints "N requests (api=n ...)" from the raw
# results, for the progress log.
req_brief() {
	awk -v k="$1 $2 $3 $4" '
		$1 " " $2 " " $3 " " $4 == k && $5 ~ /^req_/ {
			if ($5 == "req_total") t = $6
			else if ($5 != "req_errors") d = d sprintf(" %s=%s", substr($5, 5), $6)
		}
		END { printf "%s req%s", t + 0, d == "" ? "" : " (" substr(d, 2) ")" }' "$RAW"
}

# ---------------------------------------------------------------------------
# Measurement.

# record_load SET TOOL ROUND LABEL records the 1-minute load average just
# before a step: other work on the host shows up there, and in the times.
record_load() {
	printf '%s %s %s %s load1 %s\n' "$1" "$2" "$3" "$4" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
}

# elapsed START END prints END-START in seconds, to the microsecond.
elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.6f", e - s }'; }

# timed SET TOOL ROUND LABEL CMD... runs CMD under GNU time (peak RSS) and
# timeout after a sync, and records its wall time, RSS and S3 requests.
timed() {
	local set=$1 tool=$2 round=$3 label=$4
	shift 4
	local logf=$LOGS/$set-$tool-$round-$label.log tf=$WORK/time.txt
	local b=$WORK/req-before.txt a=$WORK/req-after.txt t0 t1 rc=0 secs rss
	sync
	scrape "$b"
	record_load "$set" "$tool" "$round" "$label"
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%M' -o "$tf" timeout -k 10 "$CMD_TIMEOUT" "$@" </dev/null >"$logf" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	if ((rc != 0)); then
		{
			echo "--- command: $*"
			tail -n 30 "$logf"
		} >&2
		((rc == 124)) && die "$tool $label timed out after ${CMD_TIMEOUT}s on $set (round $round); log: $logf"
		die "$tool $label failed (exit $rc) on $set (round $round); log: $logf"
	fi
	scrape "$a"
	secs=$(elapsed "$t0" "$t1")
	rss=$(tail -n1 "$tf")
	printf '%s %s %s %s secs %s\n%s %s %s %s rss_kib %s\n' \
		"$set" "$tool" "$round" "$label" "$secs" "$set" "$tool" "$round" "$label" "$rss" >>"$RAW"
	record_requests "$set" "$tool" "$round" "$label" "$b" "$a"
	printf '  %-7s %-13s %9.3fs %6s MiB  %s\n' "$tool" "$label" "$secs" "$((rss / 1024))" \
		"$(req_brief "$set" "$tool" "$round" "$label")" >&2
}

# mount_start SET TOOL ROUND LABEL URL MNT mounts the repository at MNT,
# records the time until the mount is ready and the requests made so far,
# and sets MPID to the serving process.
mount_start() {
	local set=$1 tool=$2 round=$3 label=$4 url=$5 mnt=$6
	local logf=$LOGS/$set-$tool-$round-$label.log
	local b=$WORK/req-before.txt a=$WORK/req-after.txt t0 t1 secs rc=0 deadline
	mkdir -p "$mnt"
	is_mounted "$mnt" && die "$mnt is already a mount point"
	sync
	scrape "$b"
	record_load "$set" "$tool" "$round" "$label"
	MPID=
	case $tool in
	cairn)
		MOUNT_PID[$mnt]=""
		t0=$EPOCHREALTIME
		timeout -k 10 "$MOUNT_TIMEOUT" "$CAIRN" mount "$mnt" --repo "$url" --background </dev/null >"$logf" 2>&1 || rc=$?
		t1=$EPOCHREALTIME
		MPID=$(sed -n 's/.*mounted at .* (pid \([0-9][0-9]*\)).*/\1/p' "$logf" | tail -n1)
		MOUNT_PID[$mnt]=$MPID
		if ((rc != 0)) || ! is_mounted "$mnt"; then
			tail -n 20 "$logf" >&2
			die "cairn mount failed (exit $rc) on $set (round $round); log: $logf"
		fi
		[[ -n $MPID ]] || log "warning: cairn mount printed no pid; will only unmount it"
		;;
	restic)
		t0=$EPOCHREALTIME
		restic --repo "$url" mount "$mnt" </dev/null >"$logf" 2>&1 &
		MPID=$!
		MOUNT_PID[$mnt]=$MPID
		deadline=$((SECONDS + MOUNT_TIMEOUT))
		# Ready: mounted, and restic says it serves (it mounts first).
		until is_mounted "$mnt" && grep -q 'Now serving' "$logf"; do
			if ! kill -0 "$MPID" 2>/dev/null; then
				tail -n 20 "$logf" >&2
				die "restic mount exited before mounting on $set (round $round); log: $logf"
			fi
			((SECONDS < deadline)) || die "restic mount not ready after ${MOUNT_TIMEOUT}s; log: $logf"
			sleep 0.01
		done
		t1=$EPOCHREALTIME
		;;
	esac
	scrape "$a"
	secs=$(elapsed "$t0" "$t1")
	printf '%s %s %s %s secs %s\n' "$set" "$tool" "$round" "$label" "$secs" >>"$RAW"
	record_requests "$set" "$tool" "$round" "$label" "$b" "$a"
	printf '  %-7s %-13s %9.3fs %10s  %s\n' "$tool" "$label" "$secs" "" \
		"$(req_brief "$set" "$tool" "$round" "$label")" >&2
}

# mount_stop SET TOOL ROUND LABEL MNT records the peak RSS of the mount
# process (VmHWM), unmounts MNT and waits for the process to end.
mount_stop() {
	local set=$1 tool=$2 round=$3 label=$4 mnt=$5 pid=${MOUNT_PID[$5]:-} hwm=
	if [[ -n $pid && -r /proc/$pid/status ]]; then
		hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	fi
	[[ -n $hwm ]] && printf '%s %s %s %s rss_kib %s\n' "$set" "$tool" "$round" "$label" "$hwm" >>"$RAW"
	force_unmount "$mnt"
	stop_pid "$pid" "$tool mount process"
	unset 'MOUNT_PID[$mnt]'
	is_mounted "$mnt" && die "$mnt is still mounted"
	return 0
}

# mount_round SET SRC TOOL ROUND URL: the mount measurements of one round.
mount_round() {
	local set=$1 src=$2 tool=$3 round=$4 url=$5
	local mnt=$WORK/mnt-$tool dir name
	case $tool in
	cairn)
		name=${url%/}
		name=${name##*/}
		dir=$mnt/repos/$name/snapshots/latest$src
		;;
	restic) dir=$mnt/snapshots/latest$src ;;
	esac

	# ls -l: the first listing of the source directory in a fresh mount.
	mount_start "$set" "$tool" "$round" mount "$url" "$mnt"
	timed "$set" "$tool" "$round" ls_l ls -l "$dir"
	[[ -s $LOGS/$set-$tool-$round-ls_l.log ]] || die "$tool mount: ls -l $dir listed nothing"
	mount_stop "$set" "$tool" "$round" mount "$mnt"

	# ls -lR: the first recursive listing, in another fresh mount.
	mount_start "$set" "$tool" "$round" mount2 "$url" "$mnt"
	timed "$set" "$tool" "$round" ls_lR ls -lR "$dir"
	mount_stop "$set" "$tool" "$round" mount2 "$mnt"
	# The same entries as ls -lR of the source (which skips dot files).
	local want got entry='^[-dlcbps][-rwxsStT]\{9\}'
	# shellcheck disable=SC2010 # comparing ls output is the point
	want=$(ls -lR "$src" | grep -c "$entry" || true)
	got=$(grep -c "$entry" "$LOGS/$set-$tool-$round-ls_lR.log" || true)
	((got == want)) || log "warning: $tool mount: ls -lR showed $got entries, ls -lR of the source $want"
}

# cycle SET SRC TOOL ROUND: one full round for one tool, in its own bucket.
cycle() {
	local set=$1 src=$2 tool=$3 round=$4
	local bucket=s3bench-r$round-$set-$tool prefix=backups/$tool
	local tgt=$WORK/restore-$tool url
	case $tool in
	cairn) url=s3+http://$MINIO_ADDR/$bucket/$prefix ;;
	restic) url=s3:http://$MINIO_ADDR/$bucket/$prefix ;;
	esac
	export XDG_CACHE_HOME=$WORK/cache-$tool
	rm -rf "$tgt" "$XDG_CACHE_HOME" "$WORK/cache-empty"
	mkdir -p "$tgt" "$XDG_CACHE_HOME"

	local init backup snapshots restore
	case $tool in
	cairn)
		init=("$CAIRN" init --repo "$url")
		backup=("$CAIRN" backup --repo "$url" "$src")
		snapshots=("$CAIRN" snapshots --repo "$url")
		restore=("$CAIRN" restore --repo "$url" latest --target "$tgt")
		;;
	restic)
		init=(restic --repo "$url" init)
		backup=(restic --repo "$url" backup "$src")
		snapshots=(restic --repo "$url" snapshots)
		restore=(restic --repo "$url" restore latest --target "$tgt")
		;;
	esac

	timed "$set" "$tool" "$round" init "${init[@]}"
	timed "$set" "$tool" "$round" backup "${backup[@]}"
	timed "$set" "$tool" "$round" rebackup "${backup[@]}"
	printf '%s %s %s bucket bytes %s\n' "$set" "$tool" "$round" \
		"$(du -sb "$MINIO_DIR/data/$bucket" | cut -f1)" >>"$RAW"

	# snapshots: the first run fills whatever the backups left out of the
	# cache; the second is the warm one that counts.
	timed "$set" "$tool" "$round" snapshots_first "${snapshots[@]}"
	timed "$set" "$tool" "$round" snapshots "${snapshots[@]}"
	mkdir -p "$WORK/cache-empty"
	XDG_CACHE_HOME=$WORK/cache-empty timed "$set" "$tool" "$round" snapshots_cold "${snapshots[@]}"
	rm -rf "$WORK/cache-empty"

	timed "$set" "$tool" "$round" restore "${restore[@]}"
	# A snapshot holds the source under its absolute path.
	local restored=$tgt$src diffout=$LOGS/$set-$tool-$round-diff.txt
	[[ -d $restored ]] || die "$tool restore on $set: $restored does not exist (it has: $(find "$tgt" -mindepth 1 -maxdepth 4 | head -5 | tr '\n' ' '))"
	if ! diff -r --no-dereference "$src" "$restored" >"$diffout" 2>&1; then
		head -n 20 "$diffout" >&2
		die "$tool restore on $set differs from the source ($(wc -l <"$diffout") lines of diff in $diffout)"
	fi
	rm -rf "$tgt"

	if [[ $DO_MOUNT == 1 ]]; then
		mount_round "$set" "$src" "$tool" "$round" "$url"
	fi
	rm -rf "$XDG_CACHE_HOME"
}

# summarize SET SRC BYTES FILES prints the tables for one data set.
summarize() {
	local set=$1 src=$2 bytes=$3 files=$4
	awk -v set="$set" -v src="$src" -v bytes="$bytes" -v files="$files" -v runs="$RUNS" \
		-v domount="$DO_MOUNT" '
	function median(list,    a, n, i, j, t) {
		n = split(list, a, " ")
		if (n == 0) return ""
		for (i = 2; i <= n; i++) {  # insertion sort, n is small
			t = a[i] + 0
			for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
			a[j + 1] = t
		}
		return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	# med(tool, op, key): median over rounds; a request key missing in a
	# round that ran the op counts as 0 there.
	function med(tool, op, key,    r, l) {
		l = ""
		for (r in rounds) {
			if ((tool, op, r, key) in v) l = l " " v[tool, op, r, key]
			else if (key ~ /^req_/ && (tool, op, r, "req_total") in v) l = l " 0"
		}
		return median(l)
	}
	function f(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
	function ratio(r, c) { return (r == "" || c == "" || c == 0) ? "-" : sprintf("%.2fx", r / c) }
	function rate(s) { return (s == "" || s == 0) ? "-" : sprintf("%.1f", bytes / 1e6 / s) }
	function group(api) {
		if (api ~ /^(put|copy|newmultipart|completemultipart|makebucket)/) return "PUT"
		if (api ~ /^getobject/) return "GET"
		if (api ~ /^head/) return "HEAD"
		if (api ~ /^list/) return "LIST"
		if (api ~ /^(delete|abortmultipart)/) return "DEL"
		return "other"
	}
	# grp(tool, op, g): median of the per-round sums of group g.
	function grp(tool, op, g,    r, l, k, s, a) {
		l = ""
		for (r in rounds) {
			if (!((tool, op, r, "req_total") in v)) continue
			s = 0
			for (a in apis) if (group(a) == g && (tool, op, r, "req_" a) in v) s += v[tool, op, r, "req_" a]
			l = l " " s
		}
		return median(l)
	}
	function detail(tool, op,    a, m, s, n, i, j, t, keys) {
		n = 0
		for (a in apis) { m = med(tool, op, "req_" a); if (m != "" && m > 0) keys[++n] = a }
		for (i = 2; i <= n; i++) { t = keys[i]; for (j = i - 1; j >= 1 && keys[j] > t; j--) keys[j + 1] = keys[j]; keys[j + 1] = t }
		s = ""
		for (i = 1; i <= n; i++) s = s sprintf(" %s=%g", keys[i], med(tool, op, "req_" keys[i]))
		m = med(tool, op, "req_errors")
		if (m != "" && m > 0) s = s sprintf(" (failed: %g)", m)
		return s == "" ? " -" : s
	}
	$1 == set && $5 == "load1" {
		loads = loads " " $6; nload++
		if ($6 + 0 > loadmax) loadmax = $6 + 0
		next
	}
	$1 == set {
		v[$2, $4, $3, $5] = $6
		rounds[$3] = 1
		if ($5 ~ /^req_/ && $5 != "req_total" && $5 != "req_errors") apis[substr($5, 5)] = 1
	}
	END {
		printf "\n== %s: %s — %d files, %.1f MB — median of %d rounds, S3 on a local MinIO ==\n", set, src, files, bytes / 1e6, runs
		printf "(restic/cairn > 1: cairn faster or fewer requests; MB = 10^6 bytes of source data)\n"
		if (nload) printf "(1-minute load average before the steps: median %.2f, max %.2f; other work on the host skews times)\n", median(loads), loadmax
		printf "\n"
		nops = split("init backup rebackup snapshots snapshots_cold restore mount ls_l ls_lR", ops, " ")
		split("init|backup|re-backup|snapshots (warm cache)|snapshots (empty cache)|restore|mount (until ready)|mount: first ls -l|mount: first ls -lR", names, "|")
		if (domount != 1) nops = 6
		printf "%-24s %9s %9s %13s %11s %11s %10s %10s\n", "time", "cairn s", "restic s", "restic/cairn", "cairn MB/s", "restic MB/s", "cairn RSS", "restic RSS"
		for (i = 1; i <= nops; i++) {
			op = ops[i]
			c = med("cairn", op, "secs"); r = med("restic", op, "secs")
			# The ls rows show the mount process, not ls.
			rop = op == "ls_l" ? "mount" : op == "ls_lR" ? "mount2" : op == "mount" ? "" : op
			cm = rop == "" ? "" : med("cairn", rop, "rss_kib"); rm = rop == "" ? "" : med("restic", rop, "rss_kib")
			thr = (op == "backup" || op == "rebackup" || op == "restore")
			printf "%-24s %9s %9s %13s %11s %11s %10s %10s\n", names[i], f(c, "%.3f"), f(r, "%.3f"), ratio(r, c),
				thr ? rate(c) : "-", thr ? rate(r) : "-",
				cm == "" ? "-" : sprintf("%.0f MiB", cm / 1024), rm == "" ? "-" : sprintf("%.0f MiB", rm / 1024)
		}
		c = med("cairn", "bucket", "bytes"); r = med("restic", "bucket", "bytes")
		printf "%-24s %9s %9s %13s   (MB in the bucket after both backups, MinIO drive)\n", "bucket size",
			c == "" ? "-" : sprintf("%.1f", c / 1e6), r == "" ? "-" : sprintf("%.1f", r / 1e6), ratio(r, c)
		if (domount == 1)
			printf "(RSS of the ls rows: peak RSS of the mount process serving them, read after the listing)\n"

		ng = split("PUT GET HEAD LIST DEL other", gs, " ")
		printf "\n%-24s %7s %7s %13s   %-35s %s\n", "S3 requests", "cairn", "restic", "restic/cairn",
			"cairn PUT/GET/HEAD/LIST/DEL/other", "restic PUT/GET/HEAD/LIST/DEL/other"
		for (i = 1; i <= nops; i++) {
			op = ops[i]
			c = med("cairn", op, "req_total"); r = med("restic", op, "req_total")
			cb = rb = ""
			for (j = 1; j <= ng; j++) {
				x = grp("cairn", op, gs[j]); cb = cb (j > 1 ? "/" : "") (x == "" ? "-" : sprintf("%g", x))
				x = grp("restic", op, gs[j]); rb = rb (j > 1 ? "/" : "") (x == "" ? "-" : sprintf("%g", x))
			}
			printf "%-24s %7s %7s %13s   %-35s %s\n", names[i], f(c, "%g"), f(r, "%g"), ratio(r, c), cb, rb
		}
		printf "\nS3 requests by API (median):\n"
		for (i = 1; i <= nops; i++) {
			op = ops[i]
			printf "  %-24s cairn: %s\n  %-24s restic:%s\n", names[i], substr(detail("cairn", op), 2), "", detail("restic", op)
		}

		printf "\ntargets:\n"
		c = med("cairn", "backup", "secs"); r = med("restic", "backup", "secs")
		printf "  %-44s %-28s %s\n", "backup at least as fast as restic", sprintf("%s s vs %s s", f(c, "%.2f"), f(r, "%.2f")), (c != "" && r != "" && c <= r) ? "met" : "MISSED"
		c = med("cairn", "restore", "secs"); r = med("restic", "restore", "secs")
		printf "  %-44s %-28s %s\n", "restore at least as fast as restic", sprintf("%s s vs %s s", f(c, "%.2f"), f(r, "%.2f")), (c != "" && r != "" && c <= r) ? "met" : "MISSED"
		c = med("cairn", "backup", "req_total"); r = med("restic", "backup", "req_total")
		printf "  %-44s %-28s %s\n", "fewer S3 requests per backup than restic", sprintf("%s vs %s", f(c, "%g"), f(r, "%g")), (c != "" && r != "" && c < r) ? "met" : "MISSED"
		c = med("cairn", "snapshots", "secs")
		printf "  %-44s %-28s %s\n", "snapshots under 1 s (warm metadata cache)", sprintf("%s s", f(c, "%.3f")), (c != "" && c < 1) ? "met" : "MISSED"
		if (domount == 1) {
			c = med("cairn", "ls_l", "secs")
			printf "  %-44s %-28s %s\n", "first mount ls -l under 1 s (warm cache)", sprintf("%s s", f(c, "%.3f")), (c != "" && c < 1) ? "met" : "MISSED"
			c = med("cairn", "ls_lR", "secs")
			printf "  %-44s %-28s %s\n", "first mount ls -lR under 1 s (warm cache)", sprintf("%s s", f(c, "%.3f")), (c != "" && c < 1) ? "met" : "MISSED"
		}
	}' "$RAW"
}

# ---------------------------------------------------------------------------

set_names=()
for s in $SETS; do
	case $s in
	gosrc) if [[ $QUICK == 1 ]]; then set_names+=(gosrc-net); else set_names+=(gosrc); fi ;;
	file) if [[ $QUICK == 1 ]]; then set_names+=(s3-file-quick); else set_names+=(s3-file); fi ;;
	*) die "unknown data set '$s' in BENCH_S3_SETS (known: gosrc file)" ;;
	esac
done
((${#set_names[@]} > 0)) || die "BENCH_S3_SETS names no data set"

restic_version=$(restic version)
cairn_version="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) (bin sha256 $(sha256sum "$CAIRN" | cut -c1-12))"
minio_version=$("$MINIO" --version 2>/dev/null | head -n1 || echo unknown)
log "restic: $restic_version"
log "cairn:  $cairn_version"
log "minio:  $minio_version ($MINIO)"

for set in "${set_names[@]}"; do prepare "$set"; done

start_minio
{
	echo "# cairn S3 bench $(date -u +%Y-%m-%dT%H:%M:%SZ), runs=$RUNS quick=$QUICK mount=$DO_MOUNT"
	echo "# host: $(nproc) cpus, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# restic: $restic_version"
	echo "# cairn: $cairn_version"
	echo "# minio: $minio_version on $MINIO_ADDR (plain HTTP, one drive under $MINIO_DIR), request metrics: $METRICS"
	echo "# columns: dataset tool round op key value"
	echo "#   keys: secs (wall), rss_kib (peak RSS; mounts: VmHWM of the mount process), load1 (before the step),"
	echo "#         req_total, req_errors (failed requests), req_<api> (S3 requests by MinIO api name);"
	echo "#   ops: init backup rebackup snapshots_first snapshots snapshots_cold restore mount ls_l mount2 ls_lR; bucket bytes"
} >"$RAW"

declare -A set_src set_bytes set_files
for set in "${set_names[@]}"; do
	src=$DATA/$set
	bytes=$(du -sb "$src" | cut -f1)
	files=$(find "$src" -type f | wc -l)
	set_src[$set]=$src set_bytes[$set]=$bytes set_files[$set]=$files
	echo "# dataset $set $src files=$files bytes=$bytes" >>"$RAW"

	log "data set $set: $src ($files files, $((bytes / 1000000)) MB)"
	# Read the source once so that the first timed backup does not pay for a
	# cold page cache that later ones do not.
	find "$src" -type f -print0 | xargs -0 cat >/dev/null

	for ((round = 1; round <= RUNS; round++)); do
		order=(cairn restic)
		((round % 2 == 0)) && order=(restic cairn)
		log "$set round $round/$RUNS"
		for tool in "${order[@]}"; do
			cycle "$set" "$src" "$tool" "$round"
		done
	done
done

# Check the counting against the metric MinIO documents: v2's cluster total
# (cached for several seconds) must come to the v3 total once it refreshes.
if [[ $METRICS == v3 ]]; then
	v3_total=$(scrape_once | awk '$1 != "__errors" { s += $2 } END { print s + 0 }')
	v2_total=
	for ((i = 0; i < 10; i++)); do
		v2_total=$(curl -sf --max-time 10 "http://$MINIO_ADDR/minio/v2/metrics/cluster" |
			awk '/^minio_s3_requests_total\{/ { s += $NF } END { print s + 0 }') || v2_total=
		[[ $v2_total == "$v3_total" ]] && break
		sleep 3
	done
	echo "# check: all S3 requests served: v3 minio_api_requests_total $v3_total, v2 cluster minio_s3_requests_total ${v2_total:-?}" >>"$RAW"
	[[ $v2_total == "$v3_total" ]] || log "warning: v2 cluster request total ${v2_total:-?} != v3 total $v3_total"
fi
stop_minio

{
	echo "restic: $restic_version"
	echo "cairn:  $cairn_version"
	echo "minio:  $minio_version on loopback, plain HTTP"
	for set in "${set_names[@]}"; do
		summarize "$set" "${set_src[$set]}" "${set_bytes[$set]}" "${set_files[$set]}"
	done
} | tee "$SUMMARY"
log "raw results: $RAW; tables: $SUMMARY"
