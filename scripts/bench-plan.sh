#!/usr/bin/env bash
# bench-plan.sh measures multi-repository plan runs (`cairn backup --plan`):
# a plan over one local repository against the same plan over two, whose
# second repository shares the first one's chunker seed (`init
# --chunker-from`), and over two with different seeds. The source is a copy
# of the Go distribution's source tree plus one generated 1 GiB file (half
# random, half compressible text).
#
# For each round (fresh repositories; the page cache dropped before each
# backup, so the source is read from disk) and each variant, in an order that
# rotates between rounds: wall time, peak RSS, and the bytes the process read
# (rchar: every read(2), source and repository; read_bytes: what came from
# the block device), taken from /proc/PID/io when it exits (a waitid
# WNOWAIT wrapper in python3). "Each source byte is read once" shows as
# read bytes of two repositories equal to one's.
#
# Raw numbers go to bench/plan.txt, the table to bench/plan-summary.txt and
# stdout.
#
# Environment:
#   BENCH_DIR    data sets and repositories (default /tmp/cairn-bench)
#   BENCH_RUNS   rounds (default 3; medians reported)
#   BENCH_QUICK  1: GOROOT/src/net and a 64 MiB file
#   CAIRN        cairn binary (default bin/cairn)
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/cairn-bench}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
CAIRN=${CAIRN:-$ROOT/bin/cairn}
GO=${GO:-go}
DATA=$BENCH_DIR/data
WORK=$BENCH_DIR/plan-work
OUT=$ROOT/bench
RAW=$OUT/plan.txt
SUMMARY=$OUT/plan-summary.txt

log() { printf 'bench-plan: %s\n' "$*" >&2; }
die() { printf '\nbench-plan: FAILED: %s\n' "$*" >&2; exit 1; }

[[ -x $CAIRN ]] || die "$CAIRN not found: run make build"
command -v python3 >/dev/null || die "python3 is needed to read /proc/PID/io at exit"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"

unset CAIRN_PASSWORD_FILE CAIRN_CONFIG
export CAIRN_PASSWORD=cairn-bench-password
export XDG_CACHE_HOME=$WORK/cache
mkdir -p "$DATA" "$WORK" "$OUT"
trap 'rm -rf "$WORK"' EXIT

# The source: the Go tree (copied once, as bench.sh does) and a big file.
if [[ $QUICK == 1 ]]; then
	TREE=$DATA/plan-gosrc-net BIGSIZE=$((64 << 20)) BIG=$DATA/plan-big-quick
	GOSUB=/net
else
	TREE=$DATA/plan-gosrc BIGSIZE=$((1 << 30)) BIG=$DATA/plan-big
	GOSUB=
fi
if [[ ! -e $TREE.done ]]; then
	rm -rf "$TREE"
	mkdir -p "$TREE"
	log "copying $("$GO" env GOROOT)/src$GOSUB to $TREE (once)"
	cp -a "$("$GO" env GOROOT)/src$GOSUB/." "$TREE/"
	touch "$TREE.done"
fi
if [[ ! -e $BIG.done ]]; then
	mkdir -p "$BIG"
	log "generating $BIG/file, $((BIGSIZE >> 20)) MiB (once)"
	{
		head -c $((BIGSIZE / 2)) /dev/zero |
			openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000
		awk -v n=$((BIGSIZE - BIGSIZE / 2)) 'BEGIN { srand(7); for (t = 0; t < n; ) {
			l = sprintf("%012d level=%d took=%.4fms id=%08x backup restore snapshot\n", t, int(rand()*5), rand()*100, int(rand()*2147483647))
			if (t + length(l) > n) l = substr(l, 1, n - t); printf "%s", l; t += length(l) } }'
	} >"$BIG/file"
	touch "$BIG.done"
fi
SRC_BYTES=$(($(du -sb "$TREE" | cut -f1) + $(stat -c %s "$BIG/file")))

