# SPDX-License-Identifier: MIT
"""Leases: a worker holds each run under a lease that its heartbeats keep alive, however long
the task runs and however slowly the server takes its reports; a worker that dies loses its
runs to another worker once the lease runs out (docs/api.md, "Leases", "Delivery
guarantees")."""
import time

from harness import parse_ts
from runtime import TASK_SLEEP

# The server's sweeper looks for expired leases every 100 ms, so a lease the worker failed
# to keep shows as an expiry within a moment.
SWEEP_ENV = {"ERRAND_SWEEP_INTERVAL_MS": 100}

LONG_LEASE_S = 2
LONG_RUN_S = 3.5


def test_heartbeats_keep_a_long_runs_lease(server_factory, worker_factory):
    """A run that lasts longer than its lease completes under that one lease: no expiry, no
    redelivery. (Without heartbeats the lease runs out mid-run and the history says so, even
    when the late outcome is taken afterwards.)"""
    server = server_factory(env=SWEEP_ENV)
    worker = worker_factory(server, lease_seconds=LONG_LEASE_S)
    run = server.api.submit(TASK_SLEEP, {"seconds": LONG_RUN_S}, retries=0)
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["worker"] == worker.name, done
    assert done["attempt"] == 1 and done["redeliveries"] == 0, done
    states = server.api.states(run["id"])
    assert [s["type"] for s in states] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"], \
        states
    # The server stamps `started` and `finished` when the reports arrive, each a little after
    # the task began or ended (a start seen 11 ms later than its end was, on a busy machine):
    # what must hold is that the run lasted well past its lease.
    started, finished = parse_ts(done["started"]), parse_ts(done["finished"])
    assert finished - started >= LONG_LEASE_S + 1, "the run outlasted its lease"


SLOW_LEASE_S = 3
REPORT_DELAY_S = 4  # longer than the lease
SLOW_RUNS = 3


def test_slow_reports_do_not_cost_a_healthy_worker_its_leases(server, link_proxy,
        worker_factory):
    """While the server takes 4 s to answer each report, a worker with 3 s leases keeps them
    (heartbeats must not wait behind reports), and its runs complete rather than expire."""
    proxy = link_proxy(server, delay=REPORT_DELAY_S)
    runs = server.api.batch([{"task": TASK_SLEEP, "parameters": {"seconds": 0.5},
                              "retries": 0} for _ in range(SLOW_RUNS)])
    worker_factory(server, api_url=proxy.url, lease_seconds=SLOW_LEASE_S,
                   concurrency=SLOW_RUNS)
    finals = server.api.wait_all_final([r["id"] for r in runs], timeout=120)
    assert [f["state"]["type"] for f in finals.values()] == ["COMPLETED"] * SLOW_RUNS, \
        [f["state"] for f in finals.values()]
    assert all(f["redeliveries"] == 0 for f in finals.values()), list(finals.values())


KILL_LEASE_S = 2
KILL_RUN_S = 4
# The run is back on another worker once the 2 s lease ran out, and takes its 4 s there: far
# less than if the worker had not asked for the lease it was given (the server's 30 s).
KILL_DONE_WITHIN_S = 20


def test_a_killed_workers_run_is_redelivered_after_the_lease(server_factory, worker_factory):
    """A lost worker is a redelivery: with retries 0 the run still completes on another
    worker once the lease ran out, its attempt count untouched."""
    server = server_factory(env=SWEEP_ENV)
    first = worker_factory(server, lease_seconds=KILL_LEASE_S)
    run = server.api.submit(TASK_SLEEP, {"seconds": KILL_RUN_S}, retries=0)
    running = server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING",
                                    what="RUNNING on the first worker")
    assert running["worker"] == first.name and running["attempt"] == 1, running
    second = worker_factory(server, lease_seconds=KILL_LEASE_S)
    killed_at = time.monotonic()
    first.kill9()

    done = server.api.wait_final(run["id"], timeout=60)
    assert done["state"]["type"] == "COMPLETED", done
    assert done["attempt"] == 1 and done["redeliveries"] == 1, done
    assert done["worker"] == second.name, done["worker"]
    took = time.monotonic() - killed_at
    assert took >= 1.0, "the run waited for the lease to run out"
    assert took < KILL_DONE_WITHIN_S, f"done {took:.1f} s after the kill: the lease was not 2 s"
    states = server.api.states(run["id"])
    expired = [s for s in states if s["type"] == "SCHEDULED" and "lease" in s["message"].lower()]
    assert expired, f"a SCHEDULED state saying the lease expired: {states}"
    assert first.name in expired[0]["message"], expired[0]
    assert "redelivery 1 of 5" in expired[0]["message"], expired[0]
    assert second.running()
