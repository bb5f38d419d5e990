# SPDX-License-Identifier: MIT
"""Idempotency keys (one run per key, even under concurrent submissions) and cache keys
(a matching completed run answers at once, as COMPLETED/Cached, until it expires)."""
import threading
import time

from conftest import Api, PYTHON, exec_spec, parse_ts, unique_task, write_script

# Counts its invocations in the file named by its parameters and returns the count.
COUNTING = """
import json, os, sys
p = json.load(sys.stdin)
fd = os.open(p["counter"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, b".")
os.close(fd)
print(json.dumps({"value": p["value"], "calls": os.path.getsize(p["counter"])}))
"""


def test_idempotency_key_returns_the_first_run(server):
    task = unique_task("idem")
    first = server.api.request("POST", "/task_runs", json_body={
        "task": task, "parameters": {"n": 1}, "idempotency_key": "order-42"})
    assert first.status_code == 201, first.text
    second = server.api.request("POST", "/task_runs", json_body={
        "task": task, "parameters": {"n": 2}, "idempotency_key": "order-42"})
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["parameters"] == {"n": 1}, "the first run, not the second body"
    assert first.json()["idempotency_key"] == "order-42"
    assert len(server.api.list_all(task=task)) == 1


def test_idempotency_key_in_a_batch(server):
    task = unique_task("idem")
    a = server.api.submit(task, {}, idempotency_key="batch-key")
    runs = server.api.batch([{"task": task, "idempotency_key": "batch-key"},
                             {"task": task, "idempotency_key": "other-key"}])
    assert runs[0]["id"] == a["id"]
    assert runs[1]["id"] != a["id"]
    assert len(server.api.list_all(task=task)) == 2


def test_concurrent_submissions_with_one_key_make_one_run(server):
    task = unique_task("idem")
    n = 24
    barrier = threading.Barrier(n)
    answers = [None] * n

    def go(i):
        api = Api(server.url)
        barrier.wait()
        r = api.request("POST", "/task_runs", json_body={
            "task": task, "parameters": {"i": i}, "idempotency_key": "race"})
        answers[i] = (r.status_code, r.json().get("id"))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [a[0] for a in answers]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(200) == n - 1, statuses
    assert len({a[1] for a in answers}) == 1
    assert len(server.api.list_all(task=task)) == 1


def counting_task(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "count.py", COUNTING)
    task = unique_task("counted")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False)
    return task


def test_cache_key_answers_from_the_completed_run_without_running(server, worker_factory,
                                                                  tmp_path):
    task = counting_task(server, worker_factory, tmp_path)
    counter = tmp_path / "calls"
    params = {"counter": str(counter), "value": "x"}
    first = server.api.submit(task, params, cache_key="k-forever")
    done = server.api.wait_final(first["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == {"value": "x", "calls": 1}

    second = server.api.submit(task, params, cache_key="k-forever")
    assert second["id"] != first["id"]
    assert second["state"]["type"] == "COMPLETED", second
    assert second["state"]["name"] == "Cached"
    assert second["result"] == done["result"]
    assert second["cache_key"] == "k-forever"
    types = [s["type"] for s in server.api.states(second["id"])]
    assert "PENDING" not in types and "RUNNING" not in types, types
    # A third, different key runs again; the cached one never did.
    third = server.api.submit(task, params, cache_key="k-other")
    assert server.api.wait_final(third["id"])["result"]["calls"] == 2
    assert counter.read_text() == ".."


def test_cache_key_of_an_unfinished_run_does_not_serve(server):
    task = unique_task("nobody")
    a = server.api.submit(task, {}, cache_key="pending-key")
    b = server.api.submit(task, {}, cache_key="pending-key")
    assert b["state"]["type"] == "SCHEDULED" and b["id"] != a["id"]


def test_cache_expiration_is_respected(server, worker_factory, tmp_path):
    task = counting_task(server, worker_factory, tmp_path)
    counter = tmp_path / "calls"
    params = {"counter": str(counter), "value": "y"}
    first = server.api.submit(task, params, cache_key="k-short", cache_expiration_seconds=1)
    done = server.api.wait_final(first["id"])
    assert done["state"]["type"] == "COMPLETED", done
    # Within the expiry (measured from completion) the result is cached...
    hit = server.api.submit(task, params, cache_key="k-short", cache_expiration_seconds=1)
    if time.time() < parse_ts(done["finished"]) + 1.0:
        assert hit["state"]["name"] == "Cached", hit
    else:  # this machine was too slow to see the hit; the rest still holds
        hit = server.api.wait_final(hit["id"])
    calls_before = len(counter.read_text())
    # ...after it, the run executes again.
    last = max(parse_ts(done["finished"]), parse_ts(hit["finished"]))
    wait_s = last + 1.2 - time.time()
    if wait_s > 0:
        time.sleep(wait_s)  # waiting for wall-clock expiry is the behaviour under test
    again = server.api.submit(task, params, cache_key="k-short")
    assert again["state"]["type"] == "SCHEDULED", f"expired cache served a result: {again}"
    fin = server.api.wait_final(again["id"])
    assert fin["state"]["name"] == "Completed" and fin["result"]["calls"] == calls_before + 1
