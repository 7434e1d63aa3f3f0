#!/usr/bin/env bash
# reel serve against the Python peer a team would build (bench/serve/:
# FastAPI + uvicorn + hnswlib + XGBoost + redis-py), same data, same
# requests, driven by wrk in the same run: recommendations first (event
# runs grow the users' seen sets), then batches of events.
#   BENCH_SERVE_USERS / _VIDEOS / _DAYS: the synthetic service (default
#   20000 users x 50000 videos x 14 days); BENCH_SERVE_SECS: per run (10).
set -euo pipefail
BUILD=${BUILD:-build}
reel=$BUILD/reel
secs=${BENCH_SERVE_SECS:-10}
users=${BENCH_SERVE_USERS:-20000}
videos=${BENCH_SERVE_VIDEOS:-50000}
days=${BENCH_SERVE_DAYS:-14}
d=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$d/peer/peer.pid" ] && kill "$(cat "$d/peer/peer.pid")" 2>/dev/null || true
  [ -f "$d/peer/redis.pid" ] && kill "$(cat "$d/peer/redis.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$d"
}
trap cleanup EXIT
"$reel" synth "$d/data" --users "$users" --videos "$videos" --days "$days" --seed 11 >/dev/null
"$reel" build "$d/data" >/dev/null 2>&1
py=/usr/bin/python3
$py bench/serve/reelfiles.py ids "$d/data" users >"$d/users.txt"
$py bench/serve/reelfiles.py ids "$d/data" videos >"$d/videos.txt"
load=$(cut -d' ' -f1 /proc/loadavg)

wrk_run() { # CONNS URL SCRIPT ARGS... -> "rps p50_ms p99_ms"
  local conns=$1 url=$2 script=$3; shift 3
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$script" "$url" -- "$@" 2>/dev/null |
    awk '/Requests\/sec/ {r=$2}
         /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
         function ms(x) { if (x ~ /us$/) return x / 1000; if (x ~ /ms$/) return x + 0; if (x ~ /s$/) return x * 1000; return x }
         END {printf "%.0f %.2f %.2f\n", r, ms(p50), ms(p99)}'
}

# reel
cp -r "$d/data" "$d/reel"
"$reel" serve "$d/reel" --port 18181 --fsync interval --fsync-ms 10 >"$d/reel.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -fs http://127.0.0.1:18181/healthz >/dev/null 2>&1 && break; sleep 0.1; done
r_reco=$(wrk_run 16 http://127.0.0.1:18181 bench/serve/reco.lua "$d/users.txt" 10)
r_lat=$(wrk_run 4 http://127.0.0.1:18181 bench/serve/reco.lua "$d/users.txt" 10)
r_ev=$(wrk_run 16 http://127.0.0.1:18181 bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000)
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# the peer (Redis with its append-only file fsynced every second)
mkdir -p "$d/peer"
PEER_TMP="$d/peer" PEER_AOF=everysec bench/serve/run_peer.sh "$d/data" 18182 2 >/dev/null
p_reco=$(wrk_run 16 http://127.0.0.1:18182 bench/serve/reco.lua "$d/users.txt" 10)
p_lat=$(wrk_run 4 http://127.0.0.1:18182 bench/serve/reco.lua "$d/users.txt" 10)
p_ev=$(wrk_run 16 http://127.0.0.1:18182 bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000)

read -r rr rp50 rp99 <<<"$r_reco"
read -r lr lp50 lp99 <<<"$r_lat"
read -r mr mp50 mp99 <<<"$p_lat"
read -r er ep50 ep99 <<<"$r_ev"
read -r pr pp50 pp99 <<<"$p_reco"
read -r qr qp50 qp99 <<<"$p_ev"
echo "## Serving: reel serve against the Python stack (bench/serve)"
echo
echo "A synthetic service of $users users x $videos videos x $days days (\`reel synth\`,"
echo "\`reel build\`: item2vec + HNSW + the XGBoost ranker), served by \`reel serve\`"
echo "(fsync every 10 ms) and by the peer a team would otherwise build: FastAPI +"
echo "uvicorn (2 workers, uvloop) + hnswlib + XGBoost + redis-py, Redis with its"
echo "append-only file fsynced every second (bench/serve/README.md). wrk, 2 threads,"
echo "${secs} s per run: recommendations for random users (k = 10, 200 candidates,"
echo "the same 33 features) over 16 connections (throughput) and over 4 (latency"
echo "at a load the cores can take without queueing: with 16 requests in flight on"
echo "2 cores a request waits for the others), then batches of 1,000 watch events."
echo "Load average at start: $load ($(nproc) cores, shared)."
echo
echo "| what | reel | peer | reel / peer |"
echo "|---|---:|---:|---:|"
awk -v a="$rr" -v b="$pr" -v c="$rp50" -v e="$pp50" -v f="$rp99" -v g="$pp99" 'BEGIN {
  printf "| 16 connections: recommendations/s | %d | %d | %.1fx |\n", a, b, b ? a / b : 0
  printf "| 16 connections: p50 latency, ms | %.2f | %.2f | |\n", c, e
  printf "| 16 connections: p99 latency, ms | %.2f | %.2f | |\n", f, g }'
awk -v a="$lr" -v b="$mr" -v c="$lp50" -v e="$mp50" -v f="$lp99" -v g="$mp99" 'BEGIN {
  printf "| 4 connections: recommendations/s | %d | %d | %.1fx |\n", a, b, b ? a / b : 0
  printf "| 4 connections: p50 / p99 latency, ms | %.2f / %.2f | %.2f / %.2f | |\n", c, f, e, g }'
awk -v a="$er" -v b="$qr" -v f="$ep99" -v g="$qp99" 'BEGIN {
  printf "| events/s (batches of 1,000) | %d | %d | %.1fx |\n", a * 1000, b * 1000, b ? a / b : 0
  printf "| p99 per batch, ms | %.2f | %.2f | |\n", f, g }'
echo
echo "Goals (issue: Real-time serving): >= 2,000 recommendations/s with p99 <= 5 ms,"
echo ">= 200,000 events/s over HTTP batches with fsync every 10 ms."
