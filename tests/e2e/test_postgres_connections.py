# SPDX-License-Identifier: MIT
"""A server's connections to PostgreSQL (run only under ERRAND_TEST_STORE=postgresql,
`make e2e-postgres`): a run's log lines are read in the order their transactions committed, so
a reader paging with ?after=N never steps past a line that commits later; and
ERRAND_DATABASE_POOL_SIZE bounds how many connections a server opens.

PostgreSQL numbers log lines from a sequence as they are inserted. Two transactions adding
lines to one run (two servers, or two report batches of one worker) could commit in the other
order than they drew their numbers; a reader that saw the later number first would then page
past the earlier line for ever. Here a psql session plays the first transaction: it locks the
run as a server does before adding lines, adds one, and stays open while the server is sent a
report with a second line. Until the session commits, the server's line must not be visible
(else it carries the higher number and the reader moves past the one still to come); after it,
both read back in order.

The connections of one server are told apart by the application_name in its URL.
"""
import subprocess
import threading
import time
import uuid

import pytest

from conftest import unique_task
from pg_cluster import _clean_env

pytestmark = pytest.mark.postgres_only(
    "log lines numbered by a PostgreSQL sequence; SQLite has a single writer")

HELD_S = 1.0  # how long the other transaction stays open once the server's report is sent
PARALLEL = 24  # requests at once, well past the pools tried


def open_session(pg_cluster, schema):
    """An interactive psql session on the schema: (process, run(sql) -> output lines)."""
    proc = subprocess.Popen(
        [pg_cluster._tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-h", "127.0.0.1", "-p", str(pg_cluster.port), "-U", pg_cluster.superuser,
         "-d", pg_cluster.database],
        env=_clean_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(sql):
        proc.stdin.write(sql + "\nSELECT 'done';\n")
        proc.stdin.flush()
        lines = []
        for line in proc.stdout:
            if line.strip() == "done":
                return lines
            lines.append(line.strip())
        raise AssertionError(f"psql ended while running {sql!r}")

    run(f'SET search_path = "{schema}";')
    return proc, run


def test_a_runs_log_lines_are_read_in_commit_order(pg_cluster, server):
    schema = pg_cluster.schema_for(server.home)
    run_id = server.api.submit(unique_task("logged"), {})["id"]
    proc, psql = open_session(pg_cluster, schema)
    try:
        psql("BEGIN;")
        psql(f"SELECT id FROM task_runs WHERE id = '{run_id}' FOR NO KEY UPDATE;")
        psql("INSERT INTO task_run_logs (run_id, timestamp, level, message) "
             f"VALUES ('{run_id}', 0, 20, 'first');")
        answers = []
        report = threading.Thread(target=lambda: answers.append(server.api.request(
            "POST", "/workers/report", json_body={
                "worker": "log-writer", "reports": [],
                "logs": [{"id": run_id, "level": "info", "message": "second"}]})))
        report.start()
        time.sleep(HELD_S)
        assert server.api.logs(run_id)["logs"] == [], \
            "the server's line committed before an earlier-numbered one"
        psql("COMMIT;")
    finally:
        proc.stdin.close()
        proc.wait(30)
    report.join(30)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    logs = server.api.logs(run_id)["logs"]
    assert [l["message"] for l in logs] == ["first", "second"], logs
    assert logs[0]["seq"] < logs[1]["seq"], logs


def connections_of(pg_cluster, app):
    return int(pg_cluster.psql("SELECT count(*) FROM pg_stat_activity "
                               f"WHERE application_name = '{app}';").strip())


@pytest.mark.parametrize("pool", [1, 3])
def test_a_server_opens_at_most_its_pool_and_two_connections(pg_cluster, server_factory, pool):
    """ERRAND_DATABASE_POOL_SIZE bounds the connections of one server (its pool, plus the
    submitter's and the listener's), however many requests arrive at once; each is served."""
    app = f"errand_pool_{pool}_{uuid.uuid4().hex[:8]}"
    schema = pg_cluster.ensure_schema(f"pool_{uuid.uuid4().hex[:16]}")
    url = pg_cluster.url(schema) + "&application_name=" + app
    server = server_factory(env={"ERRAND_DATABASE_URL": url,
                                 "ERRAND_DATABASE_POOL_SIZE": str(pool)})
    task = unique_task("pooled")
    ids = [server.api.submit(task, {"i": i})["id"] for i in range(PARALLEL)]
    seen = []

    def reader(run_id):  # a long-poll holds a request open; reads go through the pool
        for _ in range(5):
            seen.append(server.api.get(run_id)["id"])
        server.api.request("GET", f"/task_runs/{run_id}/wait", params={"timeout": 1})

    threads = [threading.Thread(target=reader, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    most = 0
    while any(t.is_alive() for t in threads):
        most = max(most, connections_of(pg_cluster, app))
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert sorted(set(seen)) == sorted(ids) and len(seen) == 5 * PARALLEL
    assert 2 <= most <= pool + 2, (pool, most)
    assert connections_of(pg_cluster, app) <= pool + 2

