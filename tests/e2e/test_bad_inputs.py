# SPDX-License-Identifier: MIT
"""Bad input gets the documented 4xx with a JSON error naming the problem, stores nothing,
and leaves the server healthy (the server fixture also checks it exits cleanly, without
sanitizer reports, after all of this)."""
import json
import socket
import uuid

import pytest

from conftest import Api, unique_task

UNKNOWN_ID = "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"


def error_of(r, status, code, field=None):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"], err
    if field is not None:
        assert err.get("field") == field, err
    return err


# (field, bad value) -> every one answers 400 invalid_field naming the field.
WRONG_VALUES = [
    ("task", 5), ("task", ""), ("task", "x" * 201), ("task", ["a"]), ("task", True),
    ("parameters", [1, 2]), ("parameters", "text"), ("parameters", 3),
    ("idempotency_key", 5), ("idempotency_key", "k" * 201), ("idempotency_key", {}),
    ("scheduled_at", "tomorrow"), ("scheduled_at", 12345), ("scheduled_at", "2026-13-40T99:00:00Z"),
    ("delay_seconds", "5"), ("delay_seconds", -1), ("delay_seconds", [1]),
    ("priority", "high"), ("priority", 1.5), ("priority", True),
    ("tags", "web"), ("tags", [1]), ("tags", {"a": 1}), ("tags", ["ok", None]),
    ("retries", -1), ("retries", 1001), ("retries", "3"), ("retries", 1.5),
    ("retry_delay_seconds", "1"), ("retry_delay_seconds", -1), ("retry_delay_seconds", [-1]),
    ("retry_delay_seconds", [1, "x"]), ("retry_delay_seconds", {}),
    ("retry_jitter_factor", -0.5), ("retry_jitter_factor", "x"),
    ("timeout_seconds", 0), ("timeout_seconds", -1), ("timeout_seconds", "10"),
    ("cache_key", 5), ("cache_key", "c" * 201),
    ("cache_expiration_seconds", 0), ("cache_expiration_seconds", -5), ("cache_expiration_seconds", "x"),
    ("persist_result", "yes"), ("persist_result", 1),
]


@pytest.fixture
def small_server(server_factory):
    return server_factory(env={"ERRAND_MAX_BODY_BYTES": 4096})


def test_every_wrong_field_value_is_400_naming_the_field(small_server):
    api = small_server.api
    failures = []
    for field, value in WRONG_VALUES:
        body = {"task": "t.bad", field: value}
        r = api.submit_raw(body)
        try:
            err = error_of(r, 400, "invalid_field")
            # The field itself, or the element at fault inside it ("tags[1]").
            assert err["field"] == field or err["field"].startswith(field + "["), err
            assert field in err["message"], err
        except AssertionError as e:
            failures.append(f"{field}={json.dumps(value)[:40]}: {e}")
    assert not failures, "\n".join(failures)
    assert api.list(task="t.bad")["runs"] == [], "nothing was stored"
    assert api.health()["status"] == "ok"


def test_scheduled_at_and_delay_together_are_refused(server):
    r = server.api.submit_raw({"task": "t", "scheduled_at": "2030-01-01T00:00:00Z",
                               "delay_seconds": 5})
    err = error_of(r, 400, "invalid_field")
    assert err["field"] in ("scheduled_at", "delay_seconds"), err


def test_good_optional_fields_are_accepted(server):
    run = server.api.submit("t.good", {"a": 1}, idempotency_key="k", priority=-3,
                            tags=["x", "y"], retries=2, retry_delay_seconds=[1, 2.5],
                            retry_jitter_factor=0.5, timeout_seconds=9.5, cache_key="c",
                            cache_expiration_seconds=60, persist_result=True,
                            scheduled_at="2030-01-01T00:00:00Z")
    assert run["priority"] == -3 and run["tags"] == ["x", "y"] and run["retries"] == 2
    assert run["max_attempts"] == 3 and run["retry_delay_seconds"] == [1, 2.5]
    assert run["timeout_seconds"] == 9.5 and run["persist_result"] is True
    assert run["scheduled_at"].startswith("2030-01-01T00:00:00")
    assert run["cache_key"] == "c" and run["idempotency_key"] == "k"


@pytest.mark.parametrize("body", ['{"task": ', "not json", '{"task": "t",}', "", "\x00"])
def test_malformed_json_is_400_invalid_json(server, body):
    r = server.api.request("POST", "/task_runs", data=body.encode(),
                           headers={"Content-Type": "application/json"})
    error_of(r, 400, "invalid_json")


