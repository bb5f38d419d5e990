# SPDX-License-Identifier: MIT
"""W3C trace context: a traceparent sent with a submission (the body's field, or the request's
traceparent header for submissions without one) is stored with the run, shown by the API and
`errand runs show`, listed by trace id, kept by a retry; a C task and an exec task see it (the
task's own span: same trace id, a new parent id), and the runs they submit join the trace;
the server's and the worker's log lines about the run carry its trace id (logfmt and JSON), and
the run's own logs record it."""
import json
import uuid

import pytest

from conftest import BUILD, PYTHON, exec_spec, unique_task, wait_until, write_script
from errand_procs import ERRAND, Process, child_env, log_fields, log_msg_is

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE}-00f067aa0ba902b7-01"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER_TP = f"00-{OTHER_TRACE}-b7ad6b7169203331-00"
INVALID = [
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # trailing junk
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # length
    "",
]


def trace_of(tp):
    return tp.split("-")[1]


def assert_child_span(child, parent):
    """child is a span of parent's trace: same version, trace id and flags, another parent id."""
    assert child and len(child) == 55, child
    v, trace, span, flags = child.split("-")
    pv, ptrace, pspan, pflags = parent.split("-")
    assert (v, trace, flags) == (pv, ptrace, pflags), (child, parent)
    assert span != pspan and span != "0" * 16 and span == span.lower(), child


def error_field(r):
    assert r.status_code == 400, r.text
    return r.json()["error"]["field"]


def test_the_body_and_the_header_set_a_runs_traceparent(server):
    api = server.api
    task = unique_task("traced")
    body = api.submit(task, {}, traceparent=TP)
    assert body["traceparent"] == TP
    assert api.get(body["id"])["traceparent"] == TP
    # The header, for submissions without their own; the body's wins over it.
    r = api.submit_raw({"task": task}, headers={"traceparent": OTHER_TP})
    assert r.status_code == 201 and r.json()["traceparent"] == OTHER_TP, r.text
    r = api.submit_raw({"task": task, "traceparent": TP}, headers={"traceparent": OTHER_TP})
    assert r.json()["traceparent"] == TP, r.text
    # None at all: null.
    assert api.submit(task, {})["traceparent"] is None
    # Batch items: each its own, or the header's.
    r = api.request("POST", "/task_runs/batch", headers={"traceparent": OTHER_TP},
                    json_body={"runs": [{"task": task, "traceparent": TP}, {"task": task}]})
    assert r.status_code == 201, r.text
    assert [run["traceparent"] for run in r.json()["runs"]] == [TP, OTHER_TP]
    assert [run["traceparent"] for run in api.batch([{"task": task}])] == [None]


def test_an_invalid_traceparent_is_refused_in_the_body_and_ignored_in_the_header(server):
    api = server.api
    task = unique_task("traced")
    before = len(api.list_all(task=task))
    for bad in INVALID + [7]:
        assert error_field(api.submit_raw({"task": task, "traceparent": bad})) == "traceparent"
        r = api.request("POST", "/task_runs/batch",
                        json_body={"runs": [{"task": task}, {"task": task, "traceparent": bad}]})
        assert error_field(r) == "runs[1].traceparent"
    assert len(api.list_all(task=task)) == before  # nothing stored
    for bad in INVALID[:-1]:  # requests drops an empty header
        r = api.submit_raw({"task": task}, headers={"traceparent": bad})
        assert r.status_code == 201 and r.json()["traceparent"] is None, (bad, r.text)


