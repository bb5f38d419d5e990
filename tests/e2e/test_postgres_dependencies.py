# SPDX-License-Identifier: MIT
"""Dependencies on PostgreSQL with two servers on one schema: the races pg_deps.c closes with
row locks, run only under ERRAND_TEST_STORE=postgresql.

 - A run submitted through one server with wait_for naming a run that another server is
   ending at that moment: the submit locks its upstream runs while it reads them, so either
   it sees the upstream final, or the ending transaction sees the new edge. Without the lock
   some dependants are never released and wait for ever.
 - Two upstream runs of one dependant ending at once through two servers: each settle locks
   the dependant before counting its upstream runs down. Without the lock both read "2 to
   wait for", both write 1, and the dependant waits for ever.

The test plays the worker over the worker protocol (claim, report), a round at a time: the
upstream runs claimed, then two requests sent at the same moment from two threads, through
the two servers. Every dependant must end released (claimable), none left "Waiting"."""
import threading
import uuid

import pytest

from conftest import unique_task

pytestmark = pytest.mark.postgres_only(
    "servers sharing one PostgreSQL schema, each settling dependencies in its own "
    "transactions (SQLite has a single writer)")

ROUNDS = 4
PER_ROUND = 200  # upstream runs (and dependants) per round: the windows to hit


@pytest.fixture
def shared_url(pg_cluster):
    """The URL of a schema of this test's own, for servers to share."""
    schema = pg_cluster.ensure_schema(f"deps_{uuid.uuid4().hex[:16]}")
    return pg_cluster.url(schema)


def claim_all(server, task, n):
    r = server.api.request("POST", "/workers/claim",
                           json_body={"worker": "race", "tasks": [task], "limit": n,
                                      "wait_seconds": 0})
    assert r.status_code == 200, r.text
    runs = r.json()["runs"]
    assert len(runs) == n, f"claimed {len(runs)} of {n}"
    return runs


def report_completed(server, runs):
    r = server.api.request("POST", "/workers/report", json_body={
        "worker": "race",
        "reports": [{"id": x["id"], "lease_token": x["lease_token"], "state": "COMPLETED",
                     "result": 1} for x in runs]}, timeout=60)
    assert r.status_code == 200, r.text
    assert all(a["status"] == 200 for a in r.json()["reports"]), r.text


def at_once(*calls):
    """Runs the calls in threads released together; re-raises the first failure."""
    start = threading.Barrier(len(calls))
    failures = []

    def go(fn):
        start.wait()
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - told to the main thread
            failures.append(e)

    threads = [threading.Thread(target=go, args=(fn,)) for fn in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a request did not answer"
    if failures:
        raise failures[0]


def assert_all_released(server, down_task, n):
    """Every dependant was released by the commit that ended its last upstream run (both
    requests have answered): none is left SCHEDULED/"Waiting", which a lost release would be
    for ever, and all are ready to claim."""
    runs = server.api.list_all(task=down_task)
    assert len(runs) == n, f"{len(runs)} dependants stored of {n}"
    left = [r for r in runs if r["state"]["name"] == "Waiting"]
    assert not left, (f"{len(left)} of {n} dependants never released, e.g. {left[0]['id']}: "
                      f"{left[0]['state']}")
    assert len(claim_all(server, down_task, n)) == n


def test_dependants_submitted_while_their_upstreams_end_on_another_server_are_released(
        server_factory, shared_url):
    env = {"ERRAND_DATABASE_URL": shared_url}
    a = server_factory(env=env)
    b = server_factory(env=env)
    for _ in range(ROUNDS):
        up_task, down_task = unique_task("race-up"), unique_task("race-down")
        a.api.batch([{"task": up_task, "parameters": {"i": i}} for i in range(PER_ROUND)])
        ups = sorted(claim_all(b, up_task, PER_ROUND), key=lambda r: r["id"])
        dependants = [{"task": down_task, "parameters": {"x": {"$result": u["id"]}}}
                      for u in ups]
        at_once(lambda: a.api.batch(dependants),  # through a, while ...
                lambda: report_completed(b, ups))  # ... their upstream runs end through b
        assert_all_released(a, down_task, PER_ROUND)


def test_two_upstreams_of_one_dependant_ending_at_once_on_two_servers_release_it(
        server_factory, shared_url):
    env = {"ERRAND_DATABASE_URL": shared_url}
    a = server_factory(env=env)
    b = server_factory(env=env)
    for _ in range(ROUNDS):
        left, right = unique_task("race-l"), unique_task("race-r")
        down_task = unique_task("race-down")
        a.api.batch([{"task": left, "parameters": {"i": i}} for i in range(PER_ROUND)])
        a.api.batch([{"task": right, "parameters": {"i": i}} for i in range(PER_ROUND)])
        ls = sorted(claim_all(a, left, PER_ROUND), key=lambda r: r["id"])
        rs = sorted(claim_all(b, right, PER_ROUND), key=lambda r: r["id"])
        a.api.batch([{"task": down_task, "wait_for": [l["id"], r["id"]]}
                     for l, r in zip(ls, rs)])
        at_once(lambda: report_completed(a, ls), lambda: report_completed(b, rs))
        assert_all_released(b, down_task, PER_ROUND)
