# SPDX-License-Identifier: MIT
"""
test_webhooks.py — webhooks over the wire (docs/api.md, Webhooks), on real servers and a
real HTTP receiver in this process:

  - a receiver that fails twice gets the call once: three calls of one delivery (500, 500,
    then 200), none after the 200; each signed with the shared secret over its exact body;
  - a submission's own webhook_url wins over its task's; a failed, a cancelled and a cached
    run are called back too, each with its final state;
  - a delivery outlives a server killed with SIGKILL: written in the commit that ended its
    run, it is called after the restart;
  - a delivery is given up after ERRAND_WEBHOOK_MAX_ATTEMPTS failed calls, counted in
    /metrics; the pending list shows the last error meanwhile;
  - bad webhooks are refused with 400 naming the field.

Runs on SQLite and, with ERRAND_TEST_STORE=postgresql, on PostgreSQL.
"""
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import STORE_MODE, exec_spec, run_cli, unique_task, wait_until

SECRET = "webhook-test-secret"
RETRY_SECONDS = 1
HOOK_ENV = {
    "ERRAND_WEBHOOK_SECRET": SECRET,
    "ERRAND_WEBHOOK_INTERVAL_MS": "100",
    "ERRAND_WEBHOOK_RETRY_SECONDS": str(RETRY_SECONDS),
}
CALL_TIMEOUT = 30


