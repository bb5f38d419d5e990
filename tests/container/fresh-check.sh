#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/container/fresh-check.sh — runs the README's test command, `make check`, the way a new
# user would: in a clean Debian 12 container (debian:bookworm-slim with Debian's archive,
# its updates and security suites, as a fresh install has them) that holds only what a new
# machine comes with (gcc, make, cmake, python3 and Debian's nodejs, 18), on a clean clone of
# the committed HEAD. Everything else must be installed by the project's own files, so a
# missing install step, or a version that only the CI machine has (a newer Node.js, an older
# libssl3), fails here instead of on a user's machine.
#
# usage: tests/container/fresh-check.sh [COMMAND]   (default: make check; or `make fresh-check`)
# env:   FRESH_TIMEOUT  seconds the whole COMMAND may take in the container (default 1980;
#                       .ci/run gives it the time left to its step, less a minute)
#        FRESH_IMAGE_MAX_AGE_DAYS  rebuild the base image when older (default 7)
# Needs podman and the debian:bookworm-slim base image (on this project's machines
# ../shared/tools/podman-setup prepares both), and root (rootful podman).
# Exits with COMMAND's status (124 when it ran out of time), after removing the container.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
command=${1:-make check}
timeout_s=${FRESH_TIMEOUT:-1980}
max_age_days=${FRESH_IMAGE_MAX_AGE_DAYS:-7}
base=docker.io/library/debian:bookworm-slim
image=localhost/errand-fresh-debian12
# What a new machine of the project's kind has: the README's commands must install the rest.
fresh_pkgs="gcc make cmake python3 nodejs ca-certificates"
container=errand-fresh-$$
started=$SECONDS

say() { printf 'fresh-check: [%4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

work=$(mktemp -d /tmp/errand-fresh.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local rc=$?
  podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- podman and the base image ------------------------------------------------------------
setup=$root/../shared/tools/podman-setup
[ -x "$setup" ] && "$setup" >&2
command -v podman >/dev/null 2>&1 \
  || fail "podman is not installed (apt-get install podman, or run ../shared/tools/podman-setup)"
podman image exists "$base" || podman pull -q "$base" >/dev/null \
  || fail "no $base image, and pulling it failed"

# The "new machine" image: rebuilt when missing or older than max_age_days, so the container
# starts from current point releases, as a new machine would.
image_age_days() {
  local created
  created=$(podman image inspect --format '{{.Created.Unix}}' "$image" 2>/dev/null) || return 1
  echo $(( ($(date +%s) - created) / 86400 ))
}
age=$(image_age_days || echo none)
if [ "$age" = none ] || [ "$age" -ge "$max_age_days" ]; then
  say "building $image (a new Debian 12 machine: $fresh_pkgs)"
  mkdir -p "$work/image"
  cat >"$work/image/Containerfile" <<EOF
FROM $base
# A Debian 12 install has the point-release updates and the security suite as sources.
RUN printf '%s\n' 'deb http://deb.debian.org/debian bookworm main' \\
      'deb http://deb.debian.org/debian bookworm-updates main' \\
      'deb http://deb.debian.org/debian-security bookworm-security main' \\
      >/etc/apt/sources.list \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq >/dev/null \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      $fresh_pkgs >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
EOF
  podman build -q --network host -t "$image" "$work/image" >/dev/null \
    || fail "podman build of $image failed"
fi

# ---- a clean clone of the commit ----------------------------------------------------------
head=$(git -C "$root" rev-parse HEAD)
git clone -q --no-hardlinks "$root" "$work/src"
git -C "$work/src" checkout -q "$head"
[ -z "$(git -C "$root" status --porcelain --untracked-files=no)" ] \
  || say "note: the work tree has uncommitted changes; the container tests the commit only"
say "testing commit ${head:0:12} in a new Debian 12 container: $command"

# Where this machine reaches the npm registry through a TLS proxy, its CA bundle goes in too
# (a real new machine has no such proxy; without it npm would refuse the proxy's certificate).
ca=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  ca=(-v "$NODE_EXTRA_CA_CERTS:/etc/ssl/certs/host-extra-ca.crt:ro"
      -e NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.crt)
fi

# ---- the README's test command ------------------------------------------------------------
# The suite runs a Python worker with 1,500 task processes at once (the conformance case of
# more outcomes than one report carries), each with its keeper (clients/python/errand/
# fork_server.py): over 3,000 processes, past podman's default cap of 2,048 a container. A
# machine has no such cap by default, so neither has this one.
rc=0
timeout -k 30 "$timeout_s" podman run --rm --name "$container" --network host --pids-limit -1 "${ca[@]}" \
  -v "$work/src:/work/errand" -w /work/errand "$image" \
  bash -c "node --version | sed 's/^/fresh-check: node /'; $command" || rc=$?
if [ "$rc" = 124 ]; then
  say "FAIL: '$command' ran over ${timeout_s}s"
elif [ "$rc" != 0 ]; then
  say "FAIL: '$command' exited $rc in the new Debian 12 container"
else
  say "PASSED: '$command' in a new Debian 12 container"
fi
exit "$rc"
