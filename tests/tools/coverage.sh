#!/bin/sh
# coverage.sh BUILD_DIR: line coverage of publisher/ and feeds/ from the gcov
# counters a COVERAGE=1 build left in BUILD_DIR (make coverage runs it).
# Prints "file lines-executed/lines percent" per source file, then the total.
set -e
dir=${1:-build-coverage}
[ -d "$dir/obj" ] || { echo "coverage: no $dir/obj; run make coverage" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in publisher/*.c feeds/*.c; do
	obj="$dir/obj/${src%.c}.o"
	[ -f "${obj%.o}.gcno" ] || continue
	(cd "$tmp" && gcov -n -o "$OLDPWD/$(dirname "$obj")" "$OLDPWD/$src" 2>/dev/null) |
		awk -v f="$src" '
			/^File / { want = index($0, f) > 0 }
			want && /^Lines executed:/ {
				split($2, a, ":"); pct = a[2]; sub(/%/, "", pct)
				n = $4
				printf "%s %d/%d %.1f%%\n", f, pct * n / 100 + 0.5, n, pct
				want = 0
			}'
done | tee "$tmp/lines" | sort
awk '{ split($2, a, "/"); hit += a[1]; all += a[2] }
	END { if (all) printf "total %d/%d %.1f%%\n", hit, all, 100 * hit / all }' "$tmp/lines"
