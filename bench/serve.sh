#!/usr/bin/env bash
# reel serve against the Python peer a team would build (bench/serve/:
# FastAPI + uvicorn + hnswlib + XGBoost + redis-py), same data, same
# requests, driven by wrk in the same run: recommendations first (event
# runs grow the users' seen sets), then batches of events. One table per
# scenario (issue 6 names the first two):
#   synth-1m   reel synth, 100,000 users x 1,000,000 videos x 31 days
#              (49M events; about 27 min to prepare and 8 to measure with
#              10 s runs on 2 cores, see docs/benchmarks.md)
#   movielens  MovieLens latest-small (scripts/get-movielens, r-cran-dslabs)
#   synth-50k  reel synth, 20,000 users x 50,000 videos x 14 days
# Every scenario: item2vec vectors of BENCH_SERVE_DIM (128) dimensions plus
# the popularity prior, videos without views mapped by the cold-start map
# (`reel embed --cold`), the HNSW index (M 16, efConstruction 200) and an
# XGBoost ranker of exactly 300 trees of depth 6 (`reel train --trees 300`;
# a small --eta keeps early stopping from cutting it short, and the model
# file is checked). The peer reads the same vectors and the same model.
#   BENCH_SERVE_SCENARIO  scenarios, separated by spaces or commas, or
#                         "all" (default: synth-50k movielens). The tables
#                         of scenarios not run are kept from docs/benchmarks.md.
#   BENCH_SERVE_SECS      seconds per wrk run (10)
#   BENCH_SERVE_DIM       item vector dimensions (128)
#   BENCH_SERVE_ETA       the ranker's learning rate (0.02; halved and
#                         retrained, twice at most, until 300 trees are kept)
#   BENCH_SERVE_CACHE     a directory where prepared scenarios are kept and
#                         reused (default: none, everything in a temp dir)
#   BENCH_ML_DIR          MovieLens CSVs (data/ml-latest-small)
set -euo pipefail
BUILD=${BUILD:-build}
reel=$BUILD/reel
py=/usr/bin/python3
secs=${BENCH_SERVE_SECS:-10}
dim=${BENCH_SERVE_DIM:-128}
eta0=${BENCH_SERVE_ETA:-0.02}
ml=${BENCH_ML_DIR:-data/ml-latest-small}
cache=${BENCH_SERVE_CACHE:-}
doc=docs/benchmarks.md
all_scenarios=(synth-1m movielens synth-50k)
want=${BENCH_SERVE_SCENARIO:-synth-50k movielens}
[ "$want" = all ] && want="${all_scenarios[*]}"
want=${want//,/ }
for s in $want; do
  case " ${all_scenarios[*]} " in
    *" $s "*) ;;
    *) echo "bench/serve.sh: unknown scenario '$s' (${all_scenarios[*]}, all)" >&2; exit 2 ;;
  esac
done

d=$(mktemp -d)
reel_pid=
peer_tmp=
cleanup() {
  [ -n "$reel_pid" ] && kill "$reel_pid" 2>/dev/null || true
  stop_peer
  rm -rf "$d"
}
stop_peer() {
  if [ -n "$peer_tmp" ]; then
    [ -f "$peer_tmp/peer.pid" ] && kill "$(cat "$peer_tmp/peer.pid")" 2>/dev/null || true
    [ -f "$peer_tmp/redis.pid" ] && kill "$(cat "$peer_tmp/redis.pid")" 2>/dev/null || true
    for _ in $(seq 100); do
      { [ -f "$peer_tmp/peer.pid" ] && kill -0 "$(cat "$peer_tmp/peer.pid")" 2>/dev/null; } ||
        { [ -f "$peer_tmp/redis.pid" ] && kill -0 "$(cat "$peer_tmp/redis.pid")" 2>/dev/null; } || break
      sleep 0.1
    done
    peer_tmp=
  fi
}
trap cleanup EXIT

