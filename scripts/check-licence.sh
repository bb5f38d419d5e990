#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-licence.sh — every source file of the project carries its licence, as an SPDX line in
# its first three lines (LICENSE holds the text). Lists the files without one and exits 1.
# usage: scripts/check-licence.sh [REPO]   (default: this script's repository)
# Source files: C, Python, JavaScript, CSS, HTML, shell, CMake, the Makefile, the Dockerfile,
# the compose files, the linker script, the pkg-config template, and debian/'s rules,
# maintainer scripts, units and settings file; data (JSON, fuzz corpora,
# images) and tool settings are not. Reads `git ls-files` when REPO is a git tree, else walks it.
set -eu
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$repo"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  list() { git ls-files; }
else
  list() { find . -type f -not -path './build*' -not -path '*/node_modules/*' | sed 's|^\./||'; }
fi
missing=0
checked=0
while IFS= read -r f; do
  case "$f" in
    *.c|*.h|*.py|*.js|*.mjs|*.css|*.html|*.sh|*.cmake|CMakeLists.txt|*/CMakeLists.txt|Makefile|\
    Dockerfile|compose.yaml|compose.*.yaml|*.map|*.pc.in|.ci/run|\
    debian/rules|debian/*.postinst|debian/*.prerm|debian/*.postrm|debian/*.service|debian/*.env) ;;
    *) continue ;;
  esac
  case "$f" in */node_modules/*) continue ;; esac
  checked=$((checked + 1))
  if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
    echo "check-licence: $f has no 'SPDX-License-Identifier: MIT' line in its first three lines"
    missing=$((missing + 1))
  fi
done < <(list)
[ "$checked" -gt 0 ] || { echo "check-licence: no source file found in $repo"; exit 1; }
[ "$missing" = 0 ] || { echo "check-licence: $missing of $checked source files without a licence line"; exit 1; }
echo "check-licence: $checked source files, each with its SPDX line"