def test_invalid_json_message_gives_line_and_column(server):
    r = server.api.request("POST", "/task_runs", data=b'{\n  "task": "t",\n  oops\n}',
                           headers={"Content-Type": "application/json"})
    err = error_of(r, 400, "invalid_json")
    assert "3" in err["message"] and "line" in err["message"].lower(), err


@pytest.mark.parametrize("body", ["[1, 2]", '"task"', "42", "null"])
def test_non_object_body_is_400(server, body):
    r = server.api.request("POST", "/task_runs", data=body.encode(),
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("invalid_json", "invalid_field"), r.text


def test_unknown_field_is_400_naming_it(server):
    r = server.api.submit_raw({"task": "t", "parametres": {}})
    error_of(r, 400, "unknown_field", "parametres")


def test_missing_task_is_400_missing_field(server):
    error_of(server.api.submit_raw({"parameters": {}}), 400, "missing_field", "task")
    error_of(server.api.submit_raw({}), 400, "missing_field", "task")


def test_oversize_body_is_413(small_server):
    api = small_server.api
    big = {"task": "t.big", "parameters": {"blob": "x" * 5000}}
    error_of(api.submit_raw(big), 413, "body_too_large")
    # The same without a Content-Length (chunked upload).
    data = json.dumps(big).encode()

    def chunks():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    r = api.request("POST", "/task_runs", data=chunks(), headers={"Content-Type": "application/json"})
    error_of(r, 413, "body_too_large")
    assert api.list(task="t.big")["runs"] == []
    # Just under the limit is fine.
    ok = {"task": "t.big", "parameters": {"blob": "x" * 3000}}
    assert api.submit_raw(ok).status_code == 201
    assert api.health()["status"] == "ok"


def test_default_body_limit_is_one_mib(server):
    big = {"task": "t.big", "parameters": {"blob": "x" * (1024 * 1024 + 10)}}
    error_of(server.api.submit_raw(big), 413, "body_too_large")
    ok = {"task": "t.big", "parameters": {"blob": "x" * (1000 * 1000)}}
    assert server.api.submit_raw(ok).status_code == 201


@pytest.mark.parametrize("suffix", ["", "/states", "/logs", "/wait?timeout_seconds=1"])
def test_bad_id_is_400_invalid_parameter(server, suffix):
    r = server.api.request("GET", f"/task_runs/not-a-uuid{suffix}")
    error_of(r, 400, "invalid_parameter", "id")


@pytest.mark.parametrize("method,suffix", [("GET", ""), ("GET", "/states"), ("GET", "/logs"),
                                           ("GET", "/wait?timeout_seconds=1"),
                                           ("POST", "/cancel"), ("POST", "/retry")])
def test_unknown_id_is_404(server, method, suffix):
    r = server.api.request(method, f"/task_runs/{UNKNOWN_ID}{suffix}")
    error_of(r, 404, "not_found")


def test_unknown_endpoint_is_404_and_wrong_method_405(server):
    error_of(server.api.request("GET", "/no/such/thing"), 404, "not_found")
    error_of(server.api.request("GET", server.root + "/nothing-here"), 404, "not_found")
    error_of(server.api.request("PUT", "/task_runs"), 405, "method_not_allowed")
    error_of(server.api.request("DELETE", f"/task_runs/{UNKNOWN_ID}"), 405, "method_not_allowed")
    error_of(server.api.request("GET", f"/task_runs/{UNKNOWN_ID}/cancel"), 405, "method_not_allowed")
    error_of(server.api.request("POST", "/health"), 405, "method_not_allowed")


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": "5x"}, "limit"), ({"state": "BOGUS"}, "state"), ({"state": "SCHEDULED,NOPE"}, "state"),
    ({"cursor": "not-an-id"}, "cursor"),
])
def test_bad_list_query_parameters_are_400(server, params, field):
    r = server.api.request("GET", "/task_runs", params=params)
    error_of(r, 400, "invalid_parameter", field)


@pytest.mark.parametrize("value", ["abc", "-1", "301"])
def test_bad_wait_timeout_is_400(server, value):
    run = server.api.submit("t.wait", {})
    r = server.api.request("GET", f"/task_runs/{run['id']}/wait", params={"timeout_seconds": value})
    error_of(r, 400, "invalid_parameter", "timeout_seconds")