log() { echo "bench/serve: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN {printf "%.1f", e - s}'; }
mib() { awk '{printf "%.0f", $1 / 1024}'; } # kB on stdin
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# step NAME CMD...: runs CMD (its output to $d/NAME.log) and records its wall
# time and peak RSS (MiB) in $meta; a failure shows the log.
step() {
  local name=$1 t; shift
  log "$scn: $name"
  t=$(now)
  if ! /usr/bin/time -f "%M" -o "$d/$name.rss" "$@" >"$d/$name.log" 2>&1; then
    log "$scn: $name failed:"; tail -20 "$d/$name.log" >&2; exit 1
  fi
  echo "t_$name $(since "$t")" >>"$meta"
  echo "m_$name $(tail -1 "$d/$name.rss" | mib)" >>"$meta"
}

trees_of() { # the number of trees in an XGBoost JSON model
  $py -c 'import json, sys
g = json.load(open(sys.argv[1]))["learner"]["gradient_booster"]["model"]
print(len(g["trees"]))' "$1"
}

# prepare SCENARIO DIR: the data directory reel serve and the peer load, and
# DIR/meta (what it took: "key value" lines).
prepare() {
  local data=$1/data
  meta=$1/meta
  case $scn in
    synth-1m) step synth "$reel" synth "$data" --users 100000 --videos 1000000 --days 31 --seed 11 ;;
    synth-50k) step synth "$reel" synth "$data" --users 20000 --videos 50000 --days 14 --seed 11 ;;
    movielens)
      [ -f "$ml/ratings.csv" ] || scripts/get-movielens "$ml" >&2
      step import "$reel" import "$data" --movielens "$ml" ;;
  esac
  "$reel" stats "$data" --json | $py -c 'import json, sys
s = json.load(sys.stdin)
print("users", s["users"]); print("videos", s["videos"]); print("events", s["events"])' >>"$meta"
  step embed "$reel" embed "$data" --dim "$dim" --cold
  mkdir -p "$data/index"
  step export $py bench/serve/reelfiles.py npy "$data" "$1/vectors.npy"
  step index "$reel" index build --vectors "$1/vectors.npy" --out "$data/index/item2vec.idx" \
    --metric ip --m 16 --ef-construction 200 --threads "$(nproc)"
  rm -f "$1/vectors.npy"
  # reel train has no switch for early stopping (20 rounds without a
  # better validation log loss): a smaller learning rate keeps improving
  # for all 300 rounds.
  local eta=$eta0 n=0
  for try in 1 2 3; do
    step train "$reel" train "$data" --trees 300 --depth 6 --eta "$eta"
    n=$(trees_of "$data/models/ranker.json")
    [ "$n" -eq 300 ] && break
    log "$scn: the ranker kept $n trees at eta $eta; retraining at half the rate"
    eta=$(awk -v e="$eta" 'BEGIN {print e / 2}')
  done
  [ "$n" -eq 300 ] || { log "$scn: no 300-tree ranker (last: $n trees at eta $eta)"; exit 1; }
  echo "train_tries $try" >>"$meta"
  grep '^vectors\|^item2vec' "$d/embed.log" | head -1 | sed 's/^/embed_line /' >>"$meta"
  echo "trees $n" >>"$meta"
  echo "eta $eta" >>"$meta"
  echo "vdim $($py -c 'import sys; sys.path.insert(0, "bench/serve"); import reelfiles
print(reelfiles.read_vectors(sys.argv[1], verify=False).dim)' "$data/vectors/item2vec.reel")" >>"$meta"
  grep -m1 '^rows:' "$d/train.log" | sed 's/^/rows_line /' >>"$meta"
  grep -m1 '^xgboost:' "$d/train.log" | sed 's/^/xgb_line /' >>"$meta"
}

# (--timeout 30s: at wrk's default of 2 s a slow answer would count as a
# socket error and drop out of the latencies)
wrk_run() { # CONNS URL SCRIPT ARGS... -> "rps p50_ms p99_ms errors"; wrk's
  local conns=$1 url=$2 script=$3; shift 3 # CPU seconds go to $d/wrk.cpu
  /usr/bin/time -f "%U %S" -o "$d/wrk.cpu" \
    wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$script" "$url" -- "$@" 2>/dev/null |
    awk -f bench/lib/wrk_summary.awk
}

hz=$(getconf CLK_TCK)
ticks() { # /proc/.../stat files -> user + system ticks of each, one line
  local f
  for f in "$@"; do awk '{printf "%d ", $14 + $15}' "$f" 2>/dev/null || printf "0 "; done
}
busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# On a shared machine: waits (10 minutes at most) until the machine has
# been idle, less than 10% busy over 2 s, before a run starts. The servers
# are idle between runs, so whatever is busy then is somebody else.
quiet() {
  local i b0 b1 said=
  for i in $(seq 300); do
    b0=$(busy); sleep 2; b1=$(busy)
    [ $(((b1 - b0) * 100)) -lt $((10 * 2 * hz * $(nproc))) ] && return 0
    [ -n "$said" ] || { log "$scn: waiting for other work on the machine to finish"; said=1; }
  done
  log "$scn: the machine stayed busy; measuring anyway"
}

