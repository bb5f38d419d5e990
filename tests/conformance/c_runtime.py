# SPDX-License-Identifier: MIT
"""
c_runtime.py — the C runtime's adapter: liberrand's worker runtime, run as
$ERRAND_BUILD/tests/conformance-worker (conformance_worker.c), which serves the conformance
tasks as C task functions. The default runtime of the suite.
"""
from harness import BUILD, START_TIMEOUT, Process, child_env, parse_logfmt
from runtime import WorkerRuntime

WORKER = BUILD / "tests" / "conformance-worker"


class CRuntime(WorkerRuntime):
    label = "c"

    def __init__(self, options):
        super().__init__(options)
        self.proc = None

    def start(self):
        assert WORKER.exists(), f"{WORKER} not built (run make, or set ERRAND_BUILD)"
        o = self.options
        argv = [WORKER, "--api-url", o.api_url, "--name", o.name,
                "--concurrency", o.concurrency, "--prefetch", o.prefetch]
        if o.lease_seconds is not None:
            argv += ["--lease-seconds", o.lease_seconds]
        if o.grace_seconds is not None:
            argv += ["--grace-seconds", o.grace_seconds]
        env = {"ERRAND_API_KEY": o.api_key} if o.api_key else {}
        self.proc = Process(argv, child_env(o.home, env), o.log_path, o.name)
        # liberrand logs this once its signal handlers and threads are in place; before it, a
        # SIGTERM would still have its default action.
        line = self.proc.wait_line(lambda l: 'msg="worker started"' in l, START_TIMEOUT,
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
            self.proc.check_sanitizers()