# measure LOG CMD...: runs CMD, prints "wall rss_kib rchar read_bytes".
measure() {
	local logf=$1
	shift
	python3 - "$logf" "$@" <<-'EOF'
	import os, sys, time
	logf, argv = sys.argv[1], sys.argv[2:]
	t0 = time.monotonic()
	pid = os.fork()
	if pid == 0:
	    fd = os.open(logf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
	    os.dup2(fd, 1); os.dup2(fd, 2)
	    os.execvp(argv[0], argv)
	os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
	t1 = time.monotonic()
	io = dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().split("\n") if l)
	_, status, ru = os.wait4(pid, 0)
	if os.waitstatus_to_exitcode(status) != 0:
	    sys.exit(f"{' '.join(argv)} failed: see {logf}")
	print(f"{t1 - t0:.3f} {ru.ru_maxrss} {io['rchar']} {io['read_bytes']}")
	EOF
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || log "warning: cannot drop caches (not root?): reads are warm"
}

VARIANTS=(one two-same-seed two-seeds)
{
	echo "# cairn plan bench $(date -u +%Y-%m-%dT%H:%M:%SZ), runs=$RUNS quick=$QUICK"
	echo "# host: $(nproc) cpus, $(uname -r); source: $TREE + $BIG/file, $SRC_BYTES bytes"
	echo "# variant round wall_s rss_kib rchar read_bytes"
} >"$RAW"

for ((round = 1; round <= RUNS; round++)); do
	rm -rf "$WORK/r" && mkdir -p "$WORK/r"
	r=$WORK/r
	"$CAIRN" init --repo "$r/one" >/dev/null 2>&1
	"$CAIRN" init --repo "$r/same-a" >/dev/null 2>&1
	"$CAIRN" init --repo "$r/same-b" --chunker-from "$r/same-a" >/dev/null 2>&1
	"$CAIRN" init --repo "$r/seeds-a" >/dev/null 2>&1
	"$CAIRN" init --repo "$r/seeds-b" >/dev/null 2>&1
	cat >"$r/config.json" <<-EOF
	{
	  "repos": {
	    "one": {"url": "$r/one"},
	    "same-a": {"url": "$r/same-a"}, "same-b": {"url": "$r/same-b"},
	    "seeds-a": {"url": "$r/seeds-a"}, "seeds-b": {"url": "$r/seeds-b"}
	  },
	  "plans": {
	    "one": {"sources": ["$TREE", "$BIG"], "repos": ["one"]},
	    "two-same-seed": {"sources": ["$TREE", "$BIG"], "repos": ["same-a", "same-b"]},
	    "two-seeds": {"sources": ["$TREE", "$BIG"], "repos": ["seeds-a", "seeds-b"]}
	  }
	}
	EOF
	n=${#VARIANTS[@]}
	for ((i = 0; i < n; i++)); do
		v=${VARIANTS[$(((i + round - 1) % n))]}
		drop_caches
		m=$(measure "$WORK/$v-$round.log" "$CAIRN" backup --plan "$v" --config "$r/config.json" --quiet)
		echo "$v $round $m" >>"$RAW"
		log "round $round $v: $m (wall s, rss KiB, rchar, read_bytes)"
	done
done

awk -v src="$SRC_BYTES" -v runs="$RUNS" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/^#/ { next }
{ wall[$1] = wall[$1] " " $3; rss[$1] = rss[$1] " " $4; rchar[$1] = rchar[$1] " " $5; rb[$1] = rb[$1] " " $6 }
END {
	printf "\n== plan runs: one repository vs two — medians of %d rounds, page cache dropped before each ==\n", runs
	printf "source: %.1f MB (Go src tree + generated file); MB = 10^6 bytes\n\n", src / 1e6
	printf "%-16s %9s %9s %10s %12s %12s %12s\n", "plan over", "wall s", "vs one", "MB/s", "rchar MB", "disk read MB", "peak RSS MiB"
	split("one two-same-seed two-seeds", vs, " ")
	w1 = median(wall["one"])
	for (k = 1; k <= 3; k++) {
		v = vs[k]; w = median(wall[v])
		printf "%-16s %9.2f %8.2fx %10.1f %12.1f %12.1f %12.0f\n", v, w, w / w1, src / 1e6 / w,
			median(rchar[v]) / 1e6, median(rb[v]) / 1e6, median(rss[v]) / 1024
	}
	printf "\ntarget: two repositories at most 1.3x the time of one; disk reads of two equal to one (each source byte read once)\n"
}' "$RAW" | tee "$SUMMARY"
