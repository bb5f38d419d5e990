# SPDX-License-Identifier: MIT
"""Cancellation: a scheduled run is cancelled at once; a running one goes through CANCELLING
until its worker stops it; a final run cannot be cancelled (409).

A worker hears of a cancel at its next heartbeat (at least once a second while it holds runs)
and stops the task: an exec task's process gets SIGTERM (here), a C task sees
errand_task_should_stop() (the conformance suite, tests/conformance/test_stopping.py, checks
that for every worker runtime). The fallback, when the worker never hears of it, is the lease
running out: 30 s here. The bound below (STOPPED_WITHIN_S, from the server's own timestamps)
proves the heartbeat path; it is not a speed claim.
"""
from conftest import PYTHON, exec_spec, parse_ts, unique_task, write_script

LEASE_S = 30
STOPPED_WITHIN_S = 5.0


def cancel_took(server, run_id):
    """Seconds from CANCELLING to CANCELLED, as the server recorded them."""
    states = server.api.states(run_id)
    at = {s["type"]: parse_ts(s["timestamp"]) for s in states}
    return at["CANCELLED"] - at["CANCELLING"]


def test_cancel_scheduled_run_is_immediate(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {}, delay_seconds=3600)
    assert run["state"]["type"] == "SCHEDULED"
    after = server.api.cancel(run["id"])
    assert after["state"]["type"] == "CANCELLED", after
    assert after["finished"] is not None
    types = [s["type"] for s in server.api.states(run["id"])]
    assert types == ["SCHEDULED", "CANCELLED"], types


def test_cancel_running_exec_task_stops_its_process(server, worker_factory, tmp_path):
    marker = tmp_path / "finished"
    started = tmp_path / "started"
    script = write_script(tmp_path / "slow.py", f"""
import sys, time, pathlib
sys.stdin.read()
pathlib.Path({str(started)!r}).touch()
time.sleep(30)
pathlib.Path({str(marker)!r}).touch()
print("{{}}")
""")
    task = unique_task("slow")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False,
                   env={"ERRAND_LEASE_SECONDS": str(LEASE_S)})
    run = server.api.submit(task, {})
    server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING" and started.exists(),
                          what="RUNNING with its process started")
    server.api.cancel(run["id"])
    done = server.api.wait_final(run["id"], timeout=25)
    assert done["state"]["type"] == "CANCELLED", done
    assert cancel_took(server, run["id"]) < STOPPED_WITHIN_S
    assert not marker.exists()


def test_cancel_final_run_is_a_conflict(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {})
    server.api.wait_final(run["id"])
    r = server.api.request("POST", f"/task_runs/{run['id']}/cancel")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "conflict"
    assert "COMPLETED" in err["message"] or "final" in err["message"].lower(), err


def test_cancel_twice_is_a_conflict(server):
    run = server.api.submit("nobody.serves.this", {})
    server.api.cancel(run["id"])
    r = server.api.request("POST", f"/task_runs/{run['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text


def test_cancelled_run_is_never_claimed(server, worker_factory):
    run = server.api.submit("errand.noop", {"x": 1})
    server.api.cancel(run["id"])
    worker_factory(server)
    probe = server.api.submit("errand.noop", {"probe": True})
    server.api.wait_final(probe["id"])
    after = server.api.get(run["id"])
    assert after["state"]["type"] == "CANCELLED" and after["attempt"] == 0, after
