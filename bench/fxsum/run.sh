#!/usr/bin/env bash
# Benchmark of cmd/fxsum against the usual tools, side by side in one run,
# on generated trees of four shapes:
#
#   deep   30,000 files of 1-16 KiB in nested folders, plus four 64 MiB files
#   flat   one folder of 150,000 files of 200 bytes (FLAT_FILES to change)
#   tiny   200,000 files of 0-4 KiB in 200 folders
#   large  four 64 MiB files
#
# For each shape, every command runs once per round, RUNS rounds (default
# 3), with a warm page cache; the table shows each command's median wall
# time and the median over the rounds of fxsum's time over the anchor's
# (the new index over each hashing tool, the unchanged rerun over the bare
# stat walk; below 1, fxsum is faster). The anchors:
#
#   find DIR -type f -print0 | xargs -0 -P <cores> sha256sum
#   hashdeep -c sha256 -j <cores> -r DIR                  (apt-get install hashdeep)
#   rhash --sha256 -r DIR, single-threaded                (apt-get install rhash)
#   find DIR -type f -print0 | xargs -0 -P <cores> b3sum  (apt-get install b3sum)
#   find DIR -type f -printf '%s %T@ %i\n', a bare stat walk
#
# An anchor that is not installed is skipped, and the script says so.
#
# Usage, from anywhere in the repository:
#   bash bench/fxsum/run.sh
# SHAPES="flat deep" picks shapes (SHAPES= none). ALT=BINARY adds the new-index rows of
# another build of fxsum (an A/B of a change, in the same rounds), with
# ALT_LABEL as its name. FXSUM=BINARY benchmarks that build instead of
# building ./cmd/fxsum. MILLION=1 also indexes 1,000,000 files of
# 100 bytes (100 folders) and prints fxsum's peak memory (GNU time):
# SHAPES= MILLION=1 does only that.
# The trees are made in a new folder under ${TMPDIR:-/tmp}, deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
SHAPES=${SHAPES-deep flat tiny large}
FLAT_FILES=${FLAT_FILES:-150000}
CORES=$(getconf _NPROCESSORS_ONLN)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fxsum-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "# fxsum benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $CORES cores, $(go version | cut -d' ' -f3-4)"
grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/^/# /' || true
if [ -n "${FXSUM:-}" ]; then
	FX=$(realpath "$FXSUM")
else
	go build -o "$WORK/fxsum" ./cmd/fxsum
	FX=$WORK/fxsum
fi

have() {
	if command -v "$1" >/dev/null; then return 0; fi
	echo "# $1 is not installed: its rows are skipped (apt-get install $2)"
	return 1
}
HAVE_HASHDEEP=0 HAVE_RHASH=0 HAVE_B3SUM=0
have hashdeep hashdeep && HAVE_HASHDEEP=1
have rhash rhash && HAVE_RHASH=1
have b3sum b3sum && HAVE_B3SUM=1

# split_into DIR N SIZE: N files of SIZE bytes of random content in DIR.
split_into() {
	mkdir -p "$1"
	if [ "$3" = 0 ]; then
		(cd "$1" && for i in $(seq "$2"); do : >"z$i"; done)
		return
	fi
	head -c $(($2 * $3)) /dev/urandom | (cd "$1" && split -a 6 -b "$3" - f)
}

gen_deep() {
	local sizes=(1024 2048 4096 8192 12288 16384) i
	for i in $(seq 0 29); do
		split_into "$1/d$((i % 5))/e$((i % 6))/f$i" 1000 "${sizes[$((i % 6))]}"
	done
	gen_large "$1/large"
}
gen_flat() { split_into "$1" "$FLAT_FILES" 200; }
gen_tiny() {
	local sizes=(0 100 700 1500 2500 3500 4096) i
	for i in $(seq 0 199); do
		split_into "$1/t$((i % 10))/u$i" 1000 "${sizes[$((i % 7))]}"
	done
}
gen_large() {
	mkdir -p "$1"
	for i in 1 2 3 4; do head -c 64M /dev/urandom >"$1/l$i.bin"; done
}

# seconds CMD... prints the wall time of CMD in seconds.
seconds() {
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	e=$(date +%s.%N)
	echo "$e - $s" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }

