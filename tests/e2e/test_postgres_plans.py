# SPDX-License-Identifier: MIT
"""The hot statements on PostgreSQL read the runs they are about, not the queue, even while
PostgreSQL's statistics describe an older store; and the sweeps' pruning of the change feed
reads a batch of pages, not the feed (run only under ERRAND_TEST_STORE=postgresql,
`make e2e-postgres`).

A queue table's statistics are always behind: ANALYZE saw a store of finished runs, then a
burst of submissions made thousands SCHEDULED. PostgreSQL then believes that few runs are
SCHEDULED and may plan a statement that names runs by id through every SCHEDULED run (a
bitmap scan of the partial index that holds them, a hash of the whole ready queue). Here
the store first holds finished runs, is analyzed, and its autovacuum is turned off so that
the statistics stay that way; then a burst of ready runs arrives, and claims of one run
each and submissions with idempotency keys must read a few rows each, as PostgreSQL's own
counters of the rows fetched from task_runs say.
"""
import time
import uuid

import pytest

from conftest import unique_task
from test_bulk import bulk_all

pytestmark = pytest.mark.postgres_only(
    "PostgreSQL's planner and its statistics; SQLite's statements are bounded by unit tests")

FINISHED = 2000   # runs ANALYZE sees, all final, with idempotency keys
BURST = 10000     # ready runs it has not seen
CLAIMS = 20
KEYED_BATCHES = 5
KEYED_BATCH = 200
# Rows of task_runs an operation may read: the runs it names and a few index pages' worth.
# Reading the burst would be BURST rows per claim.
ROWS_PER_CLAIM = 50
ROWS_PER_KEYED_RUN = 5
IDLE_S = 1.0


def rows_read(pg_cluster, schema, table="task_runs"):
    """Rows of table fetched so far, through indexes and by sequential scans."""
    out = pg_cluster.psql("SELECT pg_stat_clear_snapshot(); SELECT coalesce(idx_tup_fetch, 0) "
                          "+ seq_tup_read FROM pg_stat_user_tables WHERE schemaname = "
                          f"'{schema}' AND relname = '{table}';")
    return int(out.strip().splitlines()[-1])


def settled(pg_cluster, schema, table="task_runs"):
    """The count once the sessions of a stopped server have handed theirs in (a backend does
    as it ends): two reads in a row alike."""
    time.sleep(1)
    last = rows_read(pg_cluster, schema, table)
    for _ in range(50):
        time.sleep(0.2)
        now = rows_read(pg_cluster, schema, table)
        if now == last:
            return now
        last = now
    raise AssertionError("PostgreSQL's statistics did not settle")


def test_claims_and_keyed_submissions_read_no_queue_under_stale_statistics(pg_cluster,
                                                                           server_factory):
    schema = pg_cluster.ensure_schema(f"plans_{uuid.uuid4().hex[:16]}")
    server = server_factory(env={"ERRAND_DATABASE_URL": pg_cluster.url(schema)})
    old, busy = unique_task("finished"), unique_task("burst")
    for b in range(FINISHED // 500):
        server.api.batch([{"task": old, "idempotency_key": f"old-{b}-{i}"} for i in range(500)])
    done, _ = bulk_all(server, action="cancel", task=old)
    assert done == FINISHED
    pg_cluster.psql(f'SET search_path = "{schema}"; '
                    "ALTER TABLE task_runs SET (autovacuum_enabled = off); ANALYZE task_runs;")
    server.stop()

    def rows_read_while(action):
        """Rows of task_runs read by a server that starts, does action and stops, beyond
        what one that starts, idles and stops reads (the change feed's ring is loaded with
        the tasks of its events, the sweeps run)."""
        def once(act):
            before = settled(pg_cluster, schema)
            server.start()
            act()
            server.stop()
            return settled(pg_cluster, schema) - before
        return once(action) - once(lambda: time.sleep(IDLE_S))

    def claims():
        for _ in range(CLAIMS):
            r = server.api.request("POST", "/workers/claim",
                                   json_body={"worker": "plans", "tasks": [busy], "limit": 1,
                                              "wait_seconds": 0})
            assert r.status_code == 200, r.text
            assert len(r.json()["runs"]) == 1

    def keyed_submissions():
        for b in range(KEYED_BATCHES):
            server.api.batch([{"task": busy, "idempotency_key": f"k-{b}-{i}"}
                              for i in range(KEYED_BATCH)])

    read = rows_read_while(keyed_submissions)
    assert read < KEYED_BATCHES * KEYED_BATCH * ROWS_PER_KEYED_RUN, read

    server.start()
    for _ in range(BURST // 500):
        server.api.batch([{"task": busy} for _ in range(500)])
    server.stop()
    read = rows_read_while(claims)
    assert read < CLAIMS * ROWS_PER_CLAIM, read


FEED_PAGES = 30000  # young pages of one event each: nothing to prune
SWEEPING_S = 3.0    # about six sweeps at the default interval (500 ms)
# Each prune reads its first batch of pages (512) and stops at the first young one; reading
# the feed would be FEED_PAGES rows per sweep.
FEED_ROWS_SWEEPING = 20000


def test_pruning_a_large_young_change_feed_reads_a_batch_per_sweep(pg_cluster, server_factory):
    schema = pg_cluster.ensure_schema(f"feed_{uuid.uuid4().hex[:16]}")
    server = server_factory(env={"ERRAND_DATABASE_URL": pg_cluster.url(schema)})
    server.stop()
    # One-event pages (format 2: id, type, time, empty name, empty task), all of this hour,
    # added since PostgreSQL last looked at the table (it has no statistics of them).
    event = "02" + "30" * 36 + "00" + "00" * 8 + "00" + "0000"
    pg_cluster.psql(
        f'SET search_path = "{schema}"; '
        "INSERT INTO run_feed (first_seq, n, at, events) SELECT g, 1, "
        "(extract(epoch FROM now()) * 1000)::bigint, decode("
        f"'{event}', 'hex') FROM generate_series((SELECT next_seq FROM feed_head), "
        f"(SELECT next_seq FROM feed_head) + {FEED_PAGES - 1}) AS g; "
        f"UPDATE feed_head SET next_seq = next_seq + {FEED_PAGES};")

    def feed_rows_read_while(action):
        before = settled(pg_cluster, schema, "run_feed")
        server.start()
        action()
        server.stop()
        return settled(pg_cluster, schema, "run_feed") - before

    # Starting loads the newest events into the server's ring; the difference is the sweeps.
    read = feed_rows_read_while(lambda: time.sleep(SWEEPING_S)) - feed_rows_read_while(
        lambda: None)
    assert read < FEED_ROWS_SWEEPING, read