# run NAME CONNS URL SCRIPT ARGS...: one wrk run against the server whose
# workers (reel's threads, the peer's worker processes) are the /proc stat
# files in $split_stats and whose other processes are in $rest_stats,
# appended to $meta as "NAME rps p50 p99 errors busiest others": busiest,
# the share of the two busiest workers' CPU that the busier one used (50:
# balanced; 100: one did all the work); others, the CPU that neither the
# server nor wrk used, in % of the machine (other work on a shared host,
# steal).
run() {
  local name=$1 t0 b0 b1 t1 r0 r1 r w
  shift
  quiet
  t0=$(ticks "${split_stats[@]}") r0=$(ticks "${rest_stats[@]}") b0=$(busy) w=$(now)
  r=$(wrk_run "$@")
  t1=$(ticks "${split_stats[@]}") r1=$(ticks "${rest_stats[@]}") b1=$(busy)
  echo "$name $r $(awk -v a="$t0" -v b="$t1" -v ra="$r0" -v rb="$r1" -v b0="$b0" -v b1="$b1" \
    -v hz="$hz" -v wall="$(since "$w")" -v n="$(nproc)" -v wc="$(cat "$d/wrk.cpu")" 'BEGIN {
    k = split(a, x); split(b, y); m1 = m2 = tot = 0
    for (i = 1; i <= k; i++) {
      dd = y[i] - x[i]; tot += dd
      if (dd > m1) { m2 = m1; m1 = dd } else if (dd > m2) m2 = dd
    }
    k = split(ra, x); split(rb, y)
    for (i = 1; i <= k; i++) tot += y[i] - x[i]
    split(wc, c); other = (b1 - b0) - tot - (c[1] + c[2]) * hz
    printf "%.0f %.0f", (m1 + m2) ? 100 * m1 / (m1 + m2) : 0, (other > 0) ? 100 * other / (wall * hz * n) : 0 }')" >>"$meta"
}

# The 4-connection run three times, over new connections each time: the
# kernel spreads connections over reel's event loops (SO_REUSEPORT) and the
# peer's workers (one shared socket) as it likes, and with 4 connections
# on 2 loops the split (2:2, 3:1 or 4:0) decides the result. The report
# takes the median run by rate.
runs4() { # PREFIX URL
  local i
  for i in 1 2 3; do run "${1}_reco4_$i" 4 "$2" bench/serve/reco.lua "$d/users.txt" 10; done
}

