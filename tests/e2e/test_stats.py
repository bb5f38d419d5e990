# SPDX-License-Identifier: MIT
"""GET /api/stats (the overview's figures) and pausing a task.

The figures come from counters the store keeps with every change: they must agree with the
runs themselves (listed one by one here) through submits, completions, failures, cancels and
retention. A paused task's runs are handed to no worker — not by a claim already waiting, not
by a new one — and resuming wakes the waiting worker at once (with the fallback re-check set
to 30 s, so only the wake-up can explain a prompt claim).
"""
import time

from conftest import exec_spec, run_cli, unique_task

FALLBACK_MS = "30000"
WOKEN_WITHIN_S = 1.0


def task_row(stats, task):
    return next((t for t in stats["tasks"] if t["task"] == task), None)


def test_the_figures_agree_with_the_runs(server_factory, worker_factory):
    server = server_factory()
    fail_task = unique_task("fail")
    worker_factory(server, execs=[exec_spec(fail_task, "sh", "-c", "echo boom >&2; exit 1")])
    ok = [server.api.submit("errand.noop", {"i": i})["id"] for i in range(5)]
    bad = [server.api.submit(fail_task, {"i": i}, retries=0)["id"] for i in range(3)]
    queued = [server.api.submit("never.served", {"i": i})["id"] for i in range(4)]
    server.api.cancel(queued[0])
    server.api.wait_all_final(ok + bad)
    stats = server.api.get_json("/stats")
    assert stats["window"] == "hour" and len(stats["minutes"]) == 60
    listed = {}
    for run in server.api.list_all():
        listed[run["state"]["type"]] = listed.get(run["state"]["type"], 0) + 1
    assert {k: v for k, v in stats["counts"].items() if v} == listed
    noop, failing, never = (task_row(stats, t) for t in ("errand.noop", fail_task, "never.served"))
    assert noop["counts"]["COMPLETED"] == 5 and noop["completed"] == 5 and noop["failed"] == 0
    assert noop["failure_rate"] == 0 and noop["run_ms"]["n"] == 5
    assert failing["counts"]["FAILED"] == 3 and failing["failed"] == 3
    assert failing["failure_rate"] == 1
    assert failing["last_failure"]["id"] in bad
    assert never["counts"]["SCHEDULED"] == 3 and never["cancelled"] == 1
    assert never["failure_rate"] is None and never["last_failure"] is None
    finished = sum(m["completed"] for m in stats["minutes"])
    failed = sum(m["failed"] for m in stats["minutes"])
    assert (finished, failed) == (5, 3)
    assert stats["durations"]["sampled"] == 9  # 5 + 3 + the cancelled one
    assert stats["durations"]["run_ms"]["n"] == 8
    day = server.api.get_json("/stats", params={"window": "day"})
    assert len(day["minutes"]) == 1440 and day["counts"] == stats["counts"]


def test_retention_keeps_the_counters_in_step(server_factory, worker_factory):
    server = server_factory(env={"ERRAND_RETENTION_SECONDS": "1", "ERRAND_SWEEP_INTERVAL_MS": "100"})
    worker_factory(server)
    ids = [server.api.submit("errand.noop", {"i": i})["id"] for i in range(4)]
    server.api.wait_all_final(ids)
    deadline = time.time() + 20
    while server.api.list_all() and time.time() < deadline:
        time.sleep(0.2)
    assert server.api.list_all() == []
    stats = server.api.get_json("/stats")
    assert all(v == 0 for v in stats["counts"].values())
    row = task_row(stats, "errand.noop")
    assert row is None or all(v == 0 for v in row["counts"].values())
    # What finished still counts in its minute: the charts show history, not what is stored.
    assert sum(m["completed"] for m in stats["minutes"]) == 4


def test_a_paused_task_is_not_claimed_and_resuming_wakes_the_worker(server_factory,
                                                                    worker_factory):
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": FALLBACK_MS})
    r = server.api.request("POST", "/tasks/pause", json_body={"task": "errand.noop"})
    assert r.status_code == 200 and r.json() == {"task": "errand.noop", "paused": True}
    worker_factory(server)
    held = server.api.submit("errand.noop", {"held": True})
    other = server.api.submit("errand.sleep", {"seconds": 0})
    assert server.api.wait_final(other["id"])["state"]["type"] == "COMPLETED"
    time.sleep(1.0)  # the worker's claim is parked, waiting
    assert server.api.get(held["id"])["state"]["type"] == "SCHEDULED"
    assert task_row(server.api.get_json("/stats"), "errand.noop")["paused"] is True
    resumed_at = time.time()
    r = server.api.request("POST", "/tasks/resume", json_body={"task": "errand.noop"})
    assert r.status_code == 200 and r.json()["paused"] is False
    done = server.api.wait_final(held["id"])
    assert done["state"]["type"] == "COMPLETED"
    states = server.api.states(held["id"])
    from conftest import parse_ts
    claimed = next(parse_ts(s["timestamp"]) for s in states if s["type"] == "PENDING")
    assert claimed - resumed_at < WOKEN_WITHIN_S, f"claimed {claimed - resumed_at:.3f} s after resume"


def test_the_cli_lists_pauses_and_resumes_tasks(server_factory):
    server = server_factory()
    r = run_cli(server, "tasks", "pause", "billing.charge")
    assert r.returncode == 0 and r.stdout.strip() == "billing.charge paused", r.stderr
    server.api.submit("billing.charge", {})
    r = run_cli(server, "tasks", "ls")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("billing.charge"))
    assert line.split()[1] == "1" and " yes " in line
    r = run_cli(server, "tasks", "resume", "billing.charge", "--json")
    assert r.returncode == 0 and '"paused": false' in r.stdout
    r = run_cli(server, "tasks", "pause")
    assert r.returncode != 0 and "missing argument" in r.stderr


def test_bad_stats_and_pause_requests_name_the_field(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": "adm", "ERRAND_API_KEYS_READ": "rk"})
    api = server.api
    r = api.request("GET", "/stats", params={"window": "week"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "window"
    r = api.request("GET", "/stats", params={"bogus": "1"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "bogus"
    for body, code, field in (({}, 400, "task"), ({"task": ""}, 400, "task"),
                              ({"task": 5}, 400, "task"), ({"task": "x" * 900}, 400, "task"),
                              ({"task": "x", "more": 1}, 400, "more")):
        r = api.request("POST", "/tasks/pause", json_body=body)
        assert r.status_code == code and r.json()["error"]["field"] == field, (body, r.text)
    r = api.request("POST", "/tasks/pause", data="not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    import requests
    reader = {"Authorization": "Bearer rk"}
    assert requests.get(server.url + "/stats", headers=reader, timeout=10).status_code == 200
    r = requests.post(server.url + "/tasks/pause", json={"task": "x"}, headers=reader, timeout=10)
    assert r.status_code == 403
    assert requests.get(server.url + "/stats", timeout=10).status_code == 401
