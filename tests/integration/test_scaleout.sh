#!/usr/bin/env bash
# Several replicas on one machine (issue 7, "Several replicas"): a Redis
# (the ctest fixture's redis-server on a Unix socket), a librdkafka mock
# cluster in its own process (tests/support/kafka_mock.c), one `reel ingest`
# worker and two `reel serve` replicas on the Redis store. Events produced
# to Kafka with `reel produce` change the recommendations both replicas
# serve; a message naming an unknown video goes to the dead-letter topic
# and the worker goes on.
#   test_scaleout.sh REEL KAFKA_MOCK REDIS_FIXTURE_DIR
set -euo pipefail
reel=$1 mock=$2 redis_dir=$3
sock=$redis_dir/redis.sock
t=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$t"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$t"/*.err; do echo "== $f" >&2; tail -20 "$f" >&2; done; exit 1; }
# wait_for FILE PATTERN: the first line of FILE matching PATTERN (10 s).
wait_for() {
  for _ in $(seq 200); do
    grep -m1 "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "nothing like '$2' in $1"
}
ready() { # URL: waits until /readyz answers 200 (20 s)
  for _ in $(seq 400); do
    curl -fs "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "$1 never became ready: $(curl -s "$1/readyz")"
}

redis-cli -s "$sock" flushall >/dev/null
"$reel" synth "$t/d" --users 300 --videos 400 --days 7 --seed 5 >/dev/null 2>&1
"$reel" embed "$t/d" --threads 1 >/dev/null 2>&1

"$mock" reel.events:3 reel.events.dlq:1 >"$t/mock.out" 2>"$t/mock.err" &
pids+=($!)
boot=$(wait_for "$t/mock.out" .)

store="unix://$sock"
for i in 1 2; do
  "$reel" serve "$t/d" --port 0 --store "$store" >"$t/s$i.out" 2>"$t/s$i.err" &
  pids+=($!)
done
"$reel" ingest "$t/d" --store "$store" --kafka "$boot" --topic reel.events \
  --group reel-test --port 0 >"$t/ingest.out" 2>"$t/ingest.err" &
pids+=($!)
s1=$(wait_for "$t/s1.out" listening | sed 's/.*\(http:[^ ]*\).*/\1/')
s2=$(wait_for "$t/s2.out" listening | sed 's/.*\(http:[^ ]*\).*/\1/')
ing=$(wait_for "$t/ingest.out" listening | sed 's/.*\(http:[^ ]*\).*/\1/')
ready "$s1"
ready "$s2"
ready "$ing"

recs() { curl -fs "$1/v1/users/$2/recommendations?k=5"; }
# A user Kafka will introduce: cold start on both replicas first.
for s in "$s1" "$s2"; do
  recs "$s" kafka-user | grep -q '"source":"cold-start"' ||
    fail "kafka-user is not a cold start on $s: $(recs "$s" kafka-user)"
done
vids=$(curl -fs "$s1/v1/users/kafka-user/recommendations?k=3" |
  grep -o '"video":"[^"]*"' | cut -d'"' -f4)
[ "$(echo "$vids" | wc -l)" -eq 3 ] || fail "no cold-start videos to watch"
n=0
for v in $vids; do
  n=$((n + 1))
  printf '{"id": "k%d", "user": "kafka-user", "video": "%s", "type": "watch", "watch_s": 600, "ts": %d}\n' \
    "$n" "$v" "$((1800000000 + n))" >>"$t/events.jsonl"
done
# A poison message between them: an unknown video (reel produce sends it;
# the worker cannot apply it).
printf '{"id": "bad", "user": "kafka-user", "video": "no-such-video", "type": "watch", "ts": 1800000010}\n' >>"$t/events.jsonl"
printf '{"id": "k9", "user": "other-user", "video": "%s", "type": "watch", "watch_s": 60, "ts": 1800000011}\n' \
  "$(echo "$vids" | head -1)" >>"$t/events.jsonl"
"$reel" produce --kafka "$boot" --topic reel.events "$t/events.jsonl" >"$t/produce.out" 2>"$t/produce.err" ||
  fail "reel produce failed: $(cat "$t/produce.err")"

# Both replicas turn personalized for kafka-user and leave out what it
# watched (the history lives in Redis; the event reached it through the
# worker).
for s in "$s1" "$s2"; do
  ok=
  for _ in $(seq 400); do
    r=$(recs "$s" kafka-user)
    if echo "$r" | grep -q '"source":"personalized"'; then ok=1; break; fi
    sleep 0.05
  done
  [ -n "$ok" ] || fail "$s still gives kafka-user: $r"
  for v in $vids; do
    echo "$r" | grep -q "\"video\":\"$v\"" && fail "$s recommends watched video $v: $r"
  done
  h=$(curl -fs "$s/v1/users/kafka-user/history")
  [ "$(echo "$h" | grep -o '"type":"watch"' | wc -l)" -eq 3 ] || fail "$s history: $h"
done
# The event after the poison message was applied too; the poison counted.
for _ in $(seq 200); do
  curl -fs "$s1/v1/users/other-user/history" | grep -q '"type":"watch"' && break
  sleep 0.05
done
curl -fs "$s1/v1/users/other-user/history" | grep -q '"type":"watch"' ||
  fail "the event after the poison message was not applied"
m=$(curl -fs "$ing/metrics")
echo "$m" | grep -q '^reel_kafka_poison_total 1$' || fail "poison not counted: $(echo "$m" | grep kafka)"
grep -q "no-such-video\|unknown video" "$t/ingest.err" || fail "the poison message was not logged"
echo "ok: two replicas, one ingest worker, Redis and Kafka"
