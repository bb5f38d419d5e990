# SPDX-License-Identifier: MIT
"""
test_openapi.py — the OpenAPI document (docs/openapi.json) against a live server and a real
linter:

  - the server serves the document verbatim at GET /api/openapi.json, without a key;
  - Spectral (npm, tests/openapi/) finds nothing in it (tests/openapi/.spectral.yaml: every
    rule of its OAS ruleset, with the few turned off saying why);
  - every schema is a valid JSON Schema 2020-12 and every example in the document is valid
    against its own schema;
  - every endpoint, driven for real (a server with API keys; this test plays the worker over
    the worker protocol), answers bodies valid against the document's schema for that status,
    errors too (400, 401, 403, 404, 409, 413), with the documented Content-Type;
  - behaviourally, the live server accepts every documented request property (no
    unknown_field) and refuses one the document does not have (400 unknown_field naming it);
    the same for the query parameters of every operation.

tests/unit/test_openapi.c compares the router's table and the validators' field tables with
the document mechanically; this file checks what the server actually does.
"""
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker, RefResolver

from conftest import unique_task, wait_until

REPO = Path(__file__).resolve().parents[2]
DOC_PATH = REPO / "docs" / "openapi.json"
LINTER_DIR = REPO / "tests" / "openapi"
SPECTRAL = LINTER_DIR / "node_modules" / ".bin" / "spectral"
ADMIN, READER = "oa-admin-key", "oa-read-key"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
UNDOCUMENTED = "zz_not_in_the_document"

# What the document may describe ahead of this server (a change in progress); none now.
DOC_AHEAD: set = set()

DOC = json.loads(DOC_PATH.read_text(encoding="utf-8"))
RESOLVER = RefResolver.from_schema(DOC)


def validator(schema):
    return Draft202012Validator(schema, resolver=RESOLVER, format_checker=FormatChecker())


def assert_valid(schema, value, what):
    errors = sorted(validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what}: {len(errors)} schema errors, first: {errors[0].message} at " \
        f"{list(errors[0].absolute_path)}\nvalue: {json.dumps(value)[:600]}"


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = DOC
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def operation(method, template):
    op = DOC["paths"].get(template, {}).get(method.lower())
    assert op is not None, f"{method} {template} is not in the document"
    return op


