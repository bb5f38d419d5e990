#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/drain.sh — how fast workers drain a pre-filled queue (the figure task queues
# usually publish): a fresh server, N runs of errand.noop queued first with no worker
# running, then WORKERS workers with CONCURRENCY slots each are started and the time until
# every run is COMPLETED is measured.
#
#   bench/drain.sh [N] [WORKERS] [CONCURRENCY]        (defaults 1000000, 1, 128)
#   ERRAND_BUILD=build ERRAND_DATABASE_SYNC=full      (the defaults)
set -eu
N=${1:-1000000}
WORKERS=${2:-1}
CONCURRENCY=${3:-128}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ERRAND_BUILD:-$ROOT/build}/bin/errand
PORT=${DRAIN_PORT:-4921}
HOME_DIR=$(mktemp -d)
export ERRAND_HOME="$HOME_DIR" ERRAND_API_URL="http://127.0.0.1:$PORT/api"
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$HOME_DIR"
}
trap cleanup EXIT INT TERM

completed() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk -F' ' '/errand_task_runs\{state="COMPLETED"\}/ {print $2}'
}

"$BIN" server start --port "$PORT" >"$HOME_DIR/server.log" 2>&1 &
pids="$!"
server=$!
for _ in $(seq 50); do curl -sf "$ERRAND_API_URL/health" >/dev/null && break; sleep 0.1; done
python3 "$ROOT/bench/prefill.py" --api-url "$ERRAND_API_URL" --queued "$N" --batch 5000
start=$(date +%s.%N)
for _ in $(seq "$WORKERS"); do
  "$BIN" worker --builtin --concurrency "$CONCURRENCY" >>"$HOME_DIR/worker.log" 2>&1 &
  pids="$pids $!"
done
while [ "$(completed)" != "$N" ]; do sleep 0.2; done
end=$(date +%s.%N)
awk -v n="$N" -v s="$start" -v e="$end" -v w="$WORKERS" -v c="$CONCURRENCY" 'BEGIN {
  printf "drain: %d queued runs of errand.noop, %d worker(s) x %d slots: %.1f s = %.0f runs/s\n",
         n, w, c, e - s, n / (e - s) }'
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')"
