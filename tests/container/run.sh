#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/container/run.sh — the deployment test: builds every runtime stage of the root
# Dockerfile with podman, brings compose.yaml up with podman-compose (two task replicas),
# points the task workers at a local fake chat-completions server on the host, submits a task
# through the api service, waits until it is completed with the typed result, checks the
# run's database and result landed in their named volumes, and tears everything down
# (containers, network, volumes, per-run image tags) whatever happened.
#
# usage: tests/container/run.sh          (or `make container-test`; root, or rootful podman)
# Needs podman + podman-compose (on this project's machines ../shared/tools/podman-setup
# prepares podman and the debian:bookworm-slim base; podman-compose is installed from Debian
# when missing), /usr/bin/python3 and curl.
# Exits 0 when everything worked, else 1 with a line saying what failed, after printing the
# containers' logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# ---- limits (every wait is bounded) ---------------------------------------------------------
build_timeout_s=${CONTAINER_BUILD_TIMEOUT:-1800} # one `podman build` (first one compiles all)
compose_timeout_s=300   # `podman-compose up -d` / `down`
ready_timeout_s=90      # a service answering after `up`
task_timeout_s=90       # a submitted task reaching completed
fake_timeout_s=20       # the fake chat-completions server printing its port
poll_interval_s=0.5
log_tail_lines=60       # per container, printed on failure
replicas=2              # task workers; both must register with the server

python=/usr/bin/python3
openai_key=container-test-key      # the fake refuses any other key: proves it is passed through
item="red running shoes ($$)"      # the fake answers requests mentioning it with $price
price=49.99
fake=$root/tests/example/fake_openai.py
project=errandct$$                 # unique per run: containers, network, volumes, tags
image=localhost/errand-ctest       # stable image names, so reruns reuse podman's layer cache
services=(errand-server task api)  # compose.yaml service -> Dockerfile stage
declare -A stage_of=([errand-server]=server [task]=task [api]=api)

work=$(mktemp -d /tmp/errand-ctest.XXXXXX)
started=$SECONDS
fake_pid=""

step() { printf 'container-test: [%3ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() { printf 'container-test: FAIL: %s\n' "$*" >&2; exit 1; }

compose=(podman-compose -p "$project" -f "$root/compose.yaml")

# by_label KIND: ids of this run's podman objects of KIND (ps, volume, network).
by_label() {
  local filter=label=io.podman.compose.project=$project
  case $1 in
    ps) podman ps -aq --filter "$filter" ;;
    volume) podman volume ls -q --filter "$filter" ;;
    network) podman network ls -q --filter "$filter" ;;
  esac
}

diagnose() {
  local c
  step "diagnostics: containers of project $project"
  podman ps -a --filter "label=io.podman.compose.project=$project" \
    --format '{{.Names}}  {{.Status}}' >&2 || true
  for c in $(podman ps -a --filter "label=io.podman.compose.project=$project" \
               --format '{{.Names}}' 2>/dev/null); do
    echo "---- podman logs --tail $log_tail_lines $c" >&2
    podman logs --tail "$log_tail_lines" "$c" >&2 2>&1 || true
  done
  if [ -s "$work/fake.log" ]; then
    echo "---- fake chat-completions server" >&2
    tail -n "$log_tail_lines" "$work/fake.log" >&2
  fi
  if [ -s "$work/compose.log" ]; then
    echo "---- podman-compose (last lines)" >&2
    tail -n "$log_tail_lines" "$work/compose.log" >&2
  fi
}

