#!/usr/bin/env bash
# Training time of the two rankers (XGBoost through libxgboost, the MLP)
# as the number of rows and of features grows (issue: Ranking).
set -euo pipefail
rows=${BENCH_TRAIN_ROWS:-100000}
build=${BUILD:-build}
cmake --build "$build" --target bench_train >/dev/null
load=$(cut -d' ' -f1 /proc/loadavg)
# libxgboost 1.7 sorts the validation scores for its "auc" with libstdc++'s
# parallel sort, which takes OpenMP's default thread count whatever nthread
# says (dmlc/xgboost#8802); OMP_NUM_THREADS=1 keeps the whole run on one
# thread. One cell, trained 3 times each way, shows what that costs.
r=$(OMP_NUM_THREADS=1 "$build"/bench_train "$rows" 2>/dev/null)
get() { echo "$1" | sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p"; }
one=() omp=()
for _ in 1 2 3; do
  one+=("$(get "$(OMP_NUM_THREADS=1 "$build"/bench_train --xgb 10000 10)" xgb_s)")
  omp+=("$(get "$("$build"/bench_train --xgb 10000 10)" xgb_s)")
done
range() { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | paste -sd- | sed 's/-/ to /'; }
echo "## Training the rankers: time against rows and features"
echo
echo "\`build/bench_train\` trains XGBoost and the MLP on 3 x 3 sizes of one"
echo "synthetic table, each on one thread. Load average when it started:"
echo "$load ($(nproc) cores; the machine is shared, so timings are noisy)."
echo
echo "$r"
echo
echo "Run with OMP_NUM_THREADS=1. libxgboost 1.7 sorts the validation scores"
echo "for its per-round \"auc\" on OpenMP's default $(nproc) threads whatever"
echo "nthread says (dmlc/xgboost#8802); reel asks it only for logloss and"
echo "computes AUC itself, so the setting should not matter: three XGBoost"
echo "trainings on 10k rows x 10 features (each a fresh process) took"
echo "$(range "${one[@]}") s with OMP_NUM_THREADS=1 and $(range "${omp[@]}") s"
echo "without it, in this run."
