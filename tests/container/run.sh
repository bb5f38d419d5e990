#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/container/run.sh — the deployment test: builds every runtime stage of the root
# Dockerfile with podman, brings compose.yaml up with podman-compose (two task replicas),
# points the task workers at a local fake chat-completions server on the host, submits a task
# through the api service, waits until it is completed with the typed result, checks the
# run's database and result landed in their named volumes. Then the same for the
# production-like variant, compose.postgres.yaml: PostgreSQL, s3rver, two errand servers,
# two task workers and the api with scoped API keys; a task's result is read back from the
# bucket through the servers' API, its run is in PostgreSQL, and with one server stopped
# the app still works through the other. Then compose.fastapi.yaml, the seed's app in Python
# (FastAPI under uvicorn, Python task workers): a task submitted through its api completes
# with the typed result, and the request's traceparent is its run's. Along the way: the
# server, task, api, fastapi-task and fastapi-api images carry the OCI labels of this version (scripts/version.sh, the commit, MIT) and a non-root user,
# and each of those services turns healthy by its own health check (`errand health`), which
# goes red for a task worker whose server is gone. Everything is torn down (containers,
# networks, volumes, per-run image tags) whatever happened.
#
# usage: tests/container/run.sh          (or `make container-test`; root, or rootful podman)
# Needs podman + podman-compose (on this project's machines ../shared/tools/podman-setup
# prepares podman and the debian:bookworm-slim base; podman-compose is installed from Debian
# when missing), /usr/bin/python3 and curl, and the Debian mirror and the npm registry (for
# s3rver) at build time; NODE_EXTRA_CA_CERTS, when set, is handed to the npm step.
# Exits 0 when everything worked, else 1 with a line saying what failed, after printing the
# containers' logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# ---- limits (every wait is bounded) ---------------------------------------------------------
build_timeout_s=${CONTAINER_BUILD_TIMEOUT:-1800} # one `podman build` (first one compiles all)
compose_timeout_s=300   # `podman-compose up -d` / `down`
ready_timeout_s=90      # a service answering after `up`
healthy_timeout_s=60    # a service's health check passing, once it answers
task_timeout_s=90       # a submitted task reaching completed
pg_ready_timeout_s=120  # PostgreSQL's first start (initdb) and the servers connecting to it
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
pg_project=errandctpg$$            # the same for compose.postgres.yaml
fa_project=errandctfa$$            # the same for compose.fastapi.yaml
image=localhost/errand-ctest       # stable image names, so reruns reuse podman's layer cache
services=(errand-server task api)  # compose.yaml's services
pg_services=(postgres s3 errand-server-1 errand-server-2 task api) # compose.postgres.yaml's
fa_services=(errand-server task api) # compose.fastapi.yaml's
# service -> Dockerfile stage
declare -A stage_of=([errand-server]=server [errand-server-1]=server [errand-server-2]=server
                     [task]=task [api]=api [postgres]=postgres [s3]=s3)
declare -A fa_stage_of=([errand-server]=server [task]=fastapi-task [api]=fastapi-api)
# Stages built: server task api postgres s3, what compose runs, and `build` and
# `s3rver-build`, tagged too so that their layers (the compiled tree, the npm install) stay a
# cache for the next run and are not pruned below.
declare -A bg_builds=() # stage -> pid of its `podman build` running in the background
# compose.postgres.yaml's secrets (it refuses to start without them): throw-away values.
export POSTGRES_PASSWORD="ctest pw/$$:$RANDOM@x" # characters a URL would need escaped
export ERRAND_API_KEY=ctest-admin-$$-$RANDOM ERRAND_APP_KEY=ctest-app-$$-$RANDOM \
       ERRAND_WORKER_KEY=ctest-worker-$$-$RANDOM
pg_bucket=errand-results
pg_prefix=ctest
pg_items=("blue rain jacket ($$)" "green tent ($$)") # the fake answers these with pg_prices
pg_prices=(89.5 120.25)
fa_item="yellow kayak ($$)"         # the fake answers it with fa_price, for compose.fastapi.yaml
fa_price=310.75
fa_trace=4bf92f3577b34da6a3ce929d0e0e47$((10 + RANDOM % 90)) # the request's trace id

work=$(mktemp -d /tmp/errand-ctest.XXXXXX)
started=$SECONDS
fake_pid=""