cleanup() {
  local rc=$? s
  trap - EXIT INT TERM
  [ "$rc" = 0 ] || diagnose
  step "tearing down project $project"
  if command -v podman-compose >/dev/null 2>&1; then
    timeout "$compose_timeout_s" "${compose[@]}" down -v >>"$work/compose.log" 2>&1 || true
  fi
  if command -v podman >/dev/null 2>&1; then
    # podman-compose 1.0.3 leaves the network, and whatever a failed `up` half-made
    by_label ps | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
    by_label volume | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    by_label network | xargs -r podman network rm -f >/dev/null 2>&1 || true
    for s in "${services[@]}"; do
      podman untag "$image:${stage_of[$s]}" "localhost/${project}_$s" >/dev/null 2>&1 || true
    done
    [ -z "$(by_label ps)$(by_label volume)$(by_label network)" ] \
      || { echo "container-test: FAIL: project $project left podman objects behind" >&2; rc=1; }
    # Layers of earlier builds of this Dockerfile that no tag uses any more (the Dockerfile
    # labels them); without this every source change would leave a few hundred MB behind.
    podman image prune -f --filter "label=org.opencontainers.image.title=errand" \
      >/dev/null 2>&1 || true
  fi
  if [ -n "$fake_pid" ]; then
    kill "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  if [ "$rc" = 0 ]; then
    step "PASSED"
  else
    step "FAILED (exit $rc)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# ---- prerequisites --------------------------------------------------------------------------
setup=$root/../shared/tools/podman-setup
if [ -x "$setup" ]; then
  step "preparing podman ($setup)"
  "$setup" >&2
fi
command -v podman >/dev/null 2>&1 \
  || fail "podman is not installed (apt-get install podman, or run ../shared/tools/podman-setup)"
podman image exists docker.io/library/debian:bookworm-slim \
  || podman pull -q docker.io/library/debian:bookworm-slim >/dev/null \
  || fail "no debian:bookworm-slim base image, and pulling it failed"
if ! command -v podman-compose >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "podman-compose is not installed (apt-get install podman-compose)"
  step "installing podman-compose from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
    podman-compose >/dev/null || fail "apt-get install podman-compose failed"
fi
[ -x "$python" ] || fail "$python is missing (apt-get install python3)"
command -v curl >/dev/null 2>&1 || fail "curl is missing (apt-get install curl)"
[ -f "$fake" ] || fail "$fake is missing (the example's fake chat-completions server)"

# ---- build every stage ----------------------------------------------------------------------
# `build` is tagged too, so its layers (the compiled tree) stay a cache for the next run and
# are not pruned below; the other three are what compose runs.
for stage in build server task api; do
  step "podman build --target $stage"
  if ! timeout "$build_timeout_s" podman build --network host --target "$stage" \
         -t "$image:$stage" . >"$work/build-$stage.log" 2>&1; then
    tail -n "$log_tail_lines" "$work/build-$stage.log" >&2
    fail "podman build --target $stage failed (or ran over ${build_timeout_s}s); its output is above"
  fi
done
for s in "${services[@]}"; do
  # podman-compose runs the image named <project>_<service>
  podman tag "$image:${stage_of[$s]}" "localhost/${project}_$s"
done
size=$(podman image inspect --format '{{.Size}}' "$image:server")
step "runtime image size: $((size / 1024 / 1024)) MiB"

# ---- the fake chat-completions server on the host -------------------------------------------
# Containers reach the host at host.containers.internal (the podman network's gateway), so the
# fake listens on every interface, on a port of the system's choosing.
step "starting the fake chat-completions server"
"$python" "$fake" --host 0.0.0.0 --port 0 --api-key "$openai_key" >"$work/fake.log" 2>&1 &
fake_pid=$!
fake_port=""
deadline=$((SECONDS + fake_timeout_s))
while [ -z "$fake_port" ]; do
  kill -0 "$fake_pid" 2>/dev/null || fail "the fake chat-completions server exited; its log: $(cat "$work/fake.log")"
  fake_port=$(sed -n 's/.*listening.*port[= ]\([0-9][0-9]*\).*/\1/p' "$work/fake.log" | head -n 1)
  [ -n "$fake_port" ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "the fake chat-completions server printed no 'listening ... port=N' line within ${fake_timeout_s}s"
  sleep "$poll_interval_s"
done
fake_url=http://127.0.0.1:$fake_port
curl -fsS --max-time 5 -H 'Content-Type: application/json' \
  -d "{\"match\": \"$item\", \"responses\": [{\"value\": $price}]}" "$fake_url/_fake/rules" >/dev/null \
  || fail "could not script the fake chat-completions server ($fake_url/_fake/rules)"

# ---- up -------------------------------------------------------------------------------------
# Host ports for the published 4200 and 8000: free ones, so this never collides with a demo.
read -r server_port api_port < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("0.0.0.0", 0))
print(*[s.getsockname()[1] for s in socks])')
export SERVER_HOST_PORT=$server_port API_HOST_PORT=$api_port TASK_REPLICAS=$replicas
export OPENAI_BASE_URL=http://host.containers.internal:$fake_port/v1
export OPENAI_API_KEY=$openai_key OPENAI_MODEL=gpt-4o-mini
step "podman-compose up -d (project $project, server on :$server_port, api on :$api_port, fake on :$fake_port)"
timeout "$compose_timeout_s" "${compose[@]}" up -d --no-build >"$work/compose.log" 2>&1 \
  || fail "podman-compose up failed; see its output below"

server=http://127.0.0.1:$server_port
app=http://127.0.0.1:$api_port

# until DESCRIPTION TIMEOUT COMMAND...: runs COMMAND until it succeeds, or fails the test.
until_ok() {
  local what=$1 limit=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${limit}s"
    sleep "$poll_interval_s"
  done
}
# json CODE [ARG...]: runs python CODE with the JSON document on stdin as `d`, ARGs in sys.argv.
json() {
  local code=$1
  shift
  "$python" -c "import json, sys; d = json.load(sys.stdin); $code" "$@"
}
workers_ready() {
  curl -fsS --max-time 5 "$server/api/workers" | json "
n = sum(1 for w in d['workers'] if w.get('active') and 'create_structured_output' in w.get('tasks', []))
sys.exit(0 if n >= $replicas else 1)"
}

step "waiting for the errand server, $replicas task workers and the api"
until_ok "errand-server answering GET /api/health" "$ready_timeout_s" \
  curl -fsS --max-time 5 "$server/api/health"
until_ok "$replicas task workers registered (GET /api/workers)" "$ready_timeout_s" workers_ready
until_ok "api answering GET /health" "$ready_timeout_s" curl -fsS --max-time 5 "$app/health"
# The whole page first: `curl | grep -q` fails under pipefail when grep stops reading early.
page=$(curl -fsS --max-time 5 "$app/") && grep -qi '<form' <<<"$page" \
  || fail "GET $app/ did not serve the page with its form"

# ---- a task, end to end ---------------------------------------------------------------------
step "POST /tasks (payload, target_type=float, instructions)"
out=$(curl -sS --max-time 10 -w '\n%{http_code}' \
        -F "payload={\"item\": \"$item\", \"price\": \"$price USD\"}" \
        -F target_type=float -F 'instructions=the price' "$app/tasks") \
  || fail "POST $app/tasks did not answer"
code=${out##*$'\n'}
body=${out%$'\n'*}
[ "$code" = 202 ] || fail "POST /tasks answered $code, wanted 202: $body"
run_id=$(json 'print(d["task_run_id"])' <<<"$body") || fail "POST /tasks answered no task_run_id: $body"
step "submitted task run $run_id; polling GET /tasks/$run_id/status"

status_body=""
deadline=$((SECONDS + task_timeout_s))
while :; do
  status_body=$(curl -fsS --max-time 5 "$app/tasks/$run_id/status") \
    || fail "GET /tasks/$run_id/status failed"
  status=$(json 'print(d["status"])' <<<"$status_body")
  case $status in
    completed) break ;;
    pending) ;;
    error) fail "the task ended in error: $status_body" ;;
    *) fail "GET /tasks/$run_id/status answered an unknown status: $status_body" ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || fail "task $run_id still pending after ${task_timeout_s}s: $status_body"
  sleep "$poll_interval_s"
