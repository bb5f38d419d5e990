# SPDX-License-Identifier: MIT
"""Concurrency limits: a tag's or a task's limit caps how many of its runs hold a lease at
once, across every worker, enforced by the server at claim time. Checked from the tasks' own
start and end records, not only from the server's history."""
import json
import time

from conftest import PYTHON, exec_spec, parse_ts, unique_task, wait_until, write_script

# Sleeps, then appends "start end" (wall-clock seconds) to the file named in its parameters.
RECORDER = """
import json, os, sys, time
p = json.load(sys.stdin)
start = time.time()
time.sleep(p.get("seconds", 0.3))
end = time.time()
fd = os.open(p["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, f"{start} {end}\\n".encode())
os.close(fd)
print(json.dumps({"start": start, "end": end}))
"""


def max_overlap(path):
    """The most intervals of the file's "start end" lines open at one moment."""
    events = []
    for line in path.read_text().split("\n"):
        if line.strip():
            start, end = map(float, line.split())
            events += [(start, 1), (end, -1)]
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    open_now = most = 0
    for _, d in events:
        open_now += d
        most = max(most, open_now)
    return most


def recorder_workers(server, worker_factory, tmp_path, tasks, n=2, concurrency=6, args=()):
    script = write_script(tmp_path / "recorder.py", RECORDER)
    execs = [exec_spec(t, PYTHON, script) for t in tasks]
    return [worker_factory(server, execs=execs, builtin=False,
                           args=["--concurrency", str(concurrency), *args]) for _ in range(n)]


def set_limit(server, expect=200, **body):
    r = server.api.request("POST", "/limits", json_body=body)
    assert r.status_code == expect, r.text
    return r.json()


def test_a_tag_limit_holds_across_workers_and_tasks(server, worker_factory, tmp_path):
    a, b, free = unique_task("a"), unique_task("b"), unique_task("free")
    set_limit(server, tag="llm", max_running=2)
    recorder_workers(server, worker_factory, tmp_path, [a, b, free])
    log, free_log = tmp_path / "limited.log", tmp_path / "free.log"
    runs = server.api.batch(
        [{"task": a if i % 2 else b, "parameters": {"log": str(log)}, "tags": ["llm", "x"]}
         for i in range(12)] +
        [{"task": free, "parameters": {"log": str(free_log)}, "tags": ["x"]} for _ in range(8)])
    done = server.api.wait_all_final([r["id"] for r in runs], timeout=120)
    assert all(r["state"]["type"] == "COMPLETED" for r in done.values())
    assert max_overlap(log) == 2, "the tagged runs' own records overlap beyond the limit"
    assert max_overlap(free_log) > 2, "runs outside the limit were held back too"


def test_a_task_limit_and_who_holds_the_slots(server, worker_factory, tmp_path, cli):
    task = unique_task("t")
    assert cli(server, "limits", "set", task, "1", "--task").returncode == 0
    recorder_workers(server, worker_factory, tmp_path, [task])
    log = tmp_path / "task.log"
    runs = server.api.batch([{"task": task, "parameters": {"log": str(log), "seconds": 0.8}}
                             for _ in range(4)])
    deadline = time.time() + 30
    while time.time() < deadline:
        limits = server.api.get_json("/limits")["limits"]
        mine = next(l for l in limits if l.get("task") == task)
        if mine["held"] == 1:
            break
        time.sleep(0.05)
    assert mine["max_running"] == 1 and mine["held"] == 1, mine
    holder = mine["holders"][0]
    assert holder["run_id"] in {r["id"] for r in runs} and holder["task"] == task
    assert holder["worker"], holder
    shown = cli(server, "limits", "ls")
    assert shown.returncode == 0 and holder["run_id"] in shown.stdout, shown.stdout
    server.api.wait_all_final([r["id"] for r in runs], timeout=120)
    assert max_overlap(log) == 1
    assert next(l for l in server.api.get_json("/limits")["limits"]
                if l.get("task") == task)["held"] == 0


def test_removing_a_limit_hands_waiting_runs_out_at_once(server_factory, worker_factory,
                                                        tmp_path):
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": "30000"})
    task = unique_task("held")
    set_limit(server, task=task, max_running=1)
    recorder_workers(server, worker_factory, tmp_path, [task], n=1)
    log = tmp_path / "held.log"
    long = server.api.submit(task, {"log": str(log), "seconds": 20})
    server.api.wait_state(long["id"], lambda r: r["state"]["type"] == "RUNNING", what="RUNNING")
    short = server.api.submit(task, {"log": str(log), "seconds": 0})
    time.sleep(1)
    assert server.api.get(short["id"])["state"]["type"] == "SCHEDULED"
    set_limit(server, task=task, max_running=0)
    removed_at = time.time()
    done = server.api.wait_final(short["id"], timeout=10)
    assert done["state"]["type"] == "COMPLETED"
    assert time.time() - removed_at < 5
    server.api.cancel(long["id"])


def test_a_slot_is_freed_when_its_lease_runs_out(server, worker_factory, tmp_path):
    task = unique_task("lease")
    set_limit(server, tag="one", max_running=1)
    first = recorder_workers(server, worker_factory, tmp_path, [task], n=1,
                             args=["--lease-seconds", "2"])[0]
    log = tmp_path / "lease.log"
    stuck = server.api.submit(task, {"log": str(log), "seconds": 60}, tags=["one"])
    server.api.wait_state(stuck["id"], lambda r: r["state"]["type"] == "RUNNING", what="RUNNING")
    nxt = server.api.submit(task, {"log": str(log), "seconds": 0}, tags=["one"])
    first.kill9()
    # Nobody serves the task now: once the sweeper expires the dead worker's leases (the
    # killed worker's last parked claim may still have taken the next run, under a lease
    # of 2 s too), the tag's slot is free.
    def slot_free():
        one = next(l for l in server.api.get_json("/limits")["limits"] if l.get("tag") == "one")
        return one["held"] == 0 and one["holders"] == []
    wait_until(slot_free, 30, "the tag's slot freed by the expired leases")
    assert "lease expired" in server.api.get(stuck["id"])["state"]["message"]
    server.api.cancel(stuck["id"])  # so that the next run is the one to go
    recorder_workers(server, worker_factory, tmp_path, [task], n=1)
    done = server.api.wait_final(nxt["id"], timeout=60)
    assert done["state"]["type"] == "COMPLETED", done["state"]


