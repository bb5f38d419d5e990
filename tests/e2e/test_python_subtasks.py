# SPDX-License-Identifier: MIT
"""Subtasks in the Python runtime (docs/architecture.md, "Subtasks"): a task that calls
``.delay()`` then ``.result()`` lends its slot while it waits, so errand.serve with limit 1
whose task waits for ten subtasks of the same task runs them all, a few hundred concurrent
parent->child waits all complete, past max_waiting a wait keeps its slot (max_waiting 0: the
old deadlock, which the parent's timeout ends) and a cancel ends a waiting parent."""
import time

from errand_procs import log_msg_is
from test_python_runtime import client, py_worker  # noqa: F401 (the fixtures)


def test_limit_1_runs_ten_subtasks_of_the_task_it_waits_on(server, py_worker, client):
    py_worker(server, limit=1)
    run = client.submit("py.node", {"children": 10, "value": 7}, timeout_seconds=120)
    done = client.wait(run.id, timeout=90)
    assert done.state.is_completed(), done.state
    assert done.result["sum"] == sum(700 + i for i in range(10)), done.result
    assert len(done.result["children"]) == 10
    for child in done.result["children"]:
        c = client.get(child)
        assert c.task == "py.node" and c.state.is_completed(), c


def test_a_few_hundred_concurrent_parent_child_waits_all_complete(server, py_worker, client):
    n = 300
    # One process per waiting parent: limit 2, 350 lendable slots.
    w = py_worker(server, limit=2, max_waiting=350)
    runs = client.submit_batch([{"task": "py.node", "parameters": {"children": 1, "value": i},
                                 "timeout_seconds": 300} for i in range(n)])
    deadline = time.monotonic() + 240
    missed = []
    for i, run in enumerate(runs):
        done = client.wait(run.id, timeout=max(1, deadline - time.monotonic()))
        if not done.state.is_completed() or done.result["sum"] != i * 100:
            missed.append((i, done.state, done.result))
    assert not missed, missed[:5]
    assert "keeps its slot" not in w.proc.log_path.read_text()


def test_without_lending_the_wait_keeps_its_slot_and_the_parents_timeout_ends_it(
        server, py_worker, client):
    w = py_worker(server, limit=1, max_waiting=0)
    run = client.submit("py.node", {"children": 1, "value": 3}, timeout_seconds=3)
    started = time.monotonic()
    done = client.wait(run.id, timeout=30)
    assert done.state.is_failed() and "timed out" in done.state.message, done.state
    assert time.monotonic() - started < 3 + 5
    w.proc.wait_line(lambda l: "keeps its slot" in l, 10, "the warning, once")
    # The slot is free again: the child runs.
    [child] = [r for r in client.list_runs(task="py.node")[0] if r.id != run.id]
    assert client.wait(child.id, timeout=30).state.is_completed()


def test_cancelling_a_waiting_parent_ends_it(server, py_worker, client):
    py_worker(server, limit=1)
    run = client.submit("py.node", {"children": 1, "child_task": "py.nobody"})
    deadline = time.monotonic() + 30
    while not client.get(run.id).state.is_running():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)  # well into its wait
    # The slot is lent: another run starts and completes meanwhile.
    other = client.submit("py.node", {"value": 5})
    assert client.wait(other.id, timeout=30).state.is_completed()
    started = time.monotonic()
    client.cancel(run.id)
    assert client.wait(run.id, timeout=30).state.is_cancelled()
    assert time.monotonic() - started < 6  # the cancel's kill (2 s) at the latest


def test_a_parent_under_its_tasks_limit_of_1_lets_its_subtasks_have_the_slot(
        server, py_worker, client):
    """The task's limit is 1 and the parent holds it; while the parent waits its worker says
    so in a heartbeat, the server gives the slot to the subtasks, and the parent takes it
    back when it resumes."""
    r = server.api.request("POST", "/limits", json_body={"task": "py.node", "max_running": 1})
    assert r.status_code == 200, r.text
    py_worker(server, limit=4)
    run = client.submit("py.node", {"children": 3, "value": 2}, timeout_seconds=120)
    done = client.wait(run.id, 60)
    assert done.state.is_completed(), done.state
    assert done.result["sum"] == sum(200 + i for i in range(3))
    assert server.api.get_json("/limits")["limits"][0]["held"] == 0