@pytest.mark.parametrize("params,field", [({"after": "x"}, "after"), ({"limit": 0}, "limit"),
                                          ({"limit": "many"}, "limit")])
def test_bad_logs_query_parameters_are_400(server, params, field):
    run = server.api.submit("t.logs", {})
    r = server.api.request("GET", f"/task_runs/{run['id']}/logs", params=params)
    error_of(r, 400, "invalid_parameter", field)


def test_wait_returns_current_state_after_timeout(server):
    run = server.api.submit("t.nobody", {})
    r = server.api.request("GET", f"/task_runs/{run['id']}/wait", params={"timeout_seconds": 1})
    assert r.status_code == 200 and r.json()["state"]["type"] == "SCHEDULED"


def test_batch_with_one_bad_item_stores_nothing(server):
    task = unique_task("batch")
    runs = [{"task": task, "parameters": {"i": i}} for i in range(5)]
    runs[3]["priority"] = "urgent"
    r = server.api.request("POST", "/task_runs/batch", json_body={"runs": runs})
    err = error_of(r, 400, "invalid_field", "runs[3].priority")
    assert "priority" in err["message"]
    runs[3] = {"task": task, "bogus": 1}
    error_of(server.api.request("POST", "/task_runs/batch", json_body={"runs": runs}),
             400, "unknown_field", "runs[3].bogus")
    runs[3] = {"parameters": {}}
    error_of(server.api.request("POST", "/task_runs/batch", json_body={"runs": runs}),
             400, "missing_field", "runs[3].task")
    assert server.api.list(task=task)["runs"] == [], "all or nothing"


@pytest.mark.parametrize("body,code,field", [
    ({"runs": []}, "invalid_field", "runs"),
    ({"runs": {}}, "invalid_field", "runs"),
    ({}, "missing_field", "runs"),
    ({"runs": [{"task": "t"}], "extra": 1}, "unknown_field", "extra"),
    ({"runs": ["t"]}, "invalid_field", "runs[0]"),
])
def test_bad_batch_shapes_are_400(server, body, code, field):
    error_of(server.api.request("POST", "/task_runs/batch", json_body=body), 400, code, field)


def test_batch_over_10000_items_is_refused(server):
    r = server.api.request("POST", "/task_runs/batch",
                           json_body={"runs": [{"task": "t"}] * 10001})
    assert r.status_code in (400, 413), r.text
    assert r.json()["error"]["code"] in ("invalid_field", "body_too_large")
    assert server.api.list(task="t")["runs"] == []


def test_api_key_is_required_when_set(server_factory):
    srv = server_factory(env={"ERRAND_API_KEY": "s3cret"})
    anon = Api(srv.url)
    wrong = Api(srv.url, key="nope")
    good = Api(srv.url, key="s3cret")
    assert anon.request("GET", "/health").status_code == 200, "health needs no key"
    for api in (anon, wrong):
        error_of(api.request("POST", "/task_runs", json_body={"task": "t"}), 401, "unauthorized")
        error_of(api.request("GET", "/task_runs"), 401, "unauthorized")
        error_of(api.request("GET", f"/task_runs/{UNKNOWN_ID}"), 401, "unauthorized")
        error_of(api.request("POST", "/workers/claim", json_body={
            "worker": "w", "tasks": ["t"], "wait_seconds": 0}), 401, "unauthorized")
        error_of(api.request("GET", srv.root + "/metrics"), 401, "unauthorized")
    r = anon.request("GET", "/task_runs", headers={"Authorization": "Basic czNjcmV0"})
    error_of(r, 401, "unauthorized")
    # The key is checked before routing: without it, nothing about the routes shows.
    for api in (anon, wrong):
        for method, path in (("GET", "/no/such/path"), ("DELETE", "/task_runs"),
                             ("GET", "/task_runs/not-a-uuid"), ("POST", "/health")):
            r = api.request(method, path)
            error_of(r, 401, "unauthorized")
            assert "allowed" not in r.text and "UUID" not in r.text, r.text
    assert anon.request("GET", "/health/ready").status_code == 200, "readiness needs no key"
    assert good.request("POST", "/task_runs", json_body={"task": "t"}).status_code == 201
    assert len(good.list(task="t")["runs"]) == 1
    error_of(good.request("DELETE", "/task_runs"), 405, "method_not_allowed")


