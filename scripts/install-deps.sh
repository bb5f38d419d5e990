#!/usr/bin/env bash
# Installs the Debian 12 packages errand needs to build, run and test, when they are missing.
# usage: scripts/install-deps.sh [build|test|all]   (default: build)
# Runs apt-get only when something is missing, so it is cheap to call before every build.
set -eu
what=${1:-build}
# libcmocka-dev is in the build set because the default build also builds the unit tests.
build_pkgs="gcc make cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
            libsqlite3-dev libssl-dev libpq-dev libcmocka-dev ca-certificates"
test_pkgs="python3 python3-pytest python3-requests procps chromium clang libclang-rt-14-dev"
case "$what" in
  build) pkgs=$build_pkgs ;;
  test|all) pkgs="$build_pkgs $test_pkgs" ;;
  *) echo "install-deps: unknown set '$what' (use build, test or all)" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js may come from elsewhere than Debian (its npm then ships inside the nodejs package,
# and Debian's npm would conflict): ask for the commands, not the packages.
if [ "$what" != build ]; then
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
[ -z "$missing" ] && exit 0
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root to install:$missing" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing$missing" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
