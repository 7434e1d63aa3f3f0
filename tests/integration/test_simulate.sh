#!/usr/bin/env bash
# End-to-end test of `reel simulate` (docs/simulate.md): a small synthetic
# service built and served on 127.0.0.1 (port 0), a few simulated minutes
# at full speed with a fixed seed; the summary is sane, the server
# ingested exactly the events the simulator says it accepted, per-arm
# counts agree with GET /v1/experiments/{name}; the run is deterministic
# given the server's answers (two runs against a stub whose answers depend
# only on the requests agree exactly, whatever the concurrency); errors
# (usage, no truth, unreachable server, not a reel server, 5xx answers,
# a missing token) give clear messages and exit 1 or 2; SIGINT stops a
# run with its summary.
#   test_simulate.sh PATH/TO/reel
set -u
REEL=${1:?usage: test_simulate.sh PATH/TO/reel}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/reel-simulate-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
  local what=$1; shift
  if "$@"; then ok; else bad "$what"; fi
}
# expect_exit CODE TEXT ARGS...: `reel simulate ARGS` exits CODE and says
# TEXT on stderr.
expect_exit() {
  local want=$1 text=$2; shift 2
  "$REEL" simulate "$@" >"$T/o" 2>"$T/e"
  local rc=$?
  if [ "$rc" = "$want" ]; then ok; else
    bad "simulate $*: exit $rc, wanted $want"; sed 's/^/  | /' "$T/e" >&2; fi
  if grep -qF -- "$text" "$T/e"; then ok; else
    bad "simulate $*: stderr lacks '$text'"; sed 's/^/  | /' "$T/e" >&2; fi
}
# wait_port FILE PATTERN: the port a server printed (sed pattern), polled.
wait_port() {
  local port=
  for _ in $(seq 1 300); do
    port=$(sed -n "$2" "$1" 2>/dev/null | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  echo "$port"
}
# serve DIR [ARGS...]: starts reel serve on DIR; its URL in $URL.
serve() {
  local dir=$1; shift
  "$REEL" serve "$dir" --port 0 --threads 2 "$@" \
    >"$dir.out" 2>"$dir.err" &
  PIDS+=($!)
  local port
  port=$(wait_port "$dir.out" 's|.*listening on http://127.0.0.1:\([0-9]*\)$|\1|p')
  [ -n "$port" ] || { bad "server on $dir did not start"; sed 's/^/  | /' "$dir.err" >&2; exit 1; }
  URL="http://127.0.0.1:$port"
}
# metric URL NAME: the sample NAME (labels included; they may hold spaces).
metric() { curl -s "$1/metrics" | awk -v m="$2 " 'index($0, m) == 1 {print $NF}'; }
# JSON from /usr/bin/python3 (jq is not among the dependencies): the few
# jq forms used here (.a.b[0].c, "X | length" and
# "X[] | select(.name == \"n\").rest"), printed as jq -r prints them.
cat >"$T/j.py" <<'EOF'
import json, re, sys
def path(v, p):
    for name, idx in re.findall(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]', p):
        if v is None:
            return None
        v = v.get(name) if name else (v[int(idx)] if int(idx) < len(v) else None)
    return v
def ev(v, e):
    m = re.fullmatch(r'(.*?)\[\] \| select\(\.name == "([^"]*)"\)(.*)', e.strip())
    if m:
        hit = [x for x in path(v, m.group(1)) or [] if x.get("name") == m.group(2)]
        return path(hit[0], m.group(3)) if hit else None
    m = re.fullmatch(r'(.*?) \| length', e.strip())
    if m:
        x = path(v, m.group(1))
        return None if x is None else len(x)
    return path(v, e.strip())
def show(x):
    if x is None or isinstance(x, bool):
        return {None: "null", True: "true", False: "false"}[x]
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return json.dumps(x) if isinstance(x, (dict, list)) else str(x)
if sys.argv[1] == "get":  # get FILE EXPR
    print(show(ev(json.load(open(sys.argv[2])), sys.argv[3])))
else:  # del KEY...: stdin without those keys, keys sorted
    d = json.load(sys.stdin)
    for k in sys.argv[2:]:
        d.pop(k, None)
    print(json.dumps(d, sort_keys=True, indent=1))
EOF
jget() { $PY "$T/j.py" get "$T/run.json" "$1"; }
jdel() { $PY "$T/j.py" del "$@"; }
# approx A B: |A - B| <= 1e-6 (1 + |B|)
approx() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d;
  m = b < 0 ? -b : b; exit !(d <= 1e-6 * (1 + m)) }'; }