done
json '
assert d["task_run_id"] == sys.argv[1], "wrong task_run_id"
assert d.get("result") == float(sys.argv[2]), "result is not %s" % sys.argv[2]' \
  "$run_id" "$price" <<<"$status_body" 2>"$work/check.err" \
  || fail "completed with a bad result ($(tail -n 1 "$work/check.err")): $status_body"
step "completed: $status_body"

# ---- state landed in the named volumes ------------------------------------------------------
run=$(curl -fsS --max-time 5 "$server/api/task_runs/$run_id") || fail "GET /api/task_runs/$run_id failed"
result_path=$(json '
ref = d.get("result_ref") or ""
prefix = "local:///task-storage/"
if d["state"]["type"] != "COMPLETED" or not ref.startswith(prefix):
    sys.exit("run is %s with result_ref %r, wanted COMPLETED and %s..." % (d["state"]["type"], ref, prefix))
print(ref[len(prefix):])' <<<"$run" 2>"$work/check.err") \
  || fail "the errand server's record: $(tail -n 1 "$work/check.err")"
storage=$(podman volume inspect --format '{{.Mountpoint}}' "${project}_task-storage")
[ -s "$storage/$result_path" ] \
  || fail "the persisted result $result_path is not in the task-storage volume ($storage)"
data=$(podman volume inspect --format '{{.Mountpoint}}' "${project}_errand-data")
[ -s "$data/errand.db" ] || fail "no errand.db in the errand-data volume ($data): $(ls -la "$data")"
step "result persisted in task-storage ($result_path), database in errand-data"

# ---- the endpoint was called as configured --------------------------------------------------
calls=$(curl -fsS --max-time 5 -G --data-urlencode "match=$item" "$fake_url/_fake/calls") \
  || fail "could not read the fake's calls ($fake_url/_fake/calls)"
json '
calls = d["calls"]
assert calls, "no chat-completions call mentioned the item"
assert all(c["authorization"] == "Bearer " + sys.argv[1] for c in calls), "a call without the key"
assert all(c["body"]["model"] == sys.argv[2] for c in calls), "a call for another model"' \
  "$openai_key" "$OPENAI_MODEL" <<<"$calls" 2>"$work/check.err" \
  || fail "the task's calls to the endpoint: $(tail -n 1 "$work/check.err"): $calls"
step "the task called the endpoint with OPENAI_API_KEY and OPENAI_MODEL from compose"