def test_bad_limits_are_refused_by_field(server, cli):
    cases = [({"max_running": 2}, "tag"), ({"tag": "x", "task": "y", "max_running": 2}, "tag"),
             ({"tag": "x"}, "max_running"), ({"tag": "x", "max_running": -1}, "max_running"),
             ({"tag": "x", "max_running": "2"}, "max_running"), ({"tag": "", "max_running": 1}, "tag"),
             ({"tag": "x", "max_running": 1, "extra": 1}, "extra")]
    for body, field in cases:
        r = server.api.request("POST", "/limits", json_body=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    assert server.api.get_json("/limits")["limits"] == []
    bad = cli(server, "limits", "set", "x", "zero")
    assert bad.returncode == 2 and "N must be" in bad.stderr


def starts(path):
    return sorted(float(line.split()[0]) for line in path.read_text().split("\n") if line.strip())


def test_a_rate_limit_spaces_a_tasks_starts(server_factory, worker_factory, tmp_path, cli):
    """5 starts a second: no second of the tasks' own records holds more than 5 starts, and
    the held-back runs go when the rate lets them, not at the fallback re-check (30 s)."""
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": "30000"})
    task, other = unique_task("rated"), unique_task("free")
    cp = cli(server, "limits", "rate", task, "5", "--per", "1")
    assert cp.returncode == 0, cp.stderr
    recorder_workers(server, worker_factory, tmp_path, [task, other], n=2, concurrency=8)
    log, free_log = tmp_path / "rated.log", tmp_path / "free.log"
    began = time.time()
    runs = server.api.batch([{"task": task, "parameters": {"log": str(log), "seconds": 0}}
                             for _ in range(15)] +
                            [{"task": other, "parameters": {"log": str(free_log), "seconds": 0}}
                             for _ in range(15)])
    done = server.api.wait_all_final([r["id"] for r in runs], timeout=60)
    took = time.time() - began
    assert all(r["state"]["type"] == "COMPLETED" for r in done.values())
    # The server starts them (the claim, PENDING) 0.2 s apart; a task process's own start
    # comes a little later, by how long its worker takes to start it.
    claimed = sorted(parse_ts(st["timestamp"]) for r in runs if r["task"] == task
                     for st in server.api.states(r["id"]) if st["type"] == "PENDING")
    most = max(sum(1 for t in claimed if s <= t < s + 1.0) for s in claimed)
    assert most <= 5, f"{most} claims within one second: {claimed}"
    ts = starts(log)
    assert ts[-1] - ts[0] >= 2.0, ts  # 15 starts, 0.2 s apart
    assert took < 20, f"the rate's wake-ups did not come: {took:.1f} s"
    assert max(sum(1 for t in starts(free_log) if s <= t < s + 1.0)
               for s in starts(free_log)) > 5, "the other task was held back too"
    limits = server.api.get_json("/limits")["limits"]
    mine = next(l for l in limits if l.get("task") == task)
    assert mine["rate"] == {"max_starts": 5, "per_seconds": 1} and mine["max_running"] is None
    assert set_limit(server, task=task, max_starts=0) == {"task": task, "max_starts": 0}
    assert all(l.get("task") != task for l in server.api.get_json("/limits")["limits"])


def test_a_rate_limit_is_a_tasks_only(server):
    r = server.api.request("POST", "/limits", json_body={"tag": "x", "max_starts": 3})
    assert r.status_code == 400 and r.json()["error"]["field"] == "max_starts", r.text
    r = server.api.request("POST", "/limits", json_body={"task": "x", "per_seconds": 3})
    assert r.status_code == 400, r.text
    r = server.api.request("POST", "/limits",
                           json_body={"task": "x", "max_starts": 3, "per_seconds": 0})
    assert r.status_code == 400 and r.json()["error"]["field"] == "per_seconds", r.text


def test_a_slot_freed_by_a_run_ending_hands_the_next_run_out_at_once(server_factory,
                                                                     worker_factory, tmp_path):
    """The worker's claim waits for the task's one slot; the end of the run holding it wakes
    that claim (the server's fallback re-check is 30 s away)."""
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": "30000"})
    task = unique_task("next")
    set_limit(server, task=task, max_running=1)
    recorder_workers(server, worker_factory, tmp_path, [task], n=1, concurrency=2)
    log = tmp_path / "next.log"
    first = server.api.submit(task, {"log": str(log), "seconds": 1})
    server.api.wait_state(first["id"], lambda r: r["state"]["type"] == "RUNNING", what="RUNNING")
    second = server.api.submit(task, {"log": str(log), "seconds": 0})
    done = server.api.wait_final(second["id"], timeout=60)
    assert done["state"]["type"] == "COMPLETED", done["state"]
    states = {s["type"]: parse_ts(s["timestamp"]) for s in server.api.states(second["id"])}
    ended = parse_ts(server.api.get(first["id"])["finished"])
    assert states["PENDING"] - ended < 5, \
        f"claimed {states['PENDING'] - ended:.1f} s after the slot was freed"
