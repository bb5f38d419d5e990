# SPDX-License-Identifier: MIT
"""
GET /tasks/{id}/status follows the seed's get_task_result for every state a run can be in.
Runs are put into each state through errand's own HTTP API (a task name no worker serves,
claimed and reported by the test itself), then read through the example's API (either app:
conftest.py); a run that ended without a message still says why.
"""
import uuid

from stack import FINAL_TIMEOUT, wait_until

WORKER = "status-test-worker"


def submit_raw(stack, token, **fields):
    body = {"task": f"status_probe_{token}", "parameters": {"t": token}, **fields}
    r = stack.errand("POST", "/task_runs", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def claim(stack, token, lease_seconds=30):
    r = stack.errand("POST", "/workers/claim", json={
        "worker": WORKER, "tasks": [f"status_probe_{token}"], "limit": 1, "wait_seconds": 5,
        "lease_seconds": lease_seconds})
    assert r.status_code == 200, r.text
    (run,) = r.json()["runs"]
    return run


def report(stack, run, **fields):
    r = stack.errand("POST", "/workers/report", json={"worker": WORKER, "reports": [
        {"id": run["id"], "lease_token": run["lease_token"], **fields}]})
    assert r.status_code == 200, r.text


def state(stack, run_id):
    return stack.run(run_id)["state"]


def expect(stack, run_id, status, **extra):
    r = stack.status(run_id)
    assert r.status_code == 200, r.text
    assert r.json() == {"task_run_id": run_id, "status": status, **extra}


def test_scheduled_for_later_is_pending(stack, token):
    run_id = submit_raw(stack, token, delay_seconds=3600)
    assert state(stack, run_id)["type"] == "SCHEDULED"
    expect(stack, run_id, "pending")


def test_claimed_running_cancelling_are_pending_and_cancelled_is_an_error(stack, token):
    run_id = submit_raw(stack, token)
    run = claim(stack, token)
    assert state(stack, run_id)["type"] == "PENDING"
    expect(stack, run_id, "pending")
    report(stack, run, state="RUNNING")
    assert state(stack, run_id)["type"] == "RUNNING"
    expect(stack, run_id, "pending")
    assert stack.errand("POST", f"/task_runs/{run_id}/cancel").status_code == 200
    assert state(stack, run_id)["type"] == "CANCELLING"
    expect(stack, run_id, "pending")
    report(stack, run, state="CANCELLED")
    assert state(stack, run_id)["type"] == "CANCELLED"
    body = stack.status(run_id).json()
    assert body["status"] == "error" and body["message"]


def test_cancelled_before_it_started_is_an_error_with_a_message(stack, token):
    run_id = submit_raw(stack, token, delay_seconds=3600)
    assert stack.errand("POST", f"/task_runs/{run_id}/cancel").status_code == 200
    assert state(stack, run_id)["type"] == "CANCELLED"
    body = stack.status(run_id).json()
    assert body["status"] == "error" and body["message"]


def test_completed_gives_the_result(stack, token):
    run_id = submit_raw(stack, token)
    run = claim(stack, token)
    report(stack, run, state="COMPLETED", result={"answer": [1, 2.5, "x", None, True]})
    expect(stack, run_id, "completed", result={"answer": [1, 2.5, "x", None, True]})


def test_completed_with_a_null_result(stack, token):
    run_id = submit_raw(stack, token)
    report(stack, claim(stack, token), state="COMPLETED", result=None)
    expect(stack, run_id, "completed", result=None)


def test_failed_gives_the_message(stack, token):
    run_id = submit_raw(stack, token)
    report(stack, claim(stack, token), state="FAILED", message=f"boom {token}",
           retryable=False)
    assert state(stack, run_id)["type"] == "FAILED"
    expect(stack, run_id, "error", message=f"boom {token}")


def test_awaiting_retry_is_pending(stack, token):
    run_id = submit_raw(stack, token, retries=1, retry_delay_seconds=3600)
    report(stack, claim(stack, token), state="FAILED", message="transient")
    st = state(stack, run_id)
    assert (st["type"], st["name"]) == ("SCHEDULED", "AwaitingRetry")
    expect(stack, run_id, "pending")


def test_crashed_is_an_error(stack, token):
    run_id = submit_raw(stack, token)

    def lost_again():
        """A worker that claims the run and is never heard of again, each time the run is
        redelivered, until the server's redelivery limit ends it CRASHED."""
        now = state(stack, run_id)["type"]
        if now == "SCHEDULED":
            claim(stack, token, lease_seconds=1)
        return now == "CRASHED"

    wait_until(lost_again, FINAL_TIMEOUT, "the leases to expire and the run to crash")
    body = stack.status(run_id).json()
    assert body["status"] == "error" and body["message"]


def test_ids_in_other_spellings_are_accepted(stack, token):
    run_id = submit_raw(stack, token, delay_seconds=3600)
    for spelling in (run_id.upper(), run_id.replace("-", "")):
        r = stack.status(spelling)
        assert r.status_code == 200, r.text
        assert r.json() == {"task_run_id": run_id, "status": "pending"}


def test_unknown_id_is_404(stack):
    unknown = str(uuid.uuid4())
    r = stack.status(unknown)
    assert r.status_code == 404
    assert r.json() == {"detail": f"Task run {unknown} not found"}


def test_malformed_ids_are_422_like_fastapi(stack):
    for bad in ("not-a-uuid", "123", "0193" + "g" * 28, "x" * 36,
                "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b2Z"):
        r = stack.status(bad)
        assert r.status_code == 422, (bad, r.text)
        (d,) = r.json()["detail"]
        assert d["loc"] == ["path", "task_run_id"]
        assert d["type"] == "uuid_parsing"
        assert d["msg"].startswith("Input should be a valid UUID")
        assert d["input"] == bad
