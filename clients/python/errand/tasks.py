# SPDX-License-Identifier: MIT
"""Tasks: ``@errand.task`` turns a function into one that can run in the background.

    @errand.task(retries=2, retry_delay_seconds=[1, 10], timeout_seconds=60)
    def send_email(to: str, subject: str) -> dict: ...

    future = send_email.delay("a@example.com", subject="hi")   # submits a run, returns
    future.task_run_id                                           # at once
    future.result(timeout=30)          # waits; raises errors.TaskRunFailed etc. on failure
    send_email("a@example.com", "hi")  # still a plain call of the function

``delay`` binds its arguments by the function's signature and submits them as the run's
``parameters`` (a JSON object keyed by parameter name, through the encoder hook,
:mod:`errand.encoding`); a worker started with :func:`errand.serve` calls the function with
them as keyword arguments.

Caching, as in the system errand replaces: the default cache key is a hash of the task's
name, its source and its inputs, sent when the task's results are persisted
(``persist_result=True``, or left None with ``ERRAND_RESULTS_PERSIST_BY_DEFAULT=true``), since
only a persisted result can serve as a cache. ``cache_key_fn(context, parameters)`` replaces
it (and is used whatever the persistence); it gets a :class:`CacheKeyContext` and the
parameters, and returns the key (up to 200 characters) or None for no caching.
``cache_key_fn=errand.NO_CACHE`` turns caching off.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar

from . import encoding, errors
from .client import Client
from .context import RunContext, _enter_run, _leave_run, current_traceparent
from .run import State, TaskRun

P = ParamSpec("P")
R = TypeVar("R")

CACHE_KEY_PREFIX = "errand-default-"
PERSIST_BY_DEFAULT_ENV = "ERRAND_RESULTS_PERSIST_BY_DEFAULT"

_registry: dict[str, Task] = {}
_registry_lock = threading.Lock()
_default_client: Client | None = None
_eager_depth = 0


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class CacheKeyContext:
    """What a ``cache_key_fn`` gets besides the parameters: the task and its source."""

    task: Task
    task_name: str
    task_source: str


def NO_CACHE(context: CacheKeyContext, parameters: dict[str, Any]) -> None:  # noqa: N802
    """A ``cache_key_fn`` that turns caching off for the task."""
    return None


def set_client(client: Client | None) -> None:
    """The client ``delay()`` submits with (None: a :class:`Client` from the environment,
    made at the first ``delay``)."""
    global _default_client
    _default_client = client


def get_client() -> Client:
    """The client ``delay()`` submits with."""
    global _default_client
    if _default_client is None:
        _default_client = Client()
    return _default_client


def registered_tasks() -> dict[str, Task]:
    """Every task defined in this process, by name."""
    with _registry_lock:
        return dict(_registry)


class TaskFuture:
    """A submitted run: ``task_run_id`` at once, its state and result when asked."""

    def __init__(self, task_run_id: str, client: Client, run: TaskRun | None = None) -> None:
        self.task_run_id = task_run_id
        self.client = client
        self.run = run

    @property
    def state(self) -> State:
        """The run's state now (asks the server)."""
        self.run = self.client.get(self.task_run_id)
        return self.run.state

    def wait(self, timeout: float | None = None) -> TaskRun:
        """Waits until the run is final and returns it (:class:`errors.WaitTimeout` after
        ``timeout`` seconds; None waits as long as it takes)."""
        self.run = self.client.wait(self.task_run_id, timeout)
        return self.run

    def result(self, timeout: float | None = None) -> Any:
        """Waits for the run and returns its result; a failed run raises
        :class:`errors.TaskRunFailed` (or ``TaskRunCrashed``, ``TaskRunCancelled``) carrying
        the run's message (a Python task's traceback included)."""
        return self.client.result(self.task_run_id, timeout)

    def __errand_reference__(self) -> dict[str, str]:
        """Passed as a parameter of another task's run: the server makes that run wait for
        this one and gives it this run's result (docs/api.md, "Dependencies")."""
        return {"$result": self.task_run_id}

    def __repr__(self) -> str:
        return f"TaskFuture(task_run_id={self.task_run_id!r})"


