#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Two builds of errand side by side, in alternating rounds: `errand bench` against a fresh
server of each build in turn (a new ERRAND_HOME each time, SQLite, sync=full), the bench run
by the same build as the server. For each round and build it prints the bench's figures and
what the server cost: its CPU time per run (user + system, from /proc) and its peak RSS.

The machine is shared and noisy: figures move by tens of percent from one minute to the
next, so a change is judged by comparing the two builds within each round, never against a
figure taken at another time.

usage: bench/ab.py BUILD_A BUILD_B [--rounds R] [--port P] [-- BENCH ARGS...]

  BUILD_A, BUILD_B  build directories (bin/errand inside), e.g. a worktree's build of main
                    and the build under test
  --rounds R        rounds (default 3); each runs A, then B
  BENCH ARGS        passed to `errand bench` (default: --runs 20000); --json is added

Examples:
  bench/ab.py /tmp/main/build build                                   # batched end to end
  bench/ab.py /tmp/main/build build -- --runs 20000 --batch 1 --latency-runs 0
  bench/ab.py /tmp/main/build build -- --runs 1 --batch 1 --latency-runs 2000   # light load
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FIELDS = ("e2e_per_s", "submit_per_s", "p50_ms", "p99_ms")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time of process pid so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(url, server, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"no server answered at {url} within {timeout_s} s")


def one_round(build, bench_args, port):
    binary = os.path.join(build, "bin", "errand")
    home = tempfile.mkdtemp(prefix="errand-ab-")
    env = {**os.environ, "ERRAND_HOME": home, "ERRAND_SERVER_API_PORT": str(port)}
    url = f"http://127.0.0.1:{port}/api"
    with open(os.path.join(home, "server.log"), "w") as log:
        server = subprocess.Popen([binary, "server", "start"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_ready(url, server)
        before = cpu_seconds(server.pid)
        bench = subprocess.run([binary, "bench", "--api-url", url, "--json", *bench_args],
                               env=env, capture_output=True, text=True)
        after = cpu_seconds(server.pid)
        rss = peak_rss_mib(server.pid)
        if bench.returncode != 0:
            raise SystemExit(f"{binary} bench failed:\n{bench.stderr[-2000:]}")
        result = json.loads(bench.stdout)
        runs = result.get("runs", 0) + result.get("latency_runs", 0)
        result["server_cpu_us_per_run"] = (after - before) * 1e6 / max(runs, 1)
        result["server_peak_rss_mib"] = rss
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def cell(value, digits):
    return "-" if value is None else f"{value:,.{digits}f}"


def main():
    argv = sys.argv[1:]
    bench_args = ["--runs", "20000"]
    if "--" in argv:
        at = argv.index("--")
        argv, bench_args = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build_a")
    p.add_argument("build_b")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    for build in (a.build_a, a.build_b):
        if not os.access(os.path.join(build, "bin", "errand"), os.X_OK):
            p.error(f"{build}/bin/errand is not an executable")
    port = a.port or free_port()
    print(f"errand bench {' '.join(bench_args)}: {a.rounds} rounds, A = {a.build_a}, "
          f"B = {a.build_b}")
    print("| round | build | end to end, runs/s | submit, runs/s | p50 ms | p99 ms "
          "| server CPU µs/run | server peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in range(1, a.rounds + 1):
        for name, build in (("A", a.build_a), ("B", a.build_b)):
            f = one_round(build, bench_args, port)
            print(f"| {r} | {name} | {cell(f.get('e2e_per_s'), 0)} "
                  f"| {cell(f.get('submit_per_s'), 0)} | {cell(f.get('p50_ms'), 2)} "
                  f"| {cell(f.get('p99_ms'), 2)} | {cell(f['server_cpu_us_per_run'], 0)} "
                  f"| {cell(f['server_peak_rss_mib'], 1)} |", flush=True)


if __name__ == "__main__":
    main()
