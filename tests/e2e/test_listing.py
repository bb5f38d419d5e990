# SPDX-License-Identifier: MIT
"""GET /api/task_runs: filters by state, task and tag; newest first; cursor pagination that
covers every run exactly once; the states and logs sub-resources."""
from conftest import PYTHON, exec_spec, unique_task, wait_until, write_script


def submit_set(server):
    """25 runs of task A (one by one, so creation order is known; every 5th tagged blue),
    10 runs of task B; nobody serves either, so they stay SCHEDULED."""
    a, b = unique_task("list.a"), unique_task("list.b")
    a_ids = []
    for i in range(25):
        tags = ["blue", "all"] if i % 5 == 0 else ["all"]
        a_ids.append(server.api.submit(a, {"i": i}, tags=tags)["id"])
    b_ids = [r["id"] for r in server.api.batch([{"task": b, "tags": ["all"]} for _ in range(10)])]
    return a, b, a_ids, b_ids


def test_list_filters_by_task_tag_and_state(server):
    a, b, a_ids, b_ids = submit_set(server)
    assert {r["id"] for r in server.api.list(task=a, limit=1000)["runs"]} == set(a_ids)
    assert {r["id"] for r in server.api.list(task=b, limit=1000)["runs"]} == set(b_ids)
    blue = server.api.list(tag="blue", limit=1000)["runs"]
    assert {r["id"] for r in blue} == {a_ids[i] for i in range(0, 25, 5)}
    assert all("blue" in r["tags"] for r in blue)
    both = server.api.list(task=a, tag="blue", limit=1000)["runs"]
    assert len(both) == 5

    for run_id in a_ids[:3]:
        server.api.cancel(run_id)
    cancelled = server.api.list(task=a, state="CANCELLED", limit=1000)["runs"]
    assert {r["id"] for r in cancelled} == set(a_ids[:3])
    scheduled = server.api.list(task=a, state="SCHEDULED", limit=1000)["runs"]
    assert {r["id"] for r in scheduled} == set(a_ids[3:])
    comma = server.api.list(task=a, state="SCHEDULED,CANCELLED", limit=1000)["runs"]
    assert len(comma) == 25
    repeated = server.api.get_json("/task_runs", params=[("task", a), ("state", "SCHEDULED"),
                                                          ("state", "CANCELLED"),
                                                          ("limit", 1000)])["runs"]
    assert len(repeated) == 25
    assert server.api.list(task=a, state="COMPLETED")["runs"] == []
    assert server.api.list(task="no.such.task")["runs"] == []


def test_list_is_newest_first(server):
    a, _, a_ids, _ = submit_set(server)
    runs = server.api.list(task=a, limit=1000)["runs"]
    assert [r["id"] for r in runs] == list(reversed(a_ids)), \
        "runs submitted one after another are listed newest first"
    created = [r["created"] for r in runs]
    assert created == sorted(created, reverse=True)


def test_list_default_limit_is_50(server):
    task = unique_task("many")
    server.api.batch([{"task": task} for _ in range(60)])
    page = server.api.list(task=task)
    assert len(page["runs"]) == 50
    assert page["next_cursor"]


def test_cursor_pagination_covers_every_run_once(server):
    task = unique_task("page")
    ids = [r["id"] for r in server.api.batch([{"task": task, "parameters": {"i": i}}
                                              for i in range(103)])]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"task": task, "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = server.api.list(**params)
        pages += 1
        assert len(page["runs"]) <= 7
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 100, "pagination does not end"
    assert len(seen) == len(set(seen)) == 103, "every run exactly once"
    assert set(seen) == set(ids)
    assert seen == sorted(seen, reverse=True), "keyset order by time-ordered id, newest first"
    # New runs arriving during pagination do not disturb older pages.
    first = server.api.list(task=task, limit=50)
    server.api.submit(task, {"late": True})
    second = server.api.list(task=task, limit=50, cursor=first["next_cursor"])
    assert [r["id"] for r in second["runs"]] == seen[50:100]


def test_states_history_is_oldest_first(server):
    run = server.api.submit(unique_task("hist"), {}, delay_seconds=60)
    server.api.cancel(run["id"])
    states = server.api.states(run["id"])
    assert [s["type"] for s in states] == ["SCHEDULED", "CANCELLED"]
    assert states[0]["timestamp"] <= states[1]["timestamp"]
    for s in states:
        assert set(s) >= {"type", "name", "timestamp", "message"}


