#!/usr/bin/env bash
# The dashboard's end-to-end test (ctest e2e.dashboard): a small synthetic
# service (reel synth + reel build, key-frame thumbnails for v0 made with
# ffmpeg), `reel serve --port 0 --token` on 127.0.0.1, then dashboard.js
# drives the page in Debian's headless Chromium with playwright-core and
# saves a screenshot; the server must then stop cleanly on SIGTERM.
#   run.sh PATH/TO/reel SCREENSHOT.png
# Exits 77 (skipped), after the HTTP checks, when Chromium, node or
# tests/e2e/node_modules is missing: scripts/deps installs them.
set -u
REEL=${1:?usage: run.sh PATH/TO/reel SCREENSHOT.png}
SHOT=${2:?usage: run.sh PATH/TO/reel SCREENSHOT.png}
HERE=$(cd "$(dirname "$0")" && pwd)
CHROMIUM=${REEL_CHROMIUM:-/usr/bin/chromium}
export REEL_CHROMIUM=$CHROMIUM

PID=
skip() {
  echo "e2e.dashboard skipped: $*" >&2
  if [ -n "$PID" ]; then kill -TERM "$PID"; wait "$PID"; PID=; fi
  exit 77
}
command -v ffmpeg >/dev/null || skip "no ffmpeg (scripts/deps installs it)"
command -v curl >/dev/null || skip "no curl (scripts/deps installs it)"

T=$(mktemp -d "${TMPDIR:-/tmp}/reel-e2e-XXXXXX")
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/err" ] && sed 's/^/  | /' "$T/err" >&2; exit 1; }

"$REEL" synth "$T/d" --users 300 --videos 200 --days 5 --seed 3 >/dev/null || fail "reel synth"
"$REEL" build "$T/d" >"$T/build.log" 2>&1 || { cat "$T/build.log" >&2; fail "reel build"; }

# Two key frames of video v0, as reel embed --clip leaves them
# (docs/formats/frames.md).
mkdir -p "$T/d/thumbs/v0"
for i in 0 1; do
  ffmpeg -loglevel error -nostdin -y -f lavfi -i "testsrc=size=160x90:rate=1" \
    -vf "select=eq(n\,$i)" -frames:v 1 "$T/d/thumbs/v0/kf00${i}_$((i * 2000))ms.jpg" ||
    fail "ffmpeg"
done
printf '# reel frames 1\n# file\tts\tscore\tscene\twidth\theight\n%s\n%s\n' \
  "$(printf 'kf000_0ms.jpg\t0.000000\t0.000000\t0\t160\t90')" \
  "$(printf 'kf001_2000ms.jpg\t2.000000\t0.624155\t1\t160\t90')" \
  >"$T/d/thumbs/v0/frames.tsv"

TOKEN=e2e-$$-$RANDOM
"$REEL" serve "$T/d" --port 0 --threads 2 --token "$TOKEN" >"$T/out" 2>"$T/err" &
PID=$!
PORT=
for _ in $(seq 1 400); do
  PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/out")
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.05
done
[ -n "$PORT" ] || fail "the server did not start"

URL="http://127.0.0.1:$PORT"

