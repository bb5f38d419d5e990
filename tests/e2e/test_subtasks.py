# SPDX-License-Identifier: MIT
"""Subtasks that cannot deadlock (errand_task_submit / errand_task_wait, docs/architecture.md
"Subtasks"): a run that waits for a subtask lends its slot, so a worker with concurrency 1
whose task waits for ten subtasks of the same task runs them all, on threads or in isolated
child processes; a thousand concurrent parent->child waits all complete; past max_waiting a
wait keeps its slot (max_waiting 0: the old deadlock, which the parent's timeout ends);
the parent's cancel ends its wait at once."""
import time

import pytest

from conftest import BUILD
from errand_procs import Process, child_env, log_msg_is

SUBTASK_WORKER = BUILD / "tests" / "subtask-worker"
ISOLATE = [pytest.param((), id="threads"), pytest.param(("--isolate",), id="isolate")]


def start_worker(server, tmp_path, *args, name="subtask-worker"):
    extra = {"ERRAND_API_URL": server.url}
    if server.key:
        extra["ERRAND_API_KEY"] = server.key
    proc = Process([str(SUBTASK_WORKER), *args], child_env(server.home, extra),
                   tmp_path / f"{name}.log", name)
    proc.wait_line(lambda l: log_msg_is(l, "worker started"), 20, "worker started")
    return proc


def stop_clean(proc):
    """SIGTERM: the worker exits 0 with no sanitizer report (leaks included)."""
    proc.check_clean_exit(proc.stop())


def log_text(proc):
    return proc.log_path.read_text()


@pytest.mark.parametrize("isolate", ISOLATE)
def test_concurrency_1_runs_ten_subtasks_of_the_task_it_waits_on(server, tmp_path, isolate):
    proc = start_worker(server, tmp_path, "--concurrency", "1", *isolate)
    try:
        run = server.api.submit("sub.node", {"children": 10, "value": 7}, timeout_seconds=120)
        done = server.api.wait_final(run["id"], timeout=90)
        assert done["state"]["type"] == "COMPLETED", done["state"]
        result = done["result"]
        assert result["sum"] == sum(700 + i for i in range(10)), result
        assert len(result["children"]) == 10
        for child in result["children"]:
            c = server.api.get(child)
            assert c["task"] == "sub.node" and c["state"]["type"] == "COMPLETED", c
            assert c["traceparent"] is None  # the parent had no trace: none invented
    finally:
        stop_clean(proc)


def test_a_thousand_concurrent_parent_child_waits_all_complete(server, tmp_path):
    n = 1000
    # Two workers of 4 slots; 600 lendable slots each: every parent can wait at once.
    procs = [start_worker(server, tmp_path, "--concurrency", "4", "--max-waiting", "600",
                          name=f"subtask-worker-{i}") for i in range(2)]
    try:
        runs = server.api.batch([{"task": "sub.node", "parameters": {"children": 1, "value": i},
                                  "timeout_seconds": 300} for i in range(n)])
        deadline = time.monotonic() + 240
        missed = []
        for i, run in enumerate(runs):
            done = server.api.wait_final(run["id"], timeout=max(1, deadline - time.monotonic()))
            if done["state"]["type"] != "COMPLETED" or done["result"]["sum"] != i * 100:
                missed.append((i, done["state"], done.get("result")))
        assert not missed, missed[:5]
        # Waits did lend their slots: far more runs were started than a worker has slots.
        text = "".join(log_text(p) for p in procs)
        assert "keeps its slot" not in text
    finally:
        for p in procs:
            stop_clean(p)


@pytest.mark.parametrize("isolate", ISOLATE)
def test_without_lending_the_wait_keeps_its_slot_and_the_parents_timeout_ends_it(
        server, tmp_path, isolate):
    # max_waiting 0: the old behaviour, documented: concurrency 1 and a parent
    # waiting for a child of its own worker cannot go on; its timeout ends the wait promptly.
    proc = start_worker(server, tmp_path, "--concurrency", "1", "--max-waiting", "0", *isolate)
    try:
        run = server.api.submit("sub.node", {"children": 1, "value": 3}, timeout_seconds=3)
        started = time.monotonic()
        done = server.api.wait_final(run["id"], timeout=30)
        took = time.monotonic() - started
        assert done["state"]["type"] == "FAILED", done["state"]
        assert "timed out" in done["state"]["message"], done["state"]
        assert took < 3 + 5, took  # the wait ended at the timeout, not at some later poll
        proc.wait_line(lambda l: "keeps its slot" in l, 10, "the warning, once")
        assert log_text(proc).count("keeps its slot") == 1
        # The slot is free again: the child runs.
        [child] = [c for c in server.api.list_all(task="sub.node") if c["id"] != run["id"]]
        assert child["parameters"] == {"value": 300}, child
        assert server.api.wait_final(child["id"], timeout=30)["state"]["type"] == "COMPLETED"
    finally:
        stop_clean(proc)


@pytest.mark.parametrize("isolate", ISOLATE)
def test_cancelling_a_waiting_parent_ends_its_wait_at_once(server, tmp_path, isolate):
    proc = start_worker(server, tmp_path, "--concurrency", "1", *isolate)
    try:
        # Its child is of a task nobody serves: the parent waits until it is stopped.
        run = server.api.submit("sub.node", {"children": 1, "child_task": "sub.nobody"})
        server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING", timeout=30,
                              what="RUNNING")
        time.sleep(1)  # well into its wait
        # The slot is lent: another run starts and completes meanwhile.
        other = server.api.submit("sub.node", {"value": 5})
        assert server.api.wait_final(other["id"], timeout=30)["state"]["type"] == "COMPLETED"
        started = time.monotonic()
        server.api.cancel(run["id"])
        done = server.api.wait_final(run["id"], timeout=30)
        assert done["state"]["type"] == "CANCELLED", done["state"]
        assert time.monotonic() - started < 4  # not the cancel grace (5 s) or a poll slice
    finally:
        stop_clean(proc)


@pytest.mark.parametrize("isolate", ISOLATE)
def test_a_parent_and_its_subtasks_under_one_limit_of_1_do_not_deadlock(server, tmp_path,
                                                                      isolate):
    """The parent holds the tag's one slot; while it waits for its subtasks (same tag) its
    worker says so in a heartbeat and the server gives the slot to them; it takes the slot
    back when it resumes. The task's own limit of 1 is the same case."""
    r = server.api.request("POST", "/limits", json_body={"tag": "shared", "max_running": 1})
    assert r.status_code == 200, r.text
    r = server.api.request("POST", "/limits", json_body={"task": "sub.node", "max_running": 1})
    assert r.status_code == 200, r.text
    proc = start_worker(server, tmp_path, "--concurrency", "4", *isolate)
    try:
        run = server.api.submit("sub.node", {"children": 3, "value": 1, "child_tag": "shared"},
                                tags=["shared"], timeout_seconds=120)
        done = server.api.wait_final(run["id"], timeout=60)
        assert done["state"]["type"] == "COMPLETED", done["state"]
        assert done["result"]["sum"] == sum(100 + i for i in range(3))
        limits = server.api.get_json("/limits")["limits"]
        assert [l["held"] for l in limits] == [0, 0], limits
    finally:
        stop_clean(proc)