# measure SCENARIO DIR: both servers, one at a time; results into DIR/meta.
measure() {
  local data=$1/data t port
  meta=$1/meta
  $py bench/serve/reelfiles.py ids "$data" users >"$d/users.txt"
  $py bench/serve/reelfiles.py ids "$data" videos >"$d/videos.txt"
  echo "load $(cut -d' ' -f1 /proc/loadavg)" >>"$meta"

  # reel, on hard links of the data (its write-ahead log goes into a fresh
  # wal/; nothing else is written)
  rm -rf "$d/reel"
  cp -al "$data" "$d/reel" 2>/dev/null || cp -r "$data" "$d/reel"
  port=18181
  log "$scn: reel serve"
  quiet
  t=$(now)
  "$reel" serve "$d/reel" --port "$port" --fsync interval --fsync-ms 10 >"$d/reel.log" 2>&1 &
  reel_pid=$!
  until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    kill -0 "$reel_pid" 2>/dev/null || { cat "$d/reel.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "t_reel_start $(since "$t")" >>"$meta"
  split_stats=(/proc/"$reel_pid"/task/*/stat) rest_stats=()
  run r_reco16 16 "http://127.0.0.1:$port" bench/serve/reco.lua "$d/users.txt" 10
  runs4 r "http://127.0.0.1:$port"
  run r_ev 16 "http://127.0.0.1:$port" bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000
  echo "r_rss $(hwm_kb "$reel_pid" | mib)" >>"$meta"
  kill "$reel_pid"; wait "$reel_pid" 2>/dev/null || true; reel_pid=
  rm -rf "$d/reel"

  # the peer (Redis with its append-only file fsynced every second); its
  # hnswlib index is cached in the data directory (DIR/index/hnswlib-*)
  port=18182
  peer_tmp=$d/peer
  rm -rf "$peer_tmp"; mkdir -p "$peer_tmp"
  log "$scn: peer"
  quiet
  t=$(now)
  PEER_TMP="$peer_tmp" PEER_AOF=everysec bench/serve/run_peer.sh "$data" "$port" 2 >/dev/null
  # /healthz answers once the first worker is up; wait for the second
  until [ "$(grep -c 'worker .* ready' "$peer_tmp/peer.log")" -ge 2 ]; do
    kill -0 "$(cat "$peer_tmp/peer.pid")" 2>/dev/null || { cat "$peer_tmp/peer.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "t_peer_start $(since "$t")" >>"$meta"
  sed -n 's/^peer: replayed .* in \([0-9.]*\) s$/t_peer_replay \1/p
          s/^peer: loaded .* into redis in \([0-9.]*\) s$/t_peer_redis \1/p
          s/^peer: hnswlib index .* built in \([0-9.]*\) s .*/t_peer_hnsw \1/p' \
    "$peer_tmp/peer.log" >>"$meta"
  grep -q '^peer: hnswlib index .* built' "$peer_tmp/peer.log" && echo "peer_hnsw_built 1" >>"$meta"
  local ppid w rss=()
  ppid=$(cat "$peer_tmp/peer.pid")
  # the launcher's children: the workers (and multiprocessing's tracker)
  split_stats=() rest_stats=("/proc/$ppid/stat" "/proc/$(cat "$peer_tmp/redis.pid")/stat")
  for w in $(pgrep -P "$ppid" || true); do split_stats+=("/proc/$w/stat"); done
  run p_reco16 16 "http://127.0.0.1:$port" bench/serve/reco.lua "$d/users.txt" 10
  runs4 p "http://127.0.0.1:$port"
  run p_ev 16 "http://127.0.0.1:$port" bench/serve/events.lua "$d/users.txt" "$d/videos.txt" 1000
  for w in $(pgrep -P "$ppid" || true); do rss+=("$(rss_kb "$w" | mib)"); done
  echo "p_rss $(rss_kb "$ppid" | mib) ${rss[*]}" >>"$meta"
  echo "p_redis_rss $(rss_kb "$(cat "$peer_tmp/redis.pid")" | mib)" >>"$meta"
  stop_peer
}

# report SCENARIO META: the scenario's markdown table.
report() {
  local m=$2
  get() { awk -v k="$1" '$1 == k {$1 = ""; sub(/^ /, ""); v = $0} END {print v}' "$m"; }
  local users videos events trees eta vdim load
  users=$(get users) videos=$(get videos) events=$(get events)
  trees=$(get trees) eta=$(get eta) vdim=$(get vdim) load=$(get load)
  local rr rp50 rp99 rbad lr lp50 lp99 lbad er ep50 ep99 ebad
  local pr pp50 pp99 pbad mr mp50 mp99 mbad qr qp50 qp99 qbad
  read -r rr rp50 rp99 rbad <<<"$(get r_reco16)"
  # the median of the three 4-connection runs, by rate
  med4() { local i; for i in 1 2 3; do get "${1}_reco4_$i"; done | sort -n -k1 | sed -n 2p; }
  runs4_text() { # PREFIX -> "rate at p99 (busiest share), ..."
    local i; for i in 1 2 3; do get "${1}_reco4_$i"; done |
      awk '{printf "%s%d/s at %.2f ms (%d%%)", (NR > 1) ? ", " : "", $1, $3, $5}'
  }
  others() { # PREFIX -> the largest share of the machine other processes used
    awk -v p="$1_" 'index($1, p) == 1 && NF >= 7 && $7 > m {m = $7} END {printf "%d", m}' "$m"
  }
  read -r lr lp50 lp99 lbad <<<"$(med4 r)"
  read -r er ep50 ep99 ebad <<<"$(get r_ev)"
  read -r pr pp50 pp99 pbad <<<"$(get p_reco16)"
  read -r mr mp50 mp99 mbad <<<"$(med4 p)"
  read -r qr qp50 qp99 qbad <<<"$(get p_ev)"
  local what
  case $1 in
    synth-1m) what="\`reel synth\`: $users users x $videos videos x 31 days, $events events" ;;
    synth-50k) what="\`reel synth\`: $users users x $videos videos x 14 days, $events events" ;;
    movielens) what="MovieLens latest-small (r-cran-dslabs): $users users x $videos movies, $events ratings" ;;
  esac
  echo "<!-- serve:$1 -->"
  echo "### $1: $what"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start $load; other"
  echo "processes (and steal) used at most $(others r)% of the machine during a reel run, $(others p)%"
  echo "during a peer run."
  echo "Vectors: $((vdim - 1)) dimensions + the popularity prior ($vdim floats);"
  echo "ranker: $trees trees of depth 6 (eta $eta), trained on $(get rows_line |
    sed 's/^rows: \([0-9]*\) from/\1 rows from/; s/;.*//')."
  echo
  echo "| what | reel | peer | reel / peer |"
  echo "|---|---:|---:|---:|"
  awk -v a="$rr" -v b="$pr" -v c="$rp50" -v e="$pp50" -v f="$rp99" -v g="$pp99" 'BEGIN {
    printf "| 16 connections: recommendations/s | %d | %d | %.1fx |\n", a, b, b ? a / b : 0
    printf "| 16 connections: p50 / p99 latency, ms | %.2f / %.2f | %.2f / %.2f | |\n", c, f, e, g }'
  awk -v a="$lr" -v b="$mr" -v c="$lp50" -v e="$mp50" -v f="$lp99" -v g="$mp99" 'BEGIN {
    printf "| 4 connections (median of 3 runs): recommendations/s | %d | %d | %.1fx |\n", a, b, b ? a / b : 0
    printf "| 4 connections (same run): p50 / p99 latency, ms | %.2f / %.2f | %.2f / %.2f | |\n", c, f, e, g }'
  echo "| 4 connections, each run: rate at p99 (the busier of the 2 loops or workers: its share of their CPU; 100%: the other got no connection) | $(runs4_text r) | $(runs4_text p) | |"
  awk -v a="$er" -v b="$qr" -v c="$ep50" -v e="$qp50" -v f="$ep99" -v g="$qp99" 'BEGIN {
    printf "| events/s (16 connections, batches of 1,000) | %d | %d | %.1fx |\n", a * 1000, b * 1000, b ? a / b : 0
    printf "| p50 / p99 per batch, ms | %.2f / %.2f | %.2f / %.2f | |\n", c, f, e, g }'
  echo "| errors: non-2xx answers and socket errors (all runs) | $(awk '$1 ~ /^r_(reco|ev)/ {n += $5} END {print n + 0}' "$m") | $(awk '$1 ~ /^p_(reco|ev)/ {n += $5} END {print n + 0}' "$m") | |"
  echo "| start-up (launch to ready), s | $(get t_reel_start) | $(get t_peer_start)$([ -n "$(get peer_hnsw_built)" ] || echo " (hnswlib index cached)") | |"
  echo "| RSS, MiB | $(get r_rss) (peak) | $(get p_rss | awk '{printf "launcher %s, children (workers)", $1; for (i = 2; i <= NF; i++) printf " %s", $i}'), Redis $(get p_redis_rss); mapped files count in each process | |"
  echo
  # The goals hold for reel alone; a connection count meets the first when
  # both its rate and its p99 do.
  awk -v r16="$rr" -v p16="$rp99" -v r4="$lr" -v p4="$lp99" -v ev="$er" 'BEGIN {
    m16 = r16 >= 2000 && p16 <= 5; m4 = r4 >= 2000 && p4 <= 5
    printf "Goals for reel: >= 2,000 recommendations/s with p99 <= 5 ms: %s", (m16 || m4) ? "**met**" : "**missed**"
    printf " (16 connections %d/s at p99 %.2f ms: %s; 4 connections, median run, %d/s at p99 %.2f ms: %s);\n", \
      r16, p16, m16 ? "met" : "missed", r4, p4, m4 ? "met" : "missed"
    printf ">= 200,000 events/s: %s (%d/s).\n", (ev * 1000 >= 200000) ? "**met**" : "**missed**", ev * 1000 }'
  echo
  local first=synth
  [ -n "$(get t_import)" ] && first=import
  echo "Preparation ($(get prepared)):"
  echo
  echo "| step | wall s | peak RSS, MiB |"
  echo "|---|---:|---:|"
  echo "| \`reel $first\` | $(get "t_$first") | $(get "m_$first") |"
  echo "| \`reel embed --dim $((vdim - 1)) --cold\` (item2vec, then the cold-start map) | $(get t_embed) | $(get m_embed) |"
  echo "| \`reel index build\` ($(nproc) threads) | $(get t_index) | $(get m_index) |"
  echo "| \`reel train --trees 300\` (training runs: $(get train_tries); each builds its own single-threaded index first) | $(get t_train) | $(get m_train) |"
  echo "| peer launcher: replay the events with numpy | $(get t_peer_replay) | |"
  echo "| peer launcher: load the users into Redis | $(get t_peer_redis) | |"
  echo "| peer launcher: hnswlib index ($(nproc) threads; cached in the data directory) | $(get t_peer_hnsw) | |"
  echo "<!-- /serve:$1 -->"
}

