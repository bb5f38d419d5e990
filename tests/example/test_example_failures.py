# SPDX-License-Identifier: MIT
"""
How the task meets a failing endpoint, and how the web API meets an errand server that is
down: errors a retry cannot fix (401, 400, a refusal, no endpoint configured) fail the run at
once with the endpoint's own message and one call; rate limits, 5xx and malformed answers
are retried with backoff (a wrong answer is never shown as the result); an errand server
that cannot be reached answers 503 (nothing was submitted).
"""
import pytest

from stack import (FINAL_TIMEOUT, RETRIES_TIMEOUT, free_port_nobody_listens_on,
                   wait_until)


def submit(stack, token, target="float"):
    return stack.submit_ok({"payload": f"the value {token}", "target_type": target})


@pytest.mark.parametrize("status,message", [
    (401, "Incorrect API key provided: sk-wrong. You can find your API key at "
          "https://platform.openai.com/account/api-keys."),
    (400, "Invalid schema for response_format 'structured_output': something is off."),
    (403, "You are not allowed to sample from this model."),
])
def test_a_refused_request_fails_at_once_with_the_endpoint_message(stack, fake, token, status,
                                                                   message):
    fake.script(token, {"status": status, "message": message})
    run_id = submit(stack, token)
    body = stack.wait_status(run_id)
    assert body["status"] == "error", body
    assert message in body["message"]
    assert f"answered {status}" in body["message"]
    assert len(fake.calls(token)) == 1, "a refused request must not be retried"
    run = stack.run(run_id)
    assert run["state"]["type"] == "FAILED" and run["attempt"] == 1


def test_an_exhausted_quota_is_not_retried(stack, fake, token):
    fake.script(token, {"status": 429, "message": "You exceeded your current quota.",
                        "type": "insufficient_quota", "code": "insufficient_quota"})
    body = stack.wait_status(submit(stack, token))
    assert body["status"] == "error" and "exceeded your current quota" in body["message"]
    assert len(fake.calls(token)) == 1


def test_a_refusal_fails_with_the_model_words(stack, fake, token):
    fake.script(token, {"refusal": "I can't help with that."})
    body = stack.wait_status(submit(stack, token))
    assert body == {"task_run_id": body["task_run_id"], "status": "error",
                    "message": "the model refused: I can't help with that."}
    assert len(fake.calls(token)) == 1


@pytest.mark.parametrize("first", [
    {"status": 503},
    {"status": 500},
    {"status": 429},
    {"content": "not json at all"},
    {"value": "three"},  # valid JSON, wrong type for float: never shown as the result
])
def test_a_transient_failure_is_retried_then_completes(stack, fake, token, first):
    fake.script(token, first, {"value": 3.5})
    run_id = submit(stack, token)
    body = stack.wait_status(run_id, timeout=RETRIES_TIMEOUT)
    assert body == {"task_run_id": run_id, "status": "completed", "result": 3.5}
    assert [c["status"] for c in fake.calls(token)] == [first.get("status", 200), 200]
    run = stack.run(run_id)
    assert run["attempt"] == 2
    states = stack.errand("GET", f"/task_runs/{run_id}/states").json()["states"]
    assert "AwaitingRetry" in [s["name"] for s in states]


def test_rate_limits_that_never_end_fail_after_every_retry(stack, fake, token):
    fake.script(token, {"status": 429})
    run_id = submit(stack, token)
    body = stack.wait_status(run_id, timeout=RETRIES_TIMEOUT)
    assert body["status"] == "error"
    assert "Rate limit reached" in body["message"] and "answered 429" in body["message"]
    assert len(fake.calls(token)) == 4  # the first attempt and 3 retries
    assert stack.run(run_id)["attempt"] == 4


def test_without_a_key_or_a_local_endpoint_runs_fail_saying_what_to_set(make_stack, token):
    s = make_stack(fake=None)
    s.start_server()
    s.start_worker()  # no OPENAI_API_KEY, no OPENAI_BASE_URL
    s.start_api()
    run_id = s.submit_ok({"payload": token, "target_type": "int"})
    body = s.wait_status(run_id)
    assert body == {"task_run_id": run_id, "status": "error", "message":
                    "set OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible "
                    "server)"}
    assert s.run(run_id)["attempt"] == 1
    s.workers[0].wait_line(r"no chat-completions endpoint configured")


def test_an_unreachable_endpoint_is_retried(make_stack, fake_session, token):
    """A base URL where nothing listens: network errors are transient, so the run waits for
    a retry (here it never succeeds, so we only look at the first failure)."""
    s = make_stack(fake=None)
    s.start_server()
    dead = f"http://127.0.0.1:{free_port_nobody_listens_on()}/v1"
    s.start_worker(env={"OPENAI_BASE_URL": dead})
    s.start_api()
    run_id = s.submit_ok({"payload": token, "target_type": "int"})

    def awaiting_retry():
        states = s.errand("GET", f"/task_runs/{run_id}/states").json()["states"]
        return [st for st in states if st["name"] == "AwaitingRetry"]
    (st, *_) = wait_until(awaiting_retry, FINAL_TIMEOUT, "the run to await a retry")
    assert "could not reach" in st["message"] and dead in st["message"]
    assert s.status(run_id).json()["status"] == "pending"
    s.errand("POST", f"/task_runs/{run_id}/cancel")


def test_cancelling_a_run_aborts_the_call_in_flight(stack, fake, token):
    fake.script(token, {"value": 1, "hold": token})  # the model never answers on its own
    run_id = submit(stack, token, "int")
    wait_until(lambda: fake.waiting(token) == 1, FINAL_TIMEOUT, "the task to call the model")
    assert stack.errand("POST", f"/task_runs/{run_id}/cancel").status_code == 200
    wait_until(lambda: stack.run(run_id)["state"]["type"] == "CANCELLED", FINAL_TIMEOUT,
               "the worker to stop the call and report the run cancelled")
    assert fake.waiting(token) == 1, "cancelled while the call was still held"
    body = stack.status(run_id).json()
    assert body["status"] == "error" and body["message"]


def test_an_errand_server_that_is_down_is_503(make_stack, token):
    s = make_stack(fake=None)
    dead = f"http://127.0.0.1:{free_port_nobody_listens_on()}/api"
    s.start_api(errand_url=dead)
    r = s.submit({"payload": token, "target_type": "int"})
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert detail.startswith("could not submit the task"), detail
    assert dead in detail and "unavailable" in detail and "try again" in detail
    r = s.status("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21")
    assert r.status_code == 503, r.text
    assert dead in r.json()["detail"] and "try again" in r.json()["detail"]
    # Validation needs no server.
    assert s.submit({"payload": token}).status_code == 422
