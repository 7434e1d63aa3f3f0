#!/usr/bin/env bash
# End-to-end tests of the reel binary: exit codes (0 ok, 1 runtime error,
# 2 usage error), import (JSONL and MovieLens), stats, synth.
#   test_cli.sh PATH/TO/reel
set -u
REEL=${1:?usage: test_cli.sh PATH/TO/reel}
T=$(mktemp -d "${TMPDIR:-/tmp}/reel-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect STATUS CMD...: runs CMD, checks its exit status, keeps its output
# in $T/out and $T/err.
expect() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then ok; else
    bad "exit $got (wanted $want): $*"; sed 's/^/  | /' "$T/err" >&2; fi
}
contains() { # contains FILE TEXT
  if grep -qF -- "$2" "$1"; then ok; else bad "$1 lacks '$2'"; sed 's/^/  | /' "$1" >&2; fi
}

# --- usage and help
expect 0 "$REEL" --help;               contains "$T/out" "import"
expect 2 "$REEL";                      contains "$T/err" "usage"
expect 2 "$REEL" frobnicate;           contains "$T/err" "unknown command"
for c in import stats synth; do
  expect 0 "$REEL" "$c" --help;        contains "$T/out" "usage: reel $c"
done
expect 2 "$REEL" import "$T/x";        contains "$T/err" "nothing to import"
expect 2 "$REEL" import "$T/x" --bogus
expect 2 "$REEL" stats
expect 2 "$REEL" synth "$T/s" --users abc

# --- JSONL import and stats
cat >"$T/v.jsonl" <<'J'
{"id":"v1","title":"Cats","categories":["Comedy"],"language":"en","duration_s":300,"type":"short"}
{"id":"v2","title":"Dogs","categories":["Drama"],"duration_s":5400,"type":"movie"}
J
cat >"$T/e.jsonl" <<'J'
{"user":"u1","video":"v1","type":"watch","watch_s":120,"ts":1700000100}
{"user":"u2","video":"v2","type":"click","ts":1700000050}
J
expect 0 "$REEL" import "$T/d1" --videos "$T/v.jsonl" --events "$T/e.jsonl"
contains "$T/out" "imported 2 videos, 2 users, 2 events"
expect 0 "$REEL" stats "$T/d1";        contains "$T/out" "events       2"
expect 0 "$REEL" stats "$T/d1" --json; contains "$T/out" '"events":2'
expect 1 "$REEL" stats "$T/nowhere";   contains "$T/err" "cannot open"

# A bad line fails with file:line and leaves the existing dataset alone.
before=$(cksum <"$T/d1/dataset.reel")
printf '%s\n' '{"user":"u1","video":"v1","type":"watch","ts":1}' \
  '{"user":"u1","video":"v9","type":"watch","ts":2}' >"$T/bad.jsonl"
expect 1 "$REEL" import "$T/d1" --videos "$T/v.jsonl" --events "$T/bad.jsonl"
contains "$T/err" "bad.jsonl:2: unknown video"
[ "$(cksum <"$T/d1/dataset.reel")" = "$before" ] && ok || bad "dataset changed after a failed import"
ls "$T/d1" | grep -q tmp && bad "temporary file left behind" || ok
expect 0 "$REEL" import "$T/d1" --videos "$T/v.jsonl" --events "$T/bad.jsonl" --skip-bad
contains "$T/out" "1 malformed records skipped"

# A damaged dataset is refused with a clear message.
cp -r "$T/d1" "$T/d2"
truncate -s 100 "$T/d2/dataset.reel"
expect 1 "$REEL" stats "$T/d2";        contains "$T/err" "truncated"

# --- MovieLens, both layouts (tiny fixtures)
mkdir -p "$T/ml-latest" "$T/ml-100k"
cat >"$T/ml-latest/movies.csv" <<'C'
movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,"American President, The (1995)",Comedy|Drama|Romance
C
cat >"$T/ml-latest/ratings.csv" <<'C'
userId,movieId,rating,timestamp
1,1,4.0,964982703
1,2,3.5,964981247
2,1,5.0,964982224
C
expect 0 "$REEL" import "$T/d3" --movielens "$T/ml-latest"
contains "$T/out" "imported 2 videos, 2 users, 3 events"
expect 0 "$REEL" stats "$T/d3" --json; contains "$T/out" '"rating":3'
printf '1\t1\t4\t881250949\n2\t1\t3\t891717742\n' >"$T/ml-100k/u.data"
printf '1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n' >"$T/ml-100k/u.item"
printf '1|24|M|technician|85711\n2|53|F|other|94043\n' >"$T/ml-100k/u.user"
expect 0 "$REEL" import "$T/d4" --movielens "$T/ml-100k"
contains "$T/out" "imported 1 videos, 2 users, 2 events"
expect 1 "$REEL" import "$T/d5" --movielens "$T"
contains "$T/err" "no MovieLens files"

# --- synth: deterministic for a seed
expect 0 "$REEL" synth "$T/s1" --users 50 --videos 80 --days 3 --seed 7
expect 0 "$REEL" synth "$T/s2" --users 50 --videos 80 --days 3 --seed 7 --threads 1
cmp -s "$T/s1/dataset.reel" "$T/s2/dataset.reel" && ok || bad "synth not deterministic"
expect 0 "$REEL" stats "$T/s1";        contains "$T/out" "impression"

