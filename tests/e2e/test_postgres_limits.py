# SPDX-License-Identifier: MIT
"""Concurrency and rate limits with several servers on one PostgreSQL store (run only under
ERRAND_TEST_STORE=postgresql): workers claim through two servers at once, and a tag's limit
holds across both, checked from the tasks' own start and end records; a task's rate limit
spaces the starts of claims made through both.

The servers' claims run in transactions of their own at the same moments (a freed slot, or
the time a rate lets the next run go, wakes every waiting claim on both servers), so a claim
that counted a limit's holders, or read its next start, without first locking the limit's row
would see the same free slot as another one and both would take it
(src/store/postgres/pg_limits.c): the records would then overlap beyond the limit.
"""
import uuid

import pytest
import requests

from conftest import PYTHON, exec_spec, parse_ts, unique_task, wait_until, write_script
from test_limits import RECORDER, max_overlap

pytestmark = pytest.mark.postgres_only(
    "servers sharing one PostgreSQL schema; a SQLite store has one server and one writer")

LIMIT = 2
WORKERS_EACH = 3  # per server, each running up to CONCURRENCY runs at once
CONCURRENCY = 4
RUNS = 40
SECONDS = 0.3  # each run's own sleep: long enough that runs admitted together overlap
RATE = 5  # starts a second
RATED_RUNS = 16
SLACK_S = 0.002  # timestamps are in ms


@pytest.fixture
def two_servers(server_factory, pg_cluster):
    """Two servers on a schema of this test's own."""
    url = pg_cluster.url(pg_cluster.ensure_schema(f"limits_{uuid.uuid4().hex[:16]}"))
    return server_factory(env={"ERRAND_DATABASE_URL": url}), \
        server_factory(env={"ERRAND_DATABASE_URL": url})


def recorder_workers(servers, worker_factory, tmp_path, tasks):
    script = write_script(tmp_path / "recorder.py", RECORDER)
    execs = [exec_spec(t, PYTHON, script) for t in tasks]
    for server in servers:
        for _ in range(WORKERS_EACH):
            worker_factory(server, execs=execs, builtin=False,
                           args=["--concurrency", str(CONCURRENCY)])


def claims(server):
    text = requests.get(server.root + "/metrics", timeout=10).text
    return next(int(float(line.split()[1])) for line in text.splitlines()
                if line.startswith("errand_claims_total "))


def test_a_tag_limit_holds_across_two_servers_claiming_at_once(
        two_servers, worker_factory, tmp_path):
    a, b = two_servers
    r = a.api.request("POST", "/limits", json_body={"tag": "gpu", "max_running": LIMIT})
    assert r.status_code == 200, r.text
    tasks = [unique_task("x"), unique_task("y")]
    recorder_workers(two_servers, worker_factory, tmp_path, tasks)
    log = tmp_path / "gpu.log"
    specs = [{"task": tasks[i % 2], "parameters": {"log": str(log), "seconds": SECONDS},
              "tags": ["gpu"]} for i in range(RUNS)]
    runs = a.api.batch(specs[:RUNS // 2]) + b.api.batch(specs[RUNS // 2:])
    done = b.api.wait_all_final([run["id"] for run in runs], timeout=180)
    assert all(run["state"]["type"] == "COMPLETED" for run in done.values())
    assert claims(a) > 0 and claims(b) > 0, "runs were claimed through one server only"
    most = max_overlap(log)
    assert most <= LIMIT, f"{most} runs under a limit of {LIMIT} ran at once"
    assert most == LIMIT, "the limit was never used in full: the test shows nothing"
    wait_until(lambda: a.api.get_json("/limits")["limits"][0]["held"] == 0, 10,
               "every slot freed once the runs ended")


def test_a_rate_limit_spaces_starts_claimed_through_two_servers(
        two_servers, worker_factory, tmp_path):
    """5 starts a second: the claims (PENDING, stamped by the server that made them) come at
    least 0.2 s apart, whichever server made them."""
    a, b = two_servers
    task = unique_task("rated")
    r = a.api.request("POST", "/limits", json_body={"task": task, "max_starts": RATE,
                                                     "per_seconds": 1})
    assert r.status_code == 200, r.text
    recorder_workers(two_servers, worker_factory, tmp_path, [task])
    log = tmp_path / "rated.log"
    specs = [{"task": task, "parameters": {"log": str(log), "seconds": 0}}
             for _ in range(RATED_RUNS)]
    runs = a.api.batch(specs[:RATED_RUNS // 2]) + b.api.batch(specs[RATED_RUNS // 2:])
    done = a.api.wait_all_final([run["id"] for run in runs], timeout=120)
    assert all(run["state"]["type"] == "COMPLETED" for run in done.values())
    assert claims(a) > 0 and claims(b) > 0, "runs were claimed through one server only"
    claimed = sorted(parse_ts(st["timestamp"]) for run in runs
                     for st in a.api.states(run["id"]) if st["type"] == "PENDING")
    gaps = [later - earlier for earlier, later in zip(claimed, claimed[1:])]
    assert min(gaps) >= 1.0 / RATE - SLACK_S, f"claims {min(gaps):.3f} s apart: {claimed}"
    most = max(sum(1 for t in claimed if s <= t < s + 1.0) for s in claimed)
    assert most <= RATE, f"{most} claims within one second: {claimed}"
