#!/usr/bin/env bash
# Online experiments measured end to end on one machine (issue 9): a
# synthetic service (`reel synth`, `reel build`, `reel serve`), its users
# driven by `reel simulate` (their ground-truth tastes decide every click
# and watch), and the server's own statistics (GET /v1/experiments/NAME).
#   1. A/B: the default recommender against a clearly worse arm
#      (BENCH_AB_WORSE, default {"ranker": "none", "candidates": 20}): the
#      better arm must win with p < 0.05.
#   2. A/A: two identical arms, BENCH_AB_REPEATS times (40), each a fresh
#      experiment name (a fresh split of the users) and a fresh simulation
#      seed: the fraction of runs with p < 0.05 should be about 5%; it is
#      reported with its exact (Clopper-Pearson) 95% interval.
# Until the server has experiments (PUT /v1/experiments/{name}) the
# section says so and nothing is measured.
#   BENCH_AB_USERS / _VIDEOS / _DAYS   the service (2000 x 5000 x 14)
#   BENCH_AB_MINUTES    simulated minutes of the A/B run (5)
#   BENCH_AB_AA_MINUTES simulated minutes of each A/A run (2)
#   BENCH_AB_REPEATS    A/A runs (40)
#   BENCH_AB_WORSE      the worse arm's params (JSON object)
set -euo pipefail
BUILD=${BUILD:-build}
reel=$BUILD/reel
users=${BENCH_AB_USERS:-2000}
videos=${BENCH_AB_VIDEOS:-5000}
days=${BENCH_AB_DAYS:-14}
minutes=${BENCH_AB_MINUTES:-5}
aa_minutes=${BENCH_AB_AA_MINUTES:-2}
repeats=${BENCH_AB_REPEATS:-40}
worse=${BENCH_AB_WORSE:-'{"ranker": "none", "candidates": 20}'}
py=/usr/bin/python3
d=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$d"
}
trap cleanup EXIT
log() { echo "bench/ab: $*" >&2; }

log "synth $users users x $videos videos x $days days, build"
"$reel" synth "$d/data" --users "$users" --videos "$videos" --days "$days" --seed 11 >/dev/null
"$reel" build "$d/data" >/dev/null 2>&1
"$reel" serve "$d/data" --port 0 --threads 2 >"$d/out" 2>"$d/err" &
pid=$!
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$d/out")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$d/err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { log "the server did not start"; exit 1; }
url=http://127.0.0.1:$port

echo "## Online experiments: A/B and A/A tests in closed loop (bench/ab.sh)"
echo

# put NAME BODY: starts an experiment; the HTTP status in $code.
put() {
  code=$(curl -s -o "$d/put" -w '%{http_code}' -X PUT "$url/v1/experiments/$1" \
    -H 'Content-Type: application/json' --data-binary "$2")
}
put probe '{"arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}'
if [ "$code" != 200 ] && [ "$code" != 201 ]; then
  echo "Not measured: the server has no experiments yet (PUT /v1/experiments/probe"
  echo "answered $code; docs/API.md, \"Experiments\")."
  exit 0
fi
curl -s -o /dev/null -X DELETE "$url/v1/experiments/probe"

# simulate MINUTES SEED: the closed loop over every user at full speed;
# the summary (JSON) in $d/sim.json.
simulate() {
  "$reel" simulate --server "$url" --data "$d/data" --users "$users" --minutes "$1" \
    --speed max --seed "$2" --concurrency 4 --json >"$d/sim.json" 2>"$d/sim.err" || {
    log "reel simulate failed:"; cat "$d/sim.err" >&2; exit 1; }
}

