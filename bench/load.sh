#!/usr/bin/env bash
# Opening a dataset of 10M events (budget: about a second), against numpy
# loading the same event columns from .npy files.
set -euo pipefail
n=${BENCH_LOAD_EVENTS:-10000000}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
r=$(build/bench_load "$d" "$n")
p=$(/usr/bin/python3 bench/load_peer.py "$d")
get() { echo "$1" | sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p"; }
open=$(get "$r" open_s); scan=$(get "$r" open_and_scan_s)
mb=$(get "$r" file_mb); np=$(get "$p" numpy_load_and_scan_s)
echo "## Loading a dataset: $n events"
echo
echo "\`build/bench_load\` writes a dataset of $n random events (100k users,"
echo "50k videos) and opens it five times; numpy loads the same six event"
echo "columns from .npy files (no checksums, no validation). Best of five,"
echo "page cache warm."
echo
echo "| what | seconds | time vs numpy (lower is faster) |"
echo "|---|---:|---:|"
echo "| reel: open (map, verify CRCs and invariants, index ids) | $open | $(awk -v a="$open" -v b="$np" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| reel: open + one pass over the event columns | $scan | $(awk -v a="$scan" -v b="$np" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| numpy: np.load x 6 + one pass | $np | 1.00x |"
echo
echo "File size: $mb MB. Budget (issue: Foundation): about 1 s for 10M events."