class EagerFuture(TaskFuture):
    """What ``delay()`` returns in eager mode (:func:`errand.testing.eager`): the task ran
    inline already; the same interface as :class:`TaskFuture`, no server involved."""

    def __init__(self, task_name: str, parameters: dict[str, Any]) -> None:
        self.task_run_id = f"eager-{uuid.uuid4()}"
        self.client = None  # type: ignore[assignment]
        self._task_name = task_name
        self._parameters = parameters
        self._result: Any = None
        self._state = State("PENDING", "Pending", None)
        self.run = None

    def _finish(self, state: State, result: Any = None) -> None:
        self._state, self._result = state, result
        self.run = TaskRun.from_json({"id": self.task_run_id, "task": self._task_name,
                                      "parameters": self._parameters,
                                      "state": {"type": state.type, "name": state.name,
                                                "message": state.message},
                                      **({"result": result} if state.is_completed() else {})})

    @property
    def state(self) -> State:
        return self._state

    def __errand_reference__(self) -> Any:
        return self._result  # ran already: its result is the parameter

    def wait(self, timeout: float | None = None) -> TaskRun:
        assert self.run is not None
        return self.run

    def result(self, timeout: float | None = None) -> Any:
        if not self._state.is_completed():
            raise errors.run_failure(self.wait())
        return self._result


