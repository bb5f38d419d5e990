# SPDX-License-Identifier: MIT
"""Long-polls are woken by the events that concern them, not found by their fallback timer.

The server runs with ERRAND_POLL_RECHECK_MS at 30 s (the fallback re-check of claims and
waits), and a worker's claim long-poll lasts 10 s: without the wake-up, a run submitted to an
idle worker would be claimed only when its long-poll ends, and a /wait would answer only at
its next re-check. The bound below (a second) proves the wake-up path; it is not a speed
claim.
"""
import threading
import time

from conftest import parse_ts

FALLBACK_MS = 30000
WOKEN_WITHIN_S = 1.0
IDLE_S = 1.5  # long enough for the worker's claim to be waiting in its long-poll
ROUNDS = 3


def state_time(states, type_):
    return next(parse_ts(s["timestamp"]) for s in states if s["type"] == type_)


def test_a_submission_wakes_the_idle_workers_claim(server_factory, worker_factory):
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": str(FALLBACK_MS)})
    worker_factory(server)
    for _ in range(ROUNDS):
        time.sleep(IDLE_S)
        run = server.api.submit("errand.noop", {})
        done = server.api.wait_final(run["id"])
        assert done["state"]["type"] == "COMPLETED", done
        states = server.api.states(run["id"])
        waited = state_time(states, "PENDING") - state_time(states, "SCHEDULED")
        assert waited < WOKEN_WITHIN_S, f"claimed {waited:.3f} s after submission: {states}"


def test_a_final_report_wakes_the_wait_on_that_run(server_factory, worker_factory):
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": str(FALLBACK_MS)})
    worker_factory(server)
    for _ in range(ROUNDS):
        run = server.api.submit("errand.sleep", {"seconds": 1.0})
        # Another run's outcome must not be what wakes this wait: a quick run finishing
        # meanwhile.
        other = server.api.submit("errand.noop", {})
        answered = {}

        def wait():
            r = server.api.request("GET", f"/task_runs/{run['id']}/wait",
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
        assert late < WOKEN_WITHIN_S, f"/wait answered {late:.3f} s after the run finished"
        assert server.api.wait_final(other["id"])["state"]["type"] == "COMPLETED"
