# SPDX-License-Identifier: MIT
"""
python_runtime.py — the Python runtime's adapter: errand.serve (clients/python) run as
`python3 python_worker.py`, which serves the conformance tasks as Python task functions.

    ERRAND_CONFORMANCE_RUNTIME=python_runtime:PythonRuntime make conformance
"""
import sys
from pathlib import Path

from harness import START_TIMEOUT, Process, child_env, parse_logfmt
from runtime import WorkerRuntime

WORKER = Path(__file__).resolve().parent / "python_worker.py"
# errand.serve forks its task processes, one after another through its fork server, before
# it logs "worker started": 1,500 of them took 38 s on a busy 2-core machine (2026-12-03),
# so the start may take this much longer per process.
START_PER_PROCESS_S = 0.06


class PythonRuntime(WorkerRuntime):
    label = "python"

    def __init__(self, options):
        super().__init__(options)
        self.proc = None

    def start(self):
        o = self.options
        argv = [sys.executable, WORKER, "--api-url", o.api_url, "--name", o.name,
                "--concurrency", o.concurrency, "--prefetch", o.prefetch]
        if o.lease_seconds is not None:
            argv += ["--lease-seconds", o.lease_seconds]
        if o.grace_seconds is not None:
            argv += ["--grace-seconds", o.grace_seconds]
        env = {"ERRAND_API_KEY": o.api_key} if o.api_key else {}
        self.proc = Process(argv, child_env(o.home, env), o.log_path, o.name)
        # errand.serve logs this once its signal handlers and threads are in place.
        line = self.proc.wait_line(lambda l: 'msg="worker started"' in l,
                                   START_TIMEOUT + START_PER_PROCESS_S * o.concurrency,
                                   "the 'worker started' log line")
        assert parse_logfmt(line).get("worker") == o.name, line

    def stop(self, timeout):
        return self.proc.stop(timeout)

    def kill9(self):
        self.proc.kill9()

    def running(self):
        return self.proc is not None and self.proc.running()

    def output(self):
        return self.proc.tail(80) if self.proc else ""

    def check(self):
        if self.proc:
            text = self.proc.stderr_text()
            assert "Traceback (most recent call last)" not in text, \
                f"worker {self.name} printed a traceback:\n{self.proc.tail(80)}"
