# SPDX-License-Identifier: MIT
"""Stopping: a cancel reaches the running task through the heartbeats, and a worker stopped
with SIGTERM (a deploy) hands its runs back to run elsewhere at once (docs/api.md,
"POST /api/workers/heartbeat", "Delivery guarantees")."""
import time

from harness import parse_ts
from runtime import TASK_ECHO, TASK_SLEEP

# The fallback when a worker never hears of a cancel is the lease running out: 30 s here. A
# worker hears of it at its next heartbeat (liberrand beats at least once a second while it
# holds runs), so the bound below, from the server's own timestamps, proves the heartbeat
# path; it is not a speed claim. It leaves room for a slow (sanitizer) build, and stays under
# the 5 s after which liberrand reports a cancelled task that did not return as CANCELLED.
CANCEL_LEASE_S = 30
STOPPED_WITHIN_S = 3.0


def test_a_cancel_reaches_the_running_task_within_about_a_second(server, worker_factory):
    worker_factory(server, lease_seconds=CANCEL_LEASE_S)
    run = server.api.submit(TASK_SLEEP, {"seconds": 30})
    server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING", what="RUNNING")
    after = server.api.cancel(run["id"])
    assert after["state"]["type"] == "CANCELLING", after
    done = server.api.wait_final(run["id"], timeout=25)
    assert done["state"]["type"] == "CANCELLED", done
    states = server.api.states(run["id"])
    assert [s["type"] for s in states][-2:] == ["CANCELLING", "CANCELLED"], states
    at = {s["type"]: parse_ts(s["timestamp"]) for s in states}
    took = at["CANCELLED"] - at["CANCELLING"]
    assert took < STOPPED_WITHIN_S, f"CANCELLING to CANCELLED took {took:.3f} s"
    # The task itself was told: it stopped sleeping and said so in its log.
    logs = [entry["message"] for entry in server.api.logs(run["id"])["logs"]]
    assert any(m.startswith("stopped after") for m in logs), logs


PREFETCHED = 3
GRACE_S = 1.0


def test_sigterm_hands_back_unstarted_runs_at_once_and_running_ones_after_the_grace(
        server, worker_factory):
    """A deploy: the stopped worker hands back the runs it claimed but had not started (with
    prefetch it holds some) at once, free, and the run still running when its grace ends as a
    redelivery, so a run with retries 0 survives; another worker runs them all long before
    their 30 s leases would have run out."""
    a = worker_factory(server, concurrency=1, prefetch=PREFETCHED, grace_seconds=GRACE_S)
    long_run = server.api.submit(TASK_SLEEP, {"seconds": 3}, retries=0)
    server.api.wait_state(long_run["id"], lambda r: r["state"]["type"] == "RUNNING",
                          what="RUNNING")
    queued = server.api.batch([{"task": TASK_ECHO, "parameters": {"i": i}, "retries": 0}
                               for i in range(PREFETCHED)])
    for q in queued:  # prefetched: claimed by the busy worker, waiting for its slot
        server.api.wait_state(q["id"], lambda r: r["state"]["type"] == "PENDING"
                              and r["worker"] == a.name, what="PENDING on the first worker")
    b = worker_factory(server, concurrency=2)
    stopped = time.monotonic()
    sigterm_at = time.time()
    rc = a.stop(30)
    assert rc == 0, f"exit status {rc} after SIGTERM:\n{a.output()}"
    handed_back_at = []
    for q in queued:
        done = server.api.wait_final(q["id"], timeout=20)
        assert done["state"]["type"] == "COMPLETED" and done["worker"] == b.name, done
        assert done["attempt"] == 1 and done["redeliveries"] == 0, done
        handed_back_at.append(state_time(server, q["id"], "handed back by worker " + a.name))
    done = server.api.wait_final(long_run["id"], timeout=20)
    assert done["state"]["type"] == "COMPLETED" and done["worker"] == b.name, done
    assert done["attempt"] == 1 and done["redeliveries"] == 1, done
    cut_short_at = state_time(server, long_run["id"],
                              "before the task finished; redelivery 1 of 5")
    assert time.monotonic() - stopped < 20, "handed back, not left to a 30 s lease expiry"
    # In that order: the unstarted runs at once, the running one when its grace was over.
    assert cut_short_at - sigterm_at >= GRACE_S - 0.1, "the running task had its grace"
    assert cut_short_at - max(handed_back_at) >= GRACE_S / 2, \
        "the unstarted runs went back at once, not at the end of the grace"


def state_time(server, run_id, words):
    """The server's time of the run's first state whose message holds `words`."""
    states = server.api.states(run_id)
    times = [parse_ts(s["timestamp"]) for s in states if words in s["message"]]
    assert times, f"no state saying '{words}': {states}"
    return times[0]