step() { printf 'container-test: [%3ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() { printf 'container-test: FAIL: %s\n' "$*" >&2; exit 1; }
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

compose=(podman-compose -p "$project" -f "$root/compose.yaml")
pg_compose=(podman-compose -p "$pg_project" -f "$root/compose.postgres.yaml")
fa_compose=(podman-compose -p "$fa_project" -f "$root/compose.fastapi.yaml")
declare -A compose_log=([$project]=compose.log [$pg_project]=compose-pg.log
                        [$fa_project]=compose-fa.log)
up_projects=() # those `podman-compose up` was run for

# by_label KIND [PROJECT]: ids of PROJECT's podman objects of KIND (ps, volume, network).
by_label() {
  local filter=label=io.podman.compose.project=${2:-$project}
  case $1 in
    ps) podman ps -aq --filter "$filter" ;;
    volume) podman volume ls -q --filter "$filter" ;;
    network) podman network ls -q --filter "$filter" ;;
  esac
}

diagnose() {
  local c p
  for p in "$project" "$pg_project" "$fa_project"; do
    [ -n "$(by_label ps "$p")" ] || continue
    step "diagnostics: containers of project $p"
    podman ps -a --filter "label=io.podman.compose.project=$p" \
      --format '{{.Names}}  {{.Status}}' >&2 || true
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$p" \
                 --format '{{.Names}}' 2>/dev/null); do
      echo "---- podman logs --tail $log_tail_lines $c" >&2
      podman logs --tail "$log_tail_lines" "$c" >&2 2>&1 || true
    done
  done
  if [ -s "$work/fake.log" ]; then
    echo "---- fake chat-completions server" >&2
    tail -n "$log_tail_lines" "$work/fake.log" >&2
  fi
  for c in compose.log compose-pg.log compose-fa.log; do
    if [ -s "$work/$c" ]; then
      echo "---- podman-compose, $c (last lines)" >&2
      tail -n "$log_tail_lines" "$work/$c" >&2
    fi
  done
}

# teardown PROJECT COMPOSE...: `COMPOSE down -v`, then removes whatever of PROJECT is left:
# podman-compose 1.0.3 leaves the network, and whatever a failed `up` half-made.
teardown() {
  local p=$1 q kept=()
  shift
  if [[ " ${up_projects[*]} " == *" $p "* ]] && command -v podman-compose >/dev/null 2>&1; then
    timeout "$compose_timeout_s" "$@" down -v >>"$work/${compose_log[$p]}" 2>&1 || true
  fi
  for q in "${up_projects[@]}"; do [ "$q" = "$p" ] || kept+=("$q"); done
  up_projects=("${kept[@]}")
  if command -v podman >/dev/null 2>&1; then
    by_label ps "$p" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
    by_label volume "$p" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    by_label network "$p" | xargs -r podman network rm -f >/dev/null 2>&1 || true
  fi
}