class Task(Generic[P, R]):
    """A function decorated with :func:`task`. Calling it calls the function; ``delay()``
    submits a run of it; :func:`errand.serve` serves it."""

    def __init__(self, fn: Callable[P, R], *, name: str | None = None, retries: int = 0,
                 retry_delay_seconds: float | Sequence[float] | None = None,
                 timeout_seconds: float | None = None,
                 cache_key_fn: Callable[[CacheKeyContext, dict[str, Any]], str | None]
                 | None = None,
                 cache_expiration: timedelta | float | None = None,
                 persist_result: bool | None = None, tags: Sequence[str] = (),
                 log_prints: bool | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.persist_result = persist_result
        self.tags = tuple(tags)
        self.log_prints = log_prints
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)
        with _registry_lock:
            _registry[self.name] = self

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<errand task {self.name}>"

    @functools.cached_property
    def source(self) -> str:
        """The function's source (its bytecode when the source cannot be read)."""
        try:
            return inspect.getsource(self.fn)
        except (OSError, TypeError):
            return self.fn.__code__.co_code.hex()

    def parameters(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The run's parameters for a call with these arguments: bound by name as the
        function's signature says (``**kwargs`` spread out), encoded as JSON data."""
        bound = self.signature.bind(*args, **kwargs)
        params: dict[str, Any] = {}
        for pname, value in bound.arguments.items():
            kind = self.signature.parameters[pname].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"task {self.name}: *{pname} cannot be sent as a run's "
                                    f"parameters (they are passed by name)")
            elif kind is inspect.Parameter.VAR_KEYWORD:
                params.update(value)
            else:
                params[pname] = value
        return encoding.to_json(params)

    def cache_key(self, parameters: dict[str, Any]) -> str | None:
        """The run's cache key for these (encoded) parameters, or None (see the module's
        docstring)."""
        if self.cache_key_fn is not None:
            return self.cache_key_fn(CacheKeyContext(self, self.name, self.source), parameters)
        persist = self.persist_result
        if persist is None:
            persist = _truthy(os.environ.get(PERSIST_BY_DEFAULT_ENV))
        if not persist:
            return None
        digest = hashlib.sha256()
        for part in (self.name, self.source, encoding.dumps(_sorted(parameters))):
            digest.update(part.encode())
            digest.update(b"\0")
        return CACHE_KEY_PREFIX + digest.hexdigest()

    def submit_options(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The submit options the task's settings give for a run with these parameters."""
        expiration = self.cache_expiration
        if isinstance(expiration, timedelta):
            expiration = expiration.total_seconds()
        delay = self.retry_delay_seconds
        return {"retries": self.retries or None,
                "retry_delay_seconds": list(delay) if isinstance(delay, (list, tuple))
                else delay,
                "timeout_seconds": self.timeout_seconds,
                "cache_key": self.cache_key(parameters),
                "cache_expiration_seconds": expiration,
                "persist_result": self.persist_result,
                "tags": list(self.tags) or None}

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture:
        """Submits a run of the task with these arguments and returns its future at once
        (in eager mode, runs it here first)."""
        parameters = self.parameters(*args, **kwargs)
        if _eager_depth:
            return self._run_eagerly(parameters)
        client = get_client()
        run = client.submit(self.name, parameters, **self.submit_options(parameters))
        return TaskFuture(run.id, client, run)

    async def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture:
        """:meth:`delay` for asyncio code: the submission does not block the event loop."""
        parameters = self.parameters(*args, **kwargs)
        if _eager_depth:
            return self._run_eagerly(parameters)
        client = get_client()
        options = self.submit_options(parameters)
        options["traceparent"] = current_traceparent()
        run = await asyncio.to_thread(client.submit, self.name, parameters, **options)
        return TaskFuture(run.id, client, run)

    def _run_eagerly(self, parameters: dict[str, Any]) -> EagerFuture:
        future = EagerFuture(self.name, parameters)
        for attempt in range(1, self.retries + 2):
            ctx = RunContext(future.task_run_id, self.name, attempt, self.retries + 1,
                             current_traceparent(), parameters)
            tokens = _enter_run(ctx)
            try:
                value = call(self, parameters)
                result = encoding.to_json(value)
            except Exception:  # noqa: BLE001 - the task's failure is the run's outcome
                message = traceback.format_exc()
                if attempt <= self.retries:
                    continue
                future._finish(State("FAILED", "Failed", None, message))
                return future
            finally:
                _leave_run(tokens)
            future._finish(State("COMPLETED", "Completed", None), result)
            return future
        raise AssertionError("unreachable")


def call(task: Task, parameters: dict[str, Any]) -> Any:
    """Calls the task's function with the run's parameters (an ``async def`` one to its
    end in an event loop of its own)."""
    if task.is_async:
        return asyncio.run(task.fn(**parameters))
    return task.fn(**parameters)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def task(fn: Callable[P, R] | None = None, *, name: str | None = None, retries: int = 0,
         retry_delay_seconds: float | Sequence[float] | None = None,
         timeout_seconds: float | None = None,
         cache_key_fn: Callable[[CacheKeyContext, dict[str, Any]], str | None] | None = None,
         cache_expiration: timedelta | float | None = None,
         persist_result: bool | None = None, tags: Sequence[str] = (),
         log_prints: bool | None = None) -> Any:
    """Makes ``fn`` an errand task (usable as ``@task`` or ``@task(...)``).

    Args:
        name: the task's name on the server (default: the function's ``__name__``, as in
            the system errand replaces, so a module run as a script and the same module
            imported by the web app agree); workers serve tasks by name.
        retries: how many times a failed run is tried again.
        retry_delay_seconds: the delay before each retry (a number, or a list of numbers
            per retry; the server's default when None).
        timeout_seconds: the run fails ("task timed out") after this long; a worker of
            :func:`errand.serve` kills the task's process.
        cache_key_fn: ``(context, parameters) -> key or None``; see the module's docstring.
        cache_expiration: how long a completed result serves as the cache (a timedelta or
            seconds; forever when None).
        persist_result: persist the result in the result storage (None: the worker's
            ``ERRAND_RESULTS_PERSIST_BY_DEFAULT``).
        tags: the runs' tags.
        log_prints: whether ``print`` in the task goes to the run's logs (None: the worker's
            ``ERRAND_LOGGING_LOG_PRINTS``).
    """
    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(f, name=name, retries=retries, retry_delay_seconds=retry_delay_seconds,
                    timeout_seconds=timeout_seconds, cache_key_fn=cache_key_fn,
                    cache_expiration=cache_expiration, persist_result=persist_result,
                    tags=tags, log_prints=log_prints)
    return wrap(fn) if fn is not None else wrap
