# SPDX-License-Identifier: MIT
"""Lost answers and late outcomes, driven by hand over the worker protocol's raw HTTP (no
worker process): a report batch sent again is applied once, and an outcome that comes after
its lease ran out is taken while nobody claimed the run again. These check the server; what a
worker runtime must do about lost answers is checked for every runtime by the conformance
suite (tests/conformance/test_lost_answers.py)."""
from conftest import unique_task, wait_until


def test_a_report_sent_twice_is_applied_once(server):
    """A worker that did not get the answer to a report sends the same batch again: the
    server answers it as applied (not as a stale lease) and stores its log lines once."""
    api = server.api
    task = unique_task("twice")
    run = api.submit(task, {})
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "w1", "tasks": [task], "wait_seconds": 5}).json()["runs"][0]
    token = claim["lease_token"]
    body = {"worker": "w1", "batch_id": "batch-0001",
            "reports": [{"id": run["id"], "lease_token": token, "state": "RUNNING"},
                        {"id": run["id"], "lease_token": token, "state": "COMPLETED",
                         "result": {"ok": True}}],
            "logs": [{"id": run["id"], "level": "info", "message": "once"}]}
    for attempt in range(2):
        r = api.request("POST", "/workers/report", json_body=body)
        assert r.status_code == 200, (attempt, r.text)
        assert [x["status"] for x in r.json()["reports"]][-1] == 200, r.text
        assert r.json()["reports"][-1]["state"] == "COMPLETED"
    assert [l["message"] for l in api.logs(run["id"])["logs"]] == ["once"]
    assert [s["type"] for s in api.states(run["id"])] == \
        ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    # Another report with that token is not the one that was applied: stale.
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": token, "state": "FAILED", "message": "late"}]})
    assert r.status_code == 409, r.text
    assert api.get(run["id"])["state"]["type"] == "COMPLETED"


def test_an_outcome_after_the_lease_expired_is_accepted_while_not_claimed_again(server_factory):
    """A slow report must not turn one execution into two: its run still waits in the queue,
    so the outcome is the run's (a run claimed again meanwhile refuses it: test_crash)."""
    server = server_factory(env={"ERRAND_SWEEP_INTERVAL_MS": "100"})
    api = server.api
    task = unique_task("late")
    run = api.submit(task, {}, retries=2)
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "w1", "tasks": [task], "wait_seconds": 5, "lease_seconds": 1}).json()["runs"][0]
    wait_until(lambda: api.get(run["id"])["state"]["type"] == "SCHEDULED", 30,
               "the lease expired")
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": claim["lease_token"], "state": "COMPLETED",
         "result": 7}]})
    assert r.status_code == 200, r.text
    done = api.get(run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == 7, done
    assert done["attempt"] == 1 and done["redeliveries"] == 0, done
    states = api.states(run["id"])
    assert [s["type"] for s in states] == \
        ["SCHEDULED", "PENDING", "SCHEDULED", "PENDING", "COMPLETED"], states
    assert "lease resumed by worker w1" in states[3]["message"], states