cleanup() {
  local rc=$? s p
  trap - EXIT INT TERM
  for s in "${!bg_builds[@]}"; do
    kill "${bg_builds[$s]}" 2>/dev/null || true
    wait "${bg_builds[$s]}" 2>/dev/null || true
  done
  [ "$rc" = 0 ] || diagnose
  step "tearing down projects $project, $pg_project and $fa_project"
  teardown "$fa_project" "${fa_compose[@]}"
  teardown "$pg_project" "${pg_compose[@]}"
  teardown "$project" "${compose[@]}"
  if command -v podman >/dev/null 2>&1; then
    for s in "${services[@]}"; do
      podman untag "$image:${stage_of[$s]}" "localhost/${project}_$s" >/dev/null 2>&1 || true
    done
    for s in "${pg_services[@]}"; do
      podman untag "$image:${stage_of[$s]}" "localhost/${pg_project}_$s" >/dev/null 2>&1 || true
    done
    for s in "${fa_services[@]}"; do
      podman untag "$image:${fa_stage_of[$s]}" "localhost/${fa_project}_$s" >/dev/null 2>&1 || true
    done
    for p in "$project" "$pg_project" "$fa_project"; do
      [ -z "$(by_label ps "$p")$(by_label volume "$p")$(by_label network "$p")" ] \
        || { echo "container-test: FAIL: project $p left podman objects behind" >&2; rc=1; }
    done
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

# ---- what the images are labelled with --------------------------------------------------------
version=$(scripts/version.sh) || fail "scripts/version.sh found no release version in CHANGELOG.md"
revision=$(git rev-parse HEAD 2>/dev/null) || revision=unknown
# Where the commit lives: the origin remote without any user or token in it, else this checkout.
source_url=$(git remote get-url origin 2>/dev/null | sed -E 's#^([a-z+]+://)[^/@]*@#\1#') || true
[ -n "$source_url" ] || source_url=$root
# Every build gets them (the Dockerfile's labels), and the docker format, which keeps the
# images' HEALTHCHECK (the OCI format has no such field, and podman would drop it).
build_args=(--format docker --build-arg "ERRAND_VERSION=$version"
            --build-arg "ERRAND_REVISION=$revision" --build-arg "ERRAND_SOURCE=$source_url")

# ---- build every stage ----------------------------------------------------------------------
# s3rver comes from the npm registry over HTTPS: where this machine reaches it through a TLS
# proxy, the proxy's CA goes into that build step (the Dockerfile's s3rver-build stage).
npm_ca=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  npm_ca=(-v "$NODE_EXTRA_CA_CERTS:/etc/ssl/certs/host-extra-ca.crt:ro"
          --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.crt)
fi
build_failed() {
  tail -n "$log_tail_lines" "$work/build-$1.log" >&2
  fail "podman build --target $1 failed (or ran over ${build_timeout_s}s); its output is above"
}
# compose.postgres.yaml's own services need nothing compiled, so they build in the background
# meanwhile: on a new machine they are minutes of apt-get and npm (on one with podman's layer
# cache, seconds). Started as direct children, so cleanup can stop them by their ids.
step "podman build --target postgres, --target s3 (in the background)"
timeout "$build_timeout_s" podman build --network host "${build_args[@]}" --target postgres \
  -t "$image:postgres" . >"$work/build-postgres.log" 2>&1 &
bg_builds[postgres]=$!
timeout "$build_timeout_s" podman build --network host "${build_args[@]}" "${npm_ca[@]}" --target s3 \
  -t "$image:s3" . >"$work/build-s3.log" 2>&1 &
bg_builds[s3]=$!
for stage in build server task api fastapi-task fastapi-api; do
  step "podman build --target $stage"
  timeout "$build_timeout_s" podman build --network host "${build_args[@]}" --target "$stage" \
    -t "$image:$stage" . >"$work/build-$stage.log" 2>&1 || build_failed "$stage"
done
for stage in postgres s3; do
  step "waiting for podman build --target $stage"
  wait "${bg_builds[$stage]}" || { unset "bg_builds[$stage]"; build_failed "$stage"; }
  unset "bg_builds[$stage]"
done
# Tagged too (built already, as part of s3), so its layers (the npm install) stay a cache.
timeout "$build_timeout_s" podman build --network host "${build_args[@]}" "${npm_ca[@]}" --target s3rver-build \
  -t "$image:s3rver-build" . >"$work/build-s3rver-build.log" 2>&1 || build_failed s3rver-build
# podman-compose runs the image named <project>_<service>
for s in "${services[@]}"; do
  podman tag "$image:${stage_of[$s]}" "localhost/${project}_$s"
done
for s in "${pg_services[@]}"; do
  podman tag "$image:${stage_of[$s]}" "localhost/${pg_project}_$s"
done
for s in "${fa_services[@]}"; do
  podman tag "$image:${fa_stage_of[$s]}" "localhost/${fa_project}_$s"
done
sizes=""
for stage in server fastapi-api postgres s3; do
  size=$(podman image inspect --format '{{.Size}}' "$image:$stage")
  sizes="$sizes $stage $((size / 1024 / 1024)) MiB,"
done
step "runtime image sizes:${sizes%,}"

# ---- the images' labels, user and health check ----------------------------------------------
# label STAGE NAME: the image's org.opencontainers.image.NAME label.
label() {
  podman image inspect --format "{{index .Labels \"org.opencontainers.image.$2\"}}" "$image:$1"
}
for stage in server task api fastapi-task fastapi-api; do
  got=$(label "$stage" version)
  [ "$got" = "$version" ] || fail "image $stage is labelled version '$got', wanted '$version' (scripts/version.sh)"
  got=$(label "$stage" revision)
  [ "$got" = "$revision" ] || fail "image $stage is labelled revision '$got', wanted '$revision'"
  got=$(label "$stage" licenses)
  [ "$got" = MIT ] || fail "image $stage is labelled licenses '$got', wanted MIT"
  got=$(label "$stage" source)
  [ "$got" = "$source_url" ] || fail "image $stage is labelled source '$got', wanted '$source_url'"
  user=$(podman image inspect --format '{{.Config.User}}' "$image:$stage")
  case $user in
    "" | root | 0 | 0:*) fail "image $stage runs as '${user:-root (no USER)}', wanted an unprivileged user" ;;
  esac
  check=$(podman image inspect --format '{{.HealthCheck}}' "$image:$stage")
  [[ $check == *"errand health"* ]] || fail "image $stage has no 'errand health' HEALTHCHECK: '$check'"