"$REEL" synth "$T/d" --users 300 --videos 400 --days 7 --seed 5 >/dev/null || { bad synth; exit 1; }
"$REEL" build "$T/d" >/dev/null 2>&1 || { bad build; exit 1; }
cp -r "$T/d" "$T/tok"

# --- usage and input errors, before any server is needed
expect_exit 2 "--server URL is required" --data "$T/d" --users 3 --minutes 1
expect_exit 2 "--users must be" --server http://127.0.0.1:1 --data "$T/d" --users 0 --minutes 1
expect_exit 2 "has only 300 users" --server http://127.0.0.1:1 --data "$T/d" --users 301 --minutes 1
expect_exit 2 "--minutes must be" --server http://127.0.0.1:1 --data "$T/d" --users 3 --minutes 0
expect_exit 2 "--speed must be" --server http://127.0.0.1:1 --data "$T/d" --users 3 --minutes 1 --speed fast
expect_exit 2 "https is not supported" --server https://127.0.0.1:1 --data "$T/d" --users 3 --minutes 1
expect_exit 2 "the port must be" --server http://127.0.0.1:99999 --data "$T/d" --users 3 --minutes 1
mkdir "$T/notruth" && cp "$T/d/dataset.reel" "$T/notruth/"
expect_exit 1 "truth.reel" --server http://127.0.0.1:1 --data "$T/notruth" --users 3 --minutes 1
expect_exit 1 "dataset.reel" --server http://127.0.0.1:1 --data "$T/nothing" --users 3 --minutes 1
expect_exit 1 "cannot be reached" --server http://127.0.0.1:1 --data "$T/d" --users 3 --minutes 1

# --- a closed-loop run against the real server
serve "$T/d"
S=$URL
ev0=$(metric "$S" reel_events_ingested_total)
# histories: the summed history length of users u0..u29 (a single user
# may click nothing in a short run).
histories() {
  local n=0 i
  for i in $(seq 0 29); do
    curl -s "$S/v1/users/u$i/history?limit=1" >"$T/h.json"
    n=$((n + $($PY "$T/j.py" get "$T/h.json" .total)))
  done
  echo "$n"
}
h0=$(histories)
"$REEL" simulate --server "$S" --data "$T/d" --users 300 --minutes 3 --speed max \
  --seed 3 --concurrency 4 --json >"$T/run.json" 2>"$T/e" || { bad "simulate failed"; sed 's/^/  | /' "$T/e" >&2; }
req=$(jget .requests); imp=$(jget .impressions); clk=$(jget .clicks)
echo "run: $req requests, $imp impressions, $clk clicks, CTR $(jget .ctr)"
check "requests > 500 ($req)" [ "$req" -gt 500 ]
# k = 10 of 400 videos: lists are full, or nearly (the business rules may
# leave a personalized list short).
check "impressions ~ requests x 10 ($imp, $req)" \
  [ "$imp" -le $((req * 10)) -a "$imp" -ge $((req * 9)) ]
