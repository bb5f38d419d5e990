#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""errand on PostgreSQL beside errand on SQLite, on this machine, in one run: `errand bench`
(submit, end to end, light-load latency) against

  sqlite        one server on its SQLite file (ERRAND_DATABASE_SYNC=full, the default);
  pg, 1 server  one server on a PostgreSQL database;
  pg, 2 servers two servers on the same database, the bench's clients and its worker given
                both URLs (each connection starts at one drawn at random).

in alternating rounds (the machine is shared and noisy: compare within a round). Besides the
rates it reads the CPU time the errand servers and the PostgreSQL processes spent (from
/proc), per run: whether a second server adds work per run, and where the time goes.

PostgreSQL: a throwaway cluster from Debian's package (tests/e2e/pg_cluster.py: initdb into a
temporary folder, its own port, as the user errand-pg when run as root), with its defaults —
synchronous_commit = on and fsync = on, so an acknowledged run is on disk, as with SQLite's
full sync — unless --pg-setting NAME=VALUE says otherwise (printed with the table).

usage: bench/postgres.py [--build DIR] [--runs N] [--rounds R] [--batch B] [--prefetch P]
                         [--pg-setting NAME=VALUE]...
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from pg_cluster import PgCluster  # noqa: E402  (the tests' throwaway cluster)

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_cpu(uid):
    """CPU seconds of every process of the cluster's owner (the postgres processes), with
    what their finished children spent."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if d.stat().st_uid != uid:
                continue
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / TICKS
    return total


def start_server(errand, home, env_extra, log):
    port = free_port()
    env = dict(os.environ, ERRAND_HOME=str(home), ERRAND_LOGGING_LEVEL="warning", **env_extra)
    proc = subprocess.Popen([errand, "server", "start", "--port", str(port)], env=env,
                            stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the server on {home} did not start (see {log.name})")


def one(errand, name, servers_env, n_servers, args, work, pg_uid):
    """Starts n_servers servers with servers_env, runs the bench through all of them, stops
    them; returns the row of the table."""
    home = Path(tempfile.mkdtemp(dir=work, prefix=name.replace(" ", "-").replace(",", "") + "-"))
    log = open(home / "servers.log", "w")
    procs, urls = [], []
    try:
        for i in range(n_servers):
            p, url = start_server(errand, home / f"server{i}", servers_env, log)
            procs.append(p)
            urls.append(url)
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        pg0 = postgres_cpu(pg_uid) if pg_uid is not None else 0.0
        out = subprocess.run([errand, "bench", "--api-url", ",".join(urls), "--runs",
                              str(args.runs), "--batch", str(args.batch), "--prefetch",
                              str(args.prefetch), "--json"],
                             capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"{name}: errand bench failed: {out.stderr[-2000:]}")
        cpu1 = sum(cpu_seconds(p.pid) for p in procs)
        pg1 = postgres_cpu(pg_uid) if pg_uid is not None else 0.0
        b = json.loads(out.stdout)
        runs = args.runs + args.latency_runs
        return {"store": name, "submit": b["submit_per_s"], "e2e": b["e2e_per_s"],
                "p50": b["p50_ms"], "p99": b["p99_ms"],
                "server_us": (cpu1 - cpu0) / runs * 1e6,
                "pg_us": (pg1 - pg0) / runs * 1e6 if pg_uid is not None else None}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", str(REPO / "build")))
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--prefetch", type=int, default=0,
                    help="runs the bench's worker claims beyond its 128 threads (errand bench "
                         "--prefetch)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    errand = str(Path(args.build) / "bin" / "errand")
    if not os.access(errand, os.X_OK):
        sys.exit(f"{errand} is not built: make BUILD={args.build}")
    work = Path(tempfile.mkdtemp(prefix="errand-bench-pg-"))
    cluster = PgCluster().start()
    try:
        for s in args.pg_setting:
            key, _, value = s.partition("=")
            cluster.psql(f"ALTER SYSTEM SET {key} = '{value}'")
        if args.pg_setting:
            cluster.psql("SELECT pg_reload_conf()")
        shown = {k: cluster.psql(f"SHOW {k}").strip() for k in
                 ("server_version", "synchronous_commit", "fsync", "wal_sync_method",
                  "shared_buffers", "max_connections")}
        pg_uid = cluster.as_user.pw_uid if cluster.as_user is not None else os.getuid()
        rows = []
        for r in range(args.rounds):
            for name, n in (("sqlite", 1), ("pg, 1 server", 1), ("pg, 2 servers", 2)):
                env = {}
                if name != "sqlite":
                    schema = cluster.ensure_schema(f"bench_r{r}_{n}")
                    env["ERRAND_DATABASE_URL"] = cluster.url(schema)
                row = one(errand, name, env, n, args, work, None if name == "sqlite" else pg_uid)
                row["round"] = r + 1
                rows.append(row)
                print(f"round {r + 1} {name}: {row['e2e']:.0f} runs/s end to end", file=sys.stderr)
    finally:
        cluster.stop()
    print(f"errand bench --runs {args.runs} --batch {args.batch} --prefetch {args.prefetch} "
          f"(in-process worker, 128 threads); {platform.node()}, {os.cpu_count()} CPUs; PostgreSQL: " +
          ", ".join(f"{k}={v}" for k, v in shown.items()))
    print()
    print("| round | store | submit runs/s | end to end runs/s | light p50 ms | light p99 ms "
          "| errand server CPU µs/run | PostgreSQL CPU µs/run |")
    print("|---|---|---|---|---|---|---|---|")
    for x in rows:
        pg = f"{x['pg_us']:.0f}" if x["pg_us"] is not None else "—"
        print(f"| {x['round']} | {x['store']} | {x['submit']:.0f} | {x['e2e']:.0f} | "
              f"{x['p50']:.2f} | {x['p99']:.2f} | {x['server_us']:.0f} | {pg} |")


if __name__ == "__main__":
    main()
