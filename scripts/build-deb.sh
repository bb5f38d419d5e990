#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/build-deb.sh — `make deb`: builds errand's Debian packages (errand, liberrand1,
# liberrand-dev) with dpkg-buildpackage from a copy of the source tree, so that the checkout
# stays clean, then checks them with lintian (any error or warning fails the build).
# usage: scripts/build-deb.sh [OUT_DIR]   (default build-deb/; the .deb files land there)
# Needs the Debian build tools and errand's build dependencies: `scripts/install-deps.sh deb`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build-deb}
version=$("$root/scripts/version.sh")
say() { echo "build-deb: $*" >&2; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/errand-$version
rm -rf "$src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir -p "$src"

# The source: what git tracks (and new files not ignored) in a checkout, else the tree less
# its build folders.
say "copying the source of errand $version to $src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -C "$src" -xf -
else
  (cd "$root" && tar --exclude='./build*' --exclude='*/node_modules' -cf - .) | tar -C "$src" -xf -
fi
"$src/scripts/deb-changelog.sh" "$src"

say "dpkg-buildpackage (binary packages, unsigned)"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
   dpkg-buildpackage -b -us -uc --no-pre-clean >"$out/dpkg-buildpackage.log" 2>&1) || {
  tail -n 60 "$out/dpkg-buildpackage.log" >&2
  say "dpkg-buildpackage failed (whole log: $out/dpkg-buildpackage.log)"
  exit 1
}

changes=$(ls "$out"/errand_*.changes)
say "lintian $(basename "$changes")"
lintian --fail-on error,warning --info --display-info "$changes" >&2 || {
  say "lintian found errors or warnings (above)"
  exit 1
}
rm -rf "$src"
say "built:"
ls -1 "$out"/*.deb >&2
