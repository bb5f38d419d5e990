#!/bin/bash
# SPDX-License-Identifier: MIT
# tests/package/in-container.sh — the package test's steps inside the container, which runs
# systemd as process 1 (tests/package/run.sh starts it): install the packages of /debs, run
# the server and a worker through their units, submit runs with the CLI and with a program
# built against liberrand-dev, stop the units, purge the packages, and compare the file
# system with what it was before the install. Prints what it checks; exits 1 at the first
# check that fails, saying which.
set -euo pipefail
say() { printf 'package-test: %s\n' "$*"; }
fail() { printf 'package-test: FAIL: %s\n' "$*" >&2; exit 1; }
t0=$SECONDS
# has PATTERN TEXT: TEXT holds a line matching the extended regular expression PATTERN. (Not
# `cmd | grep -q`: under pipefail that fails whenever grep stops reading before cmd has
# written everything, and cmd dies of SIGPIPE.)
has() { grep -qE -- "$1" <<<"$2"; }

# until SECONDS CMD...: runs CMD until it succeeds, at most SECONDS.
until_ok() {
  local limit=$1 start=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.2
  done
}

# What is on the file system, outside the places that churn by themselves (apt's and dpkg's
# records, caches, logs, temporary and runtime folders) and the test's own mounts.
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
                 -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt \
                 -o -path /var/lib/dpkg -o -path /debs -o -path /test \) -prune -o -print |
    sort
}

say "waiting for systemd"
until_ok 60 systemctl is-system-running || [ "$(systemctl is-system-running)" = degraded ] \
  || fail "systemd did not start: $(systemctl is-system-running)"
snapshot >/tmp/before

debs=$(ls /debs/errand_*.deb /debs/liberrand1_*.deb /debs/liberrand-dev_*.deb)
say "apt-get install $(echo $debs | xargs -n1 basename | tr '\n' ' ')"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $debs \
  >/tmp/install.log 2>&1 || { cat /tmp/install.log; fail "apt-get install"; }

# ---- the server, started by the package ----------------------------------------------------
[ "$(systemctl is-enabled errand.service)" = enabled ] || fail "errand.service is not enabled"
until_ok 30 errand health --timeout-seconds 2 || { systemctl status errand --no-pager || true;
  journalctl -u errand --no-pager | tail -n 30; fail "the server did not answer within 30 s"; }
say "errand.service is enabled and ready ($(errand health)): $(errand --version)"
[ "$(errand --version)" = "errand $EXPECTED_VERSION" ] \
  || fail "errand --version says '$(errand --version)', the release is $EXPECTED_VERSION"
pid=$(systemctl show -p MainPID --value errand.service)
[ "$(stat -c %U "/proc/$pid")" = errand ] || fail "the server runs as $(stat -c %U "/proc/$pid"), not errand"
[ "$(stat -c '%U:%G %a' /var/lib/errand)" = "errand:errand 750" ] \
  || fail "/var/lib/errand is $(stat -c '%U:%G %a' /var/lib/errand)"
[ -s /var/lib/errand/errand.db ] || fail "no database in /var/lib/errand"
[ "$(stat -c '%U:%G %a' /etc/errand/errand.env)" = "root:errand 640" ] \
  || fail "/etc/errand/errand.env is $(stat -c '%U:%G %a' /etc/errand/errand.env)"
say "the server runs as errand, its database is /var/lib/errand/errand.db"

# ---- a worker, from the template unit ------------------------------------------------------
# The quotes group the program's words: the unit reads the value as a shell command line.
cat >/etc/errand/workers/main.env <<'ENV'
ERRAND_WORKER_ARGS="--builtin --exec upper='tr a-z A-Z' --name package-test"
ENV
systemctl start errand-worker@main.service
until_ok 30 sh -c 'errand workers ls | grep -q package-test' \
  || { journalctl -u errand-worker@main --no-pager | tail -n 30; fail "the worker did not register"; }
pid=$(systemctl show -p MainPID --value errand-worker@main.service)
[ "$(stat -c %U "/proc/$pid")" = errand ] || fail "the worker runs as $(stat -c %U "/proc/$pid")"
say "errand-worker@main.service serves errand.noop, errand.sleep and upper, as errand"

out=$(errand submit upper --params '{"text": "hello"}' --wait --json)
has '"TEXT": *"HELLO"' "$out" || fail "the run of upper did not give its result: $out"
say "a run of upper (an --exec task) completed: {\"TEXT\": \"HELLO\"}"

# ---- a program built against liberrand-dev ---------------------------------------------------
cd /tmp
gcc -Wall -Wextra -Werror -o hello /test/hello_liberrand.c $(pkg-config --cflags --libs errand) \
  || fail "building against liberrand-dev with pkg-config"
has 'liberrand\.so\.1 => /.*/liberrand\.so\.1 ' "$(ldd ./hello)" \
  || fail "hello is not linked with liberrand.so.1"
