# SPDX-License-Identifier: MIT
"""
runtime.py — the runtime adapter: how the conformance suite starts and stops a worker of the
runtime under test. The suite knows a worker only through this interface, so any runtime
(liberrand's C worker now, a Python one later) is run against the same tests.

A runtime plugs in with a subclass of WorkerRuntime, named by
ERRAND_CONFORMANCE_RUNTIME=module:Class (the module importable from tests/conformance/ or
PYTHONPATH); the default is the C runtime, c_runtime:CRuntime. README.md says what the
worker must serve (the conformance tasks) and what each method must do.
"""
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

RUNTIME_ENV = "ERRAND_CONFORMANCE_RUNTIME"
DEFAULT_RUNTIME = "c_runtime:CRuntime"

# The tasks every runtime's worker serves (README.md, "The conformance tasks").
TASK_ECHO = "conformance.echo"
TASK_LOG = "conformance.log"
TASK_FAIL = "conformance.fail"
TASK_SLEEP = "conformance.sleep"
TASK_DEEP = "conformance.deep"
TASKS = (TASK_ECHO, TASK_LOG, TASK_FAIL, TASK_SLEEP, TASK_DEEP)


@dataclass
class WorkerOptions:
    """What the suite asks of one worker. None leaves a setting at the runtime's default."""
    api_url: str  # the server's API (".../api"), or a proxy in front of it
    name: str  # the worker's name, as the server shows it in a run's "worker"
    home: Path  # a directory of its own (ERRAND_HOME: local result storage, scratch)
    log_path: Path  # where its output goes, for the test's failure messages
    api_key: Optional[str] = None
    concurrency: int = 1  # tasks running at once
    prefetch: int = 0  # runs claimed beyond concurrency, waiting for a slot
    lease_seconds: Optional[int] = None  # asked for in claims and heartbeats; None: the server's
    grace_seconds: Optional[float] = None  # on SIGTERM, how long running tasks may finish


class WorkerRuntime:
    """One worker process of a runtime, serving the conformance tasks. Subclasses implement
    every method that raises NotImplementedError."""

    label = "?"  # the runtime's name in the test report header ("c", "python")

    def __init__(self, options: WorkerOptions):
        self.options = options

    @property
    def name(self):
        """The worker's name, as the server records it on the runs it claims."""
        return self.options.name

    def start(self):
        """Starts the worker and returns once it serves: from then on a SIGTERM is an orderly
        stop (its handler is installed) and it claims runs of the conformance tasks."""
        raise NotImplementedError

    def stop(self, timeout):
        """Sends SIGTERM and waits up to `timeout` seconds for the process to exit; returns its
        exit status (0 after an orderly stop). Raises AssertionError when it did not exit."""
        raise NotImplementedError

    def kill9(self):
        """SIGKILL, and waits for the process to be gone."""
        raise NotImplementedError

    def running(self):
        """True while the worker's process has not exited."""
        raise NotImplementedError

    def output(self):
        """The worker's output so far (for failure messages); may be empty."""
        return ""

    def check(self):
        """After the worker exited: raises AssertionError for a fault the runtime can see in
        its own output (the C runtime: a sanitizer report). Nothing by default."""


def load_runtime(spec=None):
    """The WorkerRuntime subclass that ERRAND_CONFORMANCE_RUNTIME (or `spec`) names."""
    spec = spec or os.environ.get(RUNTIME_ENV) or DEFAULT_RUNTIME
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"{RUNTIME_ENV} must be module:Class (e.g. {DEFAULT_RUNTIME}), "
                         f"got '{spec}'")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, WorkerRuntime)):
        raise ValueError(f"{RUNTIME_ENV}={spec}: {class_name} in {module_name} is not a "
                         f"subclass of runtime.WorkerRuntime")
    return cls
