# SPDX-License-Identifier: MIT
"""The run a piece of code runs in: inside a task served by :func:`errand.serve`,
:func:`context` says which run it is (id, attempt, trace context) and whether the runtime
asks it to stop; outside one it returns None.

The trace context (a W3C ``traceparent``) follows work across runs: a run's claim carries
the ``traceparent`` it was submitted with, the runtime sets it as the current one while the
task runs, and a submission made from inside the task (``fn.delay()``,
``Client.submit()``) sends it on. Outside a task, ``traceparent=`` on a submission or the
``TRACEPARENT`` environment variable give it; :func:`trace_context` sets it for a block.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TRACEPARENT_ENV = "TRACEPARENT"

_current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "errand_run", default=None)
_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "errand_traceparent", default=None)


@dataclass
class RunContext:
    """The run a task is executing: ``run_id``, ``task``, ``attempt`` (1 for the first),
    ``max_attempts``, ``traceparent`` (None when the run has none) and ``parameters``."""

    run_id: str
    task: str
    attempt: int
    max_attempts: int
    traceparent: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _log: Any = field(default=None, repr=False)
    # Inside a worker: tells it the task begins (True) or ends (False) waiting for a run,
    # so that the worker lends the run's slot meanwhile (see waiting_for_runs).
    _waiting: Any = field(default=None, repr=False)
    _waits: int = field(default=0, repr=False)
    _waits_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def should_stop(self) -> bool:
        """True once the runtime asks the task to stop (a cancel, the end of a stop's grace
        period): a long task that checks it can end early and cleanly. A task that does not
        check is stopped all the same (its process is killed)."""
        return self._stop.is_set()

    def wait_stop(self, timeout: float | None = None) -> bool:
        """Sleeps up to ``timeout`` seconds, waking at once when asked to stop; returns
        :meth:`should_stop`."""
        return self._stop.wait(timeout)

    def log(self, message: str, level: str = "info") -> None:
        """Writes a log line of the run (``debug``, ``info``, ``warning``, ``error``)."""
        if self._log is not None:
            self._log(level, str(message))


@contextlib.contextmanager
def waiting_for_runs() -> Iterator[None]:
    """Around a wait for other runs (``Client.wait``, hence ``TaskFuture.wait()`` and
    ``.result()``): inside a task served by :func:`errand.serve`, the worker lends the run's
    slot to another run while the block lasts, so a task that waits for its own subtasks
    cannot deadlock the pool (up to ``serve(max_waiting=...)`` runs wait so; past that a wait
    keeps its slot). Outside a task it does nothing. The task's threads may wait at once:
    the slot is lent from the first wait to the end of the last."""
    ctx = _current_run.get()
    if ctx is None or ctx._waiting is None:
        yield
        return
    with ctx._waits_lock:
        ctx._waits += 1
        if ctx._waits == 1:
            ctx._waiting(True)
    try:
        yield
    finally:
        with ctx._waits_lock:
            ctx._waits -= 1
            if ctx._waits == 0:
                ctx._waiting(False)


def context() -> RunContext | None:
    """The run the calling code executes in, or None outside a served task."""
    return _current_run.get()


def current_traceparent() -> str | None:
    """The trace context a submission made here carries: the one set by
    :func:`trace_context` or by the run being served, else ``$TRACEPARENT``, else None."""
    return _traceparent.get() or os.environ.get(TRACEPARENT_ENV) or None


def child_span(traceparent: str | None) -> str | None:
    """A child span of ``traceparent``: the same trace id and flags, a new random parent id
    (as the C runtime gives its tasks), so the runs a task submits join its trace."""
    if not traceparent or len(traceparent) != 55:
        return traceparent
    return f"{traceparent[:36]}{secrets.token_hex(8)}{traceparent[52:]}"


@contextlib.contextmanager
def trace_context(traceparent: str | None) -> Iterator[None]:
    """Within the block, submissions carry ``traceparent`` (None: none from here)."""
    token = _traceparent.set(traceparent)
    try:
        yield
    finally:
        _traceparent.reset(token)


def _enter_run(ctx: RunContext) -> tuple[contextvars.Token, contextvars.Token]:
    return _current_run.set(ctx), _traceparent.set(child_span(ctx.traceparent))


def _leave_run(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    _current_run.reset(tokens[0])
    _traceparent.reset(tokens[1])
