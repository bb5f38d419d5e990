# SPDX-License-Identifier: MIT
"""
The deployment's moving parts: task replicas share the load, the API answers 503 when the
errand server stops under it (an API started with no errand server at all:
test_example_failures.py), and every process stops cleanly on SIGTERM (checked when each
stack is torn down).
"""
import requests

from stack import FINAL_TIMEOUT, HTTP_TIMEOUT, wait_until

REPLICAS = 2
CONCURRENCY = 2


def test_two_task_replicas_share_the_load(make_stack, fake, token):
    s = make_stack()
    s.start_server()
    for _ in range(REPLICAS):
        s.start_worker("--concurrency", str(CONCURRENCY))
    s.start_api()
    # Every call is held until all of them are in flight at once: more than one worker can
    # take, so both must be working.
    n = REPLICAS * CONCURRENCY
    fake.script(token, {"value": "done", "hold": token})
    run_ids = [s.submit_ok({"payload": f"{token} #{i}", "target_type": "str"})
               for i in range(n)]
    wait_until(lambda: fake.waiting(token) == n, FINAL_TIMEOUT,
               f"{n} calls in flight at once")
    fake.release(token)
    for run_id in run_ids:
        assert s.wait_status(run_id)["result"] == "done"
    workers = {s.run(run_id)["worker"] for run_id in run_ids}
    assert workers == {w.worker_name for w in s.workers}


def test_errand_server_stopped_under_a_running_api(make_stack, token):
    s = make_stack(fake=None)
    s.start_server()
    s.start_api()
    assert requests.get(s.api_url + "/health", timeout=HTTP_TIMEOUT).status_code == 200
    s.server.stop()
    s.server = None
    r = s.submit({"payload": token, "target_type": "int"})
    assert r.status_code == 503 and "unavailable" in r.json()["detail"]