check "0 < CTR < 1" awk -v c="$(jget .ctr)" 'BEGIN { exit !(c > 0 && c < 1) }'
check "clicks > 0" [ "$clk" -gt 0 ]
check "plays <= clicks" [ "$(jget .plays)" -le "$clk" ]
check "watch s per impression > 0" awk -v w="$(jget .watch_s_per_impression)" 'BEGIN { exit !(w > 0) }'
check "no errors" [ "$(jget .errors.total)" = 0 ]
check "every event accepted" [ "$(jget .events.accepted)" = "$(jget .events.sent)" ]
check "personalized answers" [ "$(jget .answers.personalized)" -gt 0 ]
check "minutes done" [ "$(jget .minutes_done)" = 3 ]
# The server ingested exactly what the simulator sent, and histories grew.
ev1=$(metric "$S" reel_events_ingested_total)
check "server ingested $((ev1 - ev0)) events, simulator sent $(jget .events.sent)" \
  [ "$((ev1 - ev0))" = "$(jget .events.sent)" ]
h1=$(histories)
check "the first 30 users' histories grew ($h0 -> $h1)" [ "$h1" -gt "$h0" ]
# The text summary.
"$REEL" simulate --server "$S" --data "$T/d" --users 20 --sample --minutes 1 --speed max \
  --seed 4 >"$T/o" 2>"$T/e"
check "text summary exits 0" [ $? = 0 ]
check "text summary" grep -q "^simulate: 20 users, 1.00 of 1 simulated minutes" "$T/o"
check "text summary CTR" grep -q "CTR [0-9.]*%" "$T/o"

# --- experiments: the simulator's per-arm counts agree with the server's
code=$(curl -s -o "$T/put" -w '%{http_code}' -X PUT "$S/v1/experiments/aa" \
  -d '{"arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}')
if [ "$code" = 200 ] || [ "$code" = 201 ]; then
  "$REEL" simulate --server "$S" --data "$T/d" --users 300 --minutes 2 --speed max \
    --seed 5 --json >"$T/run.json" 2>"$T/e" || bad "simulate with an experiment failed"
  check "one experiment seen" [ "$(jget '.experiments | length')" = 1 ]
  check "two arms seen" [ "$(jget '.experiments[0].arms | length')" = 2 ]
  for arm in a b; do
    sim=".experiments[0].arms[] | select(.name == \"$arm\")"
    srv=".experiments[0].server.arms[] | select(.name == \"$arm\")"
    for f in requests impressions users; do
      check "arm $arm: $f simulator $(jget "$sim.$f") = server $(jget "$srv.$f")" \
        [ "$(jget "$sim.$f")" = "$(jget "$srv.$f")" ]
    done
    # The server counts click events as clicks (docs/API.md).
    c=$(jget "$sim.clicks"); sc=$(jget "$srv.clicks")
    check "arm $arm: server clicks $sc = clicks $c" [ "$sc" = "$c" ]
    check "arm $arm: watch s per impression" \
      approx "$(jget "$sim.watch_s_per_impression")" "$(jget "$srv.watch_s_per_impression.value")"
  done
  # The simulator's own tests of b against the control a.
  check "control has no vs_control" [ "$(jget '.experiments[0].arms[] | select(.name == "a").vs_control')" = null ]
  for f in ctr_p_impressions ctr_p_users watch_p_users; do
    v=$(jget ".experiments[0].arms[] | select(.name == \"b\").vs_control.$f")
    check "b vs a: $f = $v in [0, 1]" awk -v p="$v" 'BEGIN { exit !(p != "null" && p >= 0 && p <= 1) }'
  done
else
  echo "PUT /v1/experiments answered $code: experiment checks skipped"
fi

# --- SIGINT: a real-time run stops after the lists in flight, with its
# summary. It is interrupted once the server saw its first list.
route='reel_http_requests_total{route="GET /v1/users/{id}/recommendations",status="2xx"}'
r0=$(metric "$S" "$route")
"$REEL" simulate --server "$S" --data "$T/d" --users 300 --minutes 60 --speed 1 \
  --seed 6 --json >"$T/run.json" 2>"$T/e" &
SIM=$!
for _ in $(seq 1 400); do
  [ "$(metric "$S" "$route")" != "$r0" ] && break
  sleep 0.05
