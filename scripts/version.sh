#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/version.sh — errand's release version, read from its one place: the first release
# heading of CHANGELOG.md (`## [X.Y.Z] — YYYY-MM-DD`). CMakeLists.txt reads the same heading
# (for `errand --version`, errand_version() and the pkg-config file); this script gives it to
# what is not built by CMake: the Debian changelog (scripts/deb-changelog.sh), the images'
# labels (tests/container/run.sh, docs/deploy.md) and the fuzz harnesses.
# usage: scripts/version.sh [--date]    prints X.Y.Z, or with --date the release's date
set -eu
changelog=$(cd "$(dirname "$0")/.." && pwd)/CHANGELOG.md
line=$(grep -m 1 -E '^## \[[0-9]+\.[0-9]+\.[0-9]+\] — [0-9]{4}-[0-9]{2}-[0-9]{2}$' "$changelog") || {
  echo "version.sh: no release heading '## [X.Y.Z] — YYYY-MM-DD' in $changelog" >&2
  exit 1
}
case "${1:-}" in
  --date) echo "$line" | sed -E 's/^.* — //' ;;
  "") echo "$line" | sed -E 's/^## \[([0-9.]+)\].*/\1/' ;;
  *) echo "usage: scripts/version.sh [--date]" >&2; exit 2 ;;
esac
