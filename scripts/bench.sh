#!/usr/bin/env bash
# bench.sh times whole cairn commands side by side with restic (0.19.1
# from ../shared/peers, or $RESTIC; default settings) in one run, on two
# data sets:
#
#   gosrc  a copy of the Go distribution's source tree, $(go env GOROOT)/src
#   usrshare  a copy of /usr/share: tens of thousands of small files of a
#          system's shared data
#   gen    generated: 4 files of 128 MiB (half random, half compressible
#          text) and 5000 small files of 1-16 KiB in 50 directories
#
# For each data set, tool and round: init a fresh repository, back up, back
# up again unchanged, restore everything into an empty directory and compare
# it with the source (diff -r). Each step is timed with GNU time (wall
# seconds, peak RSS); the repository size is taken with du -sb after the
# second backup. Rounds alternate which tool goes first.
#
# Data sets are prepared once under $BENCH_DIR/data and reused, so their
# paths and contents are the same in every run. Raw numbers go to
# bench/results.txt, the tables to bench/summary.txt and stdout.
#
# Environment:
#   BENCH_DIR    where data sets, repositories and restores live
#                (default /tmp/cairn-bench; needs about 2 GB for the full run)
#   BENCH_RUNS   rounds per data set and tool (default 3; medians reported)
#   BENCH_QUICK  1: small smoke-test sets (GOROOT/src/net, one 32 MiB file
#                and 200 small files)
#   BENCH_SETS   data sets to run (default "gosrc gen usrshare")
#   BENCH_DROP   1 (default as root): drop the page cache before each
#                backup and restore (the re-backup runs warm), as a backup
#                at night meets a cold cache; 0: keep it
#   RESTIC, KOPIA  the peers (scripts/peers.sh); kopia runs when there is one
#   CAIRN        cairn binary (default bin/cairn; skipped with a warning if
#                it is missing)
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/cairn-bench}
# RESTIC= and KOPIA= choose the peers (default: ../shared/peers/).
source "$ROOT/scripts/peers.sh"
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
SETS=${BENCH_SETS:-gosrc gen usrshare}
DROP=${BENCH_DROP:-$((EUID == 0 ? 1 : 0))}
CAIRN=${CAIRN:-$ROOT/bin/cairn}
GO=${GO:-go}

DATA=$BENCH_DIR/data
WORK=$BENCH_DIR/work
OUT=$ROOT/bench
RAW=$OUT/results.txt
SUMMARY=$OUT/summary.txt

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf '\nbench: FAILED: %s\n' "$*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) not found; run scripts/deps.sh"
command -v restic >/dev/null || die "restic not found; run scripts/deps.sh"

TOOLS=()
if [[ -x $CAIRN ]]; then
	TOOLS+=(cairn)
else
	cat >&2 <<-EOF
	bench: ################################################################
	bench: WARNING: $CAIRN not found: SKIPPING CAIRN, timing restic only.
	bench: Run 'make build' (or 'make bench') for the comparison.
	bench: ################################################################
	EOF
fi
TOOLS+=(restic)
if command -v kopia >/dev/null; then
	TOOLS+=(kopia)
fi

# Passwords come from the environment; make sure nothing the caller has set
# overrides them or points the tools at another repository.
unset CAIRN_PASSWORD_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE
export CAIRN_PASSWORD=cairn-bench-password
export RESTIC_PASSWORD=cairn-bench-password
export KOPIA_PASSWORD=cairn-bench-password KOPIA_CHECK_FOR_UPDATES=false
# Local caches of both tools go to a per-run directory that is removed with
# the repositories, so rounds start equal and nothing piles up in ~/.cache.
export XDG_CACHE_HOME=$WORK/cache

mkdir -p "$DATA" "$WORK" "$OUT"
exec 9>"$BENCH_DIR/lock"
flock -n 9 || die "another bench.sh is running on $BENCH_DIR"