ran=()
for scn in "${all_scenarios[@]}"; do
  case " $want " in *" $scn "*) ;; *) continue ;; esac
  if [ -n "$cache" ]; then sd=$cache/$scn; else sd=$d/$scn; fi
  if [ -f "$sd/ready" ] && [ -d "$sd/data" ]; then
    log "$scn: reusing $sd"
    grep -v '^\(load\|r_\|p_\|t_reel\|t_peer_start\|t_peer_replay\|t_peer_redis\|peer_\|t_measure\)' \
      "$sd/meta" >"$sd/meta.new"
    mv "$sd/meta.new" "$sd/meta"
  else
    rm -rf "$sd"; mkdir -p "$sd"
    t=$(now)
    echo "prepared $(date -u '+%Y-%m-%d %H:%M UTC')" >"$sd/meta"
    prepare "$sd"
    echo "t_prepare $(since "$t")" >>"$sd/meta"
    touch "$sd/ready"
  fi
  t=$(now)
  measure "$sd"
  echo "t_measure $(since "$t")" >>"$sd/meta"
  report "$scn" "$sd/meta" >"$d/$scn.md"
  log "$scn: done ($(awk '$1 == "t_prepare" || $1 == "t_measure" {printf "%s %s s ", $1, $2}' "$sd/meta"))"
  ran+=("$scn")
  [ -n "$cache" ] || rm -rf "$sd"
