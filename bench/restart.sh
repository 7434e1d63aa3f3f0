#!/usr/bin/env bash
# How long `reel serve` takes to come back: from its newest snapshot plus
# the log after it, against replaying the dataset and the whole log (what
# a restart did before snapshots, and still does without one), on the
# same state. A synthetic service takes a stream of event batches over
# HTTP (wrk), stops gracefully (the last snapshot is written), and starts
# twice: with the snapshot, then with it moved away.
#   BENCH_RESTART_USERS / _VIDEOS / _DAYS: the service (default 20000 x
#   50000 x 14); BENCH_RESTART_SECS: seconds of event batches (10).
set -euo pipefail
BUILD=${BUILD:-build}
reel=$BUILD/reel
users=${BENCH_RESTART_USERS:-20000}
videos=${BENCH_RESTART_VIDEOS:-50000}
days=${BENCH_RESTART_DAYS:-14}
secs=${BENCH_RESTART_SECS:-10}
port=18191
d=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT
"$reel" synth "$d/data" --users "$users" --videos "$videos" --days "$days" --seed 11 >/dev/null
"$reel" build "$d/data" >/dev/null 2>&1
py=/usr/bin/python3
$py bench/serve/reelfiles.py ids "$d/data" users >"$d/users.txt"
$py bench/serve/reelfiles.py ids "$d/data" videos >"$d/videos.txt"

# No periodic snapshot: the one written at stop is the only one, so the
# whole log is still there to compare with (two snapshots truncate it).
echo '{"snapshot": {"every_s": 0, "every_events": 0}}' >"$d/serve.json"

# start: runs the server until it listens; the seconds it took in $took.
start() {
  local t0 t1
  t0=$(date +%s.%N)
  "$reel" serve "$d/data" --config "$d/serve.json" --port $port --fsync interval \
    --fsync-ms 10 >"$d/out" 2>"$d/err" &
  pid=$!
  for _ in $(seq 1 6000); do
    grep -q listening "$d/out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$d/err" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s.%N)
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
}
stop() {
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

start; t_first=$took
wrk -t2 -c8 -d"${secs}s" -s bench/serve/events.lua "http://127.0.0.1:$port" -- \
  "$d/users.txt" "$d/videos.txt" 1000 >/dev/null 2>&1
events=$(metric reel_events_ingested_total)
s0=$(date +%s.%N)
stop
s1=$(date +%s.%N)
t_stop=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", b - a}')
snap_mb=$(du -sm "$d/data/snapshots" | cut -f1)
wal_mb=$(du -sm "$d/data/wal" | cut -f1)
snap_s=$(sed -n 's/.*snapshot [0-9]* written in \([0-9.]*\)s.*/\1/p' "$d/err" | tail -1)

start; t_snap=$took
replayed_snap=$(metric reel_events_replayed)
stop
mv "$d/data/snapshots" "$d/snapshots.away"
start; t_log=$took
replayed_log=$(metric reel_events_replayed)
# (stopping writes a snapshot again; the run is over anyway)
stop

echo "## Restart: snapshot + log tail against the whole log (bench/restart.sh)"
echo
echo "A synthetic service of $users users x $videos videos x $days days (\`reel synth\`,"
echo "\`reel build\`); \`reel serve\` takes ${secs} s of batches of 1,000 watch events over"
echo "HTTP (wrk, 8 connections; $events events), then stops gracefully, which writes"
echo "a snapshot of the whole state. It then starts twice on the same directory:"
echo "from the snapshot (the log after it is empty), and with the snapshot moved"
echo "away (the dataset's events and the whole log replayed, which is also what"
echo "a first start does). Time from exec to listening, data loaded included."
echo
echo "| what | value |"
echo "|---|---:|"
echo "| events ingested over HTTP | $events |"
echo "| the snapshot written at stop | $snap_mb MB in ${snap_s:-?} s (stop took $t_stop s) |"
echo "| the log | $wal_mb MB |"
echo "| first start (dataset events replayed; empty log) | $t_first s |"
echo "| restart from the snapshot ($replayed_snap events replayed) | $t_snap s |"
echo "| restart from the dataset and the whole log ($replayed_log events replayed) | $t_log s |"
awk -v a="$t_log" -v b="$t_snap" 'BEGIN {
  printf "| snapshot restart speed-up | %.1fx |\n", (b > 0 ? a / b : 0) }'
echo
echo "Load average at start: $(cut -d' ' -f1 /proc/loadavg) ($(nproc) cores)."