# --- 1. A/B
log "A/B: $minutes simulated minutes"
put ab "{\"arms\": [{\"name\": \"control\", \"share\": 0.5},
                   {\"name\": \"worse\", \"share\": 0.5, \"params\": $worse}],
         \"control\": \"control\"}"
[ "$code" = 201 ] || [ "$code" = 200 ] || { log "PUT ab: $code: $(cat "$d/put")"; exit 1; }
t0=$(date +%s.%N)
simulate "$minutes" 1
t1=$(date +%s.%N)
curl -s "$url/v1/experiments/ab" >"$d/ab.json"
curl -s -o /dev/null -X DELETE "$url/v1/experiments/ab"
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
$py - "$d/ab.json" "$d/sim.json" "$users" "$videos" "$days" "$minutes" "$secs" "$worse" <<'EOF'
import json, sys
ab = json.load(open(sys.argv[1]))
sim = json.load(open(sys.argv[2]))
users, videos, days, minutes, secs, worse = sys.argv[3:9]
arms = {a["name"]: a for a in ab["arms"]}
mine = {a["name"]: a for x in sim["experiments"] if x["name"] == "ab" for a in x["arms"]}
c, w = arms["control"], arms["worse"]
vs = w["vs_control"]
def ci(x, scale=1.0, digits=2):
    if x["value"] is None:
        return "n/a"
    lo, hi = x["ci95"]
    return f"{x['value'] * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
print(f"A synthetic service of {users} users x {videos} videos x {days} days (`reel synth "
      f"--seed 11`, `reel build`), served by `reel serve`; `reel simulate` runs all "
      f"{users} users for {minutes} simulated minutes at full speed (4 connections, "
      f"{sim['requests']} recommendation lists and "
      f"{sim['events']['sent']} events in {secs} s). Every click and watch is drawn from the "
      f"users' ground truth (`reel_truth_sample`), so an arm that recommends worse "
      f"videos gets fewer clicks and shorter watches.")
print()
print(f"### A/B: the default recommender against `{worse}`")
print()
agree = all(name in mine and mine[name]["impressions"] == arms[name]["impressions"]
            and mine[name]["requests"] == arms[name]["requests"]
            and mine[name]["clicks"] == arms[name]["clicks"]
            for name in ("control", "worse"))
print("The server's numbers (GET /v1/experiments/ab); the simulator's own tallies "
      "(last column) " + ("agree with them exactly." if agree else
                          "**differ from them** (see the last column)."))
print()
print("| arm | users | requests | impressions | CTR % [95% CI] | watch s / impression [95% CI] | simulator: impressions, clicks |")
print("|---|---:|---:|---:|---|---|---|")
for name in ("control", "worse"):
    a, m = arms[name], mine.get(name, {})
    print(f"| {name} | {a['users']} | {a['requests']} | {a['impressions']} | "
          f"{ci(a['ctr'], 100)} | {ci(a['watch_s_per_impression'])} | "
          f"{m.get('impressions', '?')}, {m.get('clicks', 0)} |")
print()
def p(x):
    return "n/a" if x is None else f"{x:.3g}"
win = vs["ctr_p"] is not None and vs["ctr_p"] < 0.05 and vs["ctr_diff"] < 0
print(f"Worse arm against control: CTR {vs['ctr_diff'] * 100:+.2f} points (p = {p(vs['ctr_p'])}, "
      f"z-test with users as the units), watch time {vs['watch_diff']:+.2f} s per impression "
      f"(p = {p(vs['watch_p'])}, Welch's t-test with users as the units). "
      + ("**The better arm wins with p < 0.05.**" if win else "**The better arm did not win with p < 0.05.**"))
print()
sv = mine.get("worse", {}).get("vs_control") or {}
if sv:
    print(f"The simulator's own tests of the same run (clicked impressions): CTR "
          f"{100 * sv['ctr_diff']:+.2f} points, p = {p(sv['ctr_p_impressions'])} with "
          f"impressions independent, p = {p(sv['ctr_p_users'])} with users independent "
          f"(delta method); watch time {sv['watch_diff']:+.2f} s per impression, "
          f"p = {p(sv['watch_p_users'])} with users independent.")
    print()
print()
EOF

# --- 2. A/A
log "A/A: $repeats runs of $aa_minutes simulated minutes"
: >"$d/aa.txt"
for i in $(seq 1 "$repeats"); do
  put "aa-$i" '{"arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}'
  [ "$code" = 201 ] || [ "$code" = 200 ] || { log "PUT aa-$i: $code: $(cat "$d/put")"; exit 1; }
  simulate "$aa_minutes" $((1000 + i))
  curl -s "$url/v1/experiments/aa-$i" >"$d/aa-$i.json"
  curl -s -o /dev/null -X DELETE "$url/v1/experiments/aa-$i"
  $py -c 'import json, sys
x = json.load(open(sys.argv[1]))
a, b = x["arms"]
v = b["vs_control"]
sim = json.load(open(sys.argv[2]))
m = [e for e in sim["experiments"] if e["name"] == sys.argv[3]]
w = [r for r in m[0]["arms"] if r["name"] == b["name"]][0]["vs_control"] if m else None
f = lambda y: "nan" if y is None else repr(y)
g = lambda k: f(w[k]) if w else "nan"
print(f(v["ctr_p"]), f(v["watch_p"]), a["impressions"], b["impressions"], a["users"], b["users"],
      g("ctr_p_impressions"), g("ctr_p_users"), g("watch_p_users"),
      f(v.get("ctr_p_impressions")), f(v.get("watch_p_impressions")))' \
    "$d/aa-$i.json" "$d/sim.json" "aa-$i" >>"$d/aa.txt"
  log "A/A $i/$repeats: $(tail -1 "$d/aa.txt")"
done
$py - "$d/aa.txt" "$repeats" "$aa_minutes" "$users" <<'EOF'
import math, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
repeats, minutes, users = sys.argv[2:5]
def binom_cdf(k, n, p):
    return sum(math.comb(n, i) * p**i * (1 - p)**(n - i) for i in range(k + 1))
def clopper_pearson(k, n):
    def solve(f):  # the p in (0, 1) where f changes sign (f increasing)
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2
    # lo: P(X >= k | p) = 2.5%; hi: P(X <= k | p) = 2.5% (both increasing
    # in p as written).
    lo = 0.0 if k == 0 else solve(lambda p: (1 - binom_cdf(k - 1, n, p)) - 0.025)
    hi = 1.0 if k == n else solve(lambda p: 0.025 - binom_cdf(k, n, p))
    return lo, hi
n = len(rows)
imp = sum(int(r[2]) + int(r[3]) for r in rows) / max(1, n)
usr = sum(int(r[4]) + int(r[5]) for r in rows) / max(1, n)
print(f"### A/A: two identical arms, {n} runs")
print()
print(f"Each run starts a fresh experiment (a new name, so a new split of the users) "
      f"with two arms of the same parameters, runs {minutes} simulated minutes of all "
      f"{users} users with a new seed, and reads the p-values the server reports "
      f"(about {imp:,.0f} impressions and {usr:,.0f} users per run). With a correct "
      f"test about 5% of the runs have p < 0.05.")
print()
print("| who | test | runs with p < 0.05 | fraction [exact 95% CI] |")
print("|---|---|---:|---|")
tests = ((0, "server", "CTR, z-test, users as the units (delta method): `ctr_p`"),
         (1, "server", "watch s / impression, Welch's t-test, users as the units: `watch_p`"),
         (9, "server", "CTR, two-proportion z-test, impressions independent: `ctr_p_impressions`"),
         (10, "server", "watch s / impression, Welch's t-test, impressions independent: `watch_p_impressions`"),
         (6, "simulator", "CTR (clicked impressions), two-proportion z-test, impressions independent"),
         (7, "simulator", "CTR (clicked impressions), delta method, users independent"),
         (8, "simulator", "watch s / impression, delta method, users independent"))
for col, who, name in tests:
    ps = [float(r[col]) for r in rows if len(r) > col and r[col] != "nan"]
    k = sum(1 for x in ps if x < 0.05)
    lo, hi = clopper_pearson(k, len(ps)) if ps else (float("nan"), float("nan"))
    frac = k / len(ps) if ps else float("nan")
    print(f"| {who} | {name} | {k} / {len(ps)} | {100 * frac:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%] |")
print()
for col, what in ((0, "the server's CTR"), (7, "the simulator's user-level CTR")):
    ps = sorted(float(r[col]) for r in rows if len(r) > col and r[col] != "nan")
    if ps:
        q = lambda f: ps[min(len(ps) - 1, int(f * len(ps)))]
        print(f"p-values of {what} test: min {ps[0]:.3g}, quartiles {q(0.25):.3g} / "
              f"{q(0.5):.3g} / {q(0.75):.3g} (uniform on [0, 1] when the test is calibrated).")
        print()
print("A test that takes impressions as independent rejects identical arms too "
      "often: the randomised units are users, who differ a lot (click bias, "
      "heavy-tailed activity: a few users make many of the requests), so one user's "
      "impressions are correlated and the impression-level variance is too small. "
      "The server's `ctr_p` and `watch_p` take users as the units (ratios of per-user "
      "sums with delta-method variances); the impression-level tests are reported "
      "beside them. The simulator's rows recompute both from what it sent.")
print()
EOF
echo "Load average at the end: $(cut -d' ' -f1 /proc/loadavg) ($(nproc) cores)."