out=$(./hello) || fail "hello failed: $out"
[ "$out" = "liberrand $EXPECTED_VERSION
Completed {\"from\":\"hello_liberrand\"}" ] || fail "hello printed: $out"
say "a program built with pkg-config (liberrand.so.1) submitted errand.noop and read its result"
multiarch=$(gcc -print-multiarch)
# liberrand.a with the shared libraries it needs (errand.pc's Requires.private and
# Libs.private): `pkg-config --static` would ask for static libcurl and all of its own.
private_requires=$(pkg-config --print-requires-private errand | awk '{ print $1 }')
[ -n "$private_requires" ] || fail "errand.pc names no Requires.private"
gcc -Wall -Wextra -Werror -o hello-static /test/hello_liberrand.c $(pkg-config --cflags errand) \
  "/usr/lib/$multiarch/liberrand.a" $(pkg-config --libs $private_requires) -lpthread -lm \
  || fail "building against liberrand.a"
! has liberrand "$(ldd ./hello-static)" || fail "hello-static is linked with liberrand.so"
[ "$(./hello-static | tail -n 1)" = 'Completed {"from":"hello_liberrand"}' ] || fail "hello-static"
say "the same against the static library liberrand.a"

# ---- an upgrade under load: the next revision of the packages over the running ones -------
# The server restarts (the package does it), the worker is left running and rides it out, a
# run in flight completes, the stored runs and a locally changed conffile are kept.
run_id() { grep -o '"id": *"[^"]*"' | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/'; }
ls /debs/next/errand_*.deb >/dev/null 2>&1 || fail "no next revision of the packages in /debs/next"
echo "# changed here: kept by the upgrade" >>/etc/errand/errand.env
before_id=$(errand submit errand.noop --params '{"before": "upgrade"}' --wait --json | run_id)
[ -n "$before_id" ] || fail "submitting before the upgrade"
sleeping_id=$(errand submit errand.sleep --params '{"seconds": 3}' --json | run_id)
until_ok 10 sh -c "errand runs show $sleeping_id | grep -q Running" \
  || fail "the run of errand.sleep did not start"
server_pid=$(systemctl show -p MainPID --value errand.service)
worker_pid=$(systemctl show -p MainPID --value errand-worker@main.service)
next=$(ls /debs/next/errand_*.deb /debs/next/liberrand1_*.deb /debs/next/liberrand-dev_*.deb)
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $next \
  >/tmp/upgrade.log 2>&1 || { cat /tmp/upgrade.log; fail "apt-get install of the next revision"; }
new_version=$(dpkg-query -W -f='${Version}' errand)
[ "$new_version" = "$(dpkg-deb -f /debs/next/errand_*.deb Version)" ] \
  || fail "errand is at $new_version after the upgrade"
[ "$(systemctl is-active errand.service)" = active ] || fail "errand.service is not active after the upgrade"
[ "$(systemctl show -p MainPID --value errand.service)" != "$server_pid" ] \
  || fail "the upgrade did not restart the server"
[ "$(systemctl show -p MainPID --value errand-worker@main.service)" = "$worker_pid" ] \
  || fail "the upgrade restarted the worker (it may be in the middle of long runs)"
grep -q '^# changed here: kept by the upgrade$' /etc/errand/errand.env \
  || fail "the upgrade lost the local change to /etc/errand/errand.env"
out=$(errand runs wait "$sleeping_id" --timeout 30 --json) || fail "waiting for the run in flight: $out"
has '"type": *"COMPLETED"' "$out" || fail "the run in flight did not complete: $out"
has Completed "$(errand runs show "$before_id")" || fail "the run from before the upgrade is gone"
say "upgraded to $new_version under load: the server restarted, the worker kept running, the"
say "run in flight completed, the stored runs and the changed conffile were kept"

# ---- purge, with the server and the worker running -------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q errand liberrand-dev liberrand1 \
  >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "apt-get purge"; }
systemctl daemon-reload
# (By name: /proc/PID/exe of another user's process is not readable without CAP_SYS_PTRACE.)
for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" != errand ] \
    || fail "an errand process is still running after the purge: $(tr '\0' ' ' <"$p/cmdline")"
done
! systemctl cat errand.service >/dev/null 2>&1 || fail "errand.service is still known to systemd"
# Stopped by SIGTERM, each as it should: what they logged last.
has 'msg="worker stopped" worker=package-test' "$(journalctl -u errand-worker@main --no-pager)" \
  || { journalctl -u errand-worker@main --no-pager | tail -n 5
       fail "the worker was not stopped by the purge (no 'worker stopped' in its journal)"; }
has 'msg="server stopped" status=0' "$(journalctl -u errand --no-pager)" \
  || fail "the server did not stop cleanly (no 'server stopped status=0' in its journal)"
say "the purge stopped the server and the worker (SIGTERM, clean exits)"
snapshot >/tmp/after
left=$(comm -13 /tmp/before /tmp/after | grep -v -e '^/var/lib/errand$' -e '^/var/lib/errand/' || true)
gone=$(comm -23 /tmp/before /tmp/after || true)
[ -z "$left" ] || fail "the purge left these behind: $left"
[ -z "$gone" ] || fail "these were there before the install and are gone: $gone"
[ -s /var/lib/errand/errand.db ] || fail "the purge removed the data folder"
getent passwd errand >/dev/null || fail "the system user errand is gone (it owns the data folder)"
say "purged: nothing is left but the data folder /var/lib/errand (and its owner, the user errand)"
say "passed in $((SECONDS - t0)) s"