done
check "SIGINT: the run started" [ "$(metric "$S" "$route")" != "$r0" ]
kill -INT "$SIM"
wait "$SIM"; rc=$?
check "SIGINT: exit 0 ($rc)" [ "$rc" = 0 ]
check "SIGINT: interrupted" [ "$(jget .interrupted)" = true ]
check "SIGINT: some requests" [ "$(jget .requests)" -gt 0 ]
check "SIGINT: stopped early" awk -v m="$(jget .minutes_done)" 'BEGIN { exit !(m < 60) }'

# --- a server with a token: without it every POST is refused (401), the
# run stops and says why; with it the run succeeds.
serve "$T/tok" --token sesame
expect_exit 1 "--token" --server "$URL" --data "$T/d" --users 50 --minutes 1 --speed max
grep -q "requests failed" "$T/e" && ok || bad "no 'requests failed' after repeated 401s"
"$REEL" simulate --server "$URL" --data "$T/d" --users 50 --minutes 1 --speed max \
  --token sesame --json >"$T/run.json" 2>"$T/e"
check "with the token: exit 0" [ $? = 0 ]
check "with the token: no errors" [ "$(jget .errors.total)" = 0 ]

# --- determinism given the answers, and bad answers: a stub whose
# answers depend only on the request (user and the user's request count).
cat >"$T/stub.py" <<'EOF'
import hashlib, json, math, statistics, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
lock = threading.Lock()
count = {}
# Per arm: the users served a list, and per user impressions, click
# events and watch seconds (the simulator's user-level tests, recomputed).
seen = {"a": set(), "b": set()}
per = {"a": {}, "b": {}}
def arm_of(user):
    return "a" if int(hashlib.sha256(user.encode()).hexdigest(), 16) % 2 else "b"
def ratio(arm, key):
    us = sorted(seen[arm])
    xs = [per[arm].get(u, {}).get(key, 0.0) for u in us]
    ys = [per[arm].get(u, {}).get("imp", 0.0) for u in us]
    n, r, my = len(us), sum(xs) / sum(ys), sum(ys) / len(us)
    v = (statistics.variance(xs) - 2 * r * statistics.covariance(xs, ys)
         + r * r * statistics.variance(ys)) / (n * my * my)
    return r, v
def delta_p(key):
    (ra, va), (rb, vb) = ratio("a", key), ratio("b", key)
    return math.erfc(abs(rb - ra) / math.sqrt(va + vb) / math.sqrt(2))
