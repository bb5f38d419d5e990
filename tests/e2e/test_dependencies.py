# SPDX-License-Identifier: MIT
"""Dependencies: a run submitted with wait_for waits (SCHEDULED/"Waiting", never claimed)
until its upstream runs complete; an upstream that does not complete ends it
CANCELLED/"UpstreamFailed" naming that run (unless allow_upstream_failure); a parameter
{"$result": ...} takes the upstream's result; a batch names its own earlier runs "runs[N]".

Most tests play the worker over the real worker protocol (claim, report), so each outcome
is chosen exactly; the chain test runs real workers."""
import json

from conftest import parse_ts, unique_task
from test_python_runtime import py_worker  # noqa: F401 (a fixture)

FALLBACK_MS = 30000
WOKEN_WITHIN_S = 1.0


def claim(server, task, limit=10):
    r = server.api.request("POST", "/workers/claim",
                           json_body={"worker": "dep-test", "tasks": [task], "limit": limit,
                                      "wait_seconds": 0})
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def finish(server, task, state="COMPLETED", result=None, message=None):
    """Claims the one ready run of task and reports it ended in state."""
    runs = claim(server, task)
    assert len(runs) == 1, runs
    rep = {"id": runs[0]["id"], "lease_token": runs[0]["lease_token"], "state": state}
    if result is not None:
        rep["result"] = result
    if message is not None:
        rep["message"] = message
        rep["retryable"] = False
    r = server.api.request("POST", "/workers/report",
                           json_body={"worker": "dep-test", "reports": [rep]})
    assert r.status_code == 200, r.text
    return runs[0]


def test_a_run_waits_for_its_upstream_then_gets_its_result(server):
    up_task, down_task = unique_task("up"), unique_task("down")
    up = server.api.submit(up_task, {"n": 1})
    down = server.api.submit(down_task, {"prev": {"$result": up["id"]}, "k": 2})
    assert down["state"]["type"] == "SCHEDULED"
    assert down["state"]["name"] == "Waiting", down["state"]
    assert down["wait_for"] == [up["id"]]
    assert claim(server, down_task) == [], "a waiting run was handed to a worker"

    finish(server, up_task, result={"total": 41})
    released = server.api.get(down["id"])
    assert released["state"]["name"] == "Scheduled", released["state"]
    assert released["parameters"] == {"prev": {"total": 41}, "k": 2}
    got = claim(server, down_task)
    assert [r["id"] for r in got] == [down["id"]]
    assert got[0]["parameters"] == {"prev": {"total": 41}, "k": 2}
    names = [s["name"] for s in server.api.states(down["id"])]
    assert names == ["Waiting", "Scheduled", "Pending"], names


def test_a_run_waits_for_all_of_its_upstream_runs(server):
    task = unique_task("fan")
    ups = [server.api.submit(task + ".up", {"i": i}) for i in range(3)]
    down = server.api.submit(task, {"xs": [{"$result": u["id"]} for u in ups]})
    assert down["state"]["message"] == "waiting for 3 upstream runs"
    for i in range(3):
        assert claim(server, task) == []
        runs = claim(server, task + ".up", limit=1)
        server.api.request("POST", "/workers/report", json_body={
            "worker": "dep-test",
            "reports": [{"id": runs[0]["id"], "lease_token": runs[0]["lease_token"],
                         "state": "COMPLETED", "result": runs[0]["parameters"]["i"] * 10}]})
    got = claim(server, task)
    assert [r["id"] for r in got] == [down["id"]]
    assert got[0]["parameters"] == {"xs": [0, 10, 20]}


def test_an_upstream_failure_cancels_the_dependant_and_its_own_dependants(server):
    task = unique_task("chain")
    a = server.api.submit(task + ".a", {})
    b = server.api.submit(task + ".b", {}, wait_for=[a["id"]])
    c = server.api.submit(task + ".c", {"x": {"$result": b["id"]}})
    finish(server, task + ".a", state="FAILED", message="boom")
    got_b = server.api.wait_final(b["id"], timeout=5)
    assert got_b["state"]["type"] == "CANCELLED", got_b["state"]
    assert got_b["state"]["name"] == "UpstreamFailed"
    assert a["id"] in got_b["state"]["message"] and "FAILED" in got_b["state"]["message"]
    got_c = server.api.wait_final(c["id"], timeout=5)
    assert got_c["state"]["name"] == "UpstreamFailed", got_c["state"]
    assert b["id"] in got_c["state"]["message"] and "CANCELLED" in got_c["state"]["message"]
    assert claim(server, task + ".b") == [] and claim(server, task + ".c") == []


def test_allow_upstream_failure_runs_anyway_with_null_for_the_missing_result(server):
    task = unique_task("anyway")
    a = server.api.submit(task + ".a", {})
    b = server.api.submit(task, {"x": {"$result": a["id"]}}, allow_upstream_failure=True)
    assert b["allow_upstream_failure"] is True
    finish(server, task + ".a", state="FAILED", message="boom")
    got = claim(server, task)
    assert [r["id"] for r in got] == [b["id"]]
    assert got[0]["parameters"] == {"x": None}


