#!/usr/bin/env bash
# Benchmark of cmd/fxsum on a generated tree of about 1 GiB, against
#   find DIR -type f -print0 | xargs -0 -P <cores> sha256sum
# in the same run, plus fxsum's hashing throughput against the single-buffer
# crypto/sha256 throughput of this machine's cores.
#
# Usage, from anywhere in the repository:
#   bash bench/fxsum/run.sh
# The tree is made in a new directory under ${TMPDIR:-/tmp} and deleted at
# the end. RUNS (default 3) timed runs of each command; the best and the
# median are printed. MILLION=1 also indexes a tree of 1,000,000 empty-ish
# files and prints fxsum's peak memory for it (needs about 4 GiB of inodes
# and a few minutes).
#
# Peak memory comes from GNU time (/usr/bin/time -v) when it is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
CORES=$(getconf _NPROCESSORS_ONLN)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fxsum-bench.XXXXXX")
TREE=$WORK/tree
trap 'rm -rf "$WORK"' EXIT

echo "# fxsum benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $CORES cores, $(go version | cut -d' ' -f3-4)"
grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/^/# /' || true

go build -o "$WORK/fxsum" ./cmd/fxsum

# The tree: 512 MiB of small files (1 KiB to 61 KiB, eight size classes, in
# nested directories; about 33,000 files) and eight 64 MiB files.
gen() {
	mkdir -p "$TREE"
	local i=0
	for kib in 1 3 5 9 13 21 34 61; do
		local d="$TREE/small/s$i/k$kib"
		mkdir -p "$d"
		head -c 64M /dev/urandom | (cd "$d" && split -a 5 -b "${kib}K" - f)
		i=$((i + 1))
	done
	mkdir -p "$TREE/large"
	for i in 1 2 3 4 5 6 7 8; do head -c 64M /dev/urandom >"$TREE/large/l$i.bin"; done
}
gen
FILES=$(find "$TREE" -type f | wc -l)
BYTES=$(du -sb "$TREE" | cut -f1)
echo "# tree: $FILES files, $((BYTES / 1048576)) MiB"

# seconds CMD... prints the wall time of CMD in seconds.
seconds() {
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null
	e=$(date +%s.%N)
	echo "$e - $s" | bc -l
}
stats() { sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f", a[1], a[int((NR+1)/2)]}'; }

xargs_sha() { find "$TREE" -type f -print0 | xargs -0 -P "$CORES" sha256sum; }
xargs_sha_n() { find "$TREE" -type f -print0 | xargs -0 -n 256 -P "$CORES" sha256sum; }
fxsum_fresh() { rm -f "$WORK/b.db"*; "$WORK/fxsum" --quiet --db "$WORK/b.db" "$TREE"; }
fxsum_rehash() { "$WORK/fxsum" --quiet --rehash --db "$WORK/b.db" "$TREE"; }
fxsum_noop() { "$WORK/fxsum" --quiet --db "$WORK/b.db" "$TREE"; }

# Warm the page cache once, so every command reads from memory.
xargs_sha >/dev/null

printf '\n| command | best s | median s | MiB/s (best) |\n|---|---:|---:|---:|\n'
row() {
	local name=$1
	shift
	local t
	t=$(for _ in $(seq "$RUNS"); do seconds "$@"; done | stats)
	read -r best med <<<"$t"
	printf '| %s | %.2f | %.2f | %.0f |\n' "$name" "$best" "$med" "$(echo "$BYTES / 1048576 / $best" | bc -l)"
}
row "find \\| xargs -0 -P $CORES sha256sum" xargs_sha
row "find \\| xargs -0 -n 256 -P $CORES sha256sum" xargs_sha_n
row "fxsum (new index)" fxsum_fresh
row "fxsum --rehash (existing index)" fxsum_rehash
row "fxsum (nothing changed)" fxsum_noop

# The ceiling: crypto/sha256 over one cached buffer, per core.
SINGLE=$(go test -run '^$' -bench 'SHA256SingleBuffer' -benchtime 2s ./cmd/fxsum | awk '/MB\/s/ {print $(NF-1)}')
CEIL=$(echo "$SINGLE * $CORES / 1.048576" | bc -l)
BEST=$(for _ in $(seq "$RUNS"); do seconds fxsum_rehash; done | stats | cut -d' ' -f1)
FX=$(echo "$BYTES / 1048576 / $BEST" | bc -l)
# Hashing throughput proper: the large files alone, where per-file costs
# (open, stat, a row in the index) do not count.
LBYTES=$(du -sb "$TREE/large" | cut -f1)
"$WORK/fxsum" --quiet --db "$WORK/l.db" "$TREE/large"
fxsum_large() { "$WORK/fxsum" --quiet --rehash --db "$WORK/l.db" "$TREE/large"; }
LBEST=$(for _ in $(seq "$RUNS"); do seconds fxsum_large; done | stats | cut -d' ' -f1)
LFX=$(echo "$LBYTES / 1048576 / $LBEST" | bc -l)
printf '\nsingle-buffer crypto/sha256: %.0f MiB/s per core, %.0f MiB/s on %d cores\n' "$(echo "$SINGLE / 1.048576" | bc -l)" "$CEIL" "$CORES"
printf 'fxsum --rehash, whole tree, warm cache:       %.0f MiB/s = %.0f%% of that\n' "$FX" "$(echo "100 * $FX / $CEIL" | bc -l)"
printf 'fxsum --rehash, large files only, warm cache: %.0f MiB/s = %.0f%% of that\n' "$LFX" "$(echo "100 * $LFX / $CEIL" | bc -l)"

if [ -x /usr/bin/time ]; then
	rm -f "$WORK/b.db"*
	/usr/bin/time -v "$WORK/fxsum" --quiet --db "$WORK/b.db" "$TREE" 2>&1 >/dev/null |
		awk -F': ' '/Maximum resident/ {printf "fxsum peak RSS, new index of this tree: %.0f MiB\n", $2 / 1024}'
fi

if [ "${MILLION:-0}" = 1 ]; then
	M="$WORK/million"
	for i in $(seq 0 99); do
		mkdir -p "$M/d$i"
		head -c 1000000 /dev/urandom | (cd "$M/d$i" && split -a 4 -b 100 - f)
	done
	echo "million-file tree: $(find "$M" -type f | wc -l) files"
	rm -f "$WORK/m.db"*
	/usr/bin/time -v "$WORK/fxsum" --quiet --db "$WORK/m.db" "$M" 2>&1 >/dev/null |
		awk -F': ' '/Maximum resident/ {printf "fxsum peak RSS, new index of 1,000,000 files: %.0f MiB\n", $2 / 1024} /Elapsed/ {print "wall: " $2}'
	/usr/bin/time -v "$WORK/fxsum" --quiet --db "$WORK/m.db" "$M" 2>&1 >/dev/null |
		awk -F': ' '/Maximum resident/ {printf "fxsum peak RSS, unchanged rerun on 1,000,000 files: %.0f MiB\n", $2 / 1024} /Elapsed/ {print "wall: " $2}'
fi
