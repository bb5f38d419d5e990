# SPDX-License-Identifier: MIT
"""A task run end to end: submit over HTTP, a worker process runs it, the result comes back;
built-in tasks, exec tasks in other languages, failures and timeouts."""
import re
import subprocess
import time

from errand_procs import REPO
from conftest import STORE_MODE, exec_spec, parse_ts, unique_task, write_script, PYTHON

TIMEOUT_WORDS = re.compile(r"time ?out|timed out", re.I)


def assert_history_ordered(states):
    times = [parse_ts(s["timestamp"]) for s in states]
    assert times == sorted(times), f"state timestamps out of order: {states}"


def test_noop_run_completes_with_its_parameters_as_result(server, worker_factory):
    params = {"payload": "hello", "n": 3, "nested": {"list": [1, 2.5, None, True]}}
    run = server.api.submit("errand.noop", params, tags=["e2e"])
    assert run["state"]["type"] == "SCHEDULED"
    assert run["state"]["name"] == "Scheduled"
    assert run["attempt"] == 0
    assert run["task"] == "errand.noop"
    assert run["parameters"] == params
    assert run["tags"] == ["e2e"]
    assert run["started"] is None and run["finished"] is None

    worker_factory(server)
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["state"]["name"] == "Completed"
    assert done["result"] == params
    assert done["attempt"] == 1
    assert done["max_attempts"] == 1
    assert done["worker"], "a completed run names its worker"
    created, started, finished = (parse_ts(done[k]) for k in ("created", "started", "finished"))
    assert created <= started <= finished

    states = server.api.states(run["id"])
    types = [s["type"] for s in states]
    assert types[0] == "SCHEDULED" and types[-1] == "COMPLETED", types
    assert "PENDING" in types, types
    assert types in (["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"],
                     ["SCHEDULED", "PENDING", "COMPLETED"]), types
    assert_history_ordered(states)
    assert parse_ts(states[-1]["timestamp"]) == parse_ts(done["state"]["timestamp"])


def test_run_object_has_every_documented_field(server):
    run = server.api.submit("errand.noop", {"a": 1})
    for key in ("id", "task", "parameters", "state", "attempt", "max_attempts", "created",
                "scheduled_at", "started", "finished", "worker", "priority", "tags",
                "idempotency_key", "cache_key", "retries", "retry_delay_seconds",
                "retry_jitter_factor", "timeout_seconds", "persist_result"):
        assert key in run, f"run object lacks '{key}': {run}"
    for key in ("type", "name", "timestamp", "message"):
        assert key in run["state"], run["state"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", run["created"]), run["created"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        run["id"]), f"id is not a UUIDv7: {run['id']}"
    r = server.api.request("GET", f"/task_runs/{run['id']}")
    assert r.headers.get("Errand-Api-Version") == "1"
    assert r.headers.get("Content-Type", "").startswith("application/json")


def test_exec_python_task_reads_stdin_and_returns_json(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "add.py", """
import json, sys
p = json.load(sys.stdin)
print(json.dumps({"sum": p["a"] + p["b"], "lang": "python"}))
""")
    task = unique_task("py.add")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False)
    run = server.api.submit(task, {"a": 40, "b": 2})
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == {"sum": 42, "lang": "python"}


def test_exec_shell_task_returns_json(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "echo.sh", """#!/bin/sh
input=$(cat)
printf '{"echo": %s, "lang": "sh"}\\n' "$input"
""")
    task = unique_task("sh.echo")
    worker_factory(server, execs=[exec_spec(task, script)], builtin=False)
    run = server.api.submit(task, {"x": [1, 2, 3]})
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == {"echo": {"x": [1, 2, 3]}, "lang": "sh"}


def test_exec_task_exit_1_fails_with_tail_of_stderr(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "fail.py", """
import sys
sys.stdin.read()
for i in range(2000):
    print(f"noise line {i} " + "x" * 40, file=sys.stderr)
print("fatal: the widget exploded", file=sys.stderr)
sys.exit(1)
""")
    task = unique_task("py.fail")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False)
    run = server.api.submit(task, {})
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "FAILED", done
    msg = done["state"]["message"]
    assert "fatal: the widget exploded" in msg, msg
    assert "noise line 0 " not in msg, "the message is the tail of stderr, not all of it"
    assert "result" not in done or done["result"] is None