def test_logs_capture_exec_stderr_with_log_prints(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "talk.py", """
import json, sys
p = json.load(sys.stdin)
for i in range(3):
    print(f"progress {i} of {p['tag']}", file=sys.stderr, flush=True)
print(json.dumps({"ok": True}))
""")
    task = unique_task("talk")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False,
                   env={"ERRAND_LOGGING_LOG_PRINTS": "true"})
    run = server.api.submit(task, {"tag": "zebra"})
    assert server.api.wait_final(run["id"])["state"]["type"] == "COMPLETED"

    def lines():
        return [entry["message"] for entry in server.api.logs(run["id"])["logs"]]

    wait_until(lambda: all(any(f"progress {i} of zebra" in m for m in lines()) for i in range(3)),
               10, "the task's stderr lines in its logs")
    body = server.api.logs(run["id"])
    logs = body["logs"]
    seqs = [entry["seq"] for entry in logs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for entry in logs:
        assert entry["level"] in ("debug", "info", "warning", "error"), entry
        assert entry["timestamp"]
    progress = [m for m in lines() if "progress" in m]
    assert progress == [f"progress {i} of zebra" for i in range(3)], "in order, one per line"
    # Paging with after=
    tail = server.api.logs(run["id"], after=seqs[0])
    assert [e["seq"] for e in tail["logs"]] == seqs[1:]
    assert body["next_after"] == seqs[-1]
    limited = server.api.logs(run["id"], limit=1)
    assert len(limited["logs"]) == 1


def test_logs_of_a_run_without_logs_is_empty(server):
    run = server.api.submit(unique_task("quiet"), {})
    body = server.api.logs(run["id"])
    assert body["logs"] == []


def test_a_time_range_and_an_idempotency_key_select_runs(server):
    import datetime
    import time as _time
    api = server.api
    early = [api.submit("ranged", {"i": i})["id"] for i in range(3)]
    _time.sleep(0.05)
    mid = datetime.datetime.now(datetime.timezone.utc)
    _time.sleep(0.05)
    late = [api.submit("ranged", {"i": i}, idempotency_key=f"order-{i}")["id"] for i in range(3)]
    fmt = mid.strftime("%Y-%m-%dT%H:%M:%S.") + f"{mid.microsecond // 1000:03d}Z"
    since = [r["id"] for r in api.list_all(task="ranged", since=fmt)]
    until = [r["id"] for r in api.list_all(task="ranged", until=fmt)]
    assert since == late[::-1] and until == early[::-1]
    # Paged through a range, the keyset cursor stays inside it.
    page = api.get_json("/task_runs", params={"since": fmt, "limit": 2})
    assert [r["id"] for r in page["runs"]] == late[:0:-1]
    rest = api.get_json("/task_runs", params={"since": fmt, "cursor": page["next_cursor"]})
    assert [r["id"] for r in rest["runs"]] == [late[0]] and rest["next_cursor"] is None
    found = api.get_json("/task_runs", params={"task": "ranged", "idempotency_key": "order-1"})
    assert [r["id"] for r in found["runs"]] == [late[1]]
    none = api.get_json("/task_runs", params={"task": "ranged", "idempotency_key": "order-1",
                                              "state": "COMPLETED"})
    assert none["runs"] == []
    for params, field in (({"since": "yesterday"}, "since"), ({"until": "2026-13-01T00:00:00Z"}, "until"),
                          ({"idempotency_key": "order-1"}, "idempotency_key")):
        r = api.request("GET", "/task_runs", params=params)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_the_worker_filter_selects_the_runs_each_worker_ran(server, worker_factory):
    """`worker=` lists the runs a worker claimed last, alone or with the other filters, through
    the API and `errand runs ls --worker`."""
    from errand_procs import run_cli
    api = server.api
    ran = {}
    for name in ("lister-a", "lister-b"):
        w = worker_factory(server, args=["--name", name])
        ids = [r["id"] for r in api.batch([{"task": "errand.noop", "tags": [name]}
                                           for _ in range(6)])]
        for run_id in ids:
            assert api.wait_final(run_id)["state"]["type"] == "COMPLETED"
        w.stop()
        ran[name] = ids
    for name, ids in ran.items():
        listed = api.list_all(worker=name)
        assert [r["id"] for r in listed] == ids[::-1]
        assert {r["worker"] for r in listed} == {name}
        assert [r["id"] for r in api.list_all(worker=name, state="COMPLETED",
                                              task="errand.noop")] == ids[::-1]
        assert api.list_all(worker=name, state="FAILED") == []
        # With a tag the tag's runs are walked and the worker checked on each.
        assert [r["id"] for r in api.list_all(worker=name, tag="lister-a")] == \
            (ids[::-1] if name == "lister-a" else [])
    assert api.list_all(worker="nobody") == []
    cp = run_cli(server, "runs", "ls", "--worker", "lister-b", "--json")
    assert cp.returncode == 0, cp.stderr
    import json
    assert [r["id"] for r in json.loads(cp.stdout)["runs"]] == ran["lister-b"][::-1]
    r = api.request("GET", "/task_runs", params={"worker": "w" * 201})
    assert r.status_code == 400 and r.json()["error"]["field"] == "worker", r.text