SCOPED_KEYS = {"ERRAND_API_KEY": "admin-key", "ERRAND_API_KEYS_SUBMIT": "web-1,web-2",
               "ERRAND_API_KEYS_WORKER": "worker-key", "ERRAND_API_KEYS_READ": "viewer-key"}


def test_scoped_keys_allow_only_their_endpoints(server_factory):
    """A web app's key submits and reads, a worker's key only works the queue, a dashboard's
    key only reads; the admin key does everything. Every endpoint, every key."""
    srv = server_factory(env=SCOPED_KEYS)
    admin = Api(srv.url, key="admin-key")
    run = admin.submit("scoped.t", {})
    rid = run["id"]
    claim = {"worker": "w", "tasks": ["nothing.here"], "wait_seconds": 0}
    beat = {"worker": "w", "leases": []}
    report = {"worker": "w", "reports": []}
    endpoints = [  # (method, path, body, scope)
        ("POST", "/task_runs", {"task": "scoped.t"}, "submit"),
        ("POST", "/task_runs/batch", {"runs": [{"task": "scoped.t"}]}, "submit"),
        ("POST", f"/task_runs/{rid}/cancel", None, "submit"),
        ("POST", f"/task_runs/{rid}/retry", None, "submit"),
        ("GET", "/task_runs", None, "read"),
        ("GET", f"/task_runs/{rid}", None, "read"),
        ("GET", f"/task_runs/{rid}/wait?timeout_seconds=0", None, "read"),
        ("GET", f"/task_runs/{rid}/states", None, "read"),
        ("GET", f"/task_runs/{rid}/logs", None, "read"),
        ("GET", "/workers", None, "read"),
        ("GET", srv.root + "/metrics", None, "read"),
        ("POST", "/workers/claim", claim, "worker"),
        ("POST", "/workers/heartbeat", beat, "worker"),
        ("POST", "/workers/report", report, "worker"),
    ]
    grants = {"admin-key": {"submit", "read", "worker"}, "web-1": {"submit", "read"},
              "web-2": {"submit", "read"}, "worker-key": {"worker"}, "viewer-key": {"read"}}
    for key, scopes in grants.items():
        api = Api(srv.url, key=key)
        for method, path, body, scope in endpoints:
            r = api.request(method, path, json_body=body)
            if scope in scopes:
                assert r.status_code < 400 or r.status_code == 409, (key, method, path, r.text)
            else:
                error_of(r, 403, "forbidden")
                assert scope in r.json()["error"]["message"], r.text
    for key in ("", "web-3", "admin-key,web-1", "worker-key "):
        error_of(Api(srv.url, key=key or None).request("GET", "/task_runs"), 401, "unauthorized")


def test_worker_with_api_key_completes_runs(server_factory, worker_factory):
    srv = server_factory(env={"ERRAND_API_KEY": "s3cret"})
    worker_factory(srv)  # inherits ERRAND_API_KEY from the server fixture
    run = srv.api.submit("errand.noop", {"k": 1})
    assert srv.api.wait_final(run["id"])["state"]["type"] == "COMPLETED"


@pytest.mark.parametrize("body,field", [
    ({"tasks": ["t"]}, "worker"),
    ({"worker": "w"}, "tasks"),
    ({"worker": "w", "tasks": "t"}, "tasks"),
    ({"worker": "w", "tasks": ["t"], "limit": 0}, "limit"),
    ({"worker": "w", "tasks": ["t"], "limit": 1001}, "limit"),
    ({"worker": "w", "tasks": ["t"], "wait_seconds": 61}, "wait_seconds"),
    ({"worker": "w", "tasks": ["t"], "lease_seconds": 0}, "lease_seconds"),
    ({"worker": "w", "tasks": ["t"], "bogus": 1}, "bogus"),
])
def test_bad_claims_are_400(server, body, field):
    r = server.api.request("POST", "/workers/claim", json_body=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].get("field") == field, r.text