done

echo "## Serving: reel serve against the Python stack (bench/serve)"
echo
echo "Each scenario is served by \`reel serve\` (write-ahead log fsynced every"
echo "10 ms) and by the peer a team would otherwise build: FastAPI + uvicorn"
echo "(2 workers, uvloop) + hnswlib + XGBoost + redis-py, Redis with its"
echo "append-only file fsynced every second (bench/serve/README.md), on the same"
echo "files: item2vec vectors with the popularity prior (\`reel embed --dim $dim"
echo "--cold\`), the HNSW index (M 16, efConstruction 200; the peer builds its own"
echo "with hnswlib) and the same 300-tree XGBoost ranker (reel's C evaluator, the"
echo "peer's xgboost.Booster). One server at a time; wrk, 2 threads, ${secs} s per run"
echo "on the same $(nproc) cores: recommendations for random users (k = 10, 200"
echo "candidates, the same 33 features) over 16 connections (throughput) and over 4"
echo "(latency at a load the cores can take without queueing: with 16 requests in"
echo "flight on 2 cores a request waits for the others), then batches of 1,000"
echo "watch events for random users and videos over 16 connections. The machine"
echo "is shared: each run first waits until it has been idle for 2 s (10 minutes at"
echo "most), and each table says how much CPU other processes took during the runs."
echo "\`BENCH_SERVE_SCENARIO=all make bench\` runs all three scenarios: about 40 minutes"
echo "here with the default 10 s runs (48 with 30 s runs), 35 of them for synth-1m, 27"
echo "of which prepare its data (see its preparation table). By default only movielens"
echo "and synth-50k run (about 3 minutes each) and the synth-1m table stays from the"
echo "last run that had it."
echo
echo "Goals (issue 6, Real-time serving), for reel on this 2-core machine: >= 2,000"
echo "recommendations/s with p99 <= 5 ms (200 candidates, 300-tree ranker), >= 200,000"
echo "events/s over HTTP batches with fsync every 10 ms."
for scn in "${all_scenarios[@]}"; do
  echo
  if [ -f "$d/$scn.md" ]; then
    cat "$d/$scn.md"
  elif [ -f "$doc" ] && grep -q "^<!-- serve:$scn -->" "$doc"; then
    awk -v n="$scn" '$0 == "<!-- serve:" n " -->" {p=1} p {print} $0 == "<!-- /serve:" n " -->" {p=0}' "$doc"
  else
    echo "<!-- serve:$scn -->"
    echo "### $scn: not measured yet (\`BENCH_SERVE_SCENARIO=$scn\`)"
    echo "<!-- /serve:$scn -->"
  fi
done