cleanup() {
	rm -rf "$WORK"/repo-* "$WORK"/restore-* "$WORK/cache"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# Data generation. Everything is deterministic for a given seed: random bytes
# are an AES-CTR keystream (openssl), text comes from awk's seeded rand().

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

# text_bytes N SEED writes exactly N bytes of log-like text to stdout: unique
# lines (so chunks do not deduplicate) that compress about 3-4x.
text_bytes() {
	# awk's srand wants a number (a string seed silently becomes 0), and
	# mawk's rand() degenerates for seeds of 2^31 and above.
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

# gen_big FILE SIZE SEED: first half random, second half text.
gen_big() {
	local file=$1 size=$2 seed=$3 half=$(($2 / 2))
	{
		random_bytes "$half" "$seed"
		text_bytes $((size - half)) "$seed"
	} >"$file"
}

# gen_small DIR COUNT NDIRS SEED: COUNT files of 1-16 KiB spread over NDIRS
# directories, alternately random and text, cut from two generated pools.
gen_small() {
	local dir=$1 count=$2 ndirs=$3 seed=$4 list
	list=$(awk -v count="$count" -v ndirs="$ndirs" -v seed="$seed" 'BEGIN {
		srand(seed)
		for (i = 0; i < count; i++) {
			size = 1024 + int(rand() * (15 * 1024 + 1))
			kind = i % 2
			printf "d%02d/f%05d %d %d %d\n", i % ndirs, i, size, kind, off[kind]
			off[kind] += size
		}
		printf "pools %d %d\n", off[0], off[1]
	}')
	local pools
	pools=$(tail -n1 <<<"$list")
	read -r _ rand_total text_total <<<"$pools"
	random_bytes "$rand_total" "$seed-small" >"$dir/.pool0"
	text_bytes "$text_total" "$seed-small" >"$dir/.pool1"
	local d
	for ((d = 0; d < ndirs; d++)); do mkdir -p "$dir/$(printf 'd%02d' "$d")"; done
	local name size kind off
	while read -r name size kind off; do
		[[ $name == pools ]] && continue
		dd if="$dir/.pool$kind" of="$dir/$name" bs=64K iflag=skip_bytes,count_bytes \
			skip="$off" count="$size" status=none
	done <<<"$list"
	rm -f "$dir/.pool0" "$dir/.pool1"
}

# prepare NAME creates data set NAME in $DATA/NAME unless it is already
# complete (a NAME.done marker next to it records completion).
prepare() {
	local name=$1 dir=$DATA/$1
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
	usrshare)
		log "copying /usr/share to $dir (once)"
		cp -a /usr/share/. "$dir/"
		date -u >"$dir.done"
		;;
	gen)
		log "generating $dir (once; 4 x 128 MiB + 5000 small files)"
		mkdir -p "$dir/big" "$dir/small"
		local i
		for i in 1 2 3 4; do gen_big "$dir/big/file$i" $((128 << 20)) "big$i"; done
		gen_small "$dir/small" 5000 50 1
		date -u >"$dir.done"
		;;
	gen-quick)
		log "generating $dir (once; 1 x 32 MiB + 200 small files)"
		mkdir -p "$dir/big" "$dir/small"
		gen_big "$dir/big/file1" $((32 << 20)) big1
		gen_small "$dir/small" 200 5 1
		date -u >"$dir.done"
		;;
	*) die "unknown data set $name" ;;
	esac
}

# ---------------------------------------------------------------------------
# Measurement.

# tool_cmd TOOL OP REPO [ARG] sets the array CMD to the command line for OP
# (init, backup, restore) with the tool's default settings.
tool_cmd() {
	local tool=$1 op=$2 repo=$3 arg=${4:-}
	case $tool/$op in
	cairn/init) CMD=("$CAIRN" init --repo "$repo") ;;
	cairn/backup) CMD=("$CAIRN" backup --repo "$repo" "$arg") ;;
	cairn/restore) CMD=("$CAIRN" restore --repo "$repo" latest --target "$arg") ;;
	restic/init) CMD=(restic --repo "$repo" init) ;;
	restic/backup) CMD=(restic --repo "$repo" backup "$arg") ;;
	restic/restore) CMD=(restic --repo "$repo" restore latest --target "$arg") ;;
	# kopia keeps its connection to a repository in a config file, and
	# restores the latest snapshot of a source path into the target itself.
	kopia/init) CMD=(kopia --config-file "$repo.config" repository create filesystem --path "$repo") ;;
	kopia/backup) CMD=(kopia --config-file "$repo.config" snapshot create "$arg") ;;
	kopia/restore) CMD=(kopia --config-file "$repo.config" snapshot restore "$KOPIA_SOURCE" "$arg") ;;
	*) die "no command for $tool/$op" ;;
	esac
}