done
for stage in postgres s3; do
  got=$(label "$stage" version)
  [ "$got" = "$version" ] || fail "image $stage is labelled version '$got', wanted '$version'"
done
# (podman's stderr aside: without systemd it complains that it cannot schedule the image's
# health check, which does not matter for a one-off command.)
got=$(podman run --rm --network none "$image:server" errand --version 2>"$work/version.err") \
  || fail "errand --version failed in the server image: $(cat "$work/version.err")"
[ "$got" = "errand $version" ] \
  || fail "errand --version in the server image printed '$got', wanted 'errand $version'"
step "images labelled version $version, revision $revision, MIT; non-root; health checks set"

# ---- the images' own health checks -----------------------------------------------------------
# compose declares its own checks (below); these are the images' HEALTHCHECK, for `docker run`.
# The server's reads its port from ERRAND_SERVER_API_PORT: run on another port, it must still
# pass. The api's /health needs no errand server. Labelled with the project, so that teardown
# removes them whatever happens.
image_check() { # image_check NAME STAGE ENV...: runs STAGE alone; its own check must pass
  local name=$1 stage=$2 env=() e
  shift 2
  for e in "$@"; do env+=(-e "$e"); done
  podman run -d --name "$name" --network none --label "io.podman.compose.project=$project" \
    "${env[@]}" "$image:$stage" >/dev/null 2>"$work/run.err" \
    || fail "podman run $image:$stage failed: $(cat "$work/run.err")"
  until_ok "image $stage's own HEALTHCHECK passing (podman healthcheck run $name)" \
    "$healthy_timeout_s" podman healthcheck run "$name"
  podman rm -f -t 0 "$name" >/dev/null 2>&1
}
image_check "${project}_alone_server" server ERRAND_SERVER_API_PORT=4300
image_check "${project}_alone_api" api ERRAND_API_URL=http://127.0.0.1:1/api
image_check "${project}_alone_fastapi_api" fastapi-api ERRAND_API_URL=http://127.0.0.1:1/api
step "the server, api and fastapi-api images pass their own HEALTHCHECK"

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
# fake_rule TEXT VALUE: the fake answers requests mentioning TEXT with VALUE.
fake_rule() {
  curl -fsS --max-time 5 -H 'Content-Type: application/json' \
    -d "{\"match\": \"$1\", \"responses\": [{\"value\": $2}]}" "$fake_url/_fake/rules" >/dev/null \
    || fail "could not script the fake chat-completions server ($fake_url/_fake/rules)"
}
fake_rule "$item" "$price"
for i in "${!pg_items[@]}"; do fake_rule "${pg_items[$i]}" "${pg_prices[$i]}"; done
fake_rule "$fa_item" "$fa_price"

# ---- up -------------------------------------------------------------------------------------
# Host ports for the published 4200, 4201 and 8000: free ones, so this never collides with a
# demo (three for the variant: it has two servers).
free_ports() {
  "$python" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("0.0.0.0", 0))
print(*[s.getsockname()[1] for s in socks])' "$1"
}
read -r server_port api_port < <(free_ports 2)
export SERVER_HOST_PORT=$server_port API_HOST_PORT=$api_port TASK_REPLICAS=$replicas
export OPENAI_BASE_URL=http://host.containers.internal:$fake_port/v1
export OPENAI_API_KEY=$openai_key OPENAI_MODEL=gpt-4o-mini
step "podman-compose up -d (project $project, server on :$server_port, api on :$api_port, fake on :$fake_port)"
up_projects+=("$project")
timeout "$compose_timeout_s" "${compose[@]}" up -d --no-build >"$work/compose.log" 2>&1 \
  || fail "podman-compose up failed; see its output below"

