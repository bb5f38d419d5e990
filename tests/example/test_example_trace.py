# SPDX-License-Identifier: MIT
"""
W3C trace context through the example: the traceparent header of an incoming POST /tasks is
the trace context of the run it submits (errand_trace_set in the C app's submit.c,
errand.trace_context in the FastAPI app's api.py), so one trace id follows the web request
into the background work; an invalid header is ignored, and a request without one leaves its
run without one (the next request on the same API thread, or the same event loop, does not
inherit the previous one's).
"""
import json

import requests

from stack import HTTP_TIMEOUT

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def submit(stack, token, headers=None):
    fields = {"payload": json.dumps({"text": f"trace me {token}"}), "target_type": "str",
              "instructions": f"trace {token}"}
    r = requests.post(stack.api_url + "/tasks", data=fields, headers=headers or {},
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 202, (r.status_code, r.text)
    return r.json()["task_run_id"]


def test_an_incoming_traceparent_reaches_the_run(stack, token):
    run_id = submit(stack, token, {"traceparent": TRACEPARENT})
    assert stack.run(run_id)["traceparent"] == TRACEPARENT
    # The run is found by the web request's trace id.
    r = stack.errand("GET", "/task_runs", params={"trace_id": TRACE})
    assert r.status_code == 200, r.text
    assert run_id in [run["id"] for run in r.json()["runs"]]
    # The example's own log line says the trace id beside the run id.
    m = stack.api.wait_line(f"task_run_id={run_id}.*")
    assert f"trace_id={TRACE}" in m.group(0), m.group(0)
    # Several requests after it, none with a header: none inherits the trace.
    for i in range(4):
        assert stack.run(submit(stack, f"{token}-{i}"))["traceparent"] is None
    for bad in (TRACEPARENT.upper(), f"00-{'0' * 32}-00f067aa0ba902b7-01", "garbage"):
        assert stack.run(submit(stack, f"{token}-bad", {"traceparent": bad}))["traceparent"] \
            is None


def test_the_worker_runs_the_task_in_the_request_trace(stack, fake, token):
    """The run the worker executes carries the request's trace id to the end: its log lines
    are the run's, and the run, completed, still has the request's traceparent."""
    fake.script(token, {"value": "traced"})
    run_id = submit(stack, token, {"traceparent": TRACEPARENT})
    assert stack.wait_status(run_id)["result"] == "traced"
    assert stack.run(run_id)["traceparent"] == TRACEPARENT