def ztest_p():
    x = {k: sum(d.get("clicks", 0) for d in per[k].values()) for k in "ab"}
    n = {k: sum(d.get("imp", 0) for d in per[k].values()) for k in "ab"}
    p = (x["a"] + x["b"]) / (n["a"] + n["b"])
    se = math.sqrt(p * (1 - p) * (1 / n["a"] + 1 / n["b"]))
    return math.erfc(abs(x["b"] / n["b"] - x["a"] / n["a"]) / se / math.sqrt(2))
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def send(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        p = self.path
        if p == "/healthz": return self.send(200, {"status": "ok"})
        if p.startswith("/v1/videos/"): return self.send(200, {"video": p[11:]})
        if p == "/v1/experiments/stub":
            with lock:
                return self.send(200, {"name": "stub", "control": "a", "oracle": {
                    "ctr_p_impressions": ztest_p(), "ctr_p_users": delta_p("clicks"),
                    "watch_p_users": delta_p("watch")}})
        if p.startswith("/v1/users/") and "/recommendations" in p:
            user = p[10:p.index("/recommendations")]
            with lock:
                n = count.get(user, 0); count[user] = n + 1
            # Faults that depend only on the user's request count.
            if n % 7 == 6: return self.send(503, {"error": "try later"})
            if n % 11 == 10:
                b = b"not json"
                self.send_response(200); self.send_header("Content-Length", str(len(b)))
                self.end_headers(); return self.wfile.write(b)
            h = int(hashlib.sha256(f"{user}/{n}".encode()).hexdigest(), 16)
            items = [{"video": f"v{(h >> (9 * j)) % 400}", "score": 1} for j in range(10)]
            if n % 5 == 2: items[3]["video"] = "added-at-run-time"
            arm = arm_of(user)
            with lock:
                seen[arm].add(user)
            return self.send(200, {"user": user, "items": items, "source": "personalized",
                                   "request_id": f"{user}-{n}",
                                   "experiments": [{"name": "stub", "arm": arm}]})
        self.send(404, {"error": "no route"})
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ev = json.loads(body)
        with lock:
            for e in ev:
                d = per[arm_of(e["user"])].setdefault(e["user"], {})
                k = {"impression": "imp", "click": "clicks"}.get(e["type"])
                if k: d[k] = d.get(k, 0) + 1
                if e["type"] == "watch": d["watch"] = d.get("watch", 0) + e["watch_s"]
        self.send(202, {"accepted": len(ev), "rejected": []})
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
EOF
stub() {
  $PY "$T/stub.py" >"$T/stub.out" 2>"$T/stub.err" &
  PIDS+=($!)
  local port
  port=$(wait_port "$T/stub.out" 's/^port \([0-9]*\)$/\1/p')
  [ -n "$port" ] || { bad "stub did not start"; exit 1; }
  STUB="http://127.0.0.1:$port"
}
stub
"$REEL" simulate --server "$STUB" --data "$T/d" --users 40 --minutes 2 --speed max \
  --seed 9 --concurrency 4 --json 2>"$T/e1" | jdel seconds server >"$T/a.json"
kill -9 "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null
stub
"$REEL" simulate --server "$STUB" --data "$T/d" --users 40 --minutes 2 --speed max \
  --seed 9 --concurrency 3 --json 2>"$T/e2" | jdel seconds server concurrency >"$T/b.json"
jdel concurrency <"$T/a.json" >"$T/a2.json"
if cmp -s "$T/a2.json" "$T/b.json"; then ok; else
  bad "two runs with the same seed and answers differ"; diff "$T/a2.json" "$T/b.json" | head >&2; fi
cp "$T/a.json" "$T/run.json"
check "stub: requests" [ "$(jget .requests)" -gt 50 ]
check "stub: 5xx counted" [ "$(jget .errors.http_5xx)" -gt 0 ]
check "stub: bad answers counted" [ "$(jget .errors.bad_answer)" -gt 0 ]
check "stub: unknown video counted" [ "$(jget .answers.unknown_videos)" -gt 0 ]
check "stub: arms tallied" [ "$(jget '.experiments[0].arms | length')" = 2 ]
# The simulator's tests of b against a, recomputed by the stub in Python
# from the events it received (watch_s has 3 decimals in the events).
for f in ctr_p_impressions ctr_p_users watch_p_users; do
  mine=$(jget ".experiments[0].arms[] | select(.name == \"b\").vs_control.$f")
  theirs=$(jget ".experiments[0].server.oracle.$f")
  echo "stub: $f: simulator $mine, oracle $theirs"
  check "stub: $f $mine = oracle $theirs" \
    awk -v a="$mine" -v b="$theirs" 'BEGIN { d = a - b; if (d < 0) d = -d;
      exit !(a != "null" && b != "null" && d < 1e-4 * (1e-3 + b)) }'
done
check "stub: 503 reported" grep -q "answered 503" "$T/e1"
check "stub: bad answer reported" grep -q "not a recommendation list" "$T/e1"
# Another seed draws other sessions.
"$REEL" simulate --server "$STUB" --data "$T/d" --users 40 --minutes 2 --speed max \
  --seed 10 --json 2>/dev/null | jdel seconds server concurrency >"$T/c.json"
if cmp -s "$T/b.json" "$T/c.json"; then bad "seeds 9 and 10 gave the same run"; else ok; fi
# Not a reel server: no /healthz.
$PY -u -m http.server 0 --bind 127.0.0.1 --directory "$T/notruth" >"$T/plain.out" 2>&1 &
PIDS+=($!)
port=$(wait_port "$T/plain.out" 's/.*port \([0-9]*\).*/\1/p')
expect_exit 1 "is it reel serve?" --server "http://127.0.0.1:$port" --data "$T/d" --users 3 --minutes 1

echo "simulate: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
