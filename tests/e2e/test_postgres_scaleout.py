# SPDX-License-Identifier: MIT
"""Scale-out on PostgreSQL: several servers on one store (the same ERRAND_DATABASE_URL, that
is the same schema, each server with a home of its own), run only under
ERRAND_TEST_STORE=postgresql (`make e2e-postgres`).

A run submitted through one server wakes the claim a worker holds on another: the servers run
with ERRAND_POLL_RECHECK_MS at 30 s (the fallback re-check of claims), as in test_wakeups.py,
so only the store's wake-up between servers (LISTEN/NOTIFY) explains a claim within a second
(a bound that proves the wake-up path, not a speed claim).

Under load, one of two servers is killed with SIGKILL while workers claim through both and
clients submit through both (ERRAND_API_URL lists both; clients and workers move to the other
server when theirs dies): every submission answered 2xx ends COMPLETED, with its own result,
and its task ran exactly once. An exec task learns neither its run id nor its attempt, so each
submission carries a key of its own, which the task appends to a file (as test_sharing.py and
the fault campaign count executions).
"""
import collections
import json
import threading
import time
import uuid

import pytest
import requests

from conftest import PYTHON, exec_spec, parse_ts, run_cli, unique_task, wait_until, write_script

pytestmark = pytest.mark.postgres_only(
    "servers sharing one PostgreSQL schema, woken across servers by the store (a server on a "
    "SQLite file is woken only by its own events and its re-check timer)")

FALLBACK_MS = 30000
WOKEN_WITHIN_S = 1.0
IDLE_S = 1.5  # long enough for the worker's claim to be waiting in its long-poll
ROUNDS = 3

LEASE_S = 10  # well past the heartbeats (a second apart), so no lease runs out in a failover
MAX_WORKERS = 16  # each starts on a server drawn at random: enough to have one on each
THREADS = 4
SUBMITS_EACH = 40
KILL_AFTER = 40

# Sleeps `s` seconds (so that runs are mid-execution when the server dies), then appends its
# key to `file` in one os.write (O_APPEND: lines of concurrent runs never mix), then returns
# the key.
RECORD = """
import json, os, sys, time
p = json.load(sys.stdin)
time.sleep(p["s"])
fd = os.open(p["file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (p["k"] + "\\n").encode())
os.close(fd)
print(json.dumps({"k": p["k"]}))
"""


@pytest.fixture
def shared_url(pg_cluster):
    """The URL of a schema of this test's own, for servers to share."""
    schema = pg_cluster.ensure_schema(f"scaleout_{uuid.uuid4().hex[:16]}")
    return pg_cluster.url(schema)