# timed SET TOOL ROUND LABEL CMD... runs CMD under GNU time after a sync and
# appends "SET TOOL ROUND LABEL SECONDS MAXRSS_KIB" to the raw results.
timed() {
	local set=$1 tool=$2 round=$3 label=$4
	shift 4
	local logf=$WORK/logs/$set-$tool-$round-$label.log tf=$WORK/time.txt
	sync
	if [[ $DROP == 1 && ($label == backup || $label == restore) ]]; then
		echo 3 >/proc/sys/vm/drop_caches
	fi
	if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" </dev/null >"$logf" 2>&1; then
		{
			echo "--- command: $*"
			tail -n 30 "$logf"
			echo "--- $(head -n1 "$tf")"
		} >&2
		die "$tool $label failed on $set (round $round); log: $logf"
	fi
	local secs rss
	read -r secs rss < <(tail -n1 "$tf")
	printf '%s %s %s %s %s %s\n' "$set" "$tool" "$round" "$label" "$secs" "$rss" >>"$RAW"
	printf '  %-7s %-10s %8ss %8s MiB\n' "$tool" "$label" "$secs" "$((rss / 1024))" >&2
}

# cycle SET SRC TOOL ROUND: one full round for one tool.
cycle() {
	local set=$1 src=$2 tool=$3 round=$4
	local repo=$WORK/repo-$tool tgt=$WORK/restore-$tool
	rm -rf "$repo" "$repo.config" "$tgt" "$XDG_CACHE_HOME"
	mkdir -p "$tgt" "$XDG_CACHE_HOME"
	KOPIA_SOURCE=$src

	tool_cmd "$tool" init "$repo"
	timed "$set" "$tool" "$round" init "${CMD[@]}"
	tool_cmd "$tool" backup "$repo" "$src"
	timed "$set" "$tool" "$round" backup "${CMD[@]}"
	timed "$set" "$tool" "$round" rebackup "${CMD[@]}"

	local size
	size=$(du -sb "$repo" | cut -f1)
	printf '%s %s %s repo_bytes %s -\n' "$set" "$tool" "$round" "$size" >>"$RAW"

	tool_cmd "$tool" restore "$repo" "$tgt"
	timed "$set" "$tool" "$round" restore "${CMD[@]}"

	# A snapshot holds the source under its absolute path (kopia's
	# restore puts the source's contents at the target).
	local restored=$tgt$src diffout=$WORK/logs/$set-$tool-$round-diff.txt
	[[ $tool == kopia ]] && restored=$tgt
	[[ -d $restored ]] || die "$tool restore on $set: $restored does not exist (it has: $(find "$tgt" -mindepth 1 -maxdepth 4 | head -5 | tr '\n' ' '))"
	if ! diff -r --no-dereference "$src" "$restored" >"$diffout" 2>&1; then
		head -n 20 "$diffout" >&2
		die "$tool restore on $set differs from the source ($(wc -l <"$diffout") lines of diff in $diffout)"
	fi

	rm -rf "$repo" "$repo.config" "$tgt" "$XDG_CACHE_HOME"
}

