#!/usr/bin/env bash
# The Redis store against the embedded one (issue 7, Scale-out): the same
# data directory served by `reel serve` with its embedded store and by
# `reel serve --store unix://...` against a redis-server on a Unix socket
# (AOF on, appendfsync everysec, as an operator would run it), in the same
# run. Recommendations for random users (wrk, 4 connections, three 10 s
# runs, the median by rate), then batches of 1,000 watch events over 16
# connections (for Redis: gathered by the server's applier thread and
# written 128 users to a MULTI/EXEC). Scenarios: the prepared data directories of bench/serve.sh
# (BENCH_SERVE_CACHE, default /tmp/reel-bench-cache: movielens and
# synth-50k when there); MovieLens is prepared here when none is.
# Prints a markdown section (bench/run writes it to docs/benchmarks.md).
set -euo pipefail
BUILD=${BUILD:-build}
reel=$BUILD/reel
py=/usr/bin/python3
secs=${BENCH_REDIS_SECS:-10}
cache=${BENCH_SERVE_CACHE:-/tmp/reel-bench-cache}
d=$(mktemp -d)
redis_pid=
serve_pid=
serve2_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "$serve2_pid" ] && kill "$serve2_pid" 2>/dev/null || true
  [ -S "$d/redis.sock" ] && redis-cli -s "$d/redis.sock" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$d"
}
trap cleanup EXIT
log() { echo "bench/redis: $*" >&2; }

# prepared directories of bench/serve.sh when there; otherwise prepared here
# with `reel synth` / `reel import` and `reel build`'s defaults (what the
# comparison needs is the same directory on both stores, not bench/serve's
# 128-dimension vectors)
scenarios=(movielens synth-50k)
for s in "${scenarios[@]}"; do
  [ -f "$cache/$s/ready" ] && continue
  log "$s: no prepared directory in $cache: preparing it (reel build)"
  rm -rf "${cache:?}/$s" && mkdir -p "$cache/$s"
  case $s in
    movielens)
      ml=${BENCH_ML_DIR:-data/ml-latest-small}
      [ -f "$ml/ratings.csv" ] || scripts/get-movielens "$ml" >&2
      "$reel" import "$cache/$s/data" --movielens "$ml" >/dev/null ;;
    synth-50k)
      "$reel" synth "$cache/$s/data" --users 20000 --videos 50000 --days 14 --seed 11 >/dev/null ;;
  esac
  "$reel" build "$cache/$s/data" >/dev/null 2>"$d/build.log" || { cat "$d/build.log" >&2; exit 1; }
  touch "$cache/$s/ready"
done

wrk_run() { # CONNS URL SCRIPT ARGS... -> "rps p50_ms p99_ms errors"
  local conns=$1 url=$2 script=$3; shift 3
  wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$script" "$url" -- "$@" 2>/dev/null |
    awk -f bench/lib/wrk_summary.awk
}