# --- vector index: four 2-d vectors in .fvecs (dim, then floats)
v() { printf '\x02\x00\x00\x00'; printf "$1$2"; }
z='\x00\x00\x00\x00' one='\x00\x00\x80\x3f' two='\x00\x00\x00\x40'
{ v "$z" "$z"; v "$one" "$z"; v "$z" "$two"; v "$two" "$two"; } >"$T/x.fvecs"
expect 0 "$REEL" index build --vectors "$T/x.fvecs" --out "$T/x.idx" --threads 1
contains "$T/out" "4 x 2"
expect 0 "$REEL" index query --index "$T/x.idx" --queries "$T/x.fvecs" --k 1
[ "$(tr '\n' ' ' <"$T/out")" = "0 1 2 3 " ] && ok || bad "index query: $(cat "$T/out")"
contains "$T/err" "queries/s"
expect 0 "$REEL" index stats --index "$T/x.idx" --json; contains "$T/out" '"count":4'
expect 0 "$REEL" index build --vectors "$T/x.fvecs" --out "$T/q.idx" --threads 1 \
  --storage int8 --rescore 3
expect 0 "$REEL" index stats --index "$T/q.idx" --json; contains "$T/out" '"rescore":3'
expect 0 "$REEL" index query --index "$T/q.idx" --queries "$T/x.fvecs" --k 1
[ "$(tr '\n' ' ' <"$T/out")" = "0 1 2 3 " ] && ok || bad "int8 index query: $(cat "$T/out")"
expect 2 "$REEL" index build --vectors "$T/x.fvecs" --out "$T/y.idx" --rescore lots
expect 2 "$REEL" index build --vectors "$T/x.fvecs"
expect 2 "$REEL" index build --vectors "$T/x.fvecs" --out "$T/y.idx" --metric cosinus
head -c 20 "$T/x.fvecs" >"$T/cut.fvecs"
expect 1 "$REEL" index build --vectors "$T/cut.fvecs" --out "$T/y.idx"
contains "$T/err" "truncated"
truncate -s 200 "$T/x.idx"
expect 1 "$REEL" index stats --index "$T/x.idx"; contains "$T/err" "truncated"

# --- embeddings and evaluation on the simulated service
expect 0 "$REEL" embed "$T/s1" --dim 8 --epochs 1 --threads 1
contains "$T/out" "item2vec:"
[ -f "$T/s1/vectors/item2vec.reel" ] && ok || bad "no vectors file"
expect 0 "$REEL" embed "$T/s1" --method als --dim 4 --iterations 2
expect 0 "$REEL" embed "$T/s1" --dim 8 --epochs 1 --threads 1 --cold --out "$T/cold.reel"
contains "$T/out" "by the cold-start map"
expect 1 "$REEL" embed "$T/s1" --dim 8 --epochs 1 --content "$T/missing.reel" --out "$T/cold.reel"
contains "$T/err" "missing.reel"
expect 0 "$REEL" eval "$T/s1" --protocol cold-start --dim 8 --epochs 1 --json
contains "$T/out" '"cold_videos"'
expect 0 "$REEL" embed "$T/s1" --concat "$T/s1/vectors/item2vec.reel,$T/s1/vectors/als.reel" --out "$T/cc.reel"
contains "$T/out" "dim 9 + 4 = 13"
expect 0 "$REEL" eval "$T/s1" --protocol leave-last-out --method ann --vectors "$T/cc.reel"
expect 1 "$REEL" eval "$T/s1" --protocol leave-last-out --vectors "$T/nothing.reel"
contains "$T/err" "nothing.reel"
expect 0 "$REEL" eval "$T/s1" --protocol leave-last-out --dim 8 --epochs 1 --json
contains "$T/out" '"itemknn"'
[ -f "$T/s1/reports/eval-leave-last-out.svg" ] && ok || bad "no eval plot"
expect 0 "$REEL" eval "$T/s1" --protocol replay --method popular
contains "$T/out" "p50 us"
expect 2 "$REEL" eval "$T/s1"
expect 0 "$REEL" eval "$T/s1" --protocol replay --method full --dim 8 --epochs 1 --threads 1
contains "$T/out" "full"

# --- reel build: vectors (with cold-start ones), index, ranker
expect 0 "$REEL" build "$T/s1"
contains "$T/out" "by the cold-start map"
[ -f "$T/s1/index/item2vec.idx" ] && ok || bad "no index from reel build"
expect 0 "$REEL" index stats --index "$T/s1/index/item2vec.idx"
expect 2 "$REEL" build "$T/s1" --ranker forest
expect 1 "$REEL" build "$T/nowhere"

# --- the ranker: train on impressions, explain, refuse a damaged model
expect 0 "$REEL" train "$T/s1" --trees 20 --label click
contains "$T/out" "from impressions"
contains "$T/out" "AUC"
[ -f "$T/s1/models/ranker.json" ] && ok || bad "no ranker.json"
expect 0 "$REEL" rank explain "$T/s1" --user u1 --video v2
contains "$T/out" "x_sim"
expect 0 "$REEL" rank explain "$T/s1" --user u1 --video v2 --json
contains "$T/out" '"contribution"'
expect 1 "$REEL" rank explain "$T/s1" --user nobody --video v2
contains "$T/err" "no user 'nobody'"
expect 0 "$REEL" train "$T/s1" --ranker mlp --label click
[ -f "$T/s1/models/ranker-mlp.reel" ] && ok || bad "no ranker-mlp.reel"
expect 1 "$REEL" rank explain "$T/s1" --user u1 --video v2 --model "$T/s1/models/ranker-mlp.reel"
contains "$T/err" "XGBoost"
head -c 300 "$T/s1/models/ranker.json" >"$T/cut.json"
expect 1 "$REEL" rank explain "$T/s1" --user u1 --video v2 --model "$T/cut.json"
contains "$T/err" "cut.json"
expect 2 "$REEL" train "$T/s1" --label sometimes
expect 0 "$REEL" train "$T/s1" --trees 10 --label click --objective rank:ndcg
expect 0 "$REEL" rank explain "$T/s1" --user u1 --video v2
expect 2 "$REEL" eval "$T/s1" --protocol sideways

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
