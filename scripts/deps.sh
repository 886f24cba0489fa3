#!/usr/bin/env bash
# deps.sh installs what cairn's tests and benchmarks need from outside Go:
# Debian packages (FUSE, rsync, restic for comparisons, xattr/ACL tools,
# GNU time, hyperfine, and nano and vim, which the plans/ tests drive)
# and, when asked with the argument "minio", a MinIO server binary for the
# S3 backend tests.
#
# It is idempotent and quick when everything is present: it only runs
# apt-get (update + install) for packages that are missing. It needs no
# terminal and is meant to run as root in CI (`bash .ci/run`).
#
# Usage: scripts/deps.sh [demo] [minio]   (demo: only what make run needs)
set -euo pipefail

# Debian packages. Presence is checked with dpkg (fast, no network), not with
# command -v, because some packages matter for more than one command (fuse3
# ships fusermount3 and the kernel helper setup, attr and acl several tools).
PACKAGES=(fuse3 rsync restic attr acl time hyperfine nano vim)
# DEMO_PACKAGES are what `make run` (scripts/demo.sh) uses: fusermount3,
# rsync and getfattr.
DEMO_PACKAGES=(fuse3 rsync attr)

log() { printf 'deps: %s\n' "$*" >&2; }

# ensure_packages installs the Debian packages in PACKAGES that are not
# installed yet. apt-get update runs only when something is missing.
ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	log "installing Debian packages: ${missing[*]}"
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || { log "not root and no sudo; install ${missing[*]} by hand"; return 1; }
		sudo=(sudo -n)
	fi
	export DEBIAN_FRONTEND=noninteractive
	# apt and dpkg talk a lot; their output goes to a log that is shown
	# only if they fail.
	local log
	log=$(mktemp /tmp/cairn-deps-apt.XXXXXX)
	if ! { "${sudo[@]}" apt-get update -qq &&
		"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
			-o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${missing[@]}"; } </dev/null >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		log "apt-get failed; its whole output is in $log"
		return 1
	fi
	rm -f "$log"
	log "installed ${missing[*]}"
}

# ---------------------------------------------------------------------------
# ensure_minio: MinIO server for the S3 backend conformance tests.
#
# Builds MinIO from source with `go install` (about 7 minutes on 2 cores) into
# ${CAIRN_TOOLS:-$HOME/.cache/cairn-tools} unless the binary is already there.
# The version is pinned; change MINIO_VERSION to upgrade and delete the old
# binary. Only run when deps.sh gets the argument "minio".
# ---------------------------------------------------------------------------
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

ensure_minio() {
	local tools=${CAIRN_TOOLS:-$HOME/.cache/cairn-tools}
	if [[ -x $tools/minio ]]; then
		return 0
	fi
	command -v go >/dev/null || { log "go not found in PATH; cannot build minio"; return 1; }
	mkdir -p "$tools"
	# MinIO and its ~230 modules download and compile from source: 7 to
	# 15 minutes on 2 cores, once; later runs find the binary. The
	# download lines go to a log shown only on failure.
	log "building minio $MINIO_VERSION into $tools, once: 7-15 minutes on 2 cores (the S3 tests need a real server)"
	local log
	log=$(mktemp /tmp/cairn-deps-minio.XXXXXX)
	if ! GOBIN=$tools go install "github.com/minio/minio@$MINIO_VERSION" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		log "building minio failed; its whole output is in $log"
		return 1
	fi
	rm -f "$log"
	log "minio installed: $tools/minio"
}

main() {
	if [[ ${1:-} == demo ]]; then
		PACKAGES=("${DEMO_PACKAGES[@]}")
		shift
	fi
	ensure_packages
	local arg
	for arg in "$@"; do
		case $arg in
		minio) ensure_minio ;;
		*) log "unknown argument: $arg (known: demo, first; minio)"; return 2 ;;
		esac
	done
}

main "$@"
