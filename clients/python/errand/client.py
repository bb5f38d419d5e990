# SPDX-License-Identifier: MIT
"""The errand client: submit task runs, read them, wait for them, read their results, cancel
and list them, over errand's HTTP API (docs/api.md), with the standard library alone.

Settings as for every errand client: ``ERRAND_API_URL`` (default
``http://127.0.0.1:4200/api``, or a comma-separated list of servers sharing one store) and
``ERRAND_API_KEY``, unless given to the constructor. With a list, the client starts at a
server drawn at random and moves to the next when one refuses the connection or answers 503
(nothing was done there, so the move is safe); after one that took a request and gave no
answer, later requests go to the next one. A submission or a batch is retried for
``submit_retry_seconds`` (10 by default) while no server can take it, with an idempotency key
(the caller's, or one the client adds), so a retry after an answer lost on the way back
returns the stored run instead of storing it twice — as liberrand does.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from . import encoding, errors
from .context import current_traceparent, waiting_for_runs
from .run import TaskRun

DEFAULT_API_URL = "http://127.0.0.1:4200/api"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_SUBMIT_RETRY_S = 10.0
WAIT_POLL_MAX_S = 300  # the server's longest single wait (GET .../wait)
RETRY_KEY_PREFIX = "errand-retry-"
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 1.0


def retry_key() -> str:
    """The idempotency key of a submission the client may retry: the prefix, the time in
    milliseconds (12 hex digits) and 10 random bytes, as liberrand makes them. Keys that sort
    by time land together at the end of the server's key index; random ones would each touch
    a page of their own once millions of runs are stored."""
    return f"{RETRY_KEY_PREFIX}{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


_SUBMIT_OPTIONS = ("idempotency_key", "scheduled_at", "delay_seconds", "priority", "tags",
                   "retries", "retry_delay_seconds", "retry_jitter_factor", "timeout_seconds",
                   "cache_key", "cache_expiration_seconds", "persist_result", "traceparent",
                   "wait_for", "allow_upstream_failure", "webhook_url")


class _NotSent(Exception):
    """The request never reached a server (connection refused, no such host)."""


def submission(task: str, parameters: dict[str, Any] | None = None, **options: Any) -> dict:
    """The JSON body of one submission (docs/api.md, ``POST /api/task_runs``): ``task``,
    ``parameters`` and the options given (None means the server's default). ``traceparent``
    defaults to the current trace context (:func:`errand.current_traceparent`: the run being
    served, or ``$TRACEPARENT``) and is sent only when there is one."""
    unknown = set(options) - set(_SUBMIT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown submit option(s): {', '.join(sorted(unknown))}")
    if options.get("traceparent") is None:
        options["traceparent"] = current_traceparent()
    body: dict[str, Any] = {"task": task, "parameters": parameters or {}}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif name == "tags":
            value = list(value)
        elif name == "wait_for":  # run ids, TaskRuns or futures
            value = [getattr(v, "task_run_id", None) or getattr(v, "id", None) or v for v in value]
        body[name] = value
    return body


class Client:
    """A synchronous client of one errand deployment (thread-safe: it keeps no connection)."""

    def __init__(self, api_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S,
                 submit_retry_seconds: float = DEFAULT_SUBMIT_RETRY_S) -> None:
        urls = api_url or os.environ.get("ERRAND_API_URL") or DEFAULT_API_URL
        self.servers = [u.strip().rstrip("/") for u in urls.split(",") if u.strip()]
        if not self.servers or not all(u.startswith(("http://", "https://"))
                                       for u in self.servers):
            raise ValueError(f"ERRAND_API_URL must be http(s) URLs, comma-separated: {urls!r}")
        self.api_key = api_key if api_key is not None else os.environ.get("ERRAND_API_KEY") or None
        self.timeout = timeout
        self.submit_retry_seconds = submit_retry_seconds
        self._next = random.randrange(len(self.servers))

    # ---- HTTP -------------------------------------------------------------------------------

    def _once(self, base: str, method: str, path: str, body: bytes | None,
              timeout: float, headers: dict[str, str]) -> tuple[int, bytes]:
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror, FileNotFoundError)):
                raise _NotSent(f"{base}: {reason}") from e
            raise errors.ConnectionFailed(f"no answer from {base}: {reason}") from e
        except (TimeoutError, socket.timeout) as e:
            raise errors.ConnectionFailed(f"no answer from {base} within {timeout:g} s") from e
        except ConnectionError as e:
            raise errors.ConnectionFailed(f"{base}: {e}") from e

    def _request(self, method: str, path: str, body: Any = None, *,
                 timeout: float | None = None, raw: bool = False,
                 accept: tuple[int, ...] = (), headers: dict[str, str] | None = None) -> Any:
        """One call, moving over the servers while one refuses the connection or answers
        503; the JSON answer (or its bytes with raw), or the typed error. A status in
        ``accept`` (a worker's 409: some items refused) is answered like a 2xx; ``headers``
        are sent besides the client's own."""
        data = None if body is None else json.dumps(body, default=encoding.get_encoder()).encode()
        timeout = self.timeout if timeout is None else timeout
        last: errors.ErrandError | None = None
        for i in range(len(self.servers)):
            base = self.servers[(self._next + i) % len(self.servers)]
            try:
                status, answer = self._once(base, method, path, data, timeout, headers or {})
            except _NotSent as e:
                last = errors.ConnectionFailed(f"cannot reach errand server at {e}")
                continue
            except errors.ConnectionFailed:
                # The request reached this server, which may have acted on it: the caller
                # knows whether to send it again; later requests go to the next server.
                self._next = (self._next + i + 1) % len(self.servers)
                raise
            if status == 503 and i + 1 < len(self.servers):
                last = errors.from_response(status, _json_or_none(answer))
                continue
            self._next = (self._next + i) % len(self.servers)
            if 200 <= status < 300 or status in accept:
                return answer if raw else json.loads(answer or b"null")
            raise errors.from_response(status, _json_or_none(answer))
        assert last is not None
        raise last

    # ---- runs -------------------------------------------------------------------------------

    def submit(self, task: str, parameters: dict[str, Any] | None = None, **options: Any) -> TaskRun:
        """Submits a run of ``task`` with ``parameters`` (a JSON object; values JSON cannot
        hold go through the encoder hook, :mod:`errand.encoding`) and the options of
        docs/api.md (``idempotency_key``, ``scheduled_at`` (a datetime or RFC 3339 text),
        ``delay_seconds``, ``priority``, ``tags``, ``retries``, ``retry_delay_seconds``,
        ``retry_jitter_factor``, ``timeout_seconds``, ``cache_key``,
        ``cache_expiration_seconds``, ``persist_result``, ``traceparent``, ``wait_for``,
        ``allow_upstream_failure``, ``webhook_url``). Returns the run once it is stored
        (or the earlier run of the same idempotency key)."""
        body = submission(task, parameters, **options)
        if self.submit_retry_seconds > 0:
            body.setdefault("idempotency_key", retry_key())
        return TaskRun.from_json(self._submitting("/task_runs", body))

    def submit_batch(self, submissions: Sequence[dict[str, Any]]) -> list[TaskRun]:
        """Submits many runs in one request, all or nothing; each item is a
        :func:`submission` (or the same dict written by hand). Retried as :meth:`submit` is:
        each item without an idempotency key gets one of the client's, so a batch whose
        answer was lost on the way back is answered with the runs it stored, not stored
        twice."""
        answer = self._submitting("/task_runs/batch", {"runs": self._batch_items(submissions)})
        return [TaskRun.from_json(r) for r in answer["runs"]]

    def submit_batch_ids(self, submissions: Sequence[dict[str, Any]]) -> list[str]:
        """:meth:`submit_batch` for a producer that does not read its runs back: the runs'
        ids alone, in order. It asks the server for the ids only (``Prefer:
        return=minimal``), a twelfth of the answer's bytes for small runs."""
        answer = self._submitting("/task_runs/batch", {"runs": self._batch_items(submissions)},
                                  headers={"Prefer": "return=minimal"})
        return [r["id"] for r in answer["runs"]]

    def _batch_items(self, submissions: Sequence[dict[str, Any]]) -> list[Any]:
        """A batch's items, each with one of the client's idempotency keys when it retries
        and the item has none."""
        items = [dict(s) if isinstance(s, dict) else s for s in submissions]
        if self.submit_retry_seconds > 0:
            for item in items:
                if isinstance(item, dict):
                    item.setdefault("idempotency_key", retry_key())
        return items

    def _submitting(self, path: str, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> Any:
        """POSTs a submission, again for ``submit_retry_seconds`` while no server answers
        (its idempotency keys make a repeat return what the first one stored)."""
        if self.submit_retry_seconds <= 0:
            return self._request("POST", path, body, headers=headers)
        deadline = time.monotonic() + self.submit_retry_seconds
        pause = _BACKOFF_FIRST_S
        while True:
            try:
                return self._request("POST", path, body, headers=headers)
            except (errors.ConnectionFailed, errors.Unavailable):
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, _BACKOFF_MAX_S)

    def get(self, run_id: str) -> TaskRun:
        """The run as it is now (:class:`errors.NotFound` when unknown or deleted)."""
        return TaskRun.from_json(self._request("GET", f"/task_runs/{_q(run_id)}"))

    read_task_run = get

    def wait(self, run_id: str, timeout: float | None = None) -> TaskRun:
        """Waits until the run is final (long-polls; no busy loop) and returns it; after
        ``timeout`` seconds (None: no limit) raises :class:`errors.WaitTimeout` holding its
        latest snapshot. Inside a task served by :func:`errand.serve`, the run lends its slot
        to another run while it waits (:func:`errand.context.waiting_for_runs`)."""
        with waiting_for_runs():
            return self._wait(run_id, timeout)

    def _wait(self, run_id: str, timeout: float | None) -> TaskRun:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_POLL_MAX_S if deadline is None else deadline - time.monotonic()
            poll = max(0, min(WAIT_POLL_MAX_S, int(left)))
            run = TaskRun.from_json(self._request(
                "GET", f"/task_runs/{_q(run_id)}/wait?timeout_seconds={poll}",
                timeout=poll + self.timeout))
            if run.state.is_final():
                return run
            if deadline is not None and time.monotonic() >= deadline - 0.001:
                raise errors.WaitTimeout(run, f"run {run_id} is {run.state.type} after "
                                              f"{timeout:g} s")
            if poll == 0:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def result(self, run: TaskRun | str, timeout: float | None = 0) -> Any:
        """The result of a COMPLETED run, inline or persisted (read through the server: the
        caller never needs the result storage). A FAILED, CRASHED or CANCELLED run raises
        :class:`errors.TaskRunFailed`, ``TaskRunCrashed`` or ``TaskRunCancelled`` (all
        :class:`errors.RunFailed`) with its message. With ``timeout`` (None: no limit) waits
        that long for the run to finish first; a run still going raises
        :class:`errors.WaitTimeout`."""
        if isinstance(run, str) or not run.state.is_final():
            run_id = run if isinstance(run, str) else run.id
            run = self.wait(run_id, timeout) if timeout != 0 else self.get(run_id)
            if not run.state.is_final():
                raise errors.WaitTimeout(run, f"run {run.id} is {run.state.type}")
        if not run.state.is_completed():
            raise errors.run_failure(run)
        if run.has_inline_result:
            return run.result
        return json.loads(self._request("GET", f"/task_runs/{_q(run.id)}/result", raw=True)
                          or b"null")

    def cancel(self, run_id: str) -> TaskRun:
        """Asks for the run to be cancelled (:class:`errors.Conflict` if it is final)."""
        return TaskRun.from_json(self._request("POST", f"/task_runs/{_q(run_id)}/cancel"))

    def retry(self, run_id: str) -> TaskRun:
        """A new run of a FAILED, CRASHED or CANCELLED run's task and parameters."""
        return TaskRun.from_json(self._request("POST", f"/task_runs/{_q(run_id)}/retry"))

    def list_runs(self, *, state: str | Sequence[str] | None = None, task: str | None = None,
                  tag: str | None = None, worker: str | None = None,
                  since: datetime | str | None = None, until: datetime | str | None = None,
                  idempotency_key: str | None = None, limit: int | None = None,
                  cursor: str | None = None) -> tuple[list[TaskRun], str | None]:
        """One page of runs, newest first, and the cursor of the next (None at the end)."""
        query = {"state": [state] if isinstance(state, str) else state, "task": task,
                 "tag": tag, "worker": worker, "since": since, "until": until,
                 "idempotency_key": idempotency_key, "limit": limit, "cursor": cursor}
        answer = self._request("GET", "/task_runs" + _query(query))
        return [TaskRun.from_json(r) for r in answer["runs"]], answer.get("next_cursor")

    def iter_runs(self, **filters: Any) -> Iterator[TaskRun]:
        """Every run the filters of :meth:`list_runs` select, page after page."""
        cursor = filters.pop("cursor", None)
        while True:
            runs, cursor = self.list_runs(cursor=cursor, **filters)
            yield from runs
            if not cursor:
                return

    def states(self, run_id: str) -> list[dict[str, Any]]:
        """The run's state history, oldest first."""
        return self._request("GET", f"/task_runs/{_q(run_id)}/states")["states"]

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        """Every log line of the run, oldest first."""
        lines: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._request("GET", f"/task_runs/{_q(run_id)}/logs?after={after}")
            lines += page["logs"]
            if not page["logs"] or page.get("next_after") in (None, after):
                return lines
            after = page["next_after"]

    def health(self) -> dict[str, Any]:
        """The server's readiness answer (``{"status": "ready", "store": ...}``)."""
        return self._request("GET", "/health/ready")

    # ---- controls: webhooks, limits, schedules (docs/api.md) -------------------------------

    def set_webhook(self, task: str, url: str | None) -> dict[str, Any]:
        """Every run of ``task`` that ends is POSTed to ``url`` (None removes the webhook;
        :class:`errors.NotFound` when there is none). A submission's ``webhook_url`` wins."""
        return self._request("POST", "/webhooks", {"task": task, "url": url})

    def webhooks(self) -> dict[str, Any]:
        """The tasks' webhooks and the deliveries not made yet (``GET /api/webhooks``)."""
        return self._request("GET", "/webhooks")

    def set_limit(self, *, task: str | None = None, tag: str | None = None,
                  max_running: int | None = None, max_starts: int | None = None,
                  per_seconds: float | None = None) -> dict[str, Any]:
        """A task's or a tag's concurrency limit (``max_running``; 0 removes it) and a task's
        rate limit (``max_starts`` per ``per_seconds``; 0 removes it)."""
        body = {"task": task, "tag": tag, "max_running": max_running,
                "max_starts": max_starts, "per_seconds": per_seconds}
        return self._request("POST", "/limits", {k: v for k, v in body.items() if v is not None})

    def limits(self) -> list[dict[str, Any]]:
        """Every limit, with the runs holding its slots."""
        return self._request("GET", "/limits")["limits"]

    def set_schedule(self, name: str, task: str, *, cron: str | None = None,
                     every_seconds: float | None = None, time_zone: str | None = None,
                     catch_up: str | None = None, paused: bool | None = None,
                     parameters: dict[str, Any] | None = None,
                     **options: Any) -> dict[str, Any]:
        """Creates or replaces the schedule ``name``: a run of ``task`` on a ``cron``
        expression (in ``time_zone``, default UTC) or every ``every_seconds``; ``catch_up``
        "skip" or "once"; ``parameters`` and the submission ``options`` of each run (as
        :meth:`submit` takes them, less the key, the times and ``wait_for``)."""
        unknown = set(options) - set(_SUBMIT_OPTIONS)
        if unknown:
            raise TypeError(f"unknown run option(s): {', '.join(sorted(unknown))}")
        run = {k: v for k, v in {"parameters": parameters, **options}.items() if v is not None}
        body = {"name": name, "task": task, "cron": cron, "every_seconds": every_seconds,
                "time_zone": time_zone, "catch_up": catch_up, "paused": paused, "run": run}
        return self._request("POST", "/schedules",
                             {k: v for k, v in body.items() if v is not None})

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule, by name, with its next tick and last run."""
        return self._request("GET", "/schedules")["schedules"]

    def delete_schedule(self, name: str) -> dict[str, Any]:
        """Deletes the schedule (its runs stay)."""
        return self._request("POST", "/schedules/delete", {"name": name})

    def pause_schedule(self, name: str, paused: bool = True) -> dict[str, Any]:
        """Pauses the schedule, or resumes it (``paused=False``) from its next tick."""
        return self._request("POST", "/schedules/pause" if paused else "/schedules/resume",
                             {"name": name})


class AsyncClient:
    """The same calls as :class:`Client` as coroutines, for asyncio web apps (FastAPI): each
    runs the blocking call in a worker thread, so the event loop never waits on the network."""

    def __init__(self, api_url: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        self.sync = Client(api_url, api_key, **options)

    async def submit(self, task: str, parameters: dict[str, Any] | None = None,
                     **options: Any) -> TaskRun:
        return await asyncio.to_thread(self.sync.submit, task, parameters, **options)

    async def submit_batch(self, submissions: Sequence[dict[str, Any]]) -> list[TaskRun]:
        return await asyncio.to_thread(self.sync.submit_batch, submissions)

    async def submit_batch_ids(self, submissions: Sequence[dict[str, Any]]) -> list[str]:
        return await asyncio.to_thread(self.sync.submit_batch_ids, submissions)

    async def get(self, run_id: str) -> TaskRun:
        return await asyncio.to_thread(self.sync.get, run_id)

    read_task_run = get

    async def wait(self, run_id: str, timeout: float | None = None) -> TaskRun:
        return await asyncio.to_thread(self.sync.wait, run_id, timeout)

    async def result(self, run: TaskRun | str, timeout: float | None = 0) -> Any:
        return await asyncio.to_thread(self.sync.result, run, timeout)

    async def cancel(self, run_id: str) -> TaskRun:
        return await asyncio.to_thread(self.sync.cancel, run_id)

    async def retry(self, run_id: str) -> TaskRun:
        return await asyncio.to_thread(self.sync.retry, run_id)

    async def list_runs(self, **filters: Any) -> tuple[list[TaskRun], str | None]:
        return await asyncio.to_thread(self.sync.list_runs, **filters)

    async def states(self, run_id: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.states, run_id)

    async def logs(self, run_id: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.logs, run_id)

    async def health(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.health)

    async def set_webhook(self, task: str, url: str | None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.set_webhook, task, url)

    async def webhooks(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.webhooks)

    async def set_limit(self, **limit: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.set_limit, **limit)

    async def limits(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.limits)

    async def set_schedule(self, name: str, task: str, **schedule: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.set_schedule, name, task, **schedule)

    async def schedules(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.schedules)

    async def delete_schedule(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.delete_schedule, name)

    async def pause_schedule(self, name: str, paused: bool = True) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.pause_schedule, name, paused)


def _q(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _query(params: dict[str, Any]) -> str:
    pairs = []
    for name, value in params.items():
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, datetime):
                v = v.isoformat().replace("+00:00", "Z")
            pairs.append((name, str(v)))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