def metric(server, name):
    text = requests.get(server.root + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no {name} in /metrics:\n{text}")


def parked(server):
    """Long-polls (workers' claims, /waits) waiting on this server."""
    return metric(server, "errand_long_polls_parked")


def state_time(states, type_):
    return next(parse_ts(s["timestamp"]) for s in states if s["type"] == type_)


def test_a_submission_through_one_server_wakes_a_worker_on_the_other(
        server_factory, worker_factory, shared_url):
    env = {"ERRAND_DATABASE_URL": shared_url, "ERRAND_POLL_RECHECK_MS": str(FALLBACK_MS)}
    a = server_factory(env=env)
    b = server_factory(env=env)
    w = worker_factory(b)  # ERRAND_API_URL is b's alone
    for _ in range(ROUNDS):
        time.sleep(IDLE_S)
        wait_until(lambda: parked(b) >= 1, 10, "the worker's claim waiting on server b")
        run = a.api.submit("errand.noop", {})
        done = b.api.wait_final(run["id"])
        assert done["state"]["type"] == "COMPLETED", done
        assert done["worker"] == w.name, done
        states = a.api.states(run["id"])
        waited = state_time(states, "PENDING") - state_time(states, "SCHEDULED")
        assert waited < WOKEN_WITHIN_S, (
            f"claimed through b {waited:.3f} s after its submission through a: {states}")
    assert metric(a, "errand_claims_total") == 0, "the worker claimed only through b"
    assert metric(b, "errand_claims_total") >= ROUNDS


def test_a_report_through_one_server_wakes_a_wait_on_the_other(
        server_factory, worker_factory, shared_url):
    env = {"ERRAND_DATABASE_URL": shared_url, "ERRAND_POLL_RECHECK_MS": str(FALLBACK_MS)}
    a = server_factory(env=env)
    b = server_factory(env=env)
    worker_factory(b)  # reports go through b only
    for _ in range(ROUNDS):
        run = a.api.submit("errand.sleep", {"seconds": 1.0})
        answered = {}

        def wait():  # parked on a, for at most 60 s; a re-checks unwoken only every 30 s
            r = a.api.request("GET", f"/task_runs/{run['id']}/wait",
                              params={"timeout_seconds": 60}, timeout=90)
            answered["at"] = time.time()
            answered["run"] = r.json()

        t = threading.Thread(target=wait)
        t.start()
        t.join(90)
        assert not t.is_alive(), "the /wait did not answer"
        got = answered["run"]
        assert got["state"]["type"] == "COMPLETED", got
        late = answered["at"] - parse_ts(got["finished"])
        assert late < WOKEN_WITHIN_S, (
            f"/wait on a answered {late:.3f} s after the run finished through b")
    assert metric(a, "errand_reports_total") == 0, "the worker reported only through b"


def test_killing_one_of_two_servers_under_load_loses_and_repeats_nothing(
        server_factory, worker_factory, shared_url, tmp_path):
    env = {"ERRAND_DATABASE_URL": shared_url, "ERRAND_LEASE_SECONDS": str(LEASE_S)}
    a = server_factory(env=env)
    b = server_factory(env=env)
    urls = f"{a.url},{b.url}"
    task = unique_task("scaleout")
    spec = exec_spec(task, PYTHON, write_script(tmp_path / "record.py", RECORD))
    out = tmp_path / "executions.txt"

    # Workers given both URLs, until each server holds the claim of one of them.
    workers = []
    while len(workers) < MAX_WORKERS and not (parked(a) and parked(b)):
        workers.append(worker_factory(a, execs=[spec], builtin=False,
                                      env={"ERRAND_API_URL": urls,
                                           "ERRAND_LEASE_SECONDS": str(LEASE_S)}))
        wait_until(lambda: parked(a) + parked(b) >= len(workers), 30,
                   f"the claims of {len(workers)} workers waiting")
    assert parked(a) and parked(b), f"{len(workers)} workers, all on one server"

    results = []
    lock = threading.Lock()
    stop = threading.Event()  # set when the test fails early: the submitters give up

    def submit_all(t):
        for i in range(SUBMITS_EACH):
            if stop.is_set():
                return
            key = f"{t}-{i}"
            params = {"k": key, "s": 0.2, "file": str(out)}
            cp = run_cli(a, "submit", task, "--params", json.dumps(params), "--json",
                         env={"ERRAND_API_URL": urls}, timeout=60)
            with lock:
                results.append((key, cp))

    threads = [threading.Thread(target=submit_all, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= KILL_AFTER, 60, f"{KILL_AFTER} submissions")
        with lock:
            early = [cp.stderr for _, cp in results if cp.returncode != 0]
        assert not early, f"submissions failed with both servers up: {early[:3]}"
        wait_until(lambda: metric(a, "errand_claims_total") and metric(b, "errand_claims_total"),
                   30, "runs claimed through both servers before the kill")
        a.kill9()  # for good: everything goes on through b
    except BaseException:
        stop.set()
        raise
    finally:
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "submissions still running"
    assert len(results) == THREADS * SUBMITS_EACH

    failed = [cp.stderr for _, cp in results if cp.returncode != 0]
    assert not failed, f"{len(failed)} submissions failed although b was up: {failed[:3]}"
    acked = {json.loads(cp.stdout)["id"]: key for key, cp in results if cp.returncode == 0}
    assert len(acked) == len(results), "one run per submission"

    for run_id, key in acked.items():
        done = b.api.wait_final(run_id, timeout=120)
        assert done["state"]["type"] == "COMPLETED", done
        assert done["result"] == {"k": key}, done
    stored = b.api.list_all(task=task)
    by_key = collections.Counter(r["parameters"]["k"] for r in stored)
    assert sorted(by_key) == sorted(acked.values()) and set(by_key.values()) == {1}, \
        f"each submission stored once: {by_key}"

    assert all(w.running() for w in workers), "a worker ended when a server died"
    for w in workers:  # no execution still under way when the file is counted
        w.stop()
    ran = collections.Counter(out.read_text().split())
    twice = {k: n for k, n in ran.items() if n > 1}
    assert not twice, f"runs executed more than once: {twice}"
    assert set(ran) == set(acked.values()), \
        f"executed but not acknowledged: {set(ran) - set(acked.values())}; " \
        f"acknowledged but never executed: {set(acked.values()) - set(ran)}"
