#!/usr/bin/env bash
# Vector search: reel's HNSW against hnswlib and FAISS (same M, efC, build
# threads; one search thread), QPS at recall@10 = 0.95 and build cost.
# Data is generated once into data/ann/ (gitignored) and reused.
# Markdown on stdout, progress on stderr, raw numbers in data/ann/results.json.
#
#   ANN_QUICK=1        one 100k x 128 dataset instead of the defaults
#   ANN_SIZES="NxD:NQ:l2|ip ..."  the synthetic datasets to run (default
#                      "1000000x128:10000:l2 100000x768:5000:ip"; "" = none)
#   ANN_FVECS_BASE, ANN_FVECS_QUERY[, ANN_FVECS_GT (.ivecs), ANN_FVECS_METRIC
#                      (l2|ip), ANN_FVECS_NAME]   a dataset of your own, e.g.
#                      SIFT1M's sift_base.fvecs, sift_query.fvecs and
#                      sift_groundtruth.ivecs
#   ANN_LIBS=reel,hnswlib,hnswlib-native,faiss   ANN_EFS=10,16,...   ANN_RUNS=3
#   ANN_STOP_RECALL=0.999  end each library's sweep once its recall reaches
#                      this (saves the slow high-ef end; default: whole sweep)
#   ANN_THREADS=2 (build)  ANN_M=16  ANN_EFC=200  ANN_DATA=data/ann
#   ANN_JSON=<ANN_DATA>/results.json   REEL=build/reel
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
py=/usr/bin/python3
data=${ANN_DATA:-data/ann}

args=(--data-dir "$data" --reel "${REEL:-build/reel}"
      --libs "${ANN_LIBS:-reel,hnswlib,hnswlib-native,faiss}"
      --m "${ANN_M:-16}" --efc "${ANN_EFC:-200}"
      --build-threads "${ANN_THREADS:-2}" --runs "${ANN_RUNS:-3}"
      --json "${ANN_JSON:-$data/results.json}")
[ -n "${ANN_EFS:-}" ] && args+=(--efs "$ANN_EFS")
[ -n "${ANN_STOP_RECALL:-}" ] && args+=(--stop-recall "$ANN_STOP_RECALL")

if [ -n "${ANN_QUICK:-}" ] && [ "$ANN_QUICK" != 0 ]; then
  sizes=${ANN_SIZES-100000x128:10000:l2}
else
  sizes=${ANN_SIZES-1000000x128:10000:l2 100000x768:5000:ip}
fi
n_sets=0
for s in $sizes; do args+=(--synth "$s"); n_sets=$((n_sets + 1)); done

if [ -n "${ANN_FVECS_BASE:-}" ]; then
  : "${ANN_FVECS_QUERY:?ANN_FVECS_BASE needs ANN_FVECS_QUERY}"
  args+=(--fvecs-base "$ANN_FVECS_BASE" --fvecs-query "$ANN_FVECS_QUERY"
         --fvecs-metric "${ANN_FVECS_METRIC:-l2}")
  [ -n "${ANN_FVECS_GT:-}" ] && args+=(--fvecs-gt "$ANN_FVECS_GT")
  [ -n "${ANN_FVECS_NAME:-}" ] && args+=(--fvecs-name "$ANN_FVECS_NAME")
  n_sets=$((n_sets + 1))
fi
if [ "$n_sets" -eq 0 ]; then
  echo "bench/ann.sh: no dataset (empty ANN_SIZES, no ANN_FVECS_BASE)" >&2
  exit 2
fi

exec "$py" bench/ann/run.py "${args[@]}"
