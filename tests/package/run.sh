#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/package/run.sh — the Debian packages' test: installs the packages that `make deb`
# built in a new Debian 12 container running systemd, starts the server and a worker through
# their units, submits runs and reads their results (with the CLI, and with a program built
# against liberrand-dev through pkg-config), upgrades them under load to a later revision,
# then purges the packages and checks that nothing
# is left but the data folder (tests/package/in-container.sh holds those steps).
#
# usage: tests/package/run.sh [DEB_DIR]   (default build-deb/; or `make package-test`, which
#        builds the packages first). DEB_DIR/next holds a later revision of the same packages,
#        installed over the running ones as an upgrade. Root (rootful podman), as
#        tests/container/run.sh.
# The container's image is debian:bookworm-slim with systemd, gcc and pkg-config, and the
# packages' dependencies from Debian (so that the file system can be compared before and
# after); it is built once and kept (rebuilt when the dependencies change). The container
# has no network but its loopback: the install and the test need nothing from outside.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
debs=$(cd "${1:-$root/build-deb}" && pwd)
image_timeout_s=900 # building the image: apt-get of systemd, gcc and the dependencies
test_timeout_s=300  # the steps in the container
name=errand-pkgtest-$$
say() { printf 'package-test: %s\n' "$*" >&2; }
fail() { printf 'package-test: FAIL: %s\n' "$*" >&2; exit 1; }

for d in "$debs" "$debs/next"; do
  ls "$d"/errand_*.deb "$d"/liberrand1_*.deb "$d"/liberrand-dev_*.deb >/dev/null 2>&1 \
    || fail "no errand, liberrand1 and liberrand-dev packages in $d (make package-test builds them)"
done

setup=$root/../shared/tools/podman-setup
if [ -x "$setup" ]; then
  say "preparing podman ($setup)"
  "$setup" >&2
fi
command -v podman >/dev/null 2>&1 \
  || fail "podman is not installed (apt-get install podman, or run ../shared/tools/podman-setup)"

# The packages' dependencies from Debian, without the packages themselves.
deps=$(for d in "$debs"/errand_*.deb "$debs"/liberrand-dev_*.deb; do dpkg-deb -f "$d" Depends; done |
         tr ',' '\n' | sed 's/^ *//' | grep -v '^liberrand' | sort -u | paste -sd, -)
image=localhost/errand-package-test:$(printf '%s' "$deps" | sha256sum | cut -c1-12)
if ! podman image exists "$image"; then
  say "building $image (systemd, gcc, pkg-config and: $deps)"
  timeout "$image_timeout_s" podman build --network host --build-arg "DEPS=$deps" -t "$image" \
    -f - "$root/tests/package" >&2 <<'CONTAINERFILE' || fail "building the test image"
FROM debian:bookworm-slim
ARG DEPS
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      systemd systemd-sysv dbus gcc libc6-dev pkg-config \
 && DEBIAN_FRONTEND=noninteractive apt-get satisfy -y -q --no-install-recommends "$DEPS" \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
CMD ["/lib/systemd/systemd"]
CONTAINERFILE
fi

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && podman container exists "$name" 2>/dev/null; then
    say "the container's journal (last lines):"
    podman exec "$name" journalctl --no-pager -n 40 >&2 2>/dev/null || true
  fi
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT

say "starting a container with systemd ($image)"
podman run -d --name "$name" --systemd=always --network none \
  -v "$debs:/debs:ro" -v "$root/tests/package:/test:ro" "$image" >/dev/null \
  || fail "podman run"
timeout "$test_timeout_s" podman exec -e EXPECTED_VERSION="$("$root/scripts/version.sh")" \
  "$name" /test/in-container.sh || fail "in the container (above)"
