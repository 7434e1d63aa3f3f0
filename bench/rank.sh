#!/usr/bin/env bash
# Scoring the candidates of one request with a boosted-tree model (300
# trees of depth 6, 40 features): reel's C evaluator (src/rank/gbtree)
# against libxgboost's C API, in the same process on the same rows.
set -euo pipefail
n=${BENCH_RANK_CANDIDATES:-500}
build=${BUILD:-build}
cmake --build "$build" --target bench_rank >/dev/null
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
load=$(cut -d' ' -f1 /proc/loadavg)
r=$("$build"/bench_rank "$d" "$n")
get() { echo "$r" | sed -n "s/.*\"$1\": \"\{0,1\}\([0-9A-Za-z.e+-]*\).*/\1/p"; }
us() { awk -v s="$1" 'BEGIN{printf "%.0f", s * 1e6}'; }
rate() { awk -v s="$1" -v n="$n" 'BEGIN{printf "%.2fM", n / s / 1e6}'; }
vs() { awk -v s="$1" -v b="$(get xgb1_s)" 'BEGIN{printf "%.2fx", b / s}'; }
row() { echo "| $1 | $(us "$(get "$2")") | $(rate "$(get "$2")") | $(vs "$(get "$2")") |"; }
echo "## Scoring candidates with boosted trees: $n rows, $(get trees) trees of depth $(get depth)"
echo
echo "\`build/bench_rank\` trains $(get trees) trees of depth $(get depth) with libxgboost"
echo "(binary:logistic, 20k synthetic rows of $(get features) features, 10% missing), saves"
echo "XGBoost's JSON model, loads it with reel_gbtree, and scores the same $n"
echo "candidate rows (10% missing) over and over in one process: best of 7 runs."
echo "libxgboost predicts in place from the dense rows (XGBoosterPredictFromDense),"
echo "its fastest path for a request; \"1 thread\" sets nthread=1, \"default\" leaves"
echo "it to OpenMP ($(nproc) threads here). Largest difference between reel's and"
echo "libxgboost's outputs on these rows: $(get max_abs_diff). Load average when it"
echo "started: $load (the machine is shared)."
echo
echo "| scorer | µs per request | rows/s | throughput vs libxgboost, 1 thread |"
echo "|---|---:|---:|---:|"
row "reel_gbtree_predict ($(get kernel))" reel_s
row "reel_gbtree_predict_scalar (same layout, no SIMD)" reel_scalar_s
row "reel_gbtree_predict_naive (node walk, the slow twin)" reel_naive_s
row "libxgboost 1.7, 1 thread" xgb1_s
row "libxgboost 1.7, default threads" xgbn_s
echo
echo "Goal (issue: Ranking): reel at least 2x libxgboost's single-thread throughput."
