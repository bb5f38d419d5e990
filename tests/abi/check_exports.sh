#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check_exports.sh — liberrand.so exports its public API and nothing else: the dynamic symbol
# table holds exactly the functions that include/errand/errand.h declares, and the library
# has a soname. Internal modules (json_*, log_*, http_*, the test hooks mem_fail_after and
# disk_fail_after) must stay inside it, where no program can come to depend on them or
# collide with them (json_compact is in jansson's namespace).
#
# usage: tests/abi/check_exports.sh LIBERRAND_SO ERRAND_H      (CTest runs it: liberrand_exports)
# env:   NM, OBJDUMP  binutils' nm and objdump (default: from PATH)
#        CC           a C compiler, to read errand.h's declarations without its comments
# Exits non-zero and lists the offenders: symbols exported that are not in errand.h, and
# functions errand.h declares that liberrand.so does not export.
set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 LIBERRAND_SO ERRAND_H" >&2; exit 2; }
lib=$1 header=$2
NM=${NM:-nm} OBJDUMP=${OBJDUMP:-objdump} CC=${CC:-cc}
say() { echo "check_exports: $*" >&2; }
for tool in "$NM" "$OBJDUMP" "$CC"; do
  command -v "$tool" >/dev/null 2>&1 ||
    { say "$tool not found (binutils and gcc: scripts/install-deps.sh build)"; exit 2; }
done
[ -r "$lib" ] || { say "$lib: no such library (build errand_shared first)"; exit 2; }
[ -r "$header" ] || { say "$header: no such header"; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every defined dynamic symbol, as "TYPE NAME", the version suffix (@@ERRAND_0.1) dropped.
# The version script's nodes show up as absolute symbols of their own name (A ERRAND_0.1):
# they are the versions, not exports, and are left out.
"$NM" -D --defined-only "$lib" |
  awk 'NF >= 3 { sub(/@.*/, "", $3); if (!($2 == "A" && $3 ~ /^ERRAND_[0-9.]+$/)) print $2, $3 }' |
  sort -k2 -u >"$work/exports"
awk '{ print $2 }' "$work/exports" >"$work/export_names"

# The functions errand.h declares: names followed by "(" once the preprocessor has dropped
# the comments (which mention errand_free() and others in passing). A function-pointer typedef,
# (*errand_task_fn)(...), is followed by ")" and does not count.
"$CC" -E -P -x c "$header" |
  { grep -oE '\berrand_[A-Za-z0-9_]+[[:space:]]*\(' || true; } | sed -E 's/[[:space:]]*\($//' |
  sort -u >"$work/declared"
[ -s "$work/declared" ] || { say "found no errand_* function declarations in $header"; exit 2; }

status=0
# Exported but not declared: internal code that escaped (or a public function left out of
# the header).
awk 'NR == FNR { declared[$1] = 1; next } !($2 in declared)' "$work/declared" "$work/exports" \
  >"$work/extra"
if [ -s "$work/extra" ]; then
  say "liberrand.so exports symbols that errand.h does not declare ($(wc -l <"$work/extra")," \
    "nm type and name):"
  sed 's/^/  /' "$work/extra" >&2
  say "make internal functions static, or keep them out of the dynamic symbol table: the" \
    "library is compiled with hidden visibility (CMakeLists.txt, errand_objs) and linked with" \
    "src/liberrand.map, which exports only errand_*; a public function belongs in errand.h"
  status=1
fi

# Declared but not exported: a program linked against liberrand.so could not call it.
comm -23 "$work/declared" "$work/export_names" >"$work/missing"
if [ -s "$work/missing" ]; then
  say "errand.h declares functions that liberrand.so does not export ($(wc -l <"$work/missing")):"
  sed 's/^/  /' "$work/missing" >&2
  say "mark each declaration ERRAND_API in errand.h, and define it in liberrand's sources" \
    "(src/core, src/client, src/worker) in a file that includes errand/errand.h"
  status=1
fi

soname=$("$OBJDUMP" -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ -z "$soname" ]; then
  say "$lib has no SONAME: set SOVERSION on errand_shared (CMakeLists.txt)"
  status=1
fi

[ "$status" = 0 ] &&
  echo "check_exports: $lib exports $(wc -l <"$work/exports") symbols, every one declared in" \
    "errand.h and every errand.h function exported; soname $soname"
exit "$status"
