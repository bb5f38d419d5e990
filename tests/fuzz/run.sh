#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses of tests/fuzz and runs each for a bounded time on a copy of
# its seed corpus (tests/fuzz/corpus/<name>/ is only read, never written). Exits non-zero
# when a harness finds a crash, leak, undefined behaviour, timeout or out-of-memory, and
# prints the saved input and the command that replays it.
#
# usage: tests/fuzz/run.sh [harness...]       (default: every tests/fuzz/fuzz_*.c)
# env:   FUZZ_SECONDS  seconds per harness (default 20)
#        FUZZ_BUILD    build and work directory (default build-fuzz/ under the repo)
#        FUZZ_MAX_LEN  longest input tried, bytes (default 65536)
#        CC            a clang with libFuzzer (default clang)
# Needs clang and its libFuzzer runtime (Debian 12: clang, libclang-rt-14-dev); as root they
# are installed with apt-get when missing, as scripts/install-deps.sh does for the build.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
fuzz_dir=tests/fuzz
seconds=${FUZZ_SECONDS:-20}
max_len=${FUZZ_MAX_LEN:-65536}
build=${FUZZ_BUILD:-$root/build-fuzz}
mkdir -p "$build"
build=$(cd "$build" && pwd)
CC=${CC:-clang}

# Library sources the harnesses exercise. src/core has no libcurl or libmicrohttpd use, so
# all of it links against jansson and libcrypto alone; a submission's webhook_url is checked
# with libcurl's URL parser (src/server/webhook_url.c).
server_sources="src/server/field.c src/server/submission.c src/server/worker_request.c src/server/webhook_url.c src/store/run_spec.c src/store/run_row.c src/store/run_deps.c src/store/run_transition.c"
sanitize="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
# ERRAND_VERSION as CMakeLists.txt defines it, from CHANGELOG.md (src/core/errand_public.c
# requires it).
version=$(scripts/version.sh)
cflags="-std=c11 -D_GNU_SOURCE -DERRAND_VERSION=\"${version:-0}\" -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror -Wshadow
        -Wno-unused-parameter -Iinclude -Isrc -I$fuzz_dir"

log() { echo "fuzz: $*" >&2; }

# --- toolchain -----------------------------------------------------------------------------

can_build_fuzzer() {
  command -v "$CC" >/dev/null 2>&1 || return 1
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
    >"$build/probe.c"
  "$CC" $sanitize "$build/probe.c" -o "$build/probe" >/dev/null 2>&1
}

if ! can_build_fuzzer; then
  [ "$(id -u)" = 0 ] || { log "need $CC with libFuzzer (apt-get install clang libclang-rt-14-dev)"; exit 1; }
  log "installing clang and libclang-rt-14-dev"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-14-dev >/dev/null
  can_build_fuzzer || { log "$CC still cannot link -fsanitize=fuzzer"; exit 1; }
fi
pkg-config --exists jansson libcrypto libcurl || scripts/install-deps.sh build
libs="$(pkg-config --libs jansson libcrypto libcurl) -lpthread -lm"
incs=$(pkg-config --cflags jansson libcrypto libcurl)

# --- build ---------------------------------------------------------------------------------

if [ $# -gt 0 ]; then
  harnesses="$*"
else
  harnesses=$(cd "$fuzz_dir" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi

objdir="$build/obj"
mkdir -p "$objdir"
objs=""
# Every run rebuilds from scratch (a few seconds): no stale objects after a source change.
for src in src/core/*.c $server_sources; do
  obj="$objdir/$(echo "${src%.c}" | tr / _).o"
  $CC $cflags $incs $sanitize -c "$src" -o "$obj"
  objs="$objs $obj"
done
for h in $harnesses; do
  [ -f "$fuzz_dir/fuzz_$h.c" ] || { log "no harness $fuzz_dir/fuzz_$h.c"; exit 2; }
  $CC $cflags $incs $sanitize "$fuzz_dir/fuzz_$h.c" $objs $libs -o "$build/fuzz_$h"
done
log "built $(echo $harnesses | wc -w) harnesses in $build"

# --- run -----------------------------------------------------------------------------------

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=0
summary=""
for h in $harnesses; do
  work="$build/run/$h"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  [ -d "$fuzz_dir/corpus/$h" ] && cp -R "$fuzz_dir/corpus/$h/." "$work/corpus/"
  dict=""
  [ -f "$fuzz_dir/$h.dict" ] && dict="-dict=$fuzz_dir/$h.dict"
  log "running $h for ${seconds}s ($(ls "$work/corpus" | wc -l) seeds)"
  start=$(date +%s)
  rc=0
  "$build/fuzz_$h" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" $dict "$work/corpus" \
    >"$work/log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  # A crash while loading the seeds leaves no coverage line: the stats are best effort.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1) || true
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1) || true
  cov=$( (grep -o 'cov: [0-9]*' "$work/log" || true) | tail -1 | cut -d' ' -f2)
  line="$h: ${took}s, ${execs:-?} execs, ${rate:-?} exec/s, coverage ${cov:-?} edges, corpus $(ls "$work/corpus" | wc -l)"
  if [ "$rc" != 0 ] || [ -n "$(ls "$work/artifacts")" ]; then
    failed=1
    line="$line — FAILED (exit $rc)"
    log "$h FAILED (exit $rc); log: $work/log"
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz contract broken' \
      "$work/log" | head -5 >&2 || true
    tail -n 60 "$work/log" >&2
    for a in "$work/artifacts"/*; do
      [ -e "$a" ] || continue
      log "input: $a"
      log "replay: $build/fuzz_$h $a"
    done
  fi
  summary="$summary$line"$'\n'
done
printf '%s' "$summary"
exit $failed
