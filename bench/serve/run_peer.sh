#!/usr/bin/env bash
# Starts the Python peer for bench/serve: a private redis-server on a Unix
# socket in a fresh temp dir, then peer.py on DIR; returns once /healthz
# answers and prints what to stop.
#   bench/serve/run_peer.sh DIR [PORT=8090] [WORKERS=2]
# Env: PEER_AOF=no|everysec|always (Redis append-only file; default no:
# RDB off too, state in memory only), PEER_TMP (the temp dir to use).
# Stop: kill "$(cat $T/peer.pid)" "$(cat $T/redis.pid)"; rm -rf "$T"
set -euo pipefail
dir=${1:?usage: run_peer.sh DIR [PORT] [WORKERS]}
port=${2:-8090}
workers=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
T=${PEER_TMP:-$(mktemp -d /tmp/reel-peer.XXXXXX)}
aof=${PEER_AOF:-no}
redis_args=(--port 0 --unixsocket "$T/redis.sock" --unixsocketperm 700 --dir "$T"
            --save "" --daemonize yes --pidfile "$T/redis.pid" --logfile "$T/redis.log")
if [ "$aof" = no ]; then redis_args+=(--appendonly no)
else redis_args+=(--appendonly yes --appendfsync "$aof"); fi
redis-server "${redis_args[@]}"
for _ in $(seq 50); do [ -S "$T/redis.sock" ] && break; sleep 0.1; done
/usr/bin/python3 "$here/peer.py" "$dir" --redis "unix://$T/redis.sock" \
  --port "$port" --workers "$workers" >"$T/peer.log" 2>&1 &
echo $! >"$T/peer.pid"
for _ in $(seq 1200); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$T/peer.pid")" 2>/dev/null || { cat "$T/peer.log" >&2; exit 1; }
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null
echo "peer: listening on http://127.0.0.1:$port (workers $workers, redis aof $aof; pids in $T: peer.pid redis.pid; log $T/peer.log)"
echo "$T"
