#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/deb-changelog.sh — writes debian/changelog from CHANGELOG.md, the one place that
# holds errand's releases: an entry X.Y.Z-R per release heading (`## [X.Y.Z] — YYYY-MM-DD`),
# newest first, pointing at the upstream changelog that the package installs. R, the Debian
# revision, is DEB_REVISION (default 1): raise it for a packaging change between releases.
# debian/changelog is made, not kept (it is in .gitignore): `make deb` runs this first.
# usage: scripts/deb-changelog.sh [SOURCE_DIR]   (default: this script's repository)
set -eu
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
revision=${DEB_REVISION:-1}
maintainer=$(sed -n 's/^Maintainer: //p' "$src/debian/control")
[ -n "$maintainer" ] || { echo "deb-changelog: no Maintainer in $src/debian/control" >&2; exit 1; }
releases=$(sed -n -E 's/^## \[([0-9]+\.[0-9]+\.[0-9]+)\] — ([0-9]{4}-[0-9]{2}-[0-9]{2})$/\1 \2/p' \
  "$src/CHANGELOG.md")
[ -n "$releases" ] || { echo "deb-changelog: no release heading in $src/CHANGELOG.md" >&2; exit 1; }
first=1
n=0
echo "$releases" | while read -r version date; do
  # The release's date at noon UTC less a minute per newer release, in the form
  # debian/changelog needs (RFC 5322): two releases of one day still come in order.
  when=$(LC_ALL=C date -u -d "$date 12:00:00 UTC $n minutes ago" '+%a, %d %b %Y %H:%M:%S +0000')
  n=$((n + 1))
  if [ "$first" = 1 ]; then rev=$revision; first=0; else rev=1; echo; fi
  printf 'errand (%s-%s) bookworm; urgency=medium\n\n' "$version" "$rev"
  printf '  * Release %s: its changes and upgrade notes are in\n' "$version"
  printf '    /usr/share/doc/errand/changelog.gz (CHANGELOG.md).\n\n'
  printf ' -- %s  %s\n' "$maintainer" "$when"
done > "$src/debian/changelog.new"
mv "$src/debian/changelog.new" "$src/debian/changelog"
