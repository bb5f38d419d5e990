# SPDX-License-Identifier: MIT
"""Retention: a server deletes finished runs ERRAND_RETENTION_SECONDS after they finish, with
their history, logs and result files; what was deleted answers 404 saying so; a result file
stays while a cached copy points at it; retention never deletes a file errand did not write;
old workers leave the worker list, which pages.

The server sweeps every 100 ms here, and runs are kept for RETENTION_S seconds: the waits
below are bounded by a few seconds, well past both.
"""
import time
import uuid
from pathlib import Path

import requests

from conftest import unique_task, wait_until

RETENTION_S = 1
SWEEP_MS = 100
GONE_WITHIN_S = 15  # retention plus many sweeps, on a busy machine


def retaining_server(server_factory, seconds=RETENTION_S, **extra):
    env = {"ERRAND_RETENTION_SECONDS": str(seconds), "ERRAND_SWEEP_INTERVAL_MS": str(SWEEP_MS)}
    env.update(extra)
    return server_factory(env=env)


def ref_path(ref):
    assert ref and ref.startswith("local://"), ref
    return Path(ref[len("local://"):])


def gone(server, run_id):
    return server.api.request("GET", f"/task_runs/{run_id}").status_code == 404


def test_a_finished_run_goes_with_its_history_logs_and_result_file(server_factory,
                                                                   worker_factory):
    server = retaining_server(server_factory)
    worker_factory(server)
    run = server.api.submit("errand.noop", {"keep": "briefly"}, persist_result=True)
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    path = ref_path(done["result_ref"])
    assert path.exists()

    wait_until(lambda: gone(server, run["id"]), GONE_WITHIN_S, "the run deleted")
    for suffix in ("", "/states", "/logs", "/wait?timeout_seconds=0"):
        r = server.api.request("GET", f"/task_runs/{run['id']}{suffix}")
        assert r.status_code == 404, (suffix, r.text)
        error = r.json()["error"]
        assert error["code"] == "not_found", error
        assert "deleted after it finished" in error["message"], error
    assert not path.exists(), "the result file goes with the run"
    metrics = requests.get(f"{server.root}/metrics", timeout=10).text
    assert "errand_runs_deleted_total 1" in metrics, metrics


def test_a_result_file_stays_while_a_cached_copy_points_at_it(server_factory, worker_factory):
    server = retaining_server(server_factory, seconds=2)
    worker_factory(server)
    key = f"key-{uuid.uuid4()}"
    source = server.api.submit("errand.noop", {"v": 1}, persist_result=True, cache_key=key)
    source = server.api.wait_final(source["id"])
    path = ref_path(source["result_ref"])
    time.sleep(1.2)  # the copy finishes later than the source, so it is deleted later
    copy = server.api.submit("errand.noop", {"v": 1}, cache_key=key)
    assert copy["state"]["name"] == "Cached", copy
    assert copy["result_ref"] == source["result_ref"]

    wait_until(lambda: gone(server, source["id"]), GONE_WITHIN_S, "the source deleted")
    if not gone(server, copy["id"]):
        assert path.exists(), "the cached copy still points at the file"
    wait_until(lambda: gone(server, copy["id"]), GONE_WITHIN_S, "the copy deleted")
    wait_until(lambda: not path.exists(), GONE_WITHIN_S, "the file deleted with the last run")


def test_retention_never_deletes_a_file_errand_did_not_write(server_factory, tmp_path):
    """A result_ref is worker input: one naming another file is refused, and one naming the
    run's file in another directory is stored as the file in the server's own storage, so the
    file outside it, named like a result, is not errand's to delete."""
    server = retaining_server(server_factory)
    api = server.api
    task = unique_task("retention")
    run = api.submit(task, {})
    victim = tmp_path / "elsewhere" / f"{run['id']}.json"
    victim.parent.mkdir()
    victim.write_text("{}")
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "w1", "tasks": [task], "limit": 1, "wait_seconds": 5}).json()["runs"][0]
    report = {"id": run["id"], "lease_token": claim["lease_token"], "state": "COMPLETED"}
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {**report, "result_ref": f"local://{tmp_path}/victim.json"}]})
    assert r.status_code == 400, r.text
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {**report, "result_ref": f"local://{victim}"}]})
    assert r.status_code == 200, r.text
    assert api.get(run["id"])["result_ref"] != f"local://{victim}"
    wait_until(lambda: gone(server, run["id"]), GONE_WITHIN_S, "the run deleted")
    assert victim.exists()


def test_an_idempotency_key_of_a_deleted_run_makes_a_new_run(server_factory, worker_factory):
    server = retaining_server(server_factory)
    worker_factory(server)
    key = f"order-{uuid.uuid4()}"
    first = server.api.submit("errand.noop", {}, idempotency_key=key)
    server.api.wait_final(first["id"])
    again = server.api.submit("errand.noop", {}, expect=200, idempotency_key=key)
    assert again["id"] == first["id"]
    wait_until(lambda: gone(server, first["id"]), GONE_WITHIN_S, "the run deleted")
    fresh = server.api.submit("errand.noop", {}, expect=201, idempotency_key=key)
    assert fresh["id"] != first["id"]


def test_zero_keeps_finished_runs(server_factory, worker_factory):
    server = retaining_server(server_factory, seconds=0)
    worker_factory(server)
    run = server.api.submit("errand.noop", {})
    server.api.wait_final(run["id"])
    time.sleep(1.5)  # many sweeps
    assert server.api.get(run["id"])["state"]["type"] == "COMPLETED"


def test_the_worker_list_pages_and_drops_workers_not_seen_for_long(server_factory):
    server = server_factory(env={"ERRAND_WORKER_RETENTION_SECONDS": "1",
                                 "ERRAND_SWEEP_INTERVAL_MS": str(SWEEP_MS)})
    api = server.api
    for name in ("old-1", "old-2", "old-3"):
        r = api.request("POST", "/workers/claim", json_body={
            "worker": name, "tasks": ["nothing"], "wait_seconds": 0})
        assert r.status_code == 200, r.text
    names, cursor = [], None
    for _ in range(4):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get_json("/workers", params=params)
        assert len(page["workers"]) <= 2
        names += [w["name"] for w in page["workers"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(names) == ["old-1", "old-2", "old-3"]
    r = api.request("GET", "/workers", params={"cursor": "nonsense"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "cursor", r.text
    wait_until(lambda: api.get_json("/workers")["workers"] == [], GONE_WITHIN_S,
               "the workers pruned")
