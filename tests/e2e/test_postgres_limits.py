# SPDX-License-Identifier: MIT
"""Concurrency limits with several servers on one PostgreSQL store (run only under
ERRAND_TEST_STORE=postgresql): workers claim through two servers at once, and a tag's limit
holds across both, checked from the tasks' own start and end records.

The servers' claims run in transactions of their own at the same moments (a freed slot wakes
every waiting claim on both servers), so a claim that counted a limit's holders without first
locking the limit's row would see the same free slot as another one and both would take it
(src/store/postgres/pg_limits.c): the records would then overlap beyond the limit.
"""
import uuid

import pytest
import requests

from conftest import PYTHON, exec_spec, unique_task, wait_until, write_script
from test_limits import RECORDER, max_overlap

pytestmark = pytest.mark.postgres_only(
    "servers sharing one PostgreSQL schema; a SQLite store has one server and one writer")

LIMIT = 2
WORKERS_EACH = 3  # per server, each running up to CONCURRENCY runs at once
CONCURRENCY = 4
RUNS = 40
SECONDS = 0.3  # each run's own sleep: long enough that runs admitted together overlap


def claims(server):
    text = requests.get(server.root + "/metrics", timeout=10).text
    return next(int(float(line.split()[1])) for line in text.splitlines()
                if line.startswith("errand_claims_total "))


def test_a_tag_limit_holds_across_two_servers_claiming_at_once(
        server_factory, worker_factory, pg_cluster, tmp_path):
    url = pg_cluster.url(pg_cluster.ensure_schema(f"limits_{uuid.uuid4().hex[:16]}"))
    a = server_factory(env={"ERRAND_DATABASE_URL": url})
    b = server_factory(env={"ERRAND_DATABASE_URL": url})
    r = a.api.request("POST", "/limits", json_body={"tag": "gpu", "max_running": LIMIT})
    assert r.status_code == 200, r.text
    tasks = [unique_task("x"), unique_task("y")]
    script = write_script(tmp_path / "recorder.py", RECORDER)
    execs = [exec_spec(t, PYTHON, script) for t in tasks]
    for server in (a, b):
        for _ in range(WORKERS_EACH):
            worker_factory(server, execs=execs, builtin=False,
                           args=["--concurrency", str(CONCURRENCY)])
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
