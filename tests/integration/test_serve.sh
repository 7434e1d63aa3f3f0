#!/usr/bin/env bash
# End-to-end test of `reel serve` over real HTTP on 127.0.0.1 (port 0):
# health, recommendations (cold start, then personalized after a watch
# that is never recommended back), similar, history, deletion, bad input
# (400, 404, 405, 401), experiments (arms in answers, attribution through
# request_id), then SIGKILL during a stream of POSTs and a restart: every
# event that got a 202 must be in the user's history.
#   test_serve.sh PATH/TO/reel
set -u
REEL=${1:?usage: test_serve.sh PATH/TO/reel}
T=$(mktemp -d "${TMPDIR:-/tmp}/reel-serve-XXXXXX")
PID=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
PY=/usr/bin/python3
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# start ARGS...: starts the server on a free port, waits until it prints
# the port (polling its output: the server says when it listens).
start() {
  : >"$T/out"
  "$REEL" serve "$T/d" --port 0 --threads 2 "$@" >"$T/out" 2>>"$T/err" &
  PID=$!
  for _ in $(seq 1 300); do
    PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/out")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$PORT" ] || { bad "server did not start"; sed 's/^/  | /' "$T/err" >&2; exit 1; }
  URL="http://127.0.0.1:$PORT"
}
# req METHOD PATH [BODY] [CURL ARGS...]: the status in $CODE, the body in
# $T/body.
req() {
  local m=$1 p=$2; shift 2
  local data=()
  if [ $# -gt 0 ]; then data=(--data-binary "$1"); shift; fi
  CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" "${data[@]}" "$@" "$URL$p")
}
expect() { # expect STATUS METHOD PATH [BODY] [CURL ARGS...]
  local want=$1; shift
  req "$@"
  if [ "$CODE" = "$want" ]; then ok; else
    bad "$1 $2: status $CODE, wanted $want"; sed 's/^/  | /' "$T/body" >&2; fi
}
has() { # has TEXT: the last body contains TEXT
  if grep -qF -- "$1" "$T/body"; then ok; else
    bad "body lacks '$1'"; sed 's/^/  | /' "$T/body" >&2; fi
}
lacks() {
  if grep -qF -- "$1" "$T/body"; then
    bad "body has '$1'"; sed 's/^/  | /' "$T/body" >&2; else ok; fi
}
first_video() { grep -o '"video":"[^"]*"' "$T/body" | sed -n 1p | cut -d'"' -f4; }

"$REEL" synth "$T/d" --users 50 --videos 80 --days 3 --seed 7 >/dev/null || { bad synth; exit 1; }
"$REEL" build "$T/d" >/dev/null 2>&1 || { bad build; exit 1; }
start

# --- health and the read routes
expect 200 GET /healthz;  has '"ok"'
expect 200 GET /readyz;   has '"ready"'
expect 200 GET "/v1/users/newcomer/recommendations?k=5"
has '"source":"cold-start"'; has '"request_id"'; has '"title"'
n=$(grep -o '"score"' "$T/body" | wc -l)
[ "$n" -eq 5 ] && ok || bad "wanted 5 items, got $n"
V=$(first_video)
[ -n "$V" ] && ok || bad "no video in the cold-start list"
expect 200 GET "/v1/users/newcomer/recommendations?k=1000"
n=$(grep -o '"score"' "$T/body" | wc -l)
[ "$n" -le 100 ] && ok || bad "k not capped: $n items"
expect 200 GET "/v1/videos/$V/similar?k=3"; has '"items":[{"video"'
expect 200 GET /v1/users/newcomer/history;  has '"total":0'

# --- an event, then read-your-writes
expect 202 POST /v1/events "{\"user\":\"newcomer\",\"video\":\"$V\",\"type\":\"watch\",\"watch_s\":60}"
has '"accepted":1'; has '"rejected":[]'
expect 200 GET "/v1/users/newcomer/recommendations?k=10"
has '"source":"personalized"'; lacks "\"video\":\"$V\""
expect 200 GET /v1/users/newcomer/history; has "\"video\":\"$V\""; has '"total":1'
expect 200 GET /v1/users/newcomer;  has '"events":1'
expect 200 GET "/v1/videos/$V";     has '"categories":['; has '"deleted":false'
expect 404 GET /v1/videos/no-such-video; has 'unknown video'
expect 404 GET /v1/users/never-seen;     has 'unknown user'

# Arrays and NDJSON, with refusals per item.
expect 202 POST /v1/events "[{\"user\":\"a1\",\"video\":\"$V\",\"type\":\"click\",\"ts\":1700000000},{\"user\":\"a1\",\"video\":\"no-such\",\"type\":\"click\",\"ts\":1700000001},{\"user\":\"a1\",\"type\":\"click\"}]"
has '"accepted":1'; has '{"index":1,"error":"unknown video"}'; has '"index":2'
expect 202 POST /v1/events "$(printf '{"user":"a2","video":"%s","type":"like"}\n{"user":"a2","video":"%s","type":"watch"}\n' "$V" "$V")"
has '"accepted":2'

# --- bad input
expect 400 POST /v1/events '{"user": "x", '; has '"error"'
expect 400 POST /v1/events '[1] [2]'
expect 400 POST /v1/events '{"user":"x","video":"v","type":"view"}'; has 'unknown event type'
expect 400 POST /v1/events '{"user":"x","type":"watch"}'; has 'video'
expect 400 POST /v1/events ''
expect 404 GET /v1/nothing
expect 405 DELETE /healthz
expect 404 GET /v1/videos/no-such-video/similar; has 'unknown video'
expect 400 GET "/v1/users/x/recommendations?k=abc"
expect 400 GET "/v1/users/%FF/recommendations"
# Deleting a video: never recommended again, also after the restarts.
expect 404 DELETE /v1/videos/no-such-video
expect 200 GET "/v1/users/a2/recommendations?k=1"
D=$(first_video)
expect 200 DELETE "/v1/videos/$D"; has '"deleted":true'
expect 200 GET "/v1/users/a2/recommendations?k=100"; lacks "\"video\":\"$D\""
expect 200 GET /metrics
has 'reel_events_ingested_total 4'; has 'reel_events_rejected_total 1'
has 'reel_http_requests_total{route="POST /v1/events",status="2xx"}'

# --- the catalogue and users at run time
expect 201 PUT /v1/videos/brand-new '{"title": "Brand new", "categories": ["Drama"]}'
has '"created":true'
expect 200 GET /v1/videos/brand-new; has '"title":"Brand new"'; has '"has_vector":false'
expect 200 GET "/v1/users/nobody-yet/recommendations?k=100"; has '"video":"brand-new"'
expect 400 PUT /v1/videos/other '{"id": "not-other"}'; has 'differs'
expect 400 PUT /v1/videos/other '{"vector": [1, 2]}'; has 'the vectors have'
dim=$(sed -n 's/.*the vectors have \([0-9]*\).*/\1/p' "$T/body")
vec=$(seq -s, 1 "$dim")
expect 200 PUT /v1/videos/brand-new "{\"title\": \"Renamed\", \"vector\": [$vec]}"
has '"created":false'
expect 200 GET /v1/videos/brand-new; has '"title":"Renamed"'; has '"has_vector":true'
expect 200 GET "/v1/videos/brand-new/similar?k=3"; has '"items":[{"video"'
expect 400 PUT /v1/videos/x '{"duration_s": "long"}'; has 'duration_s'
expect 201 PUT /v1/users/demo '{"age": 30, "gender": "F", "country": "NL"}'
expect 200 GET /v1/users/demo; has '"age":30'; has '"country":"NL"'
expect 200 PUT /v1/users/demo '{"age": 31}'
expect 200 GET /v1/users/demo; has '"age":31'; has '"country":null'
expect 200 GET "/v1/users/a2/recommendations?k=2&explain=true"
has '"explain":{"features":[{"name":"u_age"'; has '"contribution"'; has '"bias"'
expect 400 GET "/v1/users/a2/recommendations?explain=maybe"
expect 200 POST /admin/snapshot; has '"snapshot_lsn"'
expect 200 POST /admin/reload; has '"reloaded":true'
expect 200 GET "/v1/videos/brand-new/similar?k=3"; has '"items":[{"video"'
expect 200 GET /metrics; has 'reel_new_videos 1'; has 'reel_reloads_total 1'
has 'reel_snapshots_total 1'; has 'reel_store_bytes{part="wal"}'

# --- experiments: arms in every answer, attribution through request_id
expect 200 GET /v1/experiments; has '"experiments":[]'
expect 400 PUT /v1/experiments/ab '{"arms": [{"name": "a", "share": 0.6}, {"name": "b", "share": 0.6}]}'
has 'add up'
expect 201 PUT /v1/experiments/ab '{"arms": [{"name": "control", "share": 0.5}, {"name": "plain", "share": 0.5, "params": {"ranker": "none", "candidates": 50}}]}'
has '"name":"ab"'; has '"control":"control"'
expect 200 GET "/v1/users/a2/recommendations?k=3"
has '"experiments":[{"name":"ab","arm":"'
RID=$(sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p' "$T/body")
ARM=$(sed -n 's/.*"arm":"\([^"]*\)".*/\1/p' "$T/body")
R1=$(first_video)
expect 202 POST /v1/events "[{\"user\":\"a2\",\"video\":\"$R1\",\"type\":\"impression\",\"request_id\":\"$RID\"},{\"user\":\"a2\",\"video\":\"$R1\",\"type\":\"click\",\"request_id\":\"$RID\"},{\"user\":\"a2\",\"video\":\"$R1\",\"type\":\"watch\",\"watch_s\":90,\"request_id\":\"$RID\"}]"
expect 200 GET /v1/experiments/ab
"$PY" - "$T/body" "$ARM" <<'PYEOF' && ok || bad "experiment counts: $(cat "$T/body")"
import json, sys
e = json.load(open(sys.argv[1]))
arm = [a for a in e["arms"] if a["name"] == sys.argv[2]][0]
assert (arm["users"], arm["requests"], arm["impressions"], arm["clicks"]) == (1, 1, 1, 1), arm
assert abs(arm["watch_s_per_impression"]["value"] - 90) < 1e-9, arm
PYEOF
expect 200 DELETE /v1/experiments/ab; has '"deleted":true'
expect 404 GET /v1/experiments/ab
expect 200 GET "/v1/users/a2/recommendations?k=3"; has '"experiments":[]'
# An arm may name the MLP ranker once the server has one.
MLPX='{"arms": [{"name": "trees", "share": 0.5}, {"name": "mlp", "share": 0.5, "params": {"ranker": "mlp"}}]}'
expect 400 PUT /v1/experiments/rk "$MLPX"; has 'no MLP ranker'
"$REEL" train "$T/d" --ranker mlp >/dev/null 2>&1 && ok || bad "reel train --ranker mlp"
expect 200 POST /admin/reload
expect 201 PUT /v1/experiments/rk "$MLPX"
for u in a1 a2 newcomer u1 u2 u3 u4 u5 u6 u7; do
  expect 200 GET "/v1/users/$u/recommendations?k=3&explain=true"; has '"experiments":[{"name":"rk","arm":"'
done
expect 200 DELETE /v1/experiments/rk

# --- SIGTERM stops cleanly
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
[ "$rc" -eq 0 ] && ok || bad "exit $rc after SIGTERM"

# --- a config file: keys apply, flags override, bad files are named
printf '{"max_k": 3, "port": 1, "reco": {"candidates": 50}}\n' >"$T/serve.json"
start --config "$T/serve.json"
expect 200 GET "/v1/users/newcomer/recommendations?k=10"
n=$(grep -o '"score"' "$T/body" | wc -l)
[ "$n" -eq 3 ] && ok || bad "max_k from the config: wanted 3 items, got $n"
kill -TERM "$PID"; wait "$PID"; PID=
printf '{"reco": {"candidates": 0}}\n' >"$T/bad.json"
if "$REEL" serve "$T/d" --config "$T/bad.json" --port 0 >/dev/null 2>"$T/err2"; then
  bad "a bad config was accepted"
else
  grep -qF 'reco.candidates' "$T/err2" && ok || { bad "the error does not name the key"; cat "$T/err2" >&2; }
fi

# --- SIGKILL during ingestion: every acknowledged event survives
start --token s3cret --fsync interval --fsync-ms 5
expect 401 POST /v1/events "{\"user\":\"k\",\"video\":\"$V\",\"type\":\"watch\"}"
expect 401 DELETE "/v1/videos/$V"
expect 401 PUT /v1/videos/x '{}'
expect 401 POST /admin/reload
expect 200 GET /v1/users/newcomer/history; has "\"video\":\"$V\""
# (fsync every 5 ms: a 202 still waits for the fsync that covers it.)
# Four writers, each POSTing events with its own timestamps and writing
# down the ones that got a 202.
writer() {
  local j=$1 i=0 ts code
  while [ $i -lt 2000 ]; do
    ts=$((1700000000 + j * 100000 + i))
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' \
      --data-binary "{\"user\":\"crash\",\"video\":\"$V\",\"type\":\"watch\",\"ts\":$ts}" \
      "$URL/v1/events")
    [ "$code" = 202 ] || break
    echo "$ts" >>"$T/acked.$j"
    i=$((i + 1))
  done
}
for j in 1 2 3 4; do writer $j & done
for _ in $(seq 1 600); do
  [ "$(cat "$T"/acked.* 2>/dev/null | wc -l)" -ge 60 ] && break
  sleep 0.02
done
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
wait
cat "$T"/acked.* | sort -n >"$T/acked"
nacked=$(wc -l <"$T/acked")
[ "$nacked" -ge 60 ] && ok || bad "only $nacked events acknowledged before the kill"

start
expect 200 GET "/v1/users/crash/history?limit=10000"
grep -o '"ts":[0-9]*' "$T/body" | cut -d: -f2 | sort -n >"$T/have"
missing=$(comm -23 "$T/acked" "$T/have" | wc -l)
[ "$missing" -eq 0 ] && ok || bad "$missing of $nacked acknowledged events lost after SIGKILL"
expect 200 GET /metrics; has 'reel_events_replayed'; has 'reel_videos_deleted 1'
expect 200 GET /v1/videos/brand-new; has '"title":"Renamed"'; has '"has_vector":true'
expect 200 GET /v1/users/demo; has '"age":31'
expect 200 GET "/v1/users/a2/recommendations?k=100"; lacks "\"video\":\"$D\""
kill -TERM "$PID"; wait "$PID"; PID=

echo "$pass passed, $fail failed ($nacked events acknowledged before SIGKILL)"
[ "$fail" -eq 0 ]
