# SPDX-License-Identifier: MIT
"""The Python client (clients/python, package `errand`, standard library only) against a real
server and worker: submit with options, wait, results inline and persisted, failures and typed
errors, idempotency, listing and paging, failover over a list of servers, a submission riding
out a server restart, and the asyncio flavour."""
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import exec_spec, unique_task
from errand_procs import REPO
from recording_proxy import RecordingProxy

sys.path.insert(0, str(REPO / "clients" / "python"))
import errand  # noqa: E402  (from the source tree, as the README says it can be used)
from errand import errors  # noqa: E402


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_of(server, **kw):
    return errand.Client(server.url, server.key, **kw)


def test_the_package_version_is_the_release():
    release = subprocess.run([str(REPO / "scripts/version.sh")], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert errand.__version__ == release


def test_submit_wait_and_read_the_result(server, worker_factory):
    worker_factory(server)
    c = client_of(server)
    run = c.submit("errand.noop", {"hello": "python"}, tags=["py"], priority=3, retries=2,
                   retry_delay_seconds=[1, 2], timeout_seconds=30)
    assert run.task == "errand.noop" and run.state.type in ("SCHEDULED", "PENDING", "RUNNING",
                                                            "COMPLETED")
    assert run.tags == ("py",) and run.raw["priority"] == 3 and run.max_attempts == 3
    done = c.wait(run.id, timeout=30)
    assert done.state.is_completed() and done.state.is_final() and not done.state.is_failed()
    assert c.result(done) == {"hello": "python"}
    assert c.read_task_run(run.id).id == run.id
    assert [s["type"] for s in c.states(run.id)][-1] == "COMPLETED"
    assert c.health()["status"] == "ready"


def test_a_persisted_result_is_read_through_the_server(server, worker_factory, tmp_path):
    worker_factory(server, env={"ERRAND_LOCAL_STORAGE_PATH": str(server.home / "storage")})
    c = client_of(server)
    big = "x" * 100_000  # over the 64 KiB inline limit: only the file holds it
    run = c.submit("errand.noop", {"big": big}, persist_result=True)
    done = c.wait(run.id, timeout=30)
    assert done.result_ref and not done.has_inline_result
    assert c.result(done) == {"big": big}
    assert c.result(run.id, timeout=5) == {"big": big}


def test_a_failed_run_raises_with_its_message(server, worker_factory):
    task = unique_task("fails")
    worker_factory(server, execs=[exec_spec(task, "sh", "-c", "echo broken >&2; exit 3")],
                   builtin=False)
    c = client_of(server)
    run = c.submit(task, {})
    done = c.wait(run.id, timeout=30)
    assert done.state.is_failed()
    with pytest.raises(errors.RunFailed) as e:
        c.result(done)
    assert "broken" in str(e.value) and e.value.run.id == run.id


def test_errors_are_typed_by_the_apis_codes(server, server_factory):
    c = client_of(server)
    with pytest.raises(errors.NotFound) as e:
        c.get("01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21")
    assert e.value.status == 404 and e.value.code == "not_found"
    with pytest.raises(errors.InvalidField) as e:
        c.submit("t", {}, priority="high")
    assert e.value.field == "priority" and isinstance(e.value, errors.BadRequest)
    with pytest.raises(errors.InvalidParameter):
        c.get("not-a-uuid")
    run = c.submit(unique_task(), {})
    c.cancel(run.id)
    with pytest.raises(errors.Conflict):
        c.cancel(run.id)
    with pytest.raises(TypeError):
        c.submit("t", {}, retry=3)  # a typo never silently means "no retries"
    keyed = server_factory(env={"ERRAND_API_KEY": "py-secret"})
    with pytest.raises(errors.Unauthorized):
        errand.Client(keyed.url, api_key="wrong").get(run.id)
    with pytest.raises(errors.ConnectionFailed):
        errand.Client(f"http://127.0.0.1:{closed_port()}/api", submit_retry_seconds=0).health()


def test_idempotency_listing_and_paging(server):
    c = client_of(server)
    task = unique_task("listed")
    first = c.submit(task, {"n": 0}, idempotency_key="order-1")
    assert c.submit(task, {"n": 0}, idempotency_key="order-1").id == first.id
    for n in range(1, 5):
        c.submit(task, {"n": n})
    runs, cursor = c.list_runs(task=task, limit=2)
    assert len(runs) == 2 and cursor
    every = list(c.iter_runs(task=task, limit=2))
    assert len(every) == 5 and len({r.id for r in every}) == 5
    assert [r.parameters["n"] for r in every] == [4, 3, 2, 1, 0]  # newest first
    found, _ = c.list_runs(task=task, idempotency_key="order-1")
    assert [r.id for r in found] == [first.id]
    assert all(r.state.is_scheduled() for r in every)


def test_wait_gives_up_with_the_latest_snapshot(server, worker_factory):
    worker_factory(server)
    c = client_of(server)
    run = c.submit("errand.sleep", {"seconds": 5})
    with pytest.raises(errors.WaitTimeout) as e:
        c.wait(run.id, timeout=0.5)
    assert not e.value.run.state.is_final()
    c.cancel(run.id)
    assert c.wait(run.id, timeout=30).state.is_cancelled()


def test_a_list_of_servers_fails_over(server, worker_factory):
    worker_factory(server)
    url = f"http://127.0.0.1:{closed_port()}/api,{server.url}"
    for _ in range(6):  # each client starts at a server drawn at random
        c = errand.Client(url, server.key)
        done = c.wait(c.submit("errand.noop", {"via": "list"}).id, timeout=30)
        assert c.result(done) == {"via": "list"}


def test_a_submission_rides_out_a_server_restart(server):
    port = server.port
    task = unique_task("restart")
    server.stop()
    c = errand.Client(f"http://127.0.0.1:{port}/api", submit_retry_seconds=20)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("run", c.submit(task, {"x": 1})))
    t.start()
    time.sleep(1.0)  # the client is retrying against the stopped server meanwhile
    server.start(port=port)
    t.join(30)
    assert not t.is_alive() and got["run"].task == task
    key = got["run"].idempotency_key
    assert key.startswith("errand-retry-") and len(key) == 13 + 12 + 20, key
    # The time it was made comes first (milliseconds, 12 hex digits), so keys sort by time.
    assert abs(int(key[13:25], 16) - time.time() * 1000) < 60_000, key
    assert [r.id for r in c.iter_runs(task=task)] == [got["run"].id]  # stored once


