# SPDX-License-Identifier: MIT
"""Crashes: a worker killed with SIGKILL mid-run loses its lease and the run completes
elsewhere; a server killed with SIGKILL under load loses no acknowledged submission."""
import json
import threading
import time

import requests

from conftest import Api, parse_ts, run_cli, wait_until

LEASE_ENV = {"ERRAND_LEASE_SECONDS": 2, "ERRAND_SWEEP_INTERVAL_MS": 100}


def test_killed_worker_without_redeliveries_left_crashes_the_run(server_factory, worker_factory):
    server = server_factory(env={**LEASE_ENV, "ERRAND_MAX_REDELIVERIES": 1})
    w = worker_factory(server)
    run = server.api.submit("errand.sleep", {"seconds": 30}, retries=3)
    server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING", what="RUNNING")
    w.kill9()
    again = worker_factory(server)
    server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING"
                          and r["redeliveries"] == 1, what="RUNNING again, redelivered once")
    again.kill9()
    done = server.api.wait_final(run["id"], timeout=30)
    # The task's retries are for its own failures: they are not spent on lost workers.
    assert done["state"]["type"] == "CRASHED", done
    assert done["attempt"] == 1 and done["redeliveries"] == 1, done
    assert "redelivered 1 time, the limit" in done["state"]["message"], done


def test_stale_worker_report_is_refused_after_reclaim(server_factory):
    """A worker that lost its lease (partition) cannot overwrite the newer attempt."""
    server = server_factory(env=LEASE_ENV)
    api = server.api
    task = "proto.stale"
    run = api.submit(task, {}, retries=3)
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "slow", "tasks": [task], "limit": 1, "wait_seconds": 5, "lease_seconds": 1})
    assert claim.status_code == 200, claim.text
    old = claim.json()["runs"][0]
    # The lease runs out; another worker claims the run.
    api.wait_state(run["id"], lambda r: r["state"]["type"] == "SCHEDULED"
                   and r["redeliveries"] == 1, what="SCHEDULED after the lease ran out")
    claim2 = api.request("POST", "/workers/claim", json_body={
        "worker": "fast", "tasks": [task], "limit": 1, "wait_seconds": 5})
    new = claim2.json()["runs"][0]
    assert new["id"] == run["id"] and new["lease_token"] != old["lease_token"]
    assert new["attempt"] == 1  # the lost lease was a redelivery, not an attempt

    r = api.request("POST", "/workers/report", json_body={"worker": "slow", "reports": [
        {"id": run["id"], "lease_token": old["lease_token"], "state": "COMPLETED",
         "result": {"from": "slow"}}]})
    assert r.status_code == 409, r.text
    item = r.json()["reports"][0]
    assert item["status"] == 409
    hb = api.request("POST", "/workers/heartbeat", json_body={
        "worker": "slow", "leases": [{"id": run["id"], "lease_token": old["lease_token"]}]})
    assert hb.status_code == 409, hb.text
    assert hb.json()["leases"][0]["status"] == 409

    r = api.request("POST", "/workers/report", json_body={"worker": "fast", "reports": [
        {"id": run["id"], "lease_token": new["lease_token"], "state": "COMPLETED",
         "result": {"from": "fast"}}]})
    assert r.status_code == 200, r.text
    done = api.get(run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == {"from": "fast"}
    assert done["worker"] == "fast"


def test_killed_server_keeps_every_acknowledged_submission(server_factory, worker_factory):
    server = server_factory()
    base = server.url
    acked = []
    acked_lock = threading.Lock()
    stop = threading.Event()
    errors = []
    target = 600  # acknowledged runs before the kill

    def submitter(n):
        api = Api(base)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 10 == 0:
                    r = api.request("POST", "/task_runs/batch", json_body={"runs": [
                        {"task": "errand.noop", "parameters": {"t": n, "i": i, "j": j}}
                        for j in range(20)]}, timeout=10)
                    got = [x["id"] for x in r.json()["runs"]] if r.status_code == 201 else []
                else:
                    r = api.request("POST", "/task_runs", json_body={
                        "task": "errand.noop", "parameters": {"t": n, "i": i}}, timeout=10)
                    got = [r.json()["id"]] if r.status_code == 201 else []
                if r.status_code not in (201,):
                    errors.append(f"{r.status_code} {r.text[:200]}")
                with acked_lock:
                    acked.extend(got)
            except (requests.RequestException, ValueError):
                return  # the server died under us: this request was never acknowledged

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= target, 60, f"{target} acknowledged submissions")
        server.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, f"non-2xx answers before the kill: {errors[:5]}"
    ids = list(acked)
    assert len(ids) >= target

    server.start()  # same ERRAND_HOME, same database
    missing = []
    for run_id in ids:
        r = server.api.request("GET", f"/task_runs/{run_id}")
        if r.status_code != 200:
            missing.append((run_id, r.status_code))
    assert not missing, f"{len(missing)} of {len(ids)} acknowledged runs lost: {missing[:5]}"

    worker_factory(server)
    for run_id in ids:
        done = server.api.wait_final(run_id, timeout=120)
        assert done["state"]["type"] == "COMPLETED", done