def test_exec_task_with_non_json_stdout_fails(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "text.sh", "#!/bin/sh\ncat >/dev/null\necho 'not json at all'\n")
    task = unique_task("sh.text")
    worker_factory(server, execs=[exec_spec(task, script)], builtin=False)
    run = server.api.submit(task, {})
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "FAILED", done
    assert "json" in done["state"]["message"].lower(), done["state"]


def test_builtin_sleep_times_out_and_fails(server, worker_factory):
    worker_factory(server)
    t0 = time.monotonic()
    run = server.api.submit("errand.sleep", {"seconds": 30}, timeout_seconds=1)
    done = server.api.wait_final(run["id"], timeout=25)
    elapsed = time.monotonic() - t0
    assert done["state"]["type"] == "FAILED", done
    assert TIMEOUT_WORDS.search(done["state"]["message"]), done["state"]
    assert elapsed < 25, "the timeout stopped the task long before its 30 s sleep"


def test_exec_task_times_out_and_its_process_is_stopped(server, worker_factory, tmp_path):
    marker = tmp_path / "finished"
    script = write_script(tmp_path / "slow.sh", f"#!/bin/sh\ncat >/dev/null\nsleep 30\ntouch {marker}\necho '{{}}'\n")
    task = unique_task("sh.slow")
    worker_factory(server, execs=[exec_spec(task, script)], builtin=False)
    run = server.api.submit(task, {}, timeout_seconds=1)
    done = server.api.wait_final(run["id"], timeout=25)
    assert done["state"]["type"] == "FAILED", done
    assert TIMEOUT_WORDS.search(done["state"]["message"]), done["state"]
    assert not marker.exists()


def test_workers_endpoint_lists_a_serving_worker(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {})
    done = server.api.wait_final(run["id"])
    workers = server.api.get_json("/workers")["workers"]
    mine = [w for w in workers if w["name"] == done["worker"]]
    assert mine, workers
    w = mine[0]
    assert "errand.noop" in w["tasks"] and "errand.sleep" in w["tasks"], w
    assert w["active"] is True
    assert w["last_seen"]


def test_health_reports_version_and_store(server):
    h = server.api.health()
    assert h["status"] == "ok"
    # The release of CHANGELOG.md's first release heading, the version's one place.
    release = subprocess.run([str(REPO / "scripts/version.sh")], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", release), release
    assert h["version"] == release
    assert h["store"] == STORE_MODE  # "sqlite", or "postgresql" under ERRAND_TEST_STORE
    assert h["api_version"] == 1


def test_metrics_are_prometheus_text(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {})
    server.api.wait_final(run["id"])
    r = server.api.request("GET", server.root + "/metrics")
    assert r.status_code == 200
    text = r.text
    for name in ("errand_task_runs", "errand_http_requests_total", "errand_claims_total",
                 "errand_reports_total", "errand_lease_expiries_total"):
        assert name in text, f"/metrics lacks {name}"
    m = re.search(r'^errand_task_runs\{state="COMPLETED"\} (\d+)', text, re.M)
    assert m and int(m.group(1)) >= 1, text




def test_a_held_run_shows_when_its_lease_expires(server_factory, worker_factory):
    import time as _time
    from conftest import parse_ts
    server = server_factory(env={"ERRAND_LEASE_SECONDS": "30"})
    worker_factory(server)
    run = server.api.submit("errand.sleep", {"seconds": 1.5})
    assert run["lease_expires"] is None
    held = server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING")
    expires = parse_ts(held["lease_expires"])
    assert _time.time() < expires <= _time.time() + 31
    listed = next(r for r in server.api.list_all(task="errand.sleep") if r["id"] == run["id"])
    assert listed["lease_expires"] is not None
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["lease_expires"] is None