# serve DIR ARGS...: starts reel serve on port 18291, waits for /readyz.
serve() {
  local dir=$1; shift
  "$reel" serve "$dir" --port 18291 "$@" >"$d/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1200); do
    curl -fs localhost:18291/readyz >/dev/null 2>&1 && return 0
    kill -0 "$serve_pid" 2>/dev/null || { cat "$d/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  log "reel serve did not become ready"; cat "$d/serve.log" >&2; exit 1
}
stop() { kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=; }

# measure NAME: three 4-connection reco runs (median by rate), an events run.
measure() {
  local name=$1 i
  wrk -t2 -c4 -d3s -s bench/serve/reco.lua http://127.0.0.1:18291 -- "$d/users.txt" 10 >/dev/null 2>&1
  for i in 1 2 3; do wrk_run 4 http://127.0.0.1:18291 bench/serve/reco.lua "$d/users.txt" 10; done |
    sort -n | sed -n 2p >"$d/$name.reco"
  wrk_run 16 http://127.0.0.1:18291 bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000 >"$d/$name.ev"
}

echo "## The Redis store against the embedded one (bench/redis.sh)"
echo
echo "\`reel serve\` on the same data directory with its embedded store (write-ahead"
echo "log, fsync every 10 ms) and with \`--store unix://...\` against redis-server"
echo "$(redis-server --version | sed 's/.*v=\([0-9.]*\).*/\1/') on a Unix socket (AOF, \`appendfsync everysec\`), in the same run on"
echo "the same $(nproc) cores (Redis and wrk share them). Recommendations for random"
echo "users (k = 10): wrk over 4 connections, three ${secs} s runs, the median by rate."
echo "Events: batches of 1,000 watch events for random users and videos over 16"
echo "connections; with Redis the server's applier thread gathers what has arrived"
echo "(up to about 20,000 events) and writes it 128 users to a watched MULTI/EXEC"
echo "(records, history, event ids, and the events' video halves appended to the video"
echo "log), the next users' reads in the same round trip; video statistics are never"
echo "written per event (docs/formats/redis.md)."
echo "Goals (issue 7): Redis-backed p50 within +0.3 ms of the embedded store;"
echo ">= 100,000 events/s applied to Redis."
echo
for scn in "${scenarios[@]}"; do
  src=$cache/$scn/data
  log "$scn"
  $py bench/serve/reelfiles.py ids "$src" users >"$d/users.txt"
  $py bench/serve/reelfiles.py ids "$src" videos >"$d/videos.txt"
  rm -rf "$d/emb" && cp -al "$src" "$d/emb" && rm -rf "$d/emb/wal" "$d/emb/snapshots"
  serve "$d/emb" --fsync interval --fsync-ms 10
  measure emb
  stop
  rm -rf "$d/redis" && mkdir -p "$d/redis"
  redis-server --port 0 --unixsocket "$d/redis.sock" --dir "$d/redis" --appendonly yes \
    --appendfsync everysec --save "" --daemonize yes --pidfile "$d/redis.pid" \
    --logfile "$d/redis.log"
  for _ in $(seq 100); do redis-cli -s "$d/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
  t0=$(date +%s.%N)
  serve "$src" --store "unix://$d/redis.sock"
  t1=$(date +%s.%N)
  measure redis
  mem=$(redis-cli -s "$d/redis.sock" info memory | awk -F: '/^used_memory:/ {printf "%.0f", $2 / 1048576}')
  vlog=$(redis-cli -s "$d/redis.sock" memory usage reel:vlog samples 0 | awk '{printf "%.0f", $1 / 1048576}')
  keys=$(redis-cli -s "$d/redis.sock" dbsize)
  # Two servers taking events for the same random users at once: their
  # transactions race for users, and the losers go through the
  # compare-and-set script (the general path).
  "$reel" serve "$src" --port 18292 --store "unix://$d/redis.sock" >"$d/serve2.log" 2>&1 &
  serve2_pid=$!
  for _ in $(seq 1200); do curl -fs localhost:18292/readyz >/dev/null 2>&1 && break; sleep 0.1; done
  wrk_run 8 http://127.0.0.1:18291 bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000 >"$d/two1.ev" &
  wrk_run 8 http://127.0.0.1:18292 bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000 >"$d/two2.ev"
  wait $!
  kill "$serve2_pid"; wait "$serve2_pid" 2>/dev/null || true
  serve2_pid=
  evalsha=$(redis-cli -s "$d/redis.sock" info commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p')
  stop
  redis-cli -s "$d/redis.sock" shutdown nosave >/dev/null 2>&1 || true
  read -r er ep50 ep99 eerr <"$d/emb.reco"
  read -r rr rp50 rp99 rerr <"$d/redis.reco"
  read -r ee _ _ eeerr <"$d/emb.ev"
  read -r re _ _ reerr <"$d/redis.ev"
  users=$(wc -l <"$d/users.txt")
  echo "### $scn ($users users, $(wc -l <"$d/videos.txt") videos)"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC; load average at start $(cut -d' ' -f1 /proc/loadavg)."
  echo
  echo "| what | embedded | Redis | difference |"
  echo "|---|---:|---:|---:|"
  awk -v er="$er" -v rr="$rr" -v ep50="$ep50" -v rp50="$rp50" -v ep99="$ep99" -v rp99="$rp99" \
      -v ee="$ee" -v re="$re" 'BEGIN {
    printf "| recommendations/s (4 connections) | %d | %d | %.2fx |\n", er, rr, (er > 0 ? rr / er : 0)
    printf "| p50 latency, ms | %.2f | %.2f | %+.2f ms |\n", ep50, rp50, rp50 - ep50
    printf "| p99 latency, ms | %.2f | %.2f | %+.2f ms |\n", ep99, rp99, rp99 - ep99
    printf "| events/s (batches of 1,000, 16 connections) | %d | %d | %.2fx |\n", ee * 1000, re * 1000, (ee > 0 ? re / ee : 0)
  }'
  read -r t1e _ _ t1err <"$d/two1.ev"
  read -r t2e _ _ t2err <"$d/two2.ev"
  awk -v a="$t1e" -v b="$t2e" -v re="$re" 'BEGIN {
    printf "| events/s, two servers taking events for the same users at once (8 connections each) | | %d | %.2fx one server |\n", (a + b) * 1000, (re > 0 ? (a + b) / re : 0) }'
  echo "| errors (non-2xx, socket) | $((eerr + eeerr)) | $((rerr + reerr + t1err + t2err)) | |"
  echo
  awk -v t0="$t0" -v t1="$t1" -v k="$keys" -v m="$mem" -v vl="${vlog:-0}" 'BEGIN {
    printf "Start with an empty Redis (seeding it from the dataset, then copying\nthe video statistics): %.1f s. Redis after the runs: %s keys, %s MiB, of which the\nvideo log (about two checkpoint periods of events, 28 bytes each) %s MiB.\n", t1 - t0, k, m, vl }'
  echo "Compare-and-set script calls (transactions that lost a race to the other server): ${evalsha:-0}."
  awk -v ep50="$ep50" -v rp50="$rp50" -v re="$re" 'BEGIN {
    printf "Goals: p50 within +0.3 ms: **%s** (%+.2f ms); >= 100,000 events/s to Redis: **%s** (%d/s).\n",
      (rp50 - ep50 <= 0.3 ? "met" : "missed"), rp50 - ep50, (re * 1000 >= 100000 ? "met" : "missed"), re * 1000 }'
  echo
done