# summarize SET SRC BYTES FILES prints the table for one data set: per
# operation each tool's median seconds and, for each peer, its time over
# cairn's (> 1: cairn faster), then MB/s and peak RSS.
summarize() {
	local set=$1 src=$2 bytes=$3 files=$4
	awk -v set="$set" -v src="$src" -v bytes="$bytes" -v files="$files" -v runs="$RUNS" -v tools="${TOOLS[*]}" '
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
	function f(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
	function ratio(r, c) { return (r == "" || c == "" || c == 0) ? "-" : sprintf("%.2fx", r / c) }
	function rate(s) { return (s == "" || s == 0) ? "-" : sprintf("%.1f", bytes / 1e6 / s) }
	$1 == set {
		if ($4 == "repo_bytes") { size[$2] = size[$2] " " $5; next }
		secs[$2, $4] = secs[$2, $4] " " $5
		rss[$2, $4] = rss[$2, $4] " " $6
	}
	END {
		nt = split(tools, tl, " ")
		printf "\n== %s: %s — %d files, %.1f MB — median of %d rounds ==\n", set, src, files, bytes / 1e6, runs
		printf "(peer/cairn > 1: cairn faster or smaller; MB = 10^6 bytes of source data)\n\n"
		printf "%-10s", "operation"
		for (t = 1; t <= nt; t++) printf " %9s", tl[t] " s"
		for (t = 1; t <= nt; t++) if (tl[t] != "cairn") printf " %13s", tl[t] "/cairn"
		for (t = 1; t <= nt; t++) printf " %11s", tl[t] " MB/s"
		for (t = 1; t <= nt; t++) printf " %11s", tl[t] " RSS"
		printf "\n"
		n = split("init backup rebackup restore", ops, " ")
		split("init backup re-backup restore", names, " ")
		for (i = 1; i <= n; i++) {
			op = ops[i]
			printf "%-10s", names[i]
			for (t = 1; t <= nt; t++) printf " %9s", f(median(secs[tl[t], op]), "%.2f")
			c = median(secs["cairn", op])
			for (t = 1; t <= nt; t++) if (tl[t] != "cairn") printf " %13s", ratio(median(secs[tl[t], op]), c)
			for (t = 1; t <= nt; t++) printf " %11s", op == "init" ? "-" : rate(median(secs[tl[t], op]))
			for (t = 1; t <= nt; t++) { m = median(rss[tl[t], op]); printf " %11s", m == "" ? "-" : sprintf("%.0f MiB", m / 1024) }
			printf "\n"
		}
		printf "%-10s", "repo size"
		for (t = 1; t <= nt; t++) { m = median(size[tl[t]]); printf " %9s", m == "" ? "-" : sprintf("%.1f", m / 1e6) }
		c = median(size["cairn"])
		for (t = 1; t <= nt; t++) if (tl[t] != "cairn") printf " %13s", ratio(median(size[tl[t]]), c)
		printf "   (MB on disk after both backups)\n"
	}' "$RAW"
}

# ---------------------------------------------------------------------------

set_names=()
for s in $SETS; do
	case $s in
	gosrc) if [[ $QUICK == 1 ]]; then set_names+=(gosrc-net); else set_names+=(gosrc); fi ;;
	gen) if [[ $QUICK == 1 ]]; then set_names+=(gen-quick); else set_names+=(gen); fi ;;
	usrshare) [[ $QUICK == 1 ]] || set_names+=(usrshare) ;;
	*) die "unknown data set '$s' in BENCH_SETS (known: gosrc gen usrshare)" ;;
	esac
done

restic_version=$(restic version)
kopia_version=-
if command -v kopia >/dev/null; then kopia_version=$(kopia --version | head -n1); fi
cairn_version=-
if [[ " ${TOOLS[*]} " == *" cairn "* ]]; then
	cairn_version="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) (bin sha256 $(sha256sum "$CAIRN" | cut -c1-12))"
fi
log "restic: $restic_version"
log "cairn:  $cairn_version"

mkdir -p "$WORK/logs"
rm -f "$WORK"/logs/*
{
	echo "# cairn bench $(date -u +%Y-%m-%dT%H:%M:%SZ), runs=$RUNS quick=$QUICK"
	echo "# host: $(nproc) cpus, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	echo "# restic: $restic_version"
	echo "# kopia: $kopia_version"
	echo "# cairn: $cairn_version"
	echo "# tools: ${TOOLS[*]}; bench dir: $BENCH_DIR"
	echo "# columns: dataset tool round op wall_seconds maxrss_kib | dataset tool round repo_bytes bytes -"
} >"$RAW"

declare -A set_src set_bytes set_files
for set in "${set_names[@]}"; do
	prepare "$set"
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
		# Each round starts with the next tool, so none always goes first.
		local_n=${#TOOLS[@]}
		order=()
		for ((k = 0; k < local_n; k++)); do order+=("${TOOLS[(k + round - 1) % local_n]}"); done
		log "$set round $round/$RUNS"
		for tool in "${order[@]}"; do
			cycle "$set" "$src" "$tool" "$round"
		done
	done
done

{
	echo "restic: $restic_version"
	echo "kopia:  $kopia_version"
	echo "cairn:  $cairn_version"
	for set in "${set_names[@]}"; do
		summarize "$set" "${set_src[$set]}" "${set_bytes[$set]}" "${set_files[$set]}"
	done
	if [[ " ${TOOLS[*]} " != *" cairn "* ]]; then
		echo
		echo "WARNING: cairn was skipped ($CAIRN not found); only restic was measured."
	fi
} | tee "$SUMMARY"
log "raw results: $RAW; tables: $SUMMARY"