def test_cancelling_the_upstream_ends_the_dependant(server):
    task = unique_task("cx")
    a = server.api.submit(task + ".a", {})
    b = server.api.submit(task, {}, wait_for=[a["id"]])
    server.api.cancel(a["id"])
    got = server.api.wait_final(b["id"], timeout=5)
    assert got["state"]["name"] == "UpstreamFailed" and "CANCELLED" in got["state"]["message"]


def test_a_waiting_run_can_be_cancelled_and_its_upstream_ends_normally(server):
    task = unique_task("cw")
    a = server.api.submit(task + ".a", {})
    b = server.api.submit(task, {}, wait_for=[a["id"]])
    assert server.api.cancel(b["id"])["state"]["type"] == "CANCELLED"
    finish(server, task + ".a", result=1)
    assert server.api.get(a["id"])["state"]["type"] == "COMPLETED"
    assert server.api.get(b["id"])["state"]["type"] == "CANCELLED"
    assert claim(server, task) == []


def test_waiting_for_runs_already_final(server):
    task = unique_task("done")
    ok = server.api.submit(task + ".ok", {})
    finish(server, task + ".ok", result={"v": 7})
    bad = server.api.submit(task + ".bad", {})
    finish(server, task + ".bad", state="FAILED", message="no")
    ready = server.api.submit(task, {"v": {"$result": ok["id"]}})
    assert ready["state"]["name"] == "Scheduled", ready["state"]
    assert ready["parameters"] == {"v": {"v": 7}}
    ended = server.api.submit(task, {}, wait_for=[ok["id"], bad["id"]])
    assert ended["state"]["type"] == "CANCELLED", ended["state"]
    assert ended["state"]["name"] == "UpstreamFailed" and bad["id"] in ended["state"]["message"]


def test_a_batch_names_its_own_earlier_runs(server):
    task = unique_task("batch")
    runs = server.api.batch([
        {"task": task + ".a", "parameters": {}},
        {"task": task + ".b", "parameters": {"from_a": {"$result": "runs[0]"}}},
        {"task": task + ".c", "wait_for": ["runs[0]", "runs[1]"]},
    ])
    a, b, c = runs
    assert b["wait_for"] == [a["id"]] and b["parameters"] == {"from_a": {"$result": a["id"]}}
    assert c["wait_for"] == [a["id"], b["id"]]
    assert c["state"]["message"] == "waiting for 2 upstream runs"
    finish(server, task + ".a", result="A")
    assert server.api.get(c["id"])["state"]["message"] == "waiting for 1 upstream run"
    got = claim(server, task + ".b")
    assert got[0]["parameters"] == {"from_a": "A"}


