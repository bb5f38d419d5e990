#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/peers/run.sh — errand beside Celery, RQ and beanstalkd on this machine, in one run
# (bench/peers/README.md). Installs the peers from Debian's packages when missing (as root,
# or through sudo), builds errand when it is not built, then runs compare.py; arguments go
# to compare.py (--runs, --rq-runs, --latency-runs, --only, --out). A few minutes; every
# process it starts is stopped at the end.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build}

missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v beanstalkd >/dev/null 2>&1 || missing="$missing beanstalkd"
/usr/bin/python3 -c 'import celery' 2>/dev/null || missing="$missing python3-celery"
/usr/bin/python3 -c 'import rq' 2>/dev/null || missing="$missing python3-rq"
/usr/bin/python3 -c 'import redis' 2>/dev/null || missing="$missing python3-redis"
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi
if [ ! -x "$build/bin/errand" ] || [ ! -x "$build/bench/beanstalk_bench" ]; then
  make -C "$root" BUILD="$build"
fi
exec /usr/bin/python3 "$here/compare.py" --build "$build" "$@"
