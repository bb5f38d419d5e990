# SPDX-License-Identifier: MIT
"""
How the FastAPI example's task meets a failing endpoint, and how the app meets an errand
server that is down: errors a retry cannot fix (401, 400, a refusal, no endpoint configured)
fail the run at once with the endpoint's own message; a 5xx is retried; an errand server
that cannot be reached answers 503 (nothing was submitted).
"""
import pytest

from fastapi_stack import FastAPIStack
from stack import RETRIES_TIMEOUT, free_port_nobody_listens_on


def submit(stack, token, target="float"):
    return stack.submit_ok({"payload": f"the value {token}", "target_type": target})


@pytest.mark.parametrize("status,message", [
    (401, "Incorrect API key provided: sk-wrong. You can find your API key at "
          "https://platform.openai.com/account/api-keys."),
    (400, "Invalid schema for response_format 'structured_output': something is off."),
])
def test_a_refused_request_fails_at_once_with_the_endpoint_message(stack, fake, token, status,
                                                                   message):
    fake.script(token, {"status": status, "message": message})
    run_id = submit(stack, token)
    body = stack.wait_status(run_id)
    assert body["status"] == "error", body
    assert message in body["message"] and f"answered {status}" in body["message"]
    assert len(fake.calls(token)) == 1, "a refused request must not be retried"
    run = stack.run(run_id)
    assert run["state"]["type"] == "FAILED" and run["attempt"] == 1


def test_a_refusal_fails_with_the_model_words(stack, fake, token):
    fake.script(token, {"refusal": "I can't help with that."})
    body = stack.wait_status(submit(stack, token))
    assert body == {"task_run_id": body["task_run_id"], "status": "error",
                    "message": "the model refused: I can't help with that."}


def test_a_server_error_is_retried_then_completes(stack, fake, token):
    fake.script(token, {"status": 503}, {"value": 3.5})
    run_id = submit(stack, token)
    body = stack.wait_status(run_id, timeout=RETRIES_TIMEOUT)
    assert body == {"task_run_id": run_id, "status": "completed", "result": 3.5}
    assert [c["status"] for c in fake.calls(token)] == [503, 200]
    states = stack.errand("GET", f"/task_runs/{run_id}/states").json()["states"]
    assert "AwaitingRetry" in [s["name"] for s in states]


def test_without_a_key_or_a_local_endpoint_runs_fail_saying_what_to_set(tmp_path, token):
    s = FastAPIStack(tmp_path, fake=None)
    try:
        s.start()  # no OPENAI_API_KEY, no OPENAI_BASE_URL
        run_id = s.submit_ok({"payload": token, "target_type": "int"})
        body = s.wait_status(run_id)
        assert body == {"task_run_id": run_id, "status": "error", "message":
                        "set OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible "
                        "server)"}
        assert s.run(run_id)["attempt"] == 1
        s.workers[0].wait_line(r"no chat-completions endpoint configured")
    finally:
        s.stop()


def test_an_errand_server_that_is_down_is_503(tmp_path):
    s = FastAPIStack(tmp_path)
    dead = f"http://127.0.0.1:{free_port_nobody_listens_on()}/api"
    try:
        s.start_api(errand_url=dead)
        r = s.status("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21")
        assert r.status_code == 503, r.text
        assert dead in r.json()["detail"] and "try again" in r.json()["detail"]
        r = s.submit({"payload": "x", "target_type": "int"})
        assert r.status_code == 503, r.text
        assert r.json()["detail"].startswith("could not submit the task")
    finally:
        s.stop()
