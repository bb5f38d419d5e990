#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages errand needs to build, run and test, when they are missing,
# then checks the versions of the tools where a version matters.
# usage: scripts/install-deps.sh [build|deb|test|all]   (default: build)
# Runs apt-get only when something is missing, so it is cheap to call before every build.
# Exits non-zero, saying what it found and what is needed, when a tool is too old.
# The minimum versions come from where they are needed: CMakeLists.txt (cmake) and
# tests/browser/package.json (Node.js, for playwright-core).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-build}
# libcmocka-dev is in the build set because the default build also builds the unit tests;
# binutils (which gcc pulls in anyway) for ld, and for nm and objdump in tests/abi/.
build_pkgs="gcc binutils make cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libicu-dev
            libjansson-dev libsqlite3-dev libssl-dev libpq-dev libcmocka-dev ca-certificates"
# postgresql (the server, 15 on Debian 12) for `make e2e-postgres` (tests/e2e/pg_cluster.py
# runs its own throwaway cluster); libpq-dev, the client, is in the build set.
# python3-fastapi and python3-uvicorn for the FastAPI example (`make example-fastapi`); curl
# (the program) for tests/e2e/test_python_s3.py, which checks its SigV4 signer against libcurl's.
test_pkgs="python3 python3-pytest python3-pytest-xdist python3-requests python3-jsonschema python3-fastapi python3-uvicorn procps curl postgresql prometheus chromium firefox-esr clang libclang-rt-14-dev"
# The Debian packaging tools for `make deb` (scripts/build-deb.sh, which `make package-test`
# runs first); dpkg-buildpackage refuses to build without build-essential.
deb_pkgs="build-essential dpkg-dev debhelper fakeroot lintian help2man"
# Packages that take minutes to download and unpack on a new machine.
large_pkgs="chromium firefox-esr clang libclang-rt-14-dev"
case "$what" in
  build) pkgs=$build_pkgs ;;
  deb) pkgs="$build_pkgs $deb_pkgs" ;;
  test) pkgs="$build_pkgs $test_pkgs" ;;
  all) pkgs="$build_pkgs $deb_pkgs $test_pkgs" ;;
  *) echo "install-deps: unknown set '$what' (use build, deb, test or all)" >&2; exit 2 ;;
esac

say() { echo "install-deps: $*" >&2; }

# ---- packages -------------------------------------------------------------------------------
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js may come from elsewhere than Debian (its npm then ships inside the nodejs package,
# and Debian's npm would conflict): ask for the commands, not the packages.
if [ "$what" = test ] || [ "$what" = all ]; then
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

# apt_install PACKAGE...: apt-get install, showing progress in about ten lines (apt-get's own
# output is a screenful per package, or nothing at all with -qq).
apt_install() {
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" 2>&1 |
    awk '
      / newly installed/ { total = $3 + 0; every = int((total + 9) / 10); if (every < 10) every = 10
                           print "install-deps:   " $0; fflush() }
      /^Need to get/ { print "install-deps:   " $0; fflush() }
      /^Get:/ { got++; if (total && got % every == 0) {
                  printf "install-deps:   downloaded %d of %d packages\n", got, total; fflush() } }
      /^Setting up / { done++; if (total && (done % every == 0 || done == total)) {
                         printf "install-deps:   set up %d of %d packages\n", done, total; fflush() } }
      /^(E|W): / { print; fflush() }' >&2
  return "${PIPESTATUS[0]}"
}

if [ -n "$missing" ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "need root to install:$missing"; exit 1; }
    sudo=sudo
  fi
  say "installing from Debian:$missing"
  for p in $large_pkgs; do
    case " $missing " in
      *" $p "*) say "($p and its dependencies are a few hundred MB: this takes a few minutes)"; break ;;
    esac
  done
  $sudo apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  apt_install $missing || { say "apt-get install failed (see above)"; exit 1; }
  say "installed:$missing"
fi

# ---- versions -------------------------------------------------------------------------------
# version_ge HAVE NEED: true when dotted version HAVE >= NEED.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

bad=0
# check NAME HAVE NEED HINT: reports NAME's version, and fails when it is older than NEED.
check() {
  if [ -z "$2" ]; then
    say "cannot tell the version of $1 (needs >= $3): $4"
    bad=1
  elif ! version_ge "$2" "$3"; then
    say "$1 $2 is too old: errand needs >= $3; $4"
    bad=1
  else
    found="$found $1 $2 (>= $3),"
  fi
}

found=""
# The Dockerfile runs this script before the rest of the tree is copied in: the files that
# hold a minimum may be missing, and the defaults below stand in.
cmake_min=$(sed -n 's/^cmake_minimum_required(VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt" 2>/dev/null || true)
check cmake "$(cmake --version 2>/dev/null | sed -n '1s/^cmake version \([0-9.]*\).*/\1/p')" \
  "${cmake_min:-3.18}" "install Debian 12's cmake (apt-get install cmake)"
if [ "$what" = test ] || [ "$what" = all ]; then
  # The tests run /usr/bin/python3 (Debian's), whatever else is first on PATH.
  check python3 "$(/usr/bin/python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" \
    3.11 "the tests run /usr/bin/python3: install Debian 12's python3"
  # The browser tests' playwright-core says which Node.js it runs on.
  node_min=$(sed -n 's/.*"node": *">= *\([0-9.]*\)".*/\1/p' "$root/tests/browser/package.json" 2>/dev/null | head -n 1 || true)
  check node "$(node --version 2>/dev/null | sed 's/^v//')" "${node_min:-18}" \
    "the browser tests (tests/browser/package.json) need it: install Debian 12's nodejs and npm, or a newer Node.js"
  check npm "$(npm --version 2>/dev/null)" 7 "install Debian 12's npm, or the npm of a newer Node.js"
fi
[ "$bad" = 0 ] || exit 1
# Said once, after an install; a check that passes is silent on later calls.
[ -z "$missing" ] || say "found${found%,}"