def test_a_traces_runs_are_listed_by_its_id(server, cli):
    api = server.api
    task = unique_task("traced")
    mine = [api.submit(task, {"i": i}, traceparent=TP)["id"] for i in range(3)]
    api.submit(task, {}, traceparent=OTHER_TP)
    api.submit(task, {})
    listed = api.list_all(trace_id=TRACE)
    assert [r["id"] for r in listed] == mine[::-1]  # newest first, only the trace's
    assert [r["id"] for r in api.list_all(trace_id=TRACE, task="elsewhere")] == []
    assert [r["id"] for r in api.list_all(trace_id=TRACE, state="SCHEDULED")] == mine[::-1]
    r = api.request("GET", "/task_runs", params={"trace_id": "XYZ"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "trace_id", r.text
    cp = cli(server, "runs", "ls", "--trace-id", TRACE, "--json")
    assert cp.returncode == 0, cp.stderr
    assert [r["id"] for r in json.loads(cp.stdout)["runs"]] == mine[::-1]
    cp = cli(server, "runs", "show", mine[0])
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert any(l.split() == ["traceparent:", TP] for l in lines), cp.stdout
    assert any(l.split() == ["trace", "id:", TRACE] for l in lines), cp.stdout


def test_a_retry_keeps_the_trace(server, worker_factory, tmp_path):
    task = unique_task("fails")
    worker_factory(server, execs=[exec_spec(task, "false")], builtin=False)
    run = server.api.submit(task, {}, traceparent=TP)
    assert server.api.wait_final(run["id"])["state"]["type"] == "FAILED"
    r = server.api.request("POST", f"/task_runs/{run['id']}/retry")
    assert r.status_code == 201 and r.json()["traceparent"] == TP, r.text


def start_trace_worker(server, tmp_path, *args, env=None):
    extra = {"ERRAND_API_URL": server.url}
    if server.key:
        extra["ERRAND_API_KEY"] = server.key
    extra.update(env or {})
    proc = Process([str(BUILD / "tests" / "trace-worker"), *args],
                   child_env(server.home, extra), tmp_path / "trace-worker.log", "trace-worker")
    proc.wait_line(lambda l: log_msg_is(l, "worker started"), 20, "worker started")
    return proc


def test_a_c_task_sees_its_trace_and_its_subtasks_join_it(server, tmp_path):
    for isolate in ((), ("--isolate",)):
        proc = start_trace_worker(server, tmp_path, *isolate)
        try:
            run = server.api.submit("trace.probe", {"subtask": True}, traceparent=TP)
            done = server.api.wait_final(run["id"])
            assert done["state"]["type"] == "COMPLETED", done
            seen = done["result"]
            assert seen["run_traceparent"] == TP, (isolate, seen)
            assert_child_span(seen["current"], TP)  # the task's own span
            sub = server.api.wait_final(seen["subtask"])
            assert sub["traceparent"] == seen["current"], (isolate, sub)
            # A run without a trace: none, even on a thread that just ran a traced one.
            plain = server.api.wait_final(server.api.submit("trace.probe", {})["id"])
            assert plain["result"]["run_traceparent"] is None, plain
            assert plain["result"]["current"] is None, plain
        finally:
            proc.stop()


def test_an_exec_task_gets_traceparent_and_errand_submit_passes_it_on(server, worker_factory,
                                                                      tmp_path):
    script = write_script(tmp_path / "traced.py", f"""
import json, os, subprocess
tp = os.environ.get("TRACEPARENT")
sub = None
if tp:
    sub = subprocess.run([{str(ERRAND)!r}, "submit", "errand.noop"], check=True,
                         capture_output=True, text=True).stdout.strip()
print(json.dumps({{"traceparent": tp, "subtask": sub}}))
""")
    task = unique_task("exec.traced")
    # The worker's own TRACEPARENT is never handed to a task.
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)],
                   env={"TRACEPARENT": OTHER_TP})
    run = server.api.submit(task, {}, traceparent=TP)
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    tp = done["result"]["traceparent"]
    assert_child_span(tp, TP)
    sub = server.api.wait_final(done["result"]["subtask"])
    assert sub["traceparent"] == tp and trace_of(sub["traceparent"]) == TRACE, sub
    plain = server.api.wait_final(server.api.submit(task, {})["id"])
    assert plain["result"] == {"traceparent": None, "subtask": None}, plain


def test_errand_submit_takes_traceparent_from_the_environment_or_the_option(server, cli):
    cp = cli(server, "submit", "errand.noop", "--json", env={"TRACEPARENT": TP})
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["traceparent"] == TP
    cp = cli(server, "submit", "errand.noop", "--json", "--traceparent", OTHER_TP,
             env={"TRACEPARENT": TP})
    assert json.loads(cp.stdout)["traceparent"] == OTHER_TP
    cp = cli(server, "submit", "errand.noop", "--json", env={"TRACEPARENT": "garbage"})
    assert cp.returncode == 0 and json.loads(cp.stdout)["traceparent"] is None, cp
    cp = cli(server, "submit", "errand.noop", "--traceparent", "garbage")
    assert cp.returncode == 2 and "--traceparent" in cp.stderr, cp


def lines_about(text, run_id, msg):
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = log_fields(line)
        if f.get("run") == run_id and f.get("msg") == msg:
            out.append(f)
    return out


