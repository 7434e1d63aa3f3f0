#!/usr/bin/env bash
# Importing MovieLens latest-small (~100k ratings; budget: well under a
# second), against pandas reading the same CSV files.
set -euo pipefail
ml=${BENCH_ML_DIR:-data/ml-latest-small}
if [ ! -f "$ml/ratings.csv" ]; then
  scripts/get-movielens "$ml" >&2
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
n=$(($(wc -l <"$ml/ratings.csv") - 1))
hyperfine -N --warmup 2 --runs 10 --export-json "$d/h.json" \
  -n reel "build/reel import $d/out --movielens $ml" \
  -n pandas "/usr/bin/python3 -c \"import pandas as pd; r = pd.read_csv('$ml/ratings.csv'); m = pd.read_csv('$ml/movies.csv'); g = m.genres.str.split('|'); r = r.sort_values('timestamp', kind='stable')\"" \
  >&2
reel=$(/usr/bin/python3 -c "import json; r = json.load(open('$d/h.json'))['results']; print('%.3f' % r[0]['mean'])")
pd=$(/usr/bin/python3 -c "import json; r = json.load(open('$d/h.json'))['results']; print('%.3f' % r[1]['mean'])")
echo "## Importing MovieLens latest-small ($n ratings)"
echo
echo "\`reel import DIR --movielens\` (parse both CSVs, clean titles, intern ids,"
echo "sort by time, write the checksummed dataset with fsync) against pandas"
echo "reading the same two CSVs, splitting genres and sorting by time (no"
echo "output written). hyperfine, mean of 10 runs, whole processes."
echo
echo "| what | seconds | time vs pandas (lower is faster) |"
echo "|---|---:|---:|"
echo "| reel import | $reel | $(awk -v a="$reel" -v b="$pd" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| pandas read_csv + split + sort | $pd | 1.00x |"
echo
echo "Budget (issue: Foundation): well under a second."
