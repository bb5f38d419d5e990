#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""errand beside Celery, RQ and beanstalkd: the same workload against each, in one run, on
loopback, and a Markdown table of what each did. Run by bench/peers/run.sh (which installs
the peers from Debian's packages first); see bench/peers/README.md.

The workload, for every system and durability setting:
  submit   N runs of a no-op task with no worker running: runs accepted per second;
  drain    then a worker started on that pre-filled queue: runs finished per second;
  e2e      with the worker running, N more runs submitted and finished: per second, from the
           first submit to the last result stored;
  latency  R runs one at a time, each from submit to its result read back: p50 and p99.
Results are stored by all (errand's store, Celery's Redis backend, RQ's job hash, a
beanstalkd "results" tube). Every process started is stopped at the end, even on failure.
"""
import argparse
import gc
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON = "/usr/bin/python3"
SUBMITTERS = 4
SUBMITTERS_START_S = 3.0  # time for the submitting processes to start and import their client
ERRAND_BATCH = 500
ERRAND_WORKER_THREADS = 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.005)
    raise TimeoutError(f"timed out waiting for {what}")


def wait_port(port, timeout=20):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_until(up, timeout, f"port {port}")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


class Processes:
    """Every process the comparison starts, each logging to its own file; stopped at the end
    (SIGTERM to its process group, SIGKILL after 5 s)."""

    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, argv, env=None, cwd=None):
        log = open(self.work / f"{name}.log", "ab")
        p = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p)


def _submit_share(args):
    """In a submitting process: imports what fn needs (fn's first call with 0), waits for the
    common start, submits its share; returns when it finished (wall clock)."""
    fn, count, start_at = args
    fn(0)
    time.sleep(max(0.0, start_at - time.time()))
    fn(count)
    return time.time()


class Submitters:
    """fn(count) in `workers` fresh processes sharing n, started together once each has
    imported its client (fresh processes: a fork of this one, which holds the peers' client
    threads, can deadlock). start(): returns at once; .start_at is when they all begin
    (time.time()); wait() returns the seconds from then to the last one's end."""

    def __init__(self, fn, n, workers=SUBMITTERS):
        self.shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
        self.fn = fn
        self.pool = multiprocessing.get_context("spawn").Pool(workers)

    def start(self):
        self.start_at = time.time() + SUBMITTERS_START_S
        self.result = self.pool.map_async(_submit_share,
                                          [(self.fn, k, self.start_at) for k in self.shares])
        return self

    def wait(self):
        ends = self.result.get(timeout=900)
        self.pool.close()
        self.pool.join()
        return max(ends) - self.start_at


def in_parallel(fn, n):
    """Submits n with fn from SUBMITTERS processes; the seconds they took."""
    return Submitters(fn, n).start().wait()


def until_done(count, n, what):
    """Waits until count() >= n; the wall-clock time it first was >= 1 and when >= n."""
    first = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        c = count()
        if c >= 1 and first is None:
            first = time.time()
        if c >= n:
            return first, time.time()
        time.sleep(0.005)
    raise TimeoutError(f"timed out waiting for {what}")


def row(system, durability, submit_s, drain_s, e2e_s, lat, n, note=""):
    return {"system": system, "durability": durability,
            "submit": n / submit_s if submit_s else None,
            "drain": n / drain_s if drain_s else None,
            "e2e": n / e2e_s if e2e_s else None,
            "p50": lat[0] if lat else None, "p99": lat[1] if lat else None, "note": note}


# --- errand -------------------------------------------------------------------------------

def errand_post_batches(count):
    url = os.environ["PEERS_ERRAND_URL"] + "/task_runs/batch"
    for start in range(0, count, ERRAND_BATCH):
        runs = [{"task": "errand.noop", "parameters": {"i": i}}
                for i in range(start, min(count, start + ERRAND_BATCH))]
        req = urllib.request.Request(url, data=json.dumps({"runs": runs}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()


def errand_completed(url):
    with urllib.request.urlopen(url + "/stats", timeout=10) as r:
        return json.load(r)["counts"].get("COMPLETED", 0)


def run_errand(errand, sync, n, procs, work):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, ERRAND_HOME=str(work / f"errand-{sync}"), ERRAND_DATABASE_SYNC=sync,
               ERRAND_LOGGING_LEVEL="warning", ERRAND_API_URL=url, PEERS_ERRAND_URL=url)
    os.environ["PEERS_ERRAND_URL"] = url
    server = procs.start(f"errand-{sync}-server", [errand, "server", "start", "--port", port],
                         env=env)
    wait_port(port)
    submit_s = in_parallel(errand_post_batches, n)
    # Threads, not processes: 64 of them, as one sizes a worker for short tasks.
    worker = procs.start(f"errand-{sync}-worker", [errand, "worker", "--builtin", "--concurrency",
                                                   ERRAND_WORKER_THREADS], env=env)
    first, last = until_done(lambda: errand_completed(url), n, "errand's drain")
    drain_s = (last - first) * n / (n - 1)
    rows = []
    for batch, label in ((ERRAND_BATCH, f"batches of {ERRAND_BATCH}"), (1, "one request a run")):
        argv = [errand, "bench", "--runs", n, "--batch", batch, "--submitters", SUBMITTERS,
                "--workers", 0, "--json"]
        out = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True,
                             timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"errand bench failed: {out.stderr[-2000:]}")
        b = json.loads(out.stdout)
        rows.append({"system": f"errand, {label}", "durability": f"sync={sync}",
                     "submit": b["submit_per_s"] if batch == 1 else n / submit_s,
                     "drain": n / drain_s if batch != 1 else None, "e2e": b["e2e_per_s"],
                     "p50": b["p50_ms"], "p99": b["p99_ms"],
                     "note": f"one worker process, {ERRAND_WORKER_THREADS} threads" +
                             ("" if batch == 1 else f"; submit and drain: HTTP batches of "
                                                    f"{ERRAND_BATCH} from Python")})
    procs.stop(worker)
    procs.stop(server)
    return rows


# --- Redis, Celery, RQ ---------------------------------------------------------------------

REDIS_MODES = {
    "no AOF (RDB snapshots, Redis' default)": ["--appendonly", "no"],
    "AOF, fsync every second (Redis' advice)": ["--appendonly", "yes", "--appendfsync",
                                                "everysec"],
    "AOF, fsync every write": ["--appendonly", "yes", "--appendfsync", "always"],
}


def start_redis(procs, work, name, mode_args):
    port = free_port()
    d = Path(tempfile.mkdtemp(dir=work, prefix=name + "-"))
    p = procs.start(d.name, ["redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", d,
                           "--daemonize", "no", *mode_args])
    wait_port(port)
    return p, port


def peer_env(port):
    return dict(os.environ, PEERS_REDIS_URL=f"redis://127.0.0.1:{port}",
                PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def celery_submit(count):
    import peer_tasks
    for i in range(count):
        peer_tasks.celery_noop.apply_async((i,))


def run_celery(mode, mode_args, n, r, procs, work):
    import redis
    redis_proc, port = start_redis(procs, work, "redis-celery", mode_args)
    env = peer_env(port)
    os.environ.update(PEERS_REDIS_URL=env["PEERS_REDIS_URL"])
    sys.modules.pop("peer_tasks", None)
    results = redis.Redis(port=port, db=1)
    submit_s = in_parallel(celery_submit, n)
    # Celery's defaults: the prefork pool with a process per core, prefetch 4, early ack.
    worker = procs.start("celery-worker", [PYTHON, "-m", "celery", "-A", "peer_tasks", "worker",
                                           "--loglevel", "WARNING"], env=env, cwd=HERE)
    first, last = until_done(results.dbsize, n, "celery's drain")
    drain_s = (last - first) * n / (n - 1)
    sub = Submitters(celery_submit, n).start()
    _, last = until_done(lambda: results.dbsize() - n, n, "celery's e2e")
    sub.wait()
    e2e_s = last - sub.start_at
    import peer_tasks
    lat = []
    for i in range(r):
        t = time.monotonic()
        peer_tasks.celery_noop.delay(i).get(timeout=30)
        lat.append((time.monotonic() - t) * 1000)
    gc.collect()  # the results' finalizers talk to Redis: before it stops
    peer_tasks.app.close()
    procs.stop(worker)
    procs.stop(redis_proc)
    return row("Celery + Redis", mode, submit_s, drain_s, e2e_s,
               (percentile(lat, 50), percentile(lat, 99)), n,
               "prefork, 2 processes (one a core), defaults")


def rq_submit(count):
    import redis
    from rq import Queue
    import peer_tasks
    q = Queue("bench", connection=redis.Redis.from_url(os.environ["PEERS_REDIS_URL"]))
    for i in range(count):
        q.enqueue(peer_tasks.noop, i)


def run_rq(mode, mode_args, n, r, procs, work):
    import redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry
    redis_proc, port = start_redis(procs, work, "redis-rq", mode_args)
    env = peer_env(port)
    os.environ.update(PEERS_REDIS_URL=env["PEERS_REDIS_URL"])
    conn = redis.Redis(port=port)
    finished = FinishedJobRegistry("bench", connection=conn)
    submit_s = in_parallel(rq_submit, n)
    # RQ's default worker forks a work horse per job; two of them, one a core.
    workers = [procs.start(f"rq-worker-{i}", ["rq", "worker", "--quiet", "-u",
                                              env["PEERS_REDIS_URL"], "bench"], env=env, cwd=HERE)
               for i in range(2)]
    first, last = until_done(lambda: finished.count, n, "rq's drain")
    drain_s = (last - first) * n / (n - 1)
    sub = Submitters(rq_submit, n).start()
    _, last = until_done(lambda: finished.count - n, n, "rq's e2e")
    sub.wait()
    e2e_s = last - sub.start_at
    import peer_tasks
    q = Queue("bench", connection=conn)
    lat = []
    for i in range(r):
        t = time.monotonic()
        job = q.enqueue(peer_tasks.noop, i)
        wait_until(lambda: job.get_status(refresh=True) == "finished", 30, "an rq job")
        lat.append((time.monotonic() - t) * 1000)
    for w in workers:
        procs.stop(w)
    procs.stop(redis_proc)
    return row("RQ + Redis", mode, submit_s, drain_s, e2e_s,
               (percentile(lat, 50), percentile(lat, 99)), n,
               "2 workers (fork per job, RQ's default); latency polled every 5 ms")


# --- beanstalkd ------------------------------------------------------------------------------

BEANSTALK_MODES = {
    "in memory": [],
    "binlog, fsync at most every 50 ms (its default)": ["-b", None],
    "binlog, fsync every write": ["-b", None, "-f", "0"],
}


def run_beanstalkd(client, mode, mode_args, n, r, procs, work):
    port = free_port()
    d = Path(tempfile.mkdtemp(dir=work, prefix="beanstalkd-"))
    args = [str(d) if a is None else a for a in mode_args]
    server = procs.start(d.name, ["beanstalkd", "-l", "127.0.0.1", "-p", port, *args])
    wait_port(port)

    def timed(*argv):
        out = subprocess.run([str(client), str(port), *map(str, argv)], capture_output=True, text=True,
                             timeout=900, check=True)
        return json.loads(out.stdout)

    submit = timed("submit", n, SUBMITTERS)
    submit_s = (submit["end_ms"] - submit["start_ms"]) / 1000
    collector = subprocess.Popen([str(client), str(port), "collect", str(n)], stdout=subprocess.PIPE,
                                 text=True)
    worker = procs.start("beanstalk-worker", [client, port, "work", SUBMITTERS])
    got = json.loads(collector.communicate(timeout=900)[0])
    drain_s = (got["end_ms"] - got["first_ms"]) / 1000 * n / (n - 1)
    collector = subprocess.Popen([str(client), str(port), "collect", str(n)], stdout=subprocess.PIPE,
                                 text=True)
    submit = timed("submit", n, SUBMITTERS)
    e2e_s = (json.loads(collector.communicate(timeout=900)[0])["end_ms"] -
             submit["start_ms"]) / 1000
    lat = timed("latency", r)
    procs.stop(worker)
    procs.stop(server)
    return row("beanstalkd", mode, submit_s, drain_s, e2e_s, (lat["p50_ms"], lat["p99_ms"]), n,
               "C clients, 4 connections each way; results in a tube")


# --- the table -------------------------------------------------------------------------------

def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def table(rows):
    lines = ["| system | durability | submit, runs/s | drain, runs/s | end to end, runs/s | "
             "latency p50 / p99, ms | how |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['system']} | {r['durability']} | {fmt(r['submit'])} | "
                     f"{fmt(r['drain'])} | {fmt(r['e2e'])} | {fmt(r['p50'], 2)} / "
                     f"{fmt(r['p99'], 2)} | {r['note']} |")
    return "\n".join(lines)


def versions(errand):
    import celery
    import rq

    def first_line(argv):
        try:
            return subprocess.run([str(a) for a in argv], capture_output=True,
                                  text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"

    def word_after(text, prefix):
        for w in text.split():
            if w.startswith(prefix):
                return w[len(prefix):]
        return text.split()[-1] if text.split() else "?"

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    debian = Path("/etc/debian_version").read_text().strip() \
        if Path("/etc/debian_version").exists() else "?"
    return {"errand": first_line([errand, "--version"]).split()[-1],
            "Redis": word_after(first_line(["redis-server", "--version"]), "v="),
            "Celery": celery.__version__, "RQ": rq.__version__,
            "beanstalkd": first_line(["beanstalkd", "-v"]).split()[-1],
            "Python": platform.python_version(), "Debian": debian,
            "Linux": platform.release(), "CPU": f"{os.cpu_count()} × {cpu}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(REPO / "build"), help="errand's build directory")
    ap.add_argument("--runs", type=int, default=5000, help="runs per phase (default 5000)")
    ap.add_argument("--rq-runs", type=int, default=300,
                    help="runs per phase for RQ, whose default worker forks for every job "
                         "(default 300)")
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--only", help="comma-separated: errand,celery,rq,beanstalkd")
    ap.add_argument("--out", help="also write the table (and versions) to this file")
    a = ap.parse_args()
    errand = Path(a.build) / "bin" / "errand"
    client = Path(a.build) / "bench" / "beanstalk_bench"
    only = set((a.only or "errand,celery,rq,beanstalkd").split(","))
    work = Path(tempfile.mkdtemp(prefix="errand-peers-"))
    procs = Processes(work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows = []
    try:
        if "errand" in only:
            for sync in ("full", "normal"):
                print(f"errand sync={sync}...", file=sys.stderr, flush=True)
                rows += run_errand(errand, sync, a.runs, procs, work)
        for mode, args in REDIS_MODES.items():
            if "celery" in only:
                print(f"celery, redis {mode}...", file=sys.stderr, flush=True)
                rows.append(run_celery(mode, args, a.runs, a.latency_runs, procs, work))
            if "rq" in only:
                print(f"rq, redis {mode}...", file=sys.stderr, flush=True)
                rows.append(run_rq(mode, args, a.rq_runs, min(a.latency_runs, a.rq_runs), procs,
                                   work))
        if "beanstalkd" in only:
            for mode, args in BEANSTALK_MODES.items():
                print(f"beanstalkd {mode}...", file=sys.stderr, flush=True)
                rows.append(run_beanstalkd(client, mode, args, a.runs, a.latency_runs, procs,
                                           work))
    finally:
        procs.stop_all()
    v = versions(errand)
    text = (f"{table(rows)}\n\n{a.runs} runs a phase, {a.latency_runs} for latency, "
            f"{SUBMITTERS} submitting processes; {time.strftime('%Y-%m-%d')}; "
            + ", ".join(f"{k} {val}" for k, val in v.items()) + "\n")
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