server=http://127.0.0.1:$server_port
app=http://127.0.0.1:$api_port

# containers_of PROJECT SERVICE: the ids of SERVICE's containers in PROJECT.
containers_of() {
  podman ps -q --filter "label=io.podman.compose.project=$1" \
    --filter "label=com.docker.compose.service=$2"
}
# healthy PROJECT SERVICE...: every container of each SERVICE passes its health check, the one
# compose gave it, run on demand (podman runs them periodically only under systemd).
healthy() {
  local p=$1 s c
  shift
  for s in "$@"; do
    c=$(containers_of "$p" "$s")
    [ -n "$c" ] || fail "no running container of service $s in project $p"
    for c in $c; do
      until_ok "$s ($c) healthy (podman healthcheck run)" "$healthy_timeout_s" \
        podman healthcheck run "$c"
    done
  done
}
# json CODE [ARG...]: runs python CODE with the JSON document on stdin as `d`, ARGs in sys.argv.
json() {
  local code=$1
  shift
  "$python" -c "import json, sys; d = json.load(sys.stdin); $code" "$@"
}
# workers_ready [SERVER [CURL-ARG...]]: $replicas task workers registered with SERVER.
workers_ready() {
  local url=${1:-$server}
  shift || true
  curl -fsS --max-time 5 "$@" "$url/api/workers" | json "
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
healthy "$project" errand-server task api
step "errand-server, task and api healthy"

# ---- a task, end to end ---------------------------------------------------------------------
# run_task APP ITEM PRICE: submits a task through the api at APP (POST /tasks, the form the
# page sends), polls GET /tasks/{id}/status until it is completed and checks its result is
# PRICE. Sets run_id and status_body.
run_task() {
  local app=$1 item=$2 price=$3 out code body status deadline
  step "POST $app/tasks (payload with '$item', target_type=float, instructions)"
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
}
run_task "$app" "$item" "$price"

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

# ---- a health check that must fail ---------------------------------------------------------
# `errand health` exits 1 (not 2, not 0) for a server that is not there; and once the errand
# server is stopped, the task workers' own health check reports it.
mapfile -t task_containers < <(containers_of "$project" task)
task_container=${task_containers[0]:?no task container in project $project}
rc=0
podman exec "$task_container" errand health --timeout-seconds 2 \
  --api-url http://127.0.0.1:1/api >/dev/null 2>"$work/health.err" || rc=$?
[ "$rc" = 1 ] || fail "errand health against a closed port exited $rc, wanted 1: $(cat "$work/health.err")"
step "stopping errand-server"
# (stderr aside: without systemd podman complains it cannot remove the health check's timer)
podman stop -t 10 "$(containers_of "$project" errand-server)" >/dev/null 2>"$work/stop.err" \
  || fail "podman stop errand-server failed: $(cat "$work/stop.err")"
# 1 is podman's "unhealthy"; 125 would be podman failing to run the check at all.
rc=0
out=$(podman healthcheck run "$task_container" 2>&1) || rc=$?
[ "$rc" = 1 ] \
  || fail "the task's health check exited $rc with errand-server stopped, wanted 1 (unhealthy): $out"
step "with errand-server stopped, the task's health check fails: $out"

# ---- the production-like variant: compose.postgres.yaml -------------------------------------
# Its own project, after the default one is down (they would only compete for the CPUs).
step "tearing down project $project"
teardown "$project" "${compose[@]}"
read -r server_port server2_port api_port < <(free_ports 3)
export SERVER_HOST_PORT=$server_port SERVER2_HOST_PORT=$server2_port API_HOST_PORT=$api_port
export S3_BUCKET=$pg_bucket S3_PREFIX=$pg_prefix
# Results only in the bucket, none inline in the database: reading one back proves the
# servers fetch it from S3.
export RESULT_INLINE_MAX_BYTES=0
step "podman-compose -f compose.postgres.yaml up -d (project $pg_project, servers on :$server_port and :$server2_port, api on :$api_port)"
up_projects+=("$pg_project")
timeout "$compose_timeout_s" "${pg_compose[@]}" up -d --no-build >"$work/compose-pg.log" 2>&1 \
  || fail "podman-compose -f compose.postgres.yaml up failed; see its output below"

server=http://127.0.0.1:$server_port
server2=http://127.0.0.1:$server2_port
app=http://127.0.0.1:$api_port
admin=(-H "Authorization: Bearer $ERRAND_API_KEY")
pg_container=${pg_project}_postgres_1

step "waiting for PostgreSQL (its health check), both errand servers, $replicas task workers and the api"
# The compose file's health check (pg_isready over TCP), run on demand: podman runs it
# periodically only under systemd.
until_ok "postgres healthy (podman healthcheck run $pg_container)" "$pg_ready_timeout_s" \
  podman healthcheck run "$pg_container"
# podman-compose started the servers without waiting for it: they may have exited and been
# restarted (restart: unless-stopped) until PostgreSQL accepted connections.
until_ok "errand-server-1 answering GET /api/health" "$pg_ready_timeout_s" \
  curl -fsS --max-time 5 "$server/api/health"
until_ok "errand-server-2 answering GET /api/health" "$pg_ready_timeout_s" \
  curl -fsS --max-time 5 "$server2/api/health"
until_ok "$replicas task workers registered (GET /api/workers)" "$ready_timeout_s" \
  workers_ready "$server" "${admin[@]}"
until_ok "api answering GET /health" "$ready_timeout_s" curl -fsS --max-time 5 "$app/health"
# The servers want keys for everything but their health checks, which pass without one.
healthy "$pg_project" errand-server-1 errand-server-2 task api
step "errand-server-1, errand-server-2, task and api healthy"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$server/api/task_runs") \
  || fail "GET $server/api/task_runs did not answer"
[ "$code" = 401 ] || fail "GET /api/task_runs without a key answered $code, wanted 401 (ERRAND_API_KEY unset on the servers?)"
step "up; the servers want a key"

# check_persisted SERVER-FOR-RECORD SERVER-FOR-RESULT PRICE: run $run_id's record has its
# result only in the bucket, under S3_PREFIX; the result read back through the API is PRICE;
# the object is in the s3-data volume; PostgreSQL has the run, completed.
check_persisted() {
  local rec_server=$1 res_server=$2 price=$3 run result objects key state
  run=$(curl -fsS --max-time 5 "${admin[@]}" "$rec_server/api/task_runs/$run_id") \
    || fail "GET $rec_server/api/task_runs/$run_id failed"
  key=$(json '
ref, want = d.get("result_ref") or "", "s3://%s/%s/%s.json" % tuple(sys.argv[1:4])
if d["state"]["type"] != "COMPLETED" or ref != want:
    sys.exit("run is %s with result_ref %r, wanted COMPLETED and %r" % (d["state"]["type"], ref, want))
if d.get("result") is not None:
    sys.exit("the result is inline too (%r): RESULT_INLINE_MAX_BYTES=0 did not reach the workers" % d["result"])
print(ref[len("s3://"):])' "$pg_bucket" "$pg_prefix" "$run_id" <<<"$run" 2>"$work/check.err") \
    || fail "the errand server's record: $(tail -n 1 "$work/check.err")"
  result=$(curl -fsS --max-time 10 "${admin[@]}" "$res_server/api/task_runs/$run_id/result") \
    || fail "GET $res_server/api/task_runs/$run_id/result failed"
  json 'assert sys.argv[1] in json.dumps(d), "no %s in it" % sys.argv[1]' "$price" \
    <<<"$result" 2>"$work/check.err" \
    || fail "the result read back through $res_server: $(tail -n 1 "$work/check.err"): $result"
  objects=$(podman volume inspect --format '{{.Mountpoint}}' "${pg_project}_s3-data")
  [ -s "$objects/$key._S3rver_object" ] \
    || fail "no object $key in the s3-data volume ($objects): $(find "$objects" -type f | head)"
  state=$(podman exec "$pg_container" psql -U "${POSTGRES_USER:-errand}" -d "${POSTGRES_DB:-errand}" \
            -tA -c "SELECT state_name FROM task_runs WHERE id = '$run_id'") \
    || fail "could not query PostgreSQL in $pg_container"
  [ "$state" = Completed ] || fail "PostgreSQL has run $run_id as '$state', wanted Completed"
  step "result in the bucket ($key), read back through the API: $result; run in PostgreSQL"
}

run_task "$app" "${pg_items[0]}" "${pg_prices[0]}"
check_persisted "$server2" "$server" "${pg_prices[0]}"

# ---- one server down: the app and the workers carry on through the other --------------------
step "stopping errand-server-1"
podman stop -t 10 "${pg_project}_errand-server-1_1" >/dev/null 2>"$work/stop.err" \
  || fail "podman stop ${pg_project}_errand-server-1_1 failed: $(cat "$work/stop.err")"
! curl -fsS --max-time 5 "$server/api/health" >/dev/null 2>&1 \
  || fail "errand-server-1 still answers after podman stop"
run_task "$app" "${pg_items[1]}" "${pg_prices[1]}"
check_persisted "$server2" "$server2" "${pg_prices[1]}"
until_ok "$replicas task workers still active on errand-server-2" "$ready_timeout_s" \
  workers_ready "$server2" "${admin[@]}"
# Every try, not eventually: each check starts at a server drawn at random, so one that did
# not move on from the stopped server would fail about every other time.
for c in $(containers_of "$pg_project" task); do
  for try in 1 2 3 4; do
    podman healthcheck run "$c" >/dev/null 2>&1 \
      || fail "task $c: health check $try failed with errand-server-1 stopped (no failover?)"
  done
done
step "with errand-server-1 stopped, the app and the workers work through errand-server-2"

# ---- the seed's app in Python: compose.fastapi.yaml ------------------------------------------
# The errand server of compose.yaml, Python task workers (errand.serve) and the FastAPI app
# under uvicorn; the same task through the same form must complete with the typed result.
step "tearing down project $pg_project"
teardown "$pg_project" "${pg_compose[@]}"
unset S3_BUCKET S3_PREFIX RESULT_INLINE_MAX_BYTES
read -r server_port api_port < <(free_ports 2)
export SERVER_HOST_PORT=$server_port API_HOST_PORT=$api_port
step "podman-compose -f compose.fastapi.yaml up -d (project $fa_project, server on :$server_port, api on :$api_port)"
up_projects+=("$fa_project")
timeout "$compose_timeout_s" "${fa_compose[@]}" up -d --no-build >"$work/compose-fa.log" 2>&1 \
  || fail "podman-compose -f compose.fastapi.yaml up failed; see its output below"
server=http://127.0.0.1:$server_port
app=http://127.0.0.1:$api_port
step "waiting for the errand server, $replicas Python task workers and the FastAPI api"
until_ok "errand-server answering GET /api/health" "$ready_timeout_s" \
  curl -fsS --max-time 5 "$server/api/health"
until_ok "$replicas Python task workers registered (GET /api/workers)" "$ready_timeout_s" \
  workers_ready
until_ok "FastAPI api answering GET /health" "$ready_timeout_s" \
  curl -fsS --max-time 5 "$app/health"
page=$(curl -fsS --max-time 5 "$app/") && grep -qi '<form' <<<"$page" \
  || fail "GET $app/ (FastAPI) did not serve the page with its form"
healthy "$fa_project" errand-server task api
step "errand-server, Python task workers and the FastAPI api healthy"
run_task "$app" "$fa_item" "$fa_price"
# The request's W3C traceparent is the run's: one trace id from the web request on.
traceparent=00-$fa_trace-00f067aa0ba902b7-01
body=$(curl -fsS --max-time 10 -H "traceparent: $traceparent" \
         -d 'payload=traced' -d target_type=str "$app/tasks") \
  || fail "POST $app/tasks with a traceparent failed"
traced_id=$(json 'print(d["task_run_id"])' <<<"$body") || fail "no task_run_id in: $body"
curl -fsS --max-time 5 "$server/api/task_runs/$traced_id" | json '
assert d.get("traceparent") == sys.argv[1], "the run has traceparent %r" % d.get("traceparent")' \
  "$traceparent" 2>"$work/check.err" \
  || fail "the FastAPI app did not forward the request's traceparent: $(tail -n 1 "$work/check.err")"
step "the FastAPI app forwarded the request's traceparent to run $traced_id"
