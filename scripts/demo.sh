#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/demo.sh — the one command to see errand run, without Docker: installs what is
# missing, builds, then starts the whole structured-output stack on this machine
#   errand server start          the errand API on 127.0.0.1:4200, SQLite under ERRAND_HOME
#   structured-output-task       one task worker
#   structured-output-api        the example web app on 127.0.0.1:8000
# waits until each one answers, prints the URLs and a curl line to try, and stops them all
# cleanly (SIGTERM, api first, server last) on Ctrl-C or when any of them dies.
#
# usage: scripts/demo.sh        (or `make demo`)
# Passed through to the task worker: OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL.
# Optional: ERRAND_HOME (default ~/.errand), ERRAND_SERVER_API_PORT (default 4200),
# DEMO_APP_PORT (default 8000), BUILD (build directory, default build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=${BUILD:-build}
host=127.0.0.1
server_port=${ERRAND_SERVER_API_PORT:-4200}
app_port=${DEMO_APP_PORT:-8000}
ready_timeout_s=30   # how long a service may take to answer after it starts
stop_timeout_s=10    # how long a service may take to exit after SIGTERM, then SIGKILL
poll_interval_s=0.2

say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v curl >/dev/null 2>&1 || die "needs curl to check on the services (apt-get install curl)"

# ---- build ---------------------------------------------------------------------------------
# `make` installs the missing Debian packages (scripts/install-deps.sh build) and builds.
make --no-print-directory BUILD="$build_dir"
case $build_dir in
  /*) bin=$build_dir/bin ;;
  *) bin=$root/$build_dir/bin ;;
esac
for b in errand structured-output-task structured-output-api; do
  [ -x "$bin/$b" ] || die "$bin/$b was not built; see the make output above"
done

port_busy() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
port_busy "$server_port" \
  && die "port $server_port is in use (an errand server from an earlier demo?);" \
         "stop it or set ERRAND_SERVER_API_PORT"
port_busy "$app_port" \
  && die "port $app_port is in use; stop what listens there or set DEMO_APP_PORT"

# ---- services ------------------------------------------------------------------------------
names=()   # service names, in start order
pids=()    # their process ids (each the leader of its own process group)

# start NAME COMMAND... : runs COMMAND in the background, its output prefixed with [NAME].
# Job control is on just for the launch, so the service gets a process group of its own: the
# terminal's Ctrl-C then reaches only this script, which stops the services in order, instead
# of all of them dying at once.
start() {
  local name=$1; shift
  set -m
  "$@" </dev/null 2>&1 | sed -u "s/^/[$name] /" &
  set +m
  names+=("$name")
  pids+=("$(jobs -p %%)")
}

# stop_all: SIGTERM each service still running, newest first, and waits for it to exit.
stopping=0
stop_all() {
  local i pid deadline
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    say "stopping ${names[$i]}"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + stop_timeout_s))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep "$poll_interval_s"
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "${names[$i]} did not exit ${stop_timeout_s}s after SIGTERM; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}
trap 'stop_all' EXIT
trap 'say "interrupted"; exit 0' INT TERM

# wait_ready NAME PID URL [GREP]: polls URL until it answers 2xx (and its body matches GREP),
# failing when the service exits first or does not answer within ready_timeout_s.
wait_ready() {
  local name=$1 pid=$2 url=$3 want=${4:-} body deadline=$((SECONDS + ready_timeout_s))
  while :; do
    kill -0 "$pid" 2>/dev/null || die "$name exited before it was ready; its log is above"
    if body=$(curl -fsS --max-time 2 "$url" 2>/dev/null) \
       && { [ -z "$want" ] || grep -q -- "$want" <<<"$body"; }; then
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$name did not answer at $url within ${ready_timeout_s}s"
    sleep "$poll_interval_s"
  done
}

api_url="http://$host:$server_port/api"
app_url="http://$host:$app_port"
# The task worker stores results and captures prints, as the seed's compose file sets it.
export ERRAND_RESULTS_PERSIST_BY_DEFAULT=${ERRAND_RESULTS_PERSIST_BY_DEFAULT:-true}
export ERRAND_LOGGING_LOG_PRINTS=${ERRAND_LOGGING_LOG_PRINTS:-true}

start server env ERRAND_SERVER_API_HOST="$host" ERRAND_SERVER_API_PORT="$server_port" \
  "$bin/errand" server start
wait_ready server "${pids[0]}" "$api_url/health" '"ok"'

start task env ERRAND_API_URL="$api_url" "$bin/structured-output-task"
wait_ready task "${pids[1]}" "$api_url/workers" 'create_structured_output'

start api env ERRAND_API_URL="$api_url" "$bin/structured-output-api" --host "$host" --port "$app_port"
wait_ready api "${pids[2]}" "$app_url/health"

note=""
if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${OPENAI_BASE_URL:-}" ]; then
  note=$(cat <<'NOTE'
  Note: neither OPENAI_API_KEY nor OPENAI_BASE_URL is set, so every task will fail with a
  message saying so. Stop with Ctrl-C and start again with one of them, e.g.
    OPENAI_API_KEY=sk-... make demo
    OPENAI_BASE_URL=http://127.0.0.1:11434/v1 OPENAI_MODEL=llama3.2 make demo   (Ollama)
  llama.cpp's llama-server and vLLM serve the same API (by default on
  http://127.0.0.1:8080/v1 and http://127.0.0.1:8000/v1; next to vLLM set DEMO_APP_PORT).
NOTE
)$'\n\n'
fi
cat >&2 <<EOF

  errand is running.
    errand dashboard  http://$host:$server_port/
    errand API        $api_url   (runs: $api_url/task_runs)
    example app       $app_url/

  Submit a task from the page, or with curl:
    curl -F payload='{"item": "red running shoes", "price": "49.99 USD"}' \\
         -F target_type=float -F instructions='the price' $app_url/tasks
  then ask for its status with the task_run_id it answers:
    curl $app_url/tasks/<task_run_id>/status

${note}  Press Ctrl-C to stop everything.

EOF

# Serve until Ctrl-C / SIGTERM (the trap exits 0) or until a service dies (exit 1).
while :; do
  set +e
  wait -n
  set -e
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || die "${names[$i]} exited unexpectedly; stopping the others"
  done
done