class Receiver:
    """An HTTP server that records every call and answers each with the next status of
    `statuses` (the last one repeats)."""

    def __init__(self, statuses=(200,), delay=0.0):
        self.statuses = list(statuses)
        self.delay = delay
        self.calls = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                with receiver.lock:
                    status = receiver.statuses[min(len(receiver.calls), len(receiver.statuses) - 1)]
                    receiver.calls.append({"headers": dict(self.headers), "body": body,
                                           "status": status, "path": self.path})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def snapshot(self):
        with self.lock:
            return list(self.calls)

    def runs(self, path=None):
        """The run objects of the calls answered 2xx (to path, when given)."""
        return [json.loads(c["body"]) for c in self.snapshot()
                if 200 <= c["status"] < 300 and (path is None or c["path"] == path)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(statuses=(200,), delay=0.0):
        r = Receiver(statuses, delay)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def set_webhook(server, task, url, expect=200):
    r = server.api.request("POST", "/webhooks", json_body={"task": task, "url": url})
    assert r.status_code == expect, r.text
    return r.json()


def verify_signature(call):
    """The Errand-Signature header of call is the HMAC-SHA256 of "<t>.<body>" with SECRET."""
    header = call["headers"]["Errand-Signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + call["body"],
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), header
    assert abs(int(parts["t"]) - time.time()) < 600


def test_a_receiver_failing_twice_gets_the_call_once(server_factory, worker_factory,
                                                     receiver_factory):
    server = server_factory(env=HOOK_ENV)
    receiver = receiver_factory(statuses=(500, 503, 200))
    task = unique_task("hooked")
    set_webhook(server, task, receiver.url())
    worker_factory(server, execs=[exec_spec(task, "/bin/sh", "-c", "echo '{\"x\": 7}'")],
                   builtin=False)
    run = server.api.submit(task, {"n": 1})
    assert server.api.wait_final(run["id"])["state"]["type"] == "COMPLETED"
    wait_until(lambda: receiver.runs(), CALL_TIMEOUT, "the webhook call answered 200")
    # After the 200 nothing more comes: wait past two more retry periods.
    time.sleep(3 * RETRY_SECONDS + 0.5)
    calls = receiver.snapshot()
    assert [c["status"] for c in calls] == [500, 503, 200]
    assert len({c["headers"]["Errand-Delivery"] for c in calls}) == 1
    assert [c["headers"]["Errand-Attempt"] for c in calls] == ["1", "2", "3"]
    for c in calls:
        assert c["headers"]["Content-Type"] == "application/json"
        assert c["headers"]["Errand-Event"] == "task_run.final"
        verify_signature(c)
    body = json.loads(calls[-1]["body"])
    assert body["id"] == run["id"] and body["task"] == task
    assert body["state"]["type"] == "COMPLETED" and body["result"] == {"x": 7}
    listing = server.api.get_json("/webhooks")
    assert listing["pending"] == 0 and listing["deliveries"] == []
    assert listing["webhooks"] == [{"task": task, "url": receiver.url(),
                                    "created": listing["webhooks"][0]["created"],
                                    "updated": listing["webhooks"][0]["updated"]}]


def test_a_submissions_own_webhook_wins_and_every_final_state_is_called_back(
        server_factory, worker_factory, receiver_factory):
    server = server_factory(env=HOOK_ENV)
    receiver = receiver_factory()
    task, failing, idle = unique_task("ok"), unique_task("failing"), unique_task("idle")
    for t in (task, failing, idle):
        set_webhook(server, t, receiver.url("/task"))
    worker_factory(server, execs=[exec_spec(task, "/bin/sh", "-c", "echo 1"),
                                  exec_spec(failing, "/bin/sh", "-c", "echo boom >&2; exit 3")],
                   builtin=False)
    own = server.api.submit(task, {"a": 1}, webhook_url=receiver.url("/own"))
    plain = server.api.submit(task, {"a": 2}, cache_key="k1")
    failed = server.api.submit(failing, {})
    cancelled = server.api.submit(idle, {})
    server.api.cancel(cancelled["id"])
    for r in (own, plain, failed):
        server.api.wait_final(r["id"])
    cached = server.api.submit(task, {"a": 3}, cache_key="k1")  # born COMPLETED/Cached
    assert cached["state"]["name"] == "Cached"
    expected = {own["id"]: ("/own", "COMPLETED"), plain["id"]: ("/task", "COMPLETED"),
                failed["id"]: ("/task", "FAILED"), cancelled["id"]: ("/task", "CANCELLED"),
                cached["id"]: ("/task", "COMPLETED")}
    wait_until(lambda: len(receiver.snapshot()) >= len(expected), CALL_TIMEOUT,
               "a call for each run")
    time.sleep(0.5)  # and no more
    calls = receiver.snapshot()
    got = {json.loads(c["body"])["id"]: (c["path"], json.loads(c["body"])["state"]["type"])
           for c in calls}
    assert got == expected and len(calls) == len(expected)


def test_servers_sharing_a_store_call_each_delivery_once(tmp_path, pg_cluster, server_factory,
                                                       receiver_factory):
    """Three senders look for the same due deliveries (one SQLite file, or one PostgreSQL
    schema); a slow receiver keeps each call open while the others look again."""
    if STORE_MODE == "postgresql":
        url = pg_cluster.url(pg_cluster.ensure_schema(f"hooks_{uuid.uuid4().hex[:16]}"))
    else:
        url = f"sqlite://{tmp_path}/shared.db"
    servers = [server_factory(env={**HOOK_ENV, "ERRAND_DATABASE_URL": url}) for _ in range(3)]
    receiver = receiver_factory(delay=0.3)
    task = unique_task("idle")
    set_webhook(servers[0], task, receiver.url())
    runs = servers[1].api.batch([{"task": task, "parameters": {"i": i}} for i in range(30)])
    for i, r in enumerate(runs):
        servers[i % 3].api.cancel(r["id"])
    wait_until(lambda: len(receiver.snapshot()) >= len(runs), CALL_TIMEOUT, "a call per run")
    time.sleep(1.0)  # and no second one
    ids = [json.loads(c["body"])["id"] for c in receiver.snapshot()]
    assert sorted(ids) == sorted(r["id"] for r in runs)


def test_a_delivery_outlives_a_killed_server(server_factory, receiver_factory):
    server = server_factory(env=HOOK_ENV)
    receiver = receiver_factory(statuses=(503,))
    task = unique_task("idle")
    set_webhook(server, task, receiver.url())
    run = server.api.submit(task, {})
    server.api.cancel(run["id"])
    wait_until(lambda: len(receiver.snapshot()) >= 1, CALL_TIMEOUT, "the first call")
    server.kill9()
    receiver.statuses = [200]
    server.start()
    wait_until(lambda: receiver.runs(), CALL_TIMEOUT, "the call after the restart")
    assert [r["id"] for r in receiver.runs()] == [run["id"]]
    wait_until(lambda: server.api.get_json("/webhooks")["pending"] == 0, CALL_TIMEOUT,
               "no delivery left")


def test_a_delivery_is_given_up_after_its_attempts(server_factory, receiver_factory):
    server = server_factory(env={**HOOK_ENV, "ERRAND_WEBHOOK_MAX_ATTEMPTS": "2"})
    receiver = receiver_factory(statuses=(500,))
    task = unique_task("idle")
    run = server.api.submit(task, {}, webhook_url=receiver.url())
    server.api.cancel(run["id"])
    wait_until(lambda: len(receiver.snapshot()) >= 1, CALL_TIMEOUT, "the first call")
    pending = server.api.get_json("/webhooks")
    if pending["pending"]:  # between the two calls: the last error is shown
        d = pending["deliveries"][0]
        assert d["run_id"] == run["id"] and d["attempts"] == 1 and d["last_error"] == "HTTP 500"
    wait_until(lambda: server.api.get_json("/webhooks")["pending"] == 0, CALL_TIMEOUT,
               "the delivery given up")
    time.sleep(2 * RETRY_SECONDS + 0.5)
    assert len(receiver.snapshot()) == 2
    metrics = requests.get(server.root + "/metrics", timeout=30).text
    assert "errand_webhooks_abandoned_total 1" in metrics
    assert "errand_webhook_failures_total 2" in metrics
    assert "webhook delivery given up" in server.stderr_text()


def test_without_a_secret_calls_are_not_signed(server_factory, receiver_factory):
    env = {k: v for k, v in HOOK_ENV.items() if k != "ERRAND_WEBHOOK_SECRET"}
    server = server_factory(env=env)
    receiver = receiver_factory()
    run = server.api.submit(unique_task("idle"), {}, webhook_url=receiver.url())
    server.api.cancel(run["id"])
    wait_until(lambda: receiver.runs(), CALL_TIMEOUT, "the call")
    call = receiver.snapshot()[0]
    assert "Errand-Signature" not in call["headers"]
    assert json.loads(call["body"])["state"]["type"] == "CANCELLED"


def test_a_refused_connection_is_retried_with_its_error_shown(server_factory):
    server = server_factory(env={**HOOK_ENV, "ERRAND_WEBHOOK_RETRY_SECONDS": "60"})
    task = unique_task("idle")
    run = server.api.submit(task, {}, webhook_url="http://127.0.0.1:9/nobody-listens")
    server.api.cancel(run["id"])

    def failed_once():
        d = server.api.get_json("/webhooks")["deliveries"]
        return d and d[0]["attempts"] == 1 and d[0]["last_error"]

    wait_until(failed_once, CALL_TIMEOUT, "the first call failed")
    d = server.api.get_json("/webhooks")["deliveries"][0]
    assert d["run_id"] == run["id"] and "onnect" in d["last_error"], d


def test_bad_webhooks_are_refused_naming_the_field(server):
    for body, field in [({"task": "t", "url": "ftp://example.com/x"}, "url"),
                        ({"task": "t", "url": "not a url"}, "url"),
                        ({"task": "t", "url": "http://"}, "url"),
                        ({"task": "t", "url": "http://x/" + "a" * 2100}, "url"),
                        ({"task": "t"}, "url"),
                        ({"url": "http://example.com/"}, "task"),
                        ({"task": "t", "url": "http://example.com/", "secret": "x"}, "secret")]:
        r = server.api.request("POST", "/webhooks", json_body=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    r = server.api.submit_raw({"task": "t", "webhook_url": "gopher://example.com/"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "webhook_url", r.text
    r = server.api.request("POST", "/task_runs/batch",
                           json_body={"runs": [{"task": "t"}, {"task": "t", "webhook_url": 5}]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "runs[1].webhook_url", r.text
    assert set_webhook(server, "t", None, expect=404)["error"]["field"] == "task"
    set_webhook(server, "t", "https://example.com/hook")
    assert set_webhook(server, "t", None) == {"task": "t", "url": None}
    assert server.api.get_json("/webhooks")["webhooks"] == []


def test_the_cli_sets_lists_and_removes_webhooks(server_factory):
    env = {**HOOK_ENV, "ERRAND_WEBHOOK_RETRY_SECONDS": "60"}
    server = server_factory(env=env)
    task = unique_task("cli")
    cp = run_cli(server, "webhooks", "set", task, "http://127.0.0.1:9/down")
    assert cp.returncode == 0, cp.stderr
    assert f"task {task}: its runs are reported to http://127.0.0.1:9/down" in cp.stdout
    run = server.api.submit(task, {})
    server.api.cancel(run["id"])
    wait_until(lambda: server.api.get_json("/webhooks")["deliveries"], CALL_TIMEOUT,
               "the delivery listed")
    wait_until(lambda: server.api.get_json("/webhooks")["deliveries"][0]["last_error"],
               CALL_TIMEOUT, "its first call failed")
    cp = run_cli(server, "webhooks", "ls")
    assert cp.returncode == 0, cp.stderr
    assert task in cp.stdout and "1 deliveries not made yet" in cp.stdout
    assert run["id"] in cp.stdout
    listed = json.loads(run_cli(server, "webhooks", "ls", "--json").stdout)
    assert listed["webhooks"][0]["task"] == task and listed["pending"] == 1
    cp = run_cli(server, "webhooks", "set", task, "ftp://example.com/")
    assert cp.returncode != 0 and "url" in cp.stderr, (cp.stdout, cp.stderr)
    cp = run_cli(server, "webhooks", "rm", task)
    assert cp.returncode == 0 and f"task {task}: no webhook" in cp.stdout, cp.stderr
    cp = run_cli(server, "webhooks", "rm", task)
    assert cp.returncode != 0 and "has no webhook" in cp.stderr, (cp.stdout, cp.stderr)
    assert server.api.get_json("/webhooks")["webhooks"] == []