def operations():
    for template, item in DOC["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), template, item[method], item


def query_params(template, method):
    item = DOC["paths"][template]
    params = [deref(p) for p in item.get("parameters", []) + item[method.lower()].get("parameters", [])]
    return [p for p in params if p["in"] == "query"]


def check(resp, method, template):
    """Asserts that resp (a live answer to method template) is documented: its status among
    the operation's responses, its Content-Type among the response's media types, and (JSON)
    its body valid against that media type's schema. Returns the parsed body (or text)."""
    op = operation(method, template)
    status = str(resp.status_code)
    assert status in op["responses"], \
        f"{method} {template} answered {status}, not documented: {resp.text[:300]}"
    documented = deref(op["responses"][status])
    ctype = resp.headers.get("Content-Type", "")
    content = documented.get("content", {})
    media = next((m for m in content if ctype.split(";")[0].strip() == m.split(";")[0].strip()), None)
    assert media is not None, f"{method} {template} {status}: Content-Type {ctype!r}, documented {list(content)}"
    if "json" not in media:
        return None  # not read: it may be a stream
    body = resp.json()
    assert_valid(content[media]["schema"], body, f"{method} {template} {status}")
    return body


# --- the document itself ----------------------------------------------------------------------

def test_document_is_served_verbatim_without_a_key(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": ADMIN})
    r = requests.get(server.url + "/openapi.json", timeout=10)  # no Authorization
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == DOC_PATH.read_bytes()
    check(r, "GET", "/api/openapi.json")
    r = requests.get(server.url + "/openapi.json", params={"x": "1"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "x"


def test_spectral_finds_nothing():
    assert SPECTRAL.exists(), f"{SPECTRAL} missing: run `npm ci` in tests/openapi (make e2e does)"
    r = subprocess.run([str(SPECTRAL), "lint", "--ruleset", str(LINTER_DIR / ".spectral.yaml"),
                        "--fail-severity=hint", "--format=text", str(DOC_PATH)],
                       capture_output=True, text=True, timeout=300, cwd=LINTER_DIR)
    assert r.returncode == 0, f"spectral:\n{r.stdout}\n{r.stderr}"


def walk(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def test_schemas_are_json_schema_2020_12():
    assert DOC["openapi"].startswith("3.1.")
    for name, schema in DOC["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    count = 0
    for path, node in walk(DOC["paths"]):
        if "schema" in node and isinstance(node["schema"], dict):
            Draft202012Validator.check_schema(node["schema"])
            count += 1
    assert count > 50


def test_every_example_is_valid_against_its_schema():
    """Schema `examples`, media-type and parameter `example`/`examples`: each validated."""
    checked = 0
    for path, node in walk(DOC):
        where = "/".join(map(str, path))
        if "examples" in node and isinstance(node["examples"], list):
            for ex in node["examples"]:
                assert_valid(node, ex, f"{where} examples")
                checked += 1
        if "schema" in node and isinstance(node.get("schema"), dict):
            if "example" in node:
                assert_valid(node["schema"], node["example"], f"{where} example")
                checked += 1
            if isinstance(node.get("examples"), dict):
                for name, ex in node["examples"].items():
                    assert_valid(node["schema"], deref(ex)["value"], f"{where} examples/{name}")
                    checked += 1
    assert checked >= 60, checked


# A heartbeat or report with a stale lease answers 409 with the per-item answer, not an error.
PER_ITEM_ANSWERS = ("/api/workers/heartbeat", "/api/workers/report")


def test_every_error_response_is_the_error_object():
    for method, template, op, _ in operations():
        for status, resp in op["responses"].items():
            if int(status) < 400 or (status == "409" and template in PER_ITEM_ANSWERS):
                continue
            schema = deref(resp)["content"]["application/json"]["schema"]
            text = json.dumps(schema)
            assert "#/components/schemas/Error" in text, f"{method} {template} {status}"


# --- live answers -----------------------------------------------------------------------------

@pytest.fixture
def keyed(server_factory):
    return server_factory(env={"ERRAND_API_KEY": ADMIN, "ERRAND_API_KEYS_READ": READER,
                               "ERRAND_MAX_BODY_BYTES": "262144"})


def call(server, method, path, body=None, key=ADMIN, **kw):
    headers = dict(kw.pop("headers", {}))
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.request(method, server.url.removesuffix("/api") + path, json=body,
                            headers=headers, timeout=kw.pop("timeout", 30), **kw)


def claim(server, task, worker="oa-worker", limit=10):
    r = call(server, "POST", "/api/workers/claim",
             {"worker": worker, "tasks": [task], "limit": limit, "wait_seconds": 5,
              "lease_seconds": 30, "request_id": unique_task("req")})
    body = check(r, "POST", "/api/workers/claim")
    assert r.status_code == 200
    return body["runs"]


def test_live_answers_match_the_document(keyed):
    s = keyed
    task = unique_task("oa")
    c = lambda r, m, t: check(r, m, t)  # noqa: E731

    # Operations: public ones without a key.
    for path in ("/api/health", "/api/health/ready", "/api/session"):
        c(call(s, "GET", path, key=None), "GET", path)
    r = call(s, "GET", "/metrics")
    assert r.status_code == 200
    c(r, "GET", "/metrics")

    # The session: login (cookie), a wrong key (401), no CSRF header (403), logout.
    csrf = {"X-Errand-CSRF": "1"}
    r = call(s, "POST", "/api/session", {"key": READER}, key=None, headers=csrf)
    assert r.status_code == 200 and "errand_session=" in r.headers["Set-Cookie"]
    c(r, "POST", "/api/session")
    r = call(s, "POST", "/api/session", {"key": "wrong"}, key=None, headers=csrf)
    assert r.status_code == 401
    c(r, "POST", "/api/session")
    r = call(s, "POST", "/api/session", {"key": READER}, key=None)
    assert r.status_code == 403
    c(r, "POST", "/api/session")
    r = call(s, "DELETE", "/api/session", key=None, headers=csrf)
    assert r.status_code == 200
    c(r, "DELETE", "/api/session")

    # Submissions: 201, the idempotent 200, a batch; 400s; 401; 403; 413.
    full = {"task": task, "parameters": {"n": 1}, "idempotency_key": "k1", "priority": 3,
            "tags": ["web", "oa"], "retries": 2, "retry_delay_seconds": 1.5,
            "retry_jitter_factor": 0.25, "timeout_seconds": 60, "persist_result": False,
            "cache_key": "ck", "cache_expiration_seconds": 3600}
    r = call(s, "POST", "/api/task_runs", full)
    assert r.status_code == 201, r.text
    run1 = c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs", full)
    assert r.status_code == 200 and r.json()["id"] == run1["id"]
    c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs", {"task": task, "delay_seconds": 3600})
    delayed = c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs/batch",
             {"runs": [{"task": task, "parameters": {"i": i}} for i in range(3)]})
    assert r.status_code == 201
    c(r, "POST", "/api/task_runs/batch")
    # Prefer: return=minimal (RFC 7240): the ids alone, in order, and said so.
    r = call(s, "POST", "/api/task_runs/batch",
             {"runs": [{"task": task, "parameters": {"i": i}} for i in range(3, 5)]},
             headers={"Prefer": "respond-async, wait=5; x, Return = Minimal ; x=1"})
    assert r.status_code == 201 and r.headers["Preference-Applied"] == "return=minimal"
    minimal = c(r, "POST", "/api/task_runs/batch")["runs"]
    assert [sorted(x) for x in minimal] == [["id"], ["id"]], minimal
    stored = [call(s, "GET", f"/api/task_runs/{x['id']}").json() for x in minimal]
    assert [x["parameters"] for x in stored] == [{"i": 3}, {"i": 4}], "in the order given"
    for other in ("return=representation", "return", "x; return=minimal", "return=minimalist",
                  "=", ",,,", ";;", "return=", "=minimal", "return==minimal"):
        r = call(s, "POST", "/api/task_runs/batch", {"runs": [{"task": task}]},
                 headers={"Prefer": other})
        assert "Preference-Applied" not in r.headers and "state" in r.json()["runs"][0], other
    for bad in ({"task": ""}, {"task": task, "priority": "high"}, {"task": task, "retry": 1},
                {}, [1, 2]):
        r = call(s, "POST", "/api/task_runs", bad)
        assert r.status_code == 400, (bad, r.text)
        c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs/batch", {"runs": [{"task": task}, {"task": 7}]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "runs[1].task"
    c(r, "POST", "/api/task_runs/batch")
    r = call(s, "POST", "/api/task_runs", {"task": task}, key=None)
    assert r.status_code == 401
    c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs", {"task": task}, key=READER)
    assert r.status_code == 403
    c(r, "POST", "/api/task_runs")
    r = call(s, "POST", "/api/task_runs", {"task": task, "parameters": {"blob": "x" * 300000}})
    assert r.status_code == 413
    c(r, "POST", "/api/task_runs")

    # Reading runs.
    rid = run1["id"]
    for path, template in ((f"/api/task_runs/{rid}", "/api/task_runs/{id}"),
                           (f"/api/task_runs/{rid}/states", "/api/task_runs/{id}/states"),
                           (f"/api/task_runs/{rid}/logs", "/api/task_runs/{id}/logs")):
        r = call(s, "GET", path, key=READER)
        assert r.status_code == 200
        c(r, "GET", template)
    r = call(s, "GET", f"/api/task_runs/{rid}/wait", key=READER, params={"timeout_seconds": 0})
    c(r, "GET", "/api/task_runs/{id}/wait")
    r = call(s, "GET", f"/api/task_runs/{rid}/result")
    assert r.status_code == 409
    c(r, "GET", "/api/task_runs/{id}/result")
    missing = "01938f2e-7c1a-7b3e-9a55-000000000000"
    for path, template in ((f"/api/task_runs/{missing}", "/api/task_runs/{id}"),
                           (f"/api/task_runs/{missing}/logs", "/api/task_runs/{id}/logs"),
                           (f"/api/task_runs/{missing}/cancel", "/api/task_runs/{id}/cancel")):
        method = "POST" if path.endswith("cancel") else "GET"
        r = call(s, method, path)
        assert r.status_code == 404
        c(r, method, template)
    r = call(s, "GET", "/api/task_runs/not-a-uuid")
    assert r.status_code == 400 and r.json()["error"]["field"] == "id"
    c(r, "GET", "/api/task_runs/{id}")
    r = call(s, "GET", "/api/task_runs", params={"task": task, "state": ["SCHEDULED", "PENDING,RUNNING"], "limit": 2})
    page = c(r, "GET", "/api/task_runs")
    assert len(page["runs"]) == 2 and page["next_cursor"]
    r = call(s, "GET", "/api/task_runs", params={"cursor": page["next_cursor"], "tag": "oa",
                                                  "since": "2020-01-01T00:00:00Z"})
    c(r, "GET", "/api/task_runs")
    r = call(s, "GET", "/api/task_runs", params={"state": "DONE"})
    assert r.status_code == 400
    c(r, "GET", "/api/task_runs")

    # The worker protocol, played by hand: claim, heartbeat, RUNNING, COMPLETED with a
    # result and log lines, FAILED; a stale lease (409 items).
    runs = claim(s, task)
    assert runs, "nothing claimed"
    assert all(set(run) >= {"id", "lease_token"} for run in runs)
    by_id = {run["id"]: run for run in runs}
    first = by_id.get(rid) or runs[0]
    others = [run for run in runs if run["id"] != first["id"]]
    lease = {"id": first["id"], "lease_token": first["lease_token"]}
    r = call(s, "POST", "/api/workers/heartbeat", {"worker": "oa-worker", "leases": [lease]})
    assert r.status_code == 200
    c(r, "POST", "/api/workers/heartbeat")
    r = call(s, "POST", "/api/workers/heartbeat",
             {"worker": "oa-worker", "leases": [{"id": first["id"], "lease_token": "stale"}]})
    assert r.status_code == 409
    c(r, "POST", "/api/workers/heartbeat")
    r = call(s, "POST", "/api/workers/report", {
        "worker": "oa-worker", "batch_id": "b1",
        "reports": [dict(lease, state="RUNNING")],
        "logs": [{"id": first["id"], "level": "info", "message": "hello"},
                 {"id": first["id"], "timestamp": "2026-12-02T10:00:00Z", "level": "warning", "message": "hm"}]})
    assert r.status_code == 200, r.text
    c(r, "POST", "/api/workers/report")
    r = call(s, "POST", "/api/workers/report", {
        "worker": "oa-worker", "reports": [dict(lease, state="COMPLETED", result={"answer": 42})]})
    assert r.status_code == 200
    c(r, "POST", "/api/workers/report")
    r = call(s, "POST", "/api/workers/report", {
        "worker": "oa-worker", "reports": [dict(lease, lease_token="stale", state="COMPLETED")]})
    assert r.status_code == 409
    c(r, "POST", "/api/workers/report")
    failed = others[0]
    r = call(s, "POST", "/api/workers/report", {"worker": "oa-worker", "reports": [
        {"id": failed["id"], "lease_token": failed["lease_token"], "state": "FAILED",
         "message": "timeout after 30.2 s", "retryable": False}]})
    assert r.status_code == 200
    c(r, "POST", "/api/workers/report")
    r = call(s, "POST", "/api/workers/claim", {"worker": "oa-worker", "tasks": []})
    assert r.status_code == 400
    c(r, "POST", "/api/workers/claim")

    done = first["id"]
    for path, template in ((f"/api/task_runs/{done}", "/api/task_runs/{id}"),
                           (f"/api/task_runs/{done}/result", "/api/task_runs/{id}/result"),
                           (f"/api/task_runs/{done}/states", "/api/task_runs/{id}/states"),
                           (f"/api/task_runs/{done}/logs", "/api/task_runs/{id}/logs")):
        r = call(s, "GET", path, key=READER)
        assert r.status_code == 200
        c(r, "GET", template)
    assert call(s, "GET", f"/api/task_runs/{done}/logs").json()["logs"]
    r = call(s, "GET", f"/api/task_runs/{done}/wait", key=READER)
    assert r.status_code == 200 and r.json()["state"]["type"] == "COMPLETED"
    c(r, "GET", "/api/task_runs/{id}/wait")

    # Cancel (200, then 409), retry (201, then 409 on a COMPLETED run).
    r = call(s, "POST", f"/api/task_runs/{delayed['id']}/cancel")
    assert r.status_code == 200
    c(r, "POST", "/api/task_runs/{id}/cancel")
    r = call(s, "POST", f"/api/task_runs/{delayed['id']}/cancel")
    assert r.status_code == 409
    c(r, "POST", "/api/task_runs/{id}/cancel")
    r = call(s, "POST", f"/api/task_runs/{delayed['id']}/retry")
    assert r.status_code == 201
    retried = c(r, "POST", "/api/task_runs/{id}/retry")
    assert retried["retry_of"] == delayed["id"]
    r = call(s, "POST", f"/api/task_runs/{done}/retry")
    assert r.status_code == 409
    c(r, "POST", "/api/task_runs/{id}/retry")

    # Overview: failures, stats, workers, pause/resume, bulk.
    r = call(s, "GET", "/api/failures", key=READER, params={"task": task})
    assert r.status_code == 200 and r.json()["groups"]
    c(r, "GET", "/api/failures")
    for window in ("hour", "day"):
        r = call(s, "GET", "/api/stats", key=READER, params={"window": window})
        assert r.status_code == 200
        c(r, "GET", "/api/stats")
    r = call(s, "GET", "/api/stats", params={"window": "week"})
    assert r.status_code == 400
    c(r, "GET", "/api/stats")
    r = call(s, "GET", "/api/workers", key=READER, params={"limit": 5})
    assert r.status_code == 200 and r.json()["workers"]
    c(r, "GET", "/api/workers")
    for path in ("/api/tasks/pause", "/api/tasks/resume"):
        r = call(s, "POST", path, {"task": task})
        assert r.status_code == 200
        c(r, "POST", path)
        r = call(s, "POST", path, {"task": task, "more": 1})
        assert r.status_code == 400 and r.json()["error"]["field"] == "more"
        c(r, "POST", path)
    # Schedules: created (201), replaced (200), listed, paused, resumed, deleted; 400, 404.
    sched = {"name": "oa-nightly", "task": task, "cron": "30 2 * * *", "time_zone": "Europe/Berlin",
             "catch_up": "once", "paused": False,
             "run": {"parameters": {"n": 1}, "priority": 2, "tags": ["oa"], "retries": 1,
                     "retry_delay_seconds": [1, 2], "retry_jitter_factor": 0.1,
                     "timeout_seconds": 30, "cache_key": "ck", "cache_expiration_seconds": 60,
                     "persist_result": False}}
    r = call(s, "POST", "/api/schedules", sched)
    assert r.status_code == 201, r.text
    c(r, "POST", "/api/schedules")
    r = call(s, "POST", "/api/schedules", {"name": "oa-nightly", "task": task, "every_seconds": 3600})
    assert r.status_code == 200, r.text
    c(r, "POST", "/api/schedules")
    r = call(s, "POST", "/api/schedules", {"name": "oa-bad", "task": task, "cron": "61 * * * *"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "cron"
    c(r, "POST", "/api/schedules")
    r = call(s, "GET", "/api/schedules", key=READER)
    assert r.status_code == 200 and r.json()["schedules"]
    c(r, "GET", "/api/schedules")
    for action in ("pause", "resume", "delete"):
        path = f"/api/schedules/{action}"
        r = call(s, "POST", path, {"name": "oa-nightly"})
        assert r.status_code == 200, r.text
        c(r, "POST", path)
    r = call(s, "POST", "/api/schedules/delete", {"name": "oa-nightly"})
    assert r.status_code == 404
    c(r, "POST", "/api/schedules/delete")

    r = call(s, "POST", "/api/task_runs/bulk", {"action": "retry", "task": task, "state": ["FAILED"]})
    assert r.status_code == 200 and r.json()["done"] == 1
    c(r, "POST", "/api/task_runs/bulk")
    r = call(s, "POST", "/api/task_runs/bulk", {"action": "cancel", "task": task, "limit": 1000})
    assert r.status_code == 200
    c(r, "POST", "/api/task_runs/bulk")
    r = call(s, "POST", "/api/task_runs/bulk", {"action": "delete"})
    assert r.status_code == 400
    c(r, "POST", "/api/task_runs/bulk")

    # The dashboard.
    r = call(s, "GET", "/", key=None)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    r = call(s, "GET", "/ui/app.js", key=None)
    assert r.status_code == 200
    c(r, "GET", "/ui/{file}")
    r = call(s, "GET", "/ui/nope.js", key=None)
    assert r.status_code == 404
    c(r, "GET", "/ui/{file}")

    # The events stream: each event's data valid against the $defs of its name.
    defs = operation("GET", "/api/events")["responses"]["200"]["content"]["text/event-stream"]["schema"]["$defs"]
    r = call(s, "GET", "/api/events", key=READER, params={"task": task, "after": 0}, stream=True,
             timeout=(10, 20))
    try:
        assert r.status_code == 200
        check(r, "GET", "/api/events")
        seen, event = {}, None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                assert event in defs, f"undocumented event {event!r}"
                assert_valid(defs[event], json.loads(line[len("data: "):]), f"event {event}")
                seen[event] = seen.get(event, 0) + 1
                if seen.get("run", 0) >= 3 or "reset" in seen:
                    break
        assert seen
    finally:
        r.close()
    r = call(s, "GET", "/api/events", params={"max_rate": -1})
    assert r.status_code == 400
    c(r, "GET", "/api/events")


# --- every documented field and parameter, behaviourally ------------------------------------

def unknown_field(resp):
    if resp.status_code != 400:
        return None
    e = resp.json()["error"]
    return e["field"] if e["code"] == "unknown_field" else None


def body_targets():
    """(method, template, item array or None, property names) of every documented body."""
    for method, template, op, _ in operations():
        body = op.get("requestBody")
        if not body:
            continue
        schema = deref(body["content"]["application/json"]["schema"])
        yield method, template, None, list(schema["properties"])
        for name, prop in schema["properties"].items():
            items = deref(deref(prop).get("items", {}))
            if items.get("type") == "object":
                yield method, template, name, list(items["properties"])


def path_for(template, run_id):
    return template.replace("{id}", run_id).replace("{file}", "app.js")


def test_every_documented_body_field_is_accepted_and_no_other(keyed):
    s = keyed
    csrf = {"X-Errand-CSRF": "1"}
    checked = 0
    for method, template, array, names in body_targets():
        for name in names + [UNDOCUMENTED]:
            item = {name: None} if name != UNDOCUMENTED else {UNDOCUMENTED: 1}
            if array is None:
                body, expect = item, name
            else:
                # The outer body is valid enough to reach its items.
                body = {"worker": "oa-w", array: [item]} if "workers" in template else {array: [item]}
                expect = f"{array}[0].{name}"
            r = call(s, method, template, body, headers=csrf)
            got = unknown_field(r)
            label = (method, template, f"{array}[].{name}" if array else name)
            if name == UNDOCUMENTED:
                assert r.status_code == 400 and got == expect, \
                    f"{method} {template}: an undocumented field was not refused: {r.status_code} {r.text}"
            elif label in DOC_AHEAD:
                assert got in (None, expect)
            else:
                assert got is None, f"{method} {template}: documented field {expect!r} refused: {r.text}"
            checked += 1
    assert checked > 60, checked


def test_every_documented_query_parameter_is_accepted_and_no_other(keyed):
    s = keyed
    rid = call(s, "POST", "/api/task_runs", {"task": unique_task("oa")}).json()["id"]
    for method, template, op, item in operations():
        if template in ("/", "/ui/{file}"):  # the dashboard's files take no parameters
            continue
        path = path_for(template, rid)
        headers = {"X-Errand-CSRF": "1"}
        for p in query_params(template, method):
            # An example value, but no long-poll: a wait answers at once with 0.
            value = 0 if p["name"] == "timeout_seconds" else p.get("example", "x")
            r = call(s, method, path, params={p["name"]: value}, headers=headers, stream=True,
                     timeout=(10, 30))
            try:
                if r.status_code == 400:
                    e = r.json()["error"]
                    refused = e["code"] == "invalid_parameter" and "unknown query parameter" in e["message"]
                    if (method, template, p["name"]) in DOC_AHEAD:
                        continue
                    assert not refused, f"{method} {template}: documented ?{p['name']}= refused: {e}"
            finally:
                r.close()
        if method != "GET":  # changing requests: an unknown parameter must not act either
            continue
        r = call(s, method, path, params={UNDOCUMENTED: "1"}, headers=headers, stream=True)
        try:
            assert r.status_code == 400, f"{method} {template} took ?{UNDOCUMENTED}="
            e = r.json()["error"]
            assert e["code"] == "invalid_parameter" and e["field"] == UNDOCUMENTED, e
        finally:
            r.close()


def test_the_python_client_sends_every_submission_field_the_document_has():
    """errand (clients/python) takes each field of a submission as a keyword, by the
    document's names, and refuses one it does not have."""
    sys.path.insert(0, str(REPO / "clients" / "python"))
    import errand.client

    fields = set(DOC["components"]["schemas"]["Submission"]["properties"])
    assert set(errand.client._SUBMIT_OPTIONS) | {"task", "parameters"} == fields
    with pytest.raises(TypeError, match="unknown submit option"):
        errand.client.submission("t", {}, not_a_field=1)
