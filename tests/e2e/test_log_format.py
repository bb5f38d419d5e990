# SPDX-License-Identifier: MIT
"""ERRAND_LOGGING_FORMAT: the server, `errand worker` and a program built on liberrand write
one JSON object a line when asked (logfmt otherwise), with the run id in lines about a run;
a bad format is refused by name."""
import json
import subprocess

from conftest import exec_spec
from errand_procs import BUILD, ERRAND, Process, child_env, log_msg_is, wait_until


def json_lines(text):
    """Every line of a process's stderr, each of which must be one JSON object."""
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines
    out = []
    for line in lines:
        obj = json.loads(line)  # raises on a line that is not JSON
        assert isinstance(obj, dict), line
        assert {"ts", "level", "msg"} <= obj.keys(), line
        out.append(obj)
    return out


def test_server_and_worker_log_json_lines(server_factory, worker_factory):
    server = server_factory(env={"ERRAND_LOGGING_FORMAT": "json"})
    worker = worker_factory(server, args=["--log-format", "json"])
    run = server.api.submit("errand.sleep", {"seconds": 30})
    server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING")
    server.api.cancel(run["id"])
    worker.proc.wait_line(lambda l: log_msg_is(l, "cancel requested"), 10, "cancel requested")
    server.api.wait_final(run["id"])

    served = json_lines(server.proc.stderr_text())
    listening = [o for o in served if o["msg"] == "listening"]
    assert listening and listening[0]["port"] == server.port  # a number, not a string
    assert all(o["level"] in ("debug", "info", "warning", "error") for o in served)

    worked = json_lines(worker.proc.stderr_text())
    started = [o for o in worked if o["msg"] == "worker started"]
    assert started and started[0]["worker"] == worker.name
    cancels = [o for o in worked if o["msg"] == "cancel requested"]
    assert cancels and cancels[0]["run"] == run["id"]


def test_logfmt_stays_the_default(server, worker_factory):
    worker = worker_factory(server)
    text = server.proc.stderr_text() + worker.proc.stderr_text()
    assert text.startswith("ts=")
    assert not any(l.startswith("{") for l in text.splitlines())


def test_a_liberrand_program_takes_the_format_from_the_environment(server, tmp_path):
    # conformance-worker is a user's program: liberrand's worker through errand.h only. It
    # never sets a format; the environment does.
    program = BUILD / "tests" / "conformance-worker"
    proc = Process([str(program), "--api-url", server.url, "--name", "json-env"],
                   child_env(tmp_path / "home", {"ERRAND_LOGGING_FORMAT": "json"}),
                   tmp_path / "conformance-worker.log", "conformance-worker")
    try:
        line = proc.wait_line(lambda l: log_msg_is(l, "worker started"), 20, "worker started")
        assert json.loads(line)["worker"] == "json-env"
    finally:
        proc.stop()
    assert json_lines(proc.stderr_text())


def test_a_bad_format_is_refused_by_name(tmp_path):
    cp = subprocess.run([str(ERRAND), "server", "start", "--port", "0", "--log-format", "xml"],
                        env=child_env(tmp_path / "home"), capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 2, cp
    assert "log-format" in cp.stderr and "logfmt, json" in cp.stderr, cp.stderr
    cp = subprocess.run([str(ERRAND), "worker", "--builtin"],
                        env=child_env(tmp_path / "home", {"ERRAND_LOGGING_FORMAT": "yaml"}),
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2, cp
    assert "ERRAND_LOGGING_FORMAT" in cp.stderr, cp.stderr