def test_a_batch_rides_out_a_server_restart(server):
    port = server.port
    task = unique_task("restart_batch")
    server.stop()
    c = errand.Client(f"http://127.0.0.1:{port}/api", submit_retry_seconds=20)
    items = [errand.submission(task, {"i": i}) for i in range(3)]
    items[1]["idempotency_key"] = "mine"  # the caller's own key is kept
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("runs", c.submit_batch(items)))
    t.start()
    time.sleep(1.0)  # the client is retrying against the stopped server meanwhile
    server.start(port=port)
    t.join(30)
    assert not t.is_alive() and [r.parameters["i"] for r in got["runs"]] == [0, 1, 2]
    keys = [r.idempotency_key for r in got["runs"]]
    assert keys[1] == "mine" and all(k.startswith("errand-retry-") for k in (keys[0], keys[2]))
    assert "idempotency_key" not in items[0], "the caller's items are left as they were"
    assert sorted(r.id for r in c.iter_runs(task=task)) == sorted(r.id for r in got["runs"])


def test_the_asyncio_flavour(server, worker_factory):
    worker_factory(server)

    async def main():
        c = errand.AsyncClient(server.url, server.key)
        runs = await asyncio.gather(*(c.submit("errand.noop", {"i": i}) for i in range(5)))
        done = await asyncio.gather(*(c.wait(r.id, timeout=30) for r in runs))
        return [await c.result(d) for d in done]

    assert asyncio.run(main()) == [{"i": i} for i in range(5)]


