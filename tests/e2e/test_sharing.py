# SPDX-License-Identifier: MIT
"""Several workers on one server: they share the runs, and each run executes exactly once."""
import collections

from conftest import PYTHON, exec_spec, parse_ts, unique_task, wait_until, write_script

NOOP_RUNS = 2000
EXEC_RUNS = 200

# Appends its parameter `i` and its run attempt marker to a file, one os.write per line
# (O_APPEND makes each line atomic), then returns it.
RECORD = """
import json, os, sys
p = json.load(sys.stdin)
fd = os.open(p["file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (str(p["i"]) + "\\n").encode())
os.close(fd)
print(json.dumps({"i": p["i"]}))
"""


def wait_workers(server, n):
    def seen():
        ws = server.api.get_json("/workers")["workers"]
        return len([w for w in ws if w["active"]]) >= n
    wait_until(seen, 30, f"{n} active workers in GET /api/workers")


def wait_task_drained(server, task, expected, timeout=180):
    """Waits until every run of task is final; returns them all."""
    def drained():
        page = server.api.list(task=task, state="SCHEDULED,PENDING,RUNNING,CANCELLING", limit=1)
        return not page["runs"]
    wait_until(drained, timeout, f"all runs of {task} final", interval=0.2)
    runs = server.api.list_all(task=task)
    assert len(runs) == expected, f"{len(runs)} runs of {task}, expected {expected}"
    return runs


def test_two_workers_share_2000_runs_each_run_once(server, worker_factory):
    w1 = worker_factory(server)
    w2 = worker_factory(server)
    wait_workers(server, 2)
    task = "errand.noop"
    ids = []
    for start in range(0, NOOP_RUNS, 500):
        runs = server.api.batch([{"task": task, "parameters": {"i": i}}
                                 for i in range(start, start + 500)])
        assert [r["parameters"]["i"] for r in runs] == list(range(start, start + 500)), \
            "batch answers in the order of the request"
        ids += [r["id"] for r in runs]
    assert len(set(ids)) == NOOP_RUNS

    runs = wait_task_drained(server, task, NOOP_RUNS)
    assert {r["id"] for r in runs} == set(ids)
    bad = [r for r in runs if r["state"]["type"] != "COMPLETED" or r["attempt"] != 1]
    assert not bad, f"{len(bad)} runs not COMPLETED on attempt 1, e.g. {bad[:3]}"
    assert all(r["result"] == r["parameters"] for r in runs)
    by_worker = collections.Counter(r["worker"] for r in runs)
    assert set(by_worker) == {w1.name, w2.name}, f"both workers got runs: {by_worker}"
    assert all(n > 0 for n in by_worker.values()), by_worker


def test_exec_runs_execute_exactly_once_across_two_workers(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "record.py", RECORD)
    task = unique_task("record")
    spec = exec_spec(task, PYTHON, script)
    worker_factory(server, execs=[spec], builtin=False)
    worker_factory(server, execs=[spec], builtin=False)
    wait_workers(server, 2)
    out = tmp_path / "executions.txt"
    server.api.batch([{"task": task, "parameters": {"i": i, "file": str(out)}}
                      for i in range(EXEC_RUNS)])
    runs = wait_task_drained(server, task, EXEC_RUNS)
    assert all(r["state"]["type"] == "COMPLETED" and r["attempt"] == 1 for r in runs), \
        [r for r in runs if r["state"]["type"] != "COMPLETED" or r["attempt"] != 1][:3]
    lines = out.read_text().split()
    counts = collections.Counter(int(x) for x in lines)
    dups = {i: n for i, n in counts.items() if n > 1}
    assert not dups, f"runs executed more than once: {dups}"
    assert sorted(counts) == list(range(EXEC_RUNS)), "every run executed"
    assert len({r["worker"] for r in runs}) == 2, "both workers executed some runs"


def test_priority_higher_is_claimed_first(server, worker_factory):
    """With one slot, the worker's first claim takes the priority-9 run, although it was
    submitted after twenty priority-0 runs. (Claim times, from the state history, are what
    priority orders; `started` can lag behind them by a report.)"""
    task = "errand.noop"
    low = server.api.batch([{"task": task, "parameters": {"p": 0}} for _ in range(20)])
    high = server.api.submit(task, {"p": 9}, priority=9)
    worker_factory(server, env={"ERRAND_WORKER_CONCURRENCY": 1})

    def claimed_at(run_id):
        server.api.wait_final(run_id)
        return min(parse_ts(s["timestamp"]) for s in server.api.states(run_id)
                   if s["type"] == "PENDING")

    high_claim = claimed_at(high["id"])
    for r in low:
        assert claimed_at(r["id"]) >= high_claim, "a priority-0 run was claimed before priority 9"