def test_report_with_stale_or_wrong_lease_token_is_409(server):
    api = server.api
    task = unique_task("proto")
    run = api.submit(task, {})
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "w1", "tasks": [task], "limit": 5, "wait_seconds": 5})
    assert claim.status_code == 200, claim.text
    claimed = claim.json()["runs"]
    assert [c["id"] for c in claimed] == [run["id"]]
    token = claimed[0]["lease_token"]
    assert claimed[0]["attempt"] == 1 and claimed[0]["lease_token"]

    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": "0" * 32, "state": "COMPLETED", "result": 1}]})
    assert r.status_code == 409, r.text
    assert r.json() == {"reports": [{
        "id": run["id"], "status": 409, "state": "PENDING",
        "message": "stale lease: the lease token is not the run's current one"}]}
    assert api.get(run["id"])["state"]["type"] == "PENDING", "a refused report changes nothing"

    # A run the store does not have: 404 and no state; the heartbeat answers each lease.
    unknown = "00000000-0000-7000-8000-000000000000"
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": unknown, "lease_token": token, "state": "COMPLETED", "result": 1}]})
    assert r.status_code == 409, r.text
    answer = r.json()["reports"]
    assert [(a["id"], a["status"], a["state"]) for a in answer] == [(unknown, 404, None)], r.text
    hb = api.request("POST", "/workers/heartbeat", json_body={"worker": "w1", "leases": [
        {"id": run["id"], "lease_token": token}, {"id": unknown, "lease_token": token}]})
    assert hb.status_code == 409, hb.text
    assert hb.json() == {"leases": [{"id": run["id"], "status": 200, "cancel": False},
                                    {"id": unknown, "status": 404, "cancel": False}]}, hb.text

    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": token, "state": "RUNNING"},
        {"id": run["id"], "lease_token": token, "state": "COMPLETED", "result": {"ok": 1}}],
        "logs": [{"id": run["id"], "timestamp": "2026-01-01T00:00:00.000Z", "level": "info",
                  "message": "from the protocol test"}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"reports": [{"id": run["id"], "status": 200, "state": "RUNNING"},
                                    {"id": run["id"], "status": 200, "state": "COMPLETED"}]}
    done = api.get(run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == {"ok": 1}
    assert [e["message"] for e in api.logs(run["id"])["logs"]] == ["from the protocol test"]

    # The run is final: even its last token is now refused.
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": token, "state": "FAILED", "message": "late"}]})
    assert r.status_code == 409, r.text
    assert api.get(run["id"])["state"]["type"] == "COMPLETED"


def test_claim_of_nothing_waits_then_answers_empty(server):
    r = server.api.request("POST", "/workers/claim", json_body={
        "worker": "idle", "tasks": [unique_task("none")], "wait_seconds": 0})
    assert r.status_code == 200, r.text
    assert r.json()["runs"] == []


@pytest.mark.parametrize("payload", [
    b"GARBAGE\r\n\r\n",
    b"POST /api/task_runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ta",
    b"GET /api/task_runs/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/task_runs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /api/task_runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_protocol_garbage_does_not_hurt_the_server(server, payload):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    assert server.api.health()["status"] == "ok"
    assert server.api.submit("t.after", {})["state"]["type"] == "SCHEDULED"


def test_deeply_nested_parameters_are_refused_not_crashing(server):
    deep = "[" * 100000 + "]" * 100000
    r = server.api.request("POST", "/task_runs",
                           data=('{"task": "t", "parameters": {"d": ' + deep + "}}").encode(),
                           headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 413), r.text[:300]
    assert server.api.health()["status"] == "ok"


def test_unicode_survives_the_round_trip(server):
    params = {"text": "naïve café — 日本語 🎉", "\u00e9": "quote \" backslash \\ tab \t"}
    run = server.api.submit(unique_task("uni"), params, tags=["ünï"])
    assert server.api.get(run["id"])["parameters"] == params
    assert server.api.list(tag="ünï")["runs"][0]["id"] == run["id"]


def test_nul_character_in_a_string_is_accepted_or_refused_cleanly(server):
    """"\u0000" is valid JSON; the server must either keep it intact or refuse it with a
    400 naming the problem, never truncate it silently."""
    params = {"s": "before\u0000after"}
    r = server.api.submit_raw({"task": unique_task("nul"), "parameters": params})
    if r.status_code == 201:
        assert server.api.get(r.json()["id"])["parameters"] == params
    else:
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] in ("invalid_json", "invalid_field")


def test_server_is_still_healthy_after_bad_inputs(server):
    api = server.api
    api.request("POST", "/task_runs", data=b"{")
    api.request("POST", "/task_runs/batch", json_body={"runs": [{"task": 1}]})
    api.request("GET", "/task_runs/zzz")
    api.request("GET", f"/task_runs/{uuid.uuid4()}")
    h = api.health()
    assert h["status"] == "ok"