def test_worker_carries_on_across_a_server_restart(server_factory, worker_factory):
    """SIGTERM the server (clean stop), start it again on the same database and port: the
    worker, which kept retrying, serves the runs submitted before and after."""
    server = server_factory()
    worker_factory(server)
    first = server.api.submit("errand.noop", {"n": 1})
    assert server.api.wait_final(first["id"])["state"]["type"] == "COMPLETED"
    port = server.port
    server.stop()
    server.start(port=port)
    assert server.api.get(first["id"])["result"] == {"n": 1}, "the store kept everything"
    second = server.api.submit("errand.noop", {"n": 2})
    done = server.api.wait_final(second["id"], timeout=90)
    assert done["state"]["type"] == "COMPLETED", done


def test_delayed_run_is_not_claimed_before_its_time(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {}, delay_seconds=1.5)
    due = parse_ts(run["scheduled_at"])
    assert due - parse_ts(run["created"]) >= 1.49
    done = server.api.wait_final(run["id"])
    claimed = min(parse_ts(s["timestamp"]) for s in server.api.states(run["id"])
                  if s["type"] == "PENDING")
    assert claimed >= due - 0.001, "claimed before scheduled_at"


SUBMITS = 30
KILL_AFTER = 10


def test_submissions_ride_out_a_server_restart(server_factory, tmp_path):
    """`errand submit` (liberrand's errand_submit) keeps trying while the server is away —
    killed with SIGKILL in the middle of a stream of submissions and started again a moment
    later — and a submission retried after a commit whose answer was lost is stored once:
    every command succeeds, and each made exactly one run."""
    server = server_factory()
    port = server.port
    results = []

    def submit_all():
        for i in range(SUBMITS):
            cp = run_cli(server, "submit", "errand.noop", "--params", json.dumps({"i": i}),
                         "--json", timeout=60)
            results.append(cp)

    t = threading.Thread(target=submit_all)
    t.start()
    wait_until(lambda: len(results) >= KILL_AFTER, 60, f"{KILL_AFTER} submissions")
    server.kill9()
    time.sleep(1.0)  # submissions meanwhile meet a closed port
    server.start(port=port)
    t.join(timeout=120)
    failed = [cp.stderr for cp in results if cp.returncode != 0]
    assert not failed, failed[:3]
    assert len(results) == SUBMITS
    ids = {json.loads(cp.stdout)["id"] for cp in results}
    stored = server.api.list_all(task="errand.noop")
    seen = sorted(r["parameters"]["i"] for r in stored)
    assert seen == list(range(SUBMITS)), f"each submission once: {seen}"
    assert ids == {r["id"] for r in stored}
    # What makes a retry after a lost answer safe: liberrand gave each submission a key.
    assert all(r["idempotency_key"].startswith("errand-retry-") for r in stored), stored[0]
    # ... keys that sort by the time they were made (12 hex digits of milliseconds after the
    # prefix), so that the store's key index grows at its end rather than at random places.
    by_i = sorted(stored, key=lambda r: r["parameters"]["i"])
    made = [int(r["idempotency_key"][13:25], 16) for r in by_i]
    assert made == sorted(made), [r["idempotency_key"] for r in by_i]
    assert all(abs(ms - parse_ts(r["created"]) * 1000) < 60_000 for ms, r in zip(made, by_i))
