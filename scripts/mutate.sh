#!/usr/bin/env bash
# mutate.sh: a small mutation check of cairn's core. Each line of
# scripts/mutations.txt changes one thing the tests should notice; the
# mutation is applied alone in a scratch worktree of REV (default: the
# working tree as it is, uncommitted changes included), the named package's
# tests run, and the mutation is "caught" when they fail. Prints a line per
# mutation and a count per package. Outside `make test`: `make mutate`.
#
# Usage: scripts/mutate.sh [REV]   (MUTATIONS=file to use another list)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
list=${MUTATIONS:-$root/scripts/mutations.txt}
rev=${1:-}

scratch=$(mktemp -d /tmp/cairn-mutate.XXXXXX)
trap 'git -C "$root" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
if [[ -n $rev ]]; then
	git worktree add -q --detach "$scratch/tree" "$rev"
else
	git worktree add -q --detach "$scratch/tree" HEAD
	# The working tree as it is: tracked changes and untracked files.
	git diff HEAD --binary | git -C "$scratch/tree" apply --allow-empty
	git ls-files --others --exclude-standard -z | xargs -0 -r -I{} cp --parents {} "$scratch/tree/"
fi
cd "$scratch/tree"

declare -A total caught
lines=()
while IFS=$'\t' read -r pkg file subst what; do
	[[ -z $pkg || $pkg == \#* ]] && continue
	if [[ ! -f $file ]]; then
		lines+=("missing  $pkg: $what ($file not in this revision)")
		continue
	fi
	cp "$file" "$scratch/orig"
	perl -0pi -e "$subst" "$file"
	if cmp -s "$file" "$scratch/orig"; then
		lines+=("stale    $pkg: $what (the pattern no longer matches $file)")
		continue
	fi
	total[$pkg]=$(( ${total[$pkg]:-0} + 1 ))
	caught[$pkg]=${caught[$pkg]:-0}
	if go test -count=1 -timeout 10m "./$pkg" >"$scratch/out" 2>&1; then
		lines+=("SURVIVED $pkg: $what")
	else
		if grep -q '\[build failed\]\|^# ' "$scratch/out" && ! grep -q -- '--- FAIL' "$scratch/out"; then
			total[$pkg]=$(( ${total[$pkg]} - 1 ))
			lines+=("build    $pkg: $what (the mutation does not compile)")
		else
			caught[$pkg]=$(( ${caught[$pkg]} + 1 ))
			lines+=("caught   $pkg: $what")
		fi
	fi
	cp "$scratch/orig" "$file"
done <"$list"

printf '%s\n' "${lines[@]}"
echo
for pkg in $(printf '%s\n' "${!total[@]}" | sort); do
	printf '%-16s %d of %d mutations caught\n' "$pkg" "${caught[$pkg]}" "${total[$pkg]}"
done