for shape in $SHAPES; do
	T=$WORK/$shape
	"gen_$shape" "$T"
	DB=$WORK/$shape.db
	FILES=$(find "$T" -type f | wc -l)
	MIB=$(($(du -sb "$T" | cut -f1) / 1048576))
	# Warm the page cache.
	find "$T" -type f -print0 | xargs -0 -P "$CORES" cat >/dev/null

	xargs_sha() { find "$T" -type f -print0 | xargs -0 -P "$CORES" sha256sum; }
	xargs_b3() { find "$T" -type f -print0 | xargs -0 -P "$CORES" b3sum; }
	hd() { hashdeep -c sha256 -j "$CORES" -r "$T"; }
	rh() { rhash --sha256 -r "$T"; }
	statwalk() { find "$T" -type f -printf '%s %T@ %i\n'; }
	fx_new() { rm -f "$DB"*; "$FX" --quiet --db "$DB" "$T"; }
	fx_rerun() { "$FX" --quiet --db "$DB" "$T"; }
	fx_new_b3() { rm -f "$DB.b3"*; "$FX" --quiet --algo blake3 --db "$DB.b3" "$T"; }
	alt_new() { rm -f "$DB.alt"*; "$ALT" --quiet --db "$DB.alt" "$T"; }
	alt_new_b3() { rm -f "$DB.alt"*; "$ALT" --quiet --algo blake3 --db "$DB.alt" "$T"; }
	CMDS=(fx_new fx_rerun statwalk xargs_sha)
	[ $HAVE_HASHDEEP = 1 ] && CMDS+=(hd)
	[ $HAVE_RHASH = 1 ] && CMDS+=(rh)
	CMDS+=(fx_new_b3)
	[ $HAVE_B3SUM = 1 ] && CMDS+=(xargs_b3)
	[ -n "${ALT:-}" ] && CMDS+=(alt_new alt_new_b3)
	# Round robin: each round runs every command once, so that a change
	# in the machine's load (it may be shared) weighs on all of them alike.
	for _ in $(seq "$RUNS"); do
		for c in "${CMDS[@]}"; do seconds "$c" >>"$WORK/t.$c"; done
	done
	med() { median <"$WORK/t.$1"; }
	# ratio A B: the median over the rounds of A's time over B's.
	ratio() { paste "$WORK/t.$1" "$WORK/t.$2" | awk '{print $1 / $2}' | median | awk '{printf "%.2fx", $1}'; }
	row() { printf '| %s | %.2f | %s |\n' "$1" "$(med "$2")" "${3:+$(ratio "$3" "$2")}"; }
	printf '\n## %s: %d files, %d MiB\n\n' "$shape" "$FILES" "$MIB"
	printf '| command | median s | fxsum / it |\n|---|---:|---:|\n'
	row "fxsum (new index, sha256)" fx_new
	row "find \\| xargs -0 -P $CORES sha256sum" xargs_sha fx_new
	[ $HAVE_HASHDEEP = 1 ] && row "hashdeep -c sha256 -j $CORES -r" hd fx_new
	[ $HAVE_RHASH = 1 ] && row "rhash --sha256 -r (one thread)" rh fx_new
	row "fxsum --algo blake3 (new index)" fx_new_b3
	[ $HAVE_B3SUM = 1 ] && row "find \\| xargs -0 -P $CORES b3sum" xargs_b3 fx_new_b3
	if [ -n "${ALT:-}" ]; then
		row "${ALT_LABEL:-ALT} (new index, sha256)" alt_new fx_new
		row "${ALT_LABEL:-ALT} --algo blake3 (new index)" alt_new_b3 fx_new_b3
		[ $HAVE_B3SUM = 1 ] && row "find \\| xargs -0 -P $CORES b3sum (against ${ALT_LABEL:-ALT})" xargs_b3 alt_new_b3
	fi
	row "fxsum (unchanged rerun)" fx_rerun
	row "find -type f -printf '%s %T@ %i\\n' (stat walk)" statwalk fx_rerun
	rm -f "$WORK"/t.*
	rm -rf "$T" "$DB"*
done

if [ "${MILLION:-0}" = 1 ] && [ -x /usr/bin/time ]; then
	M=$WORK/million
	for i in $(seq 0 99); do split_into "$M/d$i" 10000 100; done
	printf '\n## million: %d files\n\n' "$(find "$M" -type f | wc -l)"
	# peak LABEL CMD...: the wall time and peak RSS of CMD (GNU time).
	peak() {
		local label=$1
		shift
		/usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' -v label="$label" '
			/Elapsed/ {wall = $2}
			/Maximum resident/ {rss = $2 / 1024}
			END {printf "%s: wall %s, peak RSS %.0f MiB\n", label, wall, rss}'
	}
	peak "new index" "$FX" --quiet --db "$WORK/m.db" "$M"
	peak "unchanged rerun" "$FX" --quiet --db "$WORK/m.db" "$M"
fi