def test_bad_references_are_refused_by_field_and_store_nothing(server):
    task = unique_task("bad")
    before = server.api.list(task=task)["runs"]
    cases = [
        ({"task": task, "wait_for": ["runs[0]"]}, "wait_for"),
        ({"task": task, "wait_for": ["not-an-id"]}, "wait_for"),
        ({"task": task, "wait_for": "01a239a9-b36c-7752-8afb-aa40b1ca6550"}, "wait_for"),
        ({"task": task, "wait_for": ["01a239a9-b36c-7752-8afb-aa40b1ca6550"]}, "wait_for"),
        ({"task": task, "parameters": {"x": {"$result": 3}}}, "parameters"),
        ({"task": task, "parameters": {"x": {"$result": "runs[0]", "y": 1}}}, "parameters"),
        ({"task": task, "allow_upstream_failure": "yes"}, "allow_upstream_failure"),
    ]
    for body, field in cases:
        r = server.api.submit_raw(body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    # In a batch: only earlier runs, and one bad element stores none of the batch.
    r = server.api.request("POST", "/task_runs/batch", json_body={"runs": [
        {"task": task, "wait_for": ["runs[1]"]}, {"task": task}]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "runs[0].wait_for", r.text
    r = server.api.request("POST", "/task_runs/batch", json_body={"runs": [
        {"task": task}, {"task": task, "wait_for": ["01a239a9-b36c-7752-8afb-aa40b1ca6550"]}]})
    assert r.status_code == 400, r.text
    assert server.api.list(task=task)["runs"] == before


def test_a_completed_upstream_wakes_the_idle_workers_claim(server_factory, worker_factory):
    """The release is a wake-up, not found by the fallback re-check (30 s here)."""
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": str(FALLBACK_MS)})
    worker_factory(server)
    for _ in range(3):
        up = server.api.submit("errand.sleep", {"seconds": 0.5})
        down = server.api.submit("errand.noop", {}, wait_for=[up["id"]])
        done = server.api.wait_final(down["id"])
        assert done["state"]["type"] == "COMPLETED", done
        up_done = server.api.get(up["id"])
        pending = next(parse_ts(s["timestamp"]) for s in server.api.states(down["id"])
                       if s["type"] == "PENDING")
        waited = pending - parse_ts(up_done["finished"])
        assert waited < WOKEN_WITHIN_S, f"claimed {waited:.3f} s after its upstream completed"


def test_a_chain_of_1000_runs_in_one_batch_completes_in_order_passing_results_on(
        server, py_worker):
    """Each link takes the previous link's result as its parameter `prev`; served by Python
    workers (errand.serve), woken by each release."""
    n = 1000
    runs = [{"task": "py.chain_step", "parameters": {"i": 0}}]
    runs += [{"task": "py.chain_step", "parameters": {"i": i, "prev": {"$result": f"runs[{i-1}]"}}}
             for i in range(1, n)]
    submitted = server.api.batch(runs)
    assert [r["state"]["name"] for r in submitted[:2]] == ["Scheduled", "Waiting"]
    py_worker(server, limit=4)
    last = server.api.wait_final(submitted[-1]["id"], timeout=300)
    assert last["state"]["type"] == "COMPLETED", last["state"]
    assert last["result"] == {"i": n - 1, "count": n, "prev_i": n - 2}
    done = {r["id"]: r for r in server.api.list_all(task="py.chain_step")}
    previous = None
    for i, sub in enumerate(submitted):
        run = done[sub["id"]]
        assert run["state"]["type"] == "COMPLETED", (i, run["state"])
        assert run["result"] == {"i": i, "count": i + 1, "prev_i": i - 1 if i else None}, i
        if previous:
            assert run["started"] >= previous["finished"], (i, run["started"], previous["finished"])
        previous = run


def test_the_cli_submits_with_upstream_runs_and_shows_them(server, cli):
    task = unique_task("cli")
    up = server.api.submit(task + ".up", {})
    cp = cli(server, "submit", task, "--wait-for", up["id"], "--allow-upstream-failure",
             "--params", '{"x": {"$result": "%s"}}' % up["id"], "--json")
    assert cp.returncode == 0, cp.stderr
    run = json.loads(cp.stdout)
    assert run["wait_for"] == [up["id"]] and run["allow_upstream_failure"] is True
    assert run["state"]["name"] == "Waiting"
    shown = cli(server, "runs", "show", run["id"])
    assert shown.returncode == 0, shown.stderr
    assert "waits for:" in shown.stdout and up["id"] in shown.stdout, shown.stdout
    bad = cli(server, "submit", task, "--wait-for", "nope")
    assert bad.returncode == 2 and "wait_for" in bad.stderr, (bad.returncode, bad.stderr)


def test_a_python_future_passed_as_a_parameter_makes_the_run_wait_for_its_result(
        server, py_worker):
    import py_runtime_tasks as tasks
    import errand
    c = errand.Client(server.url, server.key)
    errand.set_client(c)
    try:
        first = tasks.chain_step.delay(0)
        second = tasks.chain_step.delay(1, prev=first)
        third = c.submit("py.chain_step", {"i": 2}, wait_for=[second])
        assert second.run.wait_for == [first.task_run_id]
        assert second.run.parameters["prev"] == {"$result": first.task_run_id}
        assert third.wait_for == [second.task_run_id]
        assert c.get(second.task_run_id).state.name == "Waiting"
        py_worker(server, limit=2)
        assert second.result(timeout=60) == {"i": 1, "count": 2, "prev_i": 0}
        assert c.wait(third.id, 60).state.is_completed()
    finally:
        errand.set_client(None)


def test_a_waiting_run_counts_as_delayed_until_it_is_released_or_ended(server):
    """The store's gauges (/metrics) count a waiting run with the delayed runs of its task:
    not ready, and not lost."""
    from test_metrics import scrape, value
    task = unique_task("gauge")
    up = server.api.submit(task + ".up", {})
    kept = server.api.submit(task, {}, wait_for=[up["id"]])
    dropped = server.api.submit(task, {}, wait_for=[up["id"]])
    text = scrape(server)
    assert value(text, "errand_store_delayed_runs", task=task) == 2
    assert value(text, "errand_store_ready_runs", task=task) == 0
    server.api.cancel(dropped["id"])
    assert value(scrape(server), "errand_store_delayed_runs", task=task) == 1
    finish(server, task + ".up")
    text = scrape(server)
    assert value(text, "errand_store_delayed_runs", task=task) == 0
    assert value(text, "errand_store_ready_runs", task=task) == 1
    assert [r["id"] for r in claim(server, task)] == [kept["id"]]


def test_a_failure_at_the_head_of_a_chain_of_1000_ends_every_link_in_one_commit(server):
    """Settling is a walk, not a recursion: each ended link settles the next in the same
    transaction, a thousand deep."""
    task = unique_task("long")
    n = 1000
    runs = server.api.batch([{"task": task + ".head", "parameters": {}}] +
                            [{"task": task, "parameters": {"prev": {"$result": f"runs[{i}]"}}}
                             for i in range(n - 1)])
    assert runs[-1]["state"]["name"] == "Waiting"
    finish(server, task + ".head", state="FAILED", message="no")
    tail = server.api.get(runs[-1]["id"])  # ended by the report's own commit
    assert tail["state"]["name"] == "UpstreamFailed", tail["state"]
    assert runs[-2]["id"] in tail["state"]["message"]
    ended = server.api.list_all(task=task)
    assert len(ended) == n - 1
    assert {r["state"]["name"] for r in ended} == {"UpstreamFailed"}
