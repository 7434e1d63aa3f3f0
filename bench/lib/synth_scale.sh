#!/usr/bin/env bash
# bench/lib/synth_scale.sh: `reel synth` at full scale (100k users, 1M videos,
# enough days for ~50M events), timed, with its peak memory.
#
# Usage: bench/lib/synth_scale.sh [--header] [REEL_BINARY]
#   REEL_BINARY defaults to $REEL, then build/reel under the repository.
#   Environment: USERS (100000), VIDEOS (1000000), DAYS (31), SEED (42),
#   THREADS (0 = one per CPU), TMPDIR (where the data goes, /tmp).
# Prints one markdown table row on stdout (--header adds the header rows
# first); the data directory is removed afterwards, even on failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
header=0
if [ "${1:-}" = "--header" ]; then
    header=1
    shift
fi
reel=${1:-${REEL:-$root/build/reel}}
users=${USERS:-100000}
videos=${VIDEOS:-1000000}
days=${DAYS:-31}
seed=${SEED:-42}
threads=${THREADS:-0}

if [ ! -x "$reel" ]; then
    echo "synth_scale: no reel binary at $reel (build first)" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reel-synth-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

args=(synth "$tmp/data" --users "$users" --videos "$videos" --days "$days"
      --seed "$seed" --threads "$threads")

# Wall time in seconds from /usr/bin/time's "h:mm:ss" or "m:ss.ss".
to_seconds() {
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.1f", s }'
}

rss_mib="n/a"
if /usr/bin/time -v true >/dev/null 2>&1; then
    /usr/bin/time -v -o "$tmp/time" "$reel" "${args[@]}" >"$tmp/stdout"
    wall=$(grep 'Elapsed (wall clock)' "$tmp/time" | awk '{print $NF}' |
        to_seconds)
    rss_kb=$(grep 'Maximum resident set size' "$tmp/time" | awk '{print $NF}')
    rss_mib=$(awk -v k="$rss_kb" 'BEGIN { printf "%.0f", k / 1024 }')
else
    t0=$(date +%s.%N)
    "$reel" "${args[@]}" >"$tmp/stdout"
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
fi

# "synth: U users, V videos, N events (...)", also shown on stderr.
cat "$tmp/stdout" >&2
events=$(sed -n 's/.* videos, \([0-9]*\) events.*/\1/p' "$tmp/stdout")
bytes=$(du -sb "$tmp/data" | cut -f1)
out_mib=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
rate=$(awk -v n="$events" -v s="$wall" 'BEGIN { printf "%.2f", n / s / 1e6 }')
cpus=$(nproc)

if [ "$header" = 1 ]; then
    echo "| command | users | videos | days | events | wall (s) | M events/s | peak RSS (MiB) | output (MiB) | threads | CPUs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
fi
echo "| reel synth | $users | $videos | $days | $events | $wall | $rate | $rss_mib | $out_mib | $threads | $cpus |"
