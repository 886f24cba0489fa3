# peers.sh is sourced by the bench scripts after they set ROOT and
# BENCH_DIR. It chooses the peer binaries the benchmarks compare cairn with:
#
#   RESTIC  restic binary; default: ../shared/peers/restic next to the
#           project (restic 0.19.1) when it is there, else restic on PATH
#           (Debian's 0.14)
#   KOPIA   kopia binary; default: ../shared/peers/kopia when there, else
#           kopia on PATH, else none
#
# The chosen binaries are linked as restic and kopia into a directory put
# first on PATH, so that every command of the scripts, GNU time's included,
# runs them. The version lines say which ran.
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
if [[ -z ${RESTIC:-} ]]; then
	if [[ -x $PEERS_DIR/restic ]]; then
		RESTIC=$PEERS_DIR/restic
	else
		RESTIC=$(command -v restic || true)
	fi
fi
if [[ -z ${KOPIA:-} ]]; then
	if [[ -x $PEERS_DIR/kopia ]]; then
		KOPIA=$PEERS_DIR/kopia
	else
		KOPIA=$(command -v kopia || true)
	fi
fi
PEERS_BIN=$BENCH_DIR/peers-bin
mkdir -p "$PEERS_BIN"
rm -f "$PEERS_BIN/restic" "$PEERS_BIN/kopia"
if [[ -n $RESTIC ]]; then
	ln -s "$(realpath "$RESTIC")" "$PEERS_BIN/restic"
	printf 'bench: restic: %s (%s)\n' "$RESTIC" "$("$RESTIC" version 2>/dev/null | head -n1)" >&2
fi
if [[ -n $KOPIA ]]; then
	ln -s "$(realpath "$KOPIA")" "$PEERS_BIN/kopia"
	printf 'bench: kopia: %s (%s)\n' "$KOPIA" "$("$KOPIA" --version 2>/dev/null | head -n1)" >&2
fi
export PATH=$PEERS_BIN:$PATH