def test_log_lines_about_a_run_carry_its_trace_id(server_factory, worker_factory):
    for fmt in ("logfmt", "json"):
        env = {"ERRAND_LOGGING_FORMAT": fmt, "ERRAND_LOGGING_LEVEL": "debug"}
        server = server_factory(env=env)
        worker_factory(server, env=env)
        run = server.api.submit("errand.noop", {}, traceparent=TP)
        plain = server.api.submit("errand.noop", {})
        server.api.wait_final(run["id"])
        server.api.wait_final(plain["id"])
        for msg in ("task run submitted", "task run claimed"):
            got = wait_until(lambda: lines_about(server.proc.stderr_text(), run["id"], msg), 10,
                             f"server: {msg}")
            assert got[0]["trace_id"] == TRACE, (fmt, got)
            other = lines_about(server.proc.stderr_text(), plain["id"], msg)
            assert other and "trace_id" not in other[0], (fmt, other)
        if fmt == "json":
            line = next(l for l in server.proc.stderr_text().splitlines()
                        if run["id"] in l and "task run submitted" in l)
            assert json.loads(line)["trace_id"] == TRACE  # a JSON string, always


def test_the_workers_lines_and_the_runs_logs_record_the_trace(server, worker_factory):
    for fmt in ("logfmt", "json"):
        env = {"ERRAND_LOGGING_FORMAT": fmt, "ERRAND_LOGGING_LEVEL": "debug"}
        worker = worker_factory(server, env=env)
        run = server.api.submit("errand.noop", {}, traceparent=TP)
        plain = server.api.submit("errand.noop", {})
        server.api.wait_final(run["id"])
        server.api.wait_final(plain["id"])
        for msg in ("task run started", "task run ended"):
            got = wait_until(lambda: lines_about(worker.proc.stderr_text(), run["id"], msg), 10,
                             f"worker: {msg}")
            assert got[0]["trace_id"] == TRACE, (fmt, got)
            other = lines_about(worker.proc.stderr_text(), plain["id"], msg)
            assert other and "trace_id" not in other[0], (fmt, other)
        worker.stop()
        # The run's own logs: the first entry of the attempt names the trace and the span.
        logs = wait_until(lambda: server.api.logs(run["id"])["logs"], 10, "the run's logs")
        first = logs[0]["message"]
        assert f"trace_id={TRACE}" in first and f"traceparent={TP}" in first, logs
        assert server.api.logs(plain["id"])["logs"] == []


@pytest.mark.postgres_only("the PostgreSQL schema's own migration (SQLite's is a unit test)")
def test_a_postgresql_store_of_schema_1_is_migrated(pg_cluster, server_factory):
    schema = pg_cluster.ensure_schema(f"trace_{uuid.uuid4().hex[:16]}")
    url = pg_cluster.url(schema)
    server = server_factory(env={"ERRAND_DATABASE_URL": url})
    old = server.api.submit(unique_task("old"), {})
    server.stop()
    # Back to the schema 0.1.0 released: no column, no index, no record of step 2 (nor of
    # the dependencies' columns and table, step 4, the schedules' table, step 5, the
    # limits' tables and column, step 6, and the webhooks' tables, step 7).
    pg_cluster.psql(f'SET search_path = "{schema}"; DROP INDEX task_runs_trace; '
                    "ALTER TABLE task_runs DROP COLUMN traceparent; "
                    "DELETE FROM task_counts WHERE state_type = 8; "
                    "ALTER TABLE task_runs DROP COLUMN wait_for, DROP COLUMN result_refs, "
                    "DROP COLUMN upstream_pending, DROP COLUMN allow_upstream_failure, "
                    "DROP COLUMN dependants, ALTER COLUMN delayed SET NOT NULL; "
                    "DROP TABLE task_run_edges; DROP TABLE schedules; "
                    "DROP TABLE limits; DROP TABLE limit_holders; "
                    "ALTER TABLE task_runs DROP COLUMN holds_slots; "
                    "DROP TABLE task_webhooks; DROP TABLE run_webhooks; "
                    "DROP TABLE webhook_deliveries; "
                    "DELETE FROM errand_schema_migrations WHERE version >= 2;")
    server.start()
    versions = pg_cluster.psql(f'SET search_path = "{schema}"; SELECT version, name FROM '
                               "errand_schema_migrations ORDER BY version;").split()
    assert versions == ["1|initial", "2|trace_context", "3|delayed_counts",
                        "4|dependencies", "5|schedules", "6|limits", "7|webhooks"], versions
    assert server.api.get(old["id"])["traceparent"] is None
    run = server.api.submit(unique_task("new"), {}, traceparent=TP)
    assert [r["id"] for r in server.api.list_all(trace_id=TRACE)] == [run["id"]]
    # The listing's statement can use the index (its expression is the index's): with
    # sequential scans off, the plan reads task_runs_trace.
    plan = pg_cluster.psql(
        f'SET search_path = "{schema}"; SET enable_seqscan = off; EXPLAIN SELECT id FROM '
        "task_runs WHERE traceparent IS NOT NULL AND substr(traceparent, 4, 32) = "
        f"'{TRACE}' AND id < '~' AND id >= '' ORDER BY id DESC LIMIT 11;")
    assert "task_runs_trace" in plan, plan