def test_batch_submissions(server, worker_factory):
    worker_factory(server)
    c = client_of(server)
    runs = c.submit_batch([errand.submission("errand.noop", {"i": i}, tags=["b"])
                           for i in range(3)])
    assert [c.result(r.id, timeout=30) for r in runs] == [{"i": i} for i in range(3)]
    with pytest.raises(errors.MissingField) as e:
        c.submit_batch([{"parameters": {}}])
    assert e.value.field == "runs[0].task"


def test_batch_submissions_by_id_ask_for_the_ids_alone(server, worker_factory):
    """submit_batch_ids: the ids in order, asked for and answered as ids only on the wire
    (Prefer: return=minimal); submit_batch, beside it, still gets whole runs."""
    worker_factory(server)
    proxy = RecordingProxy(server.port)
    try:
        c = errand.Client(proxy.url, server.key)
        ids = c.submit_batch_ids([errand.submission("errand.noop", {"i": i}) for i in range(4)])
        runs = c.submit_batch([errand.submission("errand.noop", {"i": 9})])
    finally:
        proxy.close()
    direct = client_of(server)
    assert [direct.result(i, timeout=30) for i in ids] == [{"i": i} for i in range(4)]
    assert runs[0].task == "errand.noop"
    (minimal, _, answer, body), (whole, _, whole_answer, _) = proxy.batches
    assert minimal.get("Prefer") == "return=minimal", minimal
    assert answer.get("Preference-Applied") == "return=minimal", answer
    assert [r["id"] for r in json.loads(body)["runs"]] == ids
    assert "Prefer" not in whole and "Preference-Applied" not in whole_answer
    with pytest.raises(errors.MissingField) as e:
        direct.submit_batch_ids([{"parameters": {}}])
    assert e.value.field == "runs[0].task"


def test_the_controls_set_webhooks_limits_and_schedules(server):
    c = client_of(server)
    task = unique_task("controlled")
    assert c.set_webhook(task, "https://hooks.example.com/e") == {
        "task": task, "url": "https://hooks.example.com/e"}
    assert [w["task"] for w in c.webhooks()["webhooks"]] == [task]
    with pytest.raises(errors.BadRequest) as bad:
        c.set_webhook(task, "ftp://example.com/")
    assert bad.value.field == "url"
    c.set_webhook(task, None)
    with pytest.raises(errors.NotFound):
        c.set_webhook(task, None)

    c.set_limit(tag="py-llm", max_running=2)
    c.set_limit(task=task, max_starts=5, per_seconds=60)
    limits = {l.get("tag") or l.get("task"): l for l in c.limits()}
    assert limits["py-llm"]["max_running"] == 2
    assert limits[task]["rate"] == {"max_starts": 5, "per_seconds": 60}
    c.set_limit(tag="py-llm", max_running=0)
    assert "py-llm" not in {l.get("tag") for l in c.limits()}

    s = c.set_schedule("py-nightly", task, cron="30 2 * * *", time_zone="Europe/Berlin",
                       parameters={"x": 1}, tags=["nightly"], webhook_url="https://h.example/")
    assert s["cron"] == "30 2 * * *" and s["run"]["parameters"] == {"x": 1}
    assert s["run"]["webhook_url"] == "https://h.example/"
    assert [x["name"] for x in c.schedules()] == ["py-nightly"]
    assert c.pause_schedule("py-nightly")["paused"] is True
    assert c.pause_schedule("py-nightly", paused=False)["paused"] is False
    with pytest.raises(TypeError):
        c.set_schedule("x", task, cron="* * * * *", no_such_option=1)
    with pytest.raises(errors.BadRequest) as bad:
        c.set_schedule("x", task, cron="61 * * * *")
    assert bad.value.field == "cron"
    c.delete_schedule("py-nightly")
    assert c.schedules() == []