# The routes behind the page, over plain HTTP first (curl).
pass=0 nfail=0
ok() { pass=$((pass + 1)); }
bad() { nfail=$((nfail + 1)); echo "FAIL: $*" >&2; }
# expect STATUS CONTENT-TYPE-PREFIX PATH [CURL ARGS...]: body in $T/body,
# headers in $T/head.
expect() {
  local want=$1 type=$2 path=$3; shift 3
  local got
  got=$(curl -s -D "$T/head" -o "$T/body" -w '%{http_code} %{content_type}' "$@" "$URL$path")
  case "$got" in
  "$want $type"*) ok ;;
  *) bad "GET $path: '$got', wanted '$want $type'"; head -c 300 "$T/body" >&2; echo >&2 ;;
  esac
}
has() { if grep -qaF -- "$1" "$T/${2:-body}"; then ok; else bad "lacks '$1'"; head -c 300 "$T/${2:-body}" >&2; echo >&2; fi; }
expect 200 text/html /;             has '<title>reel dashboard</title>'
has 'Content-Security-Policy: default-src' head; has 'Cache-Control: no-cache' head
etag=$(sed -n 's/^ETag: \(.*\)\r$/\1/p' "$T/head")
expect 304 "" / -H "If-None-Match: $etag"
expect 200 text/html /index.html
expect 200 text/javascript /app.js
expect 200 text/css /style.css
expect 200 image/svg+xml /favicon.svg
expect 404 application/json /app.js.map
expect 200 application/json "/v1/videos?limit=2"
has '"total":200,"offset":0,"limit":2,"items":[{"video":"v0"'
has '"thumbs":[{"file":"kf000_0ms.jpg","ts":0'
expect 200 application/json "/v1/videos?offset=199&limit=5";  has '"items":[{"video":"v199"'
expect 200 application/json "/v1/videos?offset=500";          has '"items":[]'
expect 200 application/json "/v1/videos?limit=100000";        has '"limit":500'
expect 400 application/json "/v1/videos?limit=0"
expect 400 application/json "/v1/videos?offset=x"
expect 400 application/json "/v1/videos?q=$(printf 'a%.0s' $(seq 1 300))"
expect 200 application/json "/v1/videos?q=NO-SUCH-TITLE";     has '"total":0'
# A video whose id needs escaping, with a thumbnail index of its own.
expect 201 application/json "/v1/videos/a%2Fb%20c" -X PUT -H "Authorization: Bearer $TOKEN" \
  -d '{"title": "Zebra Crossing Special", "categories": ["news"]}'
mkdir -p "$T/d/thumbs/a%2Fb%20c"
cp "$T/d/thumbs/v0/kf000_0ms.jpg" "$T/d/thumbs/a%2Fb%20c/"
printf '# reel frames 1\nkf000_0ms.jpg\t1.5\t0\t0\t160\t90\n../x.jpg\t2\t0\t0\t1\t1\n' >"$T/d/thumbs/a%2Fb%20c/frames.tsv"
expect 200 application/json "/v1/videos?q=zebra%20CROSSING"
has '"total":1,'; has '"video":"a/b c","title":"Zebra Crossing Special","categories":["news"]'
has '"thumbs":[{"file":"kf000_0ms.jpg","ts":1.5}]'
expect 200 image/jpeg "/thumbs/a%2Fb%20c/kf000_0ms.jpg"
has 'Cache-Control: public, max-age=3600' head
etag=$(sed -n 's/^ETag: \(.*\)\r$/\1/p' "$T/head")
expect 304 "" "/thumbs/a%2Fb%20c/kf000_0ms.jpg" -H "If-None-Match: $etag"
expect 200 text/tab-separated-values "/thumbs/v0/frames.tsv"
expect 200 image/jpeg "/thumbs/v0/kf001_2000ms.jpg" -I
# Only kfNNN_Tms.jpg and frames.tsv, inside the video's own directory.
for p in "/thumbs/v0/..%2F..%2Fdataset.reel" "/thumbs/..%2Fd/frames.tsv" "/thumbs/..%2F/frames.tsv" \
  "/thumbs/v0/kf0_0ms.jpg" "/thumbs/v0/kf000_0ms.jpg.bak" "/thumbs/v0/kf000_ms.jpg" \
  "/thumbs/v0/kf000_0ms.png" "/thumbs/v1/kf000_0ms.jpg" "/thumbs/nobody/frames.tsv" "/thumbs/.%2E/frames.tsv"; do
  expect 404 application/json "$p"
done
echo "http checks: $pass passed, $nfail failed"
[ "$nfail" -eq 0 ] || fail "http checks"

# The page, in the browser.
[ -x "$CHROMIUM" ] || skip "no $CHROMIUM (scripts/deps installs Debian's chromium)"
command -v node >/dev/null || skip "no node"
[ -d "$HERE/node_modules/playwright-core" ] ||
  skip "no $HERE/node_modules (scripts/deps runs npm ci there)"
mkdir -p "$(dirname "$SHOT")"
rm -f "$SHOT"
node "$HERE/dashboard.js" "$URL" "$TOKEN" "$SHOT"
rc=$?

# A graceful stop: SIGTERM, and the server exits 0 (under ASan, also
# without leaks).
kill -TERM "$PID"
wait "$PID"
src=$?
PID=
[ "$src" -eq 0 ] || fail "reel serve exited with $src after SIGTERM"
[ "$rc" -eq 0 ] || fail "dashboard.js failed"
[ -s "$SHOT" ] || fail "no screenshot at $SHOT"
echo "screenshot: $SHOT"
