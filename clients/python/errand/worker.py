# SPDX-License-Identifier: MIT
"""``errand.serve``: the worker runtime in Python. It serves tasks defined with
``@errand.task`` as liberrand's C worker serves C tasks, over the same worker protocol
(docs/api.md, "Worker protocol", "Leases", "Delivery guarantees"):

- a **claimer** thread long-polls ``POST /api/workers/claim`` for as many runs as it has room
  for (``limit`` running + ``prefetch`` waiting), each claim with a ``request_id`` kept when it
  is sent again after a lost answer; a claim answer that arrives after the lease it grants ran
  out is not run (the run may be running elsewhere);
- a **heartbeat** thread extends the leases of every run held (and of every finished run
  whose outcome is not delivered yet), about once a second, and
  learns of cancels and lost leases from the answers; it never waits behind a task (tasks run
  in other processes) nor behind reports (another thread sends those);
- the **reporter** thread (reporter.py) sends RUNNING, outcomes and log lines in batches with a
  ``batch_id``, again when an answer is lost;
- the **dispatcher** (the thread that called ``serve``) owns the pool of child processes
  (pool.py) and every run's life: it starts runs in children, enforces timeouts by killing the
  child, passes cancels on (the task's ``should_stop()``; killed after ``CANCEL_KILL_S``), and
  turns a child's death into a FAILED run (retried per the run's policy).

The children are not forks of this threaded process: a fork copies the locks other threads
hold at that instant, and a child could wait on one for ever. ``serve`` first forks a small
*fork server* while the worker still has one thread (fork_server.py), and every child is
forked from it. So a task sees the program as it was when ``serve`` started: what it set up
before (imports, ``set_encoder``, globals, open files) is there; what changes later in the
worker process is not. Start any threads of your own after ``serve``'s start, or in the tasks.

Stopping (SIGTERM or SIGINT): claims stop; runs claimed but not started are handed back at
once (free, not a redelivery); running ones get ``grace_seconds`` to finish, then are handed
back (a redelivery: another worker runs them at once) and their children killed; the
reporter sends everything left; ``serve`` returns (exit status 0 for a program that then
ends).

Settings, as the C worker's: ``ERRAND_API_URL`` (a comma-separated list fails over),
``ERRAND_API_KEY``, ``ERRAND_WORKER_CONCURRENCY`` (``limit``'s default, 10),
``ERRAND_LEASE_SECONDS`` (the lease to ask for; the server's when unset),
``ERRAND_HOME`` / ``ERRAND_LOCAL_STORAGE_PATH`` (where persisted results go; default
``$ERRAND_HOME/storage``, ``~/.errand/storage``), ``ERRAND_RESULT_STORAGE`` (``local``, or
``s3://bucket/prefix`` with ``ERRAND_S3_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``
and ``AWS_SECRET_ACCESS_KEY``), ``ERRAND_RESULTS_PERSIST_BY_DEFAULT``,
``ERRAND_RESULT_INLINE_MAX_BYTES`` (65536), ``ERRAND_LOGGING_LOG_PRINTS``. Settings the C
worker refuses (a result storage that is neither ``local`` nor a valid ``s3://`` URL, S3
without credentials...) are refused at start with its words: ``serve`` logs
``msg="invalid settings"`` and raises :class:`ValueError` (a program ends with a non-zero
status).

Persisted results (a run's or task's ``persist_result``, ``ERRAND_RESULTS_PERSIST_BY_DEFAULT``,
or a result over the inline limit) are written by the task's child process, as liberrand's
worker writes them (src/worker/result_store.c): the file ``<storage>/<run id>.json``
(``local://<path>``), or the object ``<prefix>/<run id>.json`` PUT to the bucket, signed with
SigV4 by :mod:`errand.s3` (``s3://<bucket>/<prefix>/<run id>.json``). The server reads them
for clients (``GET /api/task_runs/{id}/result``). A result that cannot be stored fails its
run, retryable, with what the store said (``could not persist the result: cannot store
s3://b/k: HTTP 403 InvalidAccessKeyId: ...``), and the worker logs
``msg="could not persist a result"``.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import errors
from .client import Client
from .fork_server import ForkServer, ForkServerError
from .pool import Child, start_child, task_main, utc_now
from .reporter import Reporter
from .s3 import S3Location, is_s3_url
from .tasks import Task

DEFAULT_CONCURRENCY = 10
DEFAULT_MAX_WAITING = 32  # runs waiting for other runs with their slots lent
DEFAULT_GRACE_S = 30.0
DEFAULT_INLINE_MAX = 65536
CLAIM_WAIT_S = 10  # the long poll; a submission wakes it at once
CLAIM_MAX = 1000  # runs per claim (docs/api.md)
HEARTBEAT_MAX_S = 1.0  # beat at least this often while holding runs (cancels reach a task)
HEARTBEAT_LEASES_MAX = 1000
CANCEL_KILL_S = 2.0  # a cancelled task that did not return by then is killed
REPORT_FLUSH_S = 30.0  # on stop, how long the reporter may take to send what is left
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 2.0
IDLE_TICK_S = 1.0
# How long the dispatcher waits for a child's exit status once its socket closed (its keeper
# reports it at once; the bound is for a machine too busy to schedule the keeper).
STATUS_WAIT_S = 5.0


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


_LOG_LEVELS = {"debug": 0, "info": 1, "warning": 2, "warn": 2, "error": 3}


def _log(level: str, msg: str, **fields: Any) -> None:
    """The worker's own log: one line on stderr, as liberrand's, in the format of
    ``ERRAND_LOGGING_FORMAT`` (``logfmt``, the default, or ``json``: ``ts``, ``level``, ``msg``,
    then the fields, numbers and booleans as JSON values), from ``ERRAND_LOGGING_LEVEL`` up
    (default ``info``). An unknown value of either means its default."""
    least = _LOG_LEVELS.get(os.environ.get("ERRAND_LOGGING_LEVEL", "").strip().lower(), 1)
    if _LOG_LEVELS[level] < least:
        return
    if os.environ.get("ERRAND_LOGGING_FORMAT", "").strip().lower() == "json":
        event: dict[str, Any] = {"ts": utc_now(), "level": level, "msg": msg}
        for k, v in fields.items():
            number = isinstance(v, (bool, int)) or (isinstance(v, float) and math.isfinite(v))
            event[k] = v if number else str(v)
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    else:
        parts = [f"ts={utc_now()}", f"level={level}", f'msg="{msg}"']
        for k, v in fields.items():
            text = str(v).lower() if isinstance(v, bool) else str(v)
            if not text or any(c in text for c in ' "=\n\\'):
                text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') \
                    .replace("\n", "\\n") + '"'
            parts.append(f"{k}={text}")
        line = " ".join(parts)
    print(line, file=sys.stderr, flush=True)


def _about(run: "WorkerRun") -> dict[str, Any]:
    """The fields of a log line about a run: its id, and its trace id when it has one."""
    fields: dict[str, Any] = {"run": run.id}
    if run.traceparent:
        fields["trace_id"] = run.traceparent[3:35]
    return fields


@dataclass(eq=False)
class WorkerRun:
    """One claimed run, owned by the dispatcher once it has it."""

    id: str
    task: str
    parameters: dict[str, Any]
    attempt: int
    max_attempts: int
    lease_token: str
    timeout_seconds: float | None
    persist_result: bool | None
    traceparent: str | None
    child: Child | None = None
    deadline: float | None = None  # monotonic: the timeout, then a cancel's kill
    cancel: bool = False
    finished: bool = False
    waiting: bool = False  # its slot is lent while it waits for other runs
    # Whether it waits for other runs, as the heartbeats tell the server (None: never did), so
    # that the server gives back its concurrency-limit slots while it waits.
    told_waiting: bool | None = None

    @classmethod
    def from_claim(cls, d: dict[str, Any]) -> WorkerRun:
        return cls(id=d["id"], task=d["task"], parameters=d.get("parameters") or {},
                   attempt=d.get("attempt") or 1, max_attempts=d.get("max_attempts") or 1,
                   lease_token=d["lease_token"], timeout_seconds=d.get("timeout_seconds"),
                   persist_result=d.get("persist_result"), traceparent=d.get("traceparent"))


@dataclass
class Settings:
    """A worker's settings: defaults, then the environment, then ``serve``'s arguments."""

    api_url: str | None = None
    api_key: str | None = None
    name: str = ""
    limit: int = DEFAULT_CONCURRENCY
    prefetch: int = 0
    max_waiting: int = DEFAULT_MAX_WAITING
    lease_seconds: int | None = None
    grace_seconds: float = DEFAULT_GRACE_S
    storage_path: str = ""
    s3: S3Location | None = None  # ERRAND_RESULT_STORAGE=s3://...; None: local storage
    persist_by_default: bool = False
    inline_max: int = DEFAULT_INLINE_MAX
    log_prints: bool = False
    max_tasks_per_child: int | None = None
    max_memory_per_child: float | None = None  # MB
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        env = os.environ
        home = env.get("ERRAND_HOME") or os.path.expanduser("~/.errand")
        s = cls(api_url=env.get("ERRAND_API_URL") or None,
                api_key=env.get("ERRAND_API_KEY") or None,
                name=f"{socket.gethostname()}-{os.getpid()}",
                limit=int(env.get("ERRAND_WORKER_CONCURRENCY") or DEFAULT_CONCURRENCY),
                max_waiting=int(env["ERRAND_WORKER_MAX_WAITING"])
                if env.get("ERRAND_WORKER_MAX_WAITING") else DEFAULT_MAX_WAITING,
                lease_seconds=int(env["ERRAND_LEASE_SECONDS"])
                if env.get("ERRAND_LEASE_SECONDS") else None,
                storage_path=env.get("ERRAND_LOCAL_STORAGE_PATH") or os.path.join(home,
                                                                                "storage"),
                persist_by_default=_truthy(env.get("ERRAND_RESULTS_PERSIST_BY_DEFAULT")),
                inline_max=int(env.get("ERRAND_RESULT_INLINE_MAX_BYTES") or DEFAULT_INLINE_MAX),
                log_prints=_truthy(env.get("ERRAND_LOGGING_LOG_PRINTS")))
        # As liberrand's worker: unset is local; anything else must be local or s3://.
        storage = env.get("ERRAND_RESULT_STORAGE", "local")
        if is_s3_url(storage):
            s.s3 = S3Location.from_env(env)
        elif storage != "local":
            raise ValueError(f"the result storage '{storage}' must be local or "
                             f"s3://bucket/prefix")
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        if not 1 <= s.limit <= 10000:
            raise ValueError(f"limit (ERRAND_WORKER_CONCURRENCY) must be 1 to 10000, "
                             f"got {s.limit}")
        if not 0 <= s.prefetch <= 10000:
            raise ValueError(f"prefetch must be 0 to 10000, got {s.prefetch}")
        if not 0 <= s.max_waiting <= 10000:
            raise ValueError(f"max_waiting (ERRAND_WORKER_MAX_WAITING) must be 0 to 10000, "
                             f"got {s.max_waiting}")
        if s.lease_seconds is not None and not 1 <= s.lease_seconds <= 3600:
            raise ValueError(f"lease_seconds must be 1 to 3600, got {s.lease_seconds}")
        if not 1 <= len(s.name) <= 200:
            raise ValueError(f"the worker name must be 1-200 characters, got {s.name!r}")
        return s


class Worker:
    """One worker process serving ``tasks``; :func:`serve` makes and runs one."""

    def __init__(self, tasks: list[Task], settings: Settings) -> None:
        if not tasks:
            raise ValueError("serve() needs at least one task")
        self.tasks = {t.name: t for t in tasks}
        self.s = settings
        self.client = Client(settings.api_url, settings.api_key)
        self.reporter = Reporter(self.client, settings.name, _log, self._delivered)
        # Shared with the claimer and heartbeat threads, guarded by _mu: the runs held
        # (claimed and not finished) and the events for the dispatcher.
        self._mu = threading.Condition()
        self._held: dict[str, WorkerRun] = {}
        self._reporting: dict[str, str] = {}  # run id -> lease token, outcome not yet sent
        self._events: deque[tuple[str, Any]] = deque()
        self._stopping = threading.Event()
        self._claimer_done = threading.Event()
        self._served = threading.Event()  # serve() has returned: the threads end
        self._claim_conn: http.client.HTTPConnection | None = None
        # The dispatcher's own.
        self._queue: deque[WorkerRun] = deque()
        self._waiting = 0  # runs whose slots are lent (WorkerRun.waiting); written under _mu
        self._heartbeat_now = threading.Event()
        self._lend_refused = False
        self._forks: ForkServer | None = None
        self._broken: str | None = None  # why serve() raises once it has stopped
        self._children: list[Child] = []
        self._idle: list[Child] = []
        self._zombies: list[Child] = []  # retired: told to exit, their end not heard yet
        self._grace_end: float | None = None
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # ---- shared with the other threads ----------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # already awake

    def _event(self, kind: str, value: Any) -> None:
        with self._mu:
            self._events.append((kind, value))
        self._wake()

    def _delivered(self, reports: list[dict[str, Any]]) -> None:
        with self._mu:
            for r in reports:
                if r["state"] != "RUNNING" and self._reporting.get(r["id"]) == r["lease_token"]:
                    del self._reporting[r["id"]]

    def request_stop(self, *_: Any) -> None:
        """Starts an orderly stop (the SIGTERM/SIGINT handler)."""
        self._stopping.set()
        self._wake()

    # ---- the claimer thread ---------------------------------------------------------------

    def _claim_once(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One claim over http.client, so that a stop can cut the long poll short."""
        last: Exception | None = None
        for i in range(len(self.client.servers)):
            base = self.client.servers[(self.client._next + i) % len(self.client.servers)]
            u = urllib.parse.urlsplit(base)
            cls = http.client.HTTPSConnection if u.scheme == "https" else \
                http.client.HTTPConnection
            conn = cls(u.hostname, u.port, timeout=timeout)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self.client.api_key:
                headers["Authorization"] = f"Bearer {self.client.api_key}"
            try:
                with self._mu:
                    self._claim_conn = conn
                if self._stopping.is_set():
                    raise errors.ConnectionFailed("stopping")
                conn.request("POST", u.path + "/workers/claim", json.dumps(body), headers)
                resp = conn.getresponse()
                status, data = resp.status, resp.read()
            except (ConnectionRefusedError, socket.gaierror) as e:
                last = e
                continue
            except (OSError, http.client.HTTPException) as e:
                raise errors.ConnectionFailed(f"claim: no answer from {base}: {e}") from e
            finally:
                with self._mu:
                    self._claim_conn = None
                conn.close()
            if status == 503 and i + 1 < len(self.client.servers):
                continue
            answer = json.loads(data or b"null") if data else None
            if status != 200:
                raise errors.from_response(status, answer)
            self.client._next = (self.client._next + i) % len(self.client.servers)
            return answer
        raise errors.ConnectionFailed(f"cannot reach an errand server: {last}")

    def _claimer(self) -> None:
        capacity = self.s.limit + self.s.prefetch
        try:
            while not self._stopping.is_set():
                with self._mu:
                    # Runs waiting with their slots lent do not count (the worker may be
                    # over for a moment when their waits end: room is then 0).
                    while len(self._held) - self._waiting >= capacity and \
                            not self._stopping.is_set():
                        self._mu.wait(IDLE_TICK_S)
                    room = min(capacity - (len(self._held) - self._waiting), CLAIM_MAX)
                if self._stopping.is_set():
                    break
                self._claim(room, CLAIM_WAIT_S)
        finally:
            self._claimer_done.set()
            self._wake()

    def _claim(self, room: int, wait_s: int) -> None:
        body: dict[str, Any] = {"worker": self.s.name, "tasks": list(self.tasks),
                                "limit": room, "wait_seconds": wait_s,
                                "request_id": uuid.uuid4().hex}
        if self.s.lease_seconds:
            body["lease_seconds"] = self.s.lease_seconds
        pause = RETRY_FIRST_S
        while True:
            try:
                answer = self._claim_once(body, wait_s + self.client.timeout)
                break
            except (errors.ConnectionFailed, errors.Unavailable, errors.StoreError) as e:
                if self._stopping.is_set():
                    # The long poll was cut short: whatever that claim took (the server may
                    # have committed it) comes back under its request_id, to be handed back.
                    if body["wait_seconds"] == 0:
                        return
                    body["wait_seconds"] = 0
                    continue
                _log("warning", "claim failed; sending it again", error=str(e))
            except errors.ErrandError as e:
                _log("error", "claim refused", error=str(e))
                if self._stopping.is_set():
                    return
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_S)
        now = time.time()
        for d in answer.get("runs") or []:
            run = WorkerRun.from_claim(d)
            expires = _epoch(d.get("lease_expires"))
            if expires is not None and now > expires:
                _log("warning", "a claim answer came after the lease it grants; not run",
                     run=run.id)
                continue
            with self._mu:
                self._held[run.id] = run
            self._event("claimed", run)

    def _cut_claim(self) -> None:
        with self._mu:
            conn = self._claim_conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- the heartbeat thread -------------------------------------------------------------

    def _heartbeats(self) -> None:
        interval = HEARTBEAT_MAX_S
        if self.s.lease_seconds:
            interval = min(interval, self.s.lease_seconds / 4)
        while not self._served.is_set() and \
                (not self._claimer_done.is_set() or self._held or self._reporting):
            self._heartbeat_now.wait(interval)  # set when a run begins or ends a wait
            self._heartbeat_now.clear()
            with self._mu:
                leases = [{"id": r.id, "lease_token": r.lease_token}
                          | ({} if r.told_waiting is None else {"waiting": r.told_waiting})
                          for r in self._held.values()]
                leases += [{"id": i, "lease_token": t} for i, t in self._reporting.items()
                           if i not in self._held]
            for i in range(0, len(leases), HEARTBEAT_LEASES_MAX):
                body: dict[str, Any] = {"worker": self.s.name,
                                        "leases": leases[i:i + HEARTBEAT_LEASES_MAX]}
                if self.s.lease_seconds:
                    body["lease_seconds"] = self.s.lease_seconds
                try:
                    answer = self.client._request("POST", "/workers/heartbeat", body,
                                                  accept=(409,))
                except errors.ErrandError as e:
                    _log("warning", "heartbeat failed", error=str(e))
                    continue
                for item in answer.get("leases") or []:
                    if item.get("status") in (404, 409):
                        self._event("lost", item["id"])
                    elif item.get("cancel"):
                        self._event("cancel", item["id"])

    # ---- the dispatcher -------------------------------------------------------------------

    def serve(self) -> None:
        _raise_fd_limit()
        self._start_pool()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        main = threading.current_thread() is threading.main_thread()
        if main:
            old = {sig: signal.signal(sig, self.request_stop)
                   for sig in (signal.SIGTERM, signal.SIGINT)}
        self.reporter.start()
        threads = [threading.Thread(target=self._claimer, name="errand-claimer", daemon=True),
                   threading.Thread(target=self._heartbeats, name="errand-heartbeat",
                                    daemon=True)]
        for t in threads:
            t.start()
        _log("info", "worker started", worker=self.s.name, tasks=",".join(self.tasks),
             concurrency=self.s.limit, prefetch=self.s.prefetch,
             max_waiting=self.s.max_waiting, runtime="python")
        try:
            self._dispatch()
        finally:
            for c in list(self._children):
                c.kill()
            self._reap(block=True)
            self._forks.stop()
            if not self.reporter.close(REPORT_FLUSH_S):
                _log("error", "some reports could not be sent before the worker stopped")
            self._served.set()
            self._heartbeat_now.set()
            if main:
                for sig, handler in old.items():
                    signal.signal(sig, handler)
            self._sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        _log("info", "worker stopped", worker=self.s.name)
        if self._broken:
            raise ForkServerError(self._broken)

    def _start_pool(self) -> None:
        """Forks the fork server while the worker has one thread (its threads start after),
        then the whole pool through it, as Celery's prefork pool starts its processes at
        boot: a run then starts with one message."""
        if threading.active_count() > 1:
            _log("warning", "serve() started with other threads running; a task process "
                 "may copy a lock one of them held: start them after serve() or in the tasks",
                 threads=threading.active_count())
        self._forks = ForkServer.start(task_main(self.tasks),
                                       [self._wake_r, self._wake_w, self._sel.fileno()])
        try:
            for _ in range(self.s.limit):
                self._idle.append(self._start_child())
        except BaseException:
            for c in list(self._children):
                c.kill()
            self._reap(block=True)
            self._forks.stop()
            raise

    def _dispatch(self) -> None:
        while True:
            for key, _ in self._sel.select(self._timeout()):
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._on_child(key.data)
            with self._mu:
                events = list(self._events)
                self._events.clear()
            for kind, value in events:
                getattr(self, f"_on_{kind}")(value)
            if self._stopping.is_set():
                if self._grace_end is None:
                    self._begin_stop()
                if time.monotonic() >= self._grace_end:
                    for run in [r for r in self._running()]:
                        _log("warning", "grace period over; handing back a running run",
                             **_about(run))
                        self._finish(run, {"state": "SCHEDULED"})
                        run.child.kill()
            self._start_queued()
            self._check_deadlines()
            self._reap()
            if self._stopping.is_set() and self._claimer_done.is_set():
                # A claim cut short by the stop may have brought runs: hand them back.
                with self._mu:
                    late = [e for e in self._events if e[0] == "claimed"]
                for run in list(self._queue):
                    self._queue.remove(run)
                    self._finish(run, {"state": "SCHEDULED"})
                with self._mu:
                    if not self._held and not late:
                        return

    def _timeout(self) -> float:
        now = time.monotonic()
        ends = [r.deadline for r in self._running() if r.deadline is not None]
        if self._grace_end is not None:
            ends.append(self._grace_end)
        t = min(ends, default=now + IDLE_TICK_S) - now
        return max(0.0, min(t, IDLE_TICK_S))

    def _running(self) -> list[WorkerRun]:
        return [c.run for c in self._children if c.run is not None]

    def _active(self) -> int:
        """Running runs that hold a slot (not those waiting with theirs lent)."""
        return sum(1 for r in self._running() if not r.waiting)

    def _set_waiting(self, run: WorkerRun, on: bool) -> None:
        """Lends a run's slot while it waits for other runs (at most max_waiting at once;
        past that the wait keeps its slot) and takes it back when the wait ends."""
        if run.told_waiting != on:  # the server hears it now, not at the next beat
            run.told_waiting = on
            self._heartbeat_now.set()
        if on == run.waiting:
            return
        if on and self._waiting >= self.s.max_waiting:
            if not self._lend_refused:
                self._lend_refused = True
                _log("warning", "max_waiting runs already wait for other runs with their slots "
                     "lent: this wait keeps its slot (raise max_waiting / "
                     "ERRAND_WORKER_MAX_WAITING if the worker stalls); said once",
                     run=run.id, max_waiting=self.s.max_waiting)
            return
        run.waiting = on
        with self._mu:
            self._waiting += 1 if on else -1
            self._mu.notify_all()

    def _begin_stop(self) -> None:
        self._grace_end = time.monotonic() + self.s.grace_seconds
        _log("info", "stopping: handing back unstarted runs", worker=self.s.name,
             queued=len(self._queue), running=len(self._running()),
             grace_seconds=self.s.grace_seconds)
        while self._queue:
            self._finish(self._queue.popleft(), {"state": "SCHEDULED"})
        with self._mu:
            self._mu.notify_all()
        self._cut_claim()

    def _on_claimed(self, run: WorkerRun) -> None:
        if self._stopping.is_set():
            self._finish(run, {"state": "SCHEDULED"})
        else:
            self._queue.append(run)

    def _on_cancel(self, run_id: str) -> None:
        with self._mu:
            run = self._held.get(run_id)
        if run is None or run.finished or run.cancel:
            return
        run.cancel = True
        if run in self._queue:
            self._queue.remove(run)
            self._finish(run, {"state": "CANCELLED"})
        elif run.child is not None:
            run.child.ask_stop(run.id)
            run.deadline = time.monotonic() + CANCEL_KILL_S

    def _on_lost(self, run_id: str) -> None:
        with self._mu:
            run = self._held.get(run_id)
        if run is None or run.finished:
            return
        _log("warning", "lease lost; the run is another worker's now", **_about(run))
        if run in self._queue:
            self._queue.remove(run)
        self._finish(run, None)
        if run.child is not None:
            run.child.kill()

    def _start_queued(self) -> None:
        while self._queue and not self._stopping.is_set() and \
                self._active() < self.s.limit:
            run = self._queue.popleft()
            try:
                child = self._idle.pop() if self._idle else self._start_child()
            except ForkServerError as e:
                self._no_child(run, e)
                break  # tried again at the next turn of the loop
            spec = {"id": run.id, "task": run.task, "parameters": run.parameters,
                    "attempt": run.attempt, "max_attempts": run.max_attempts,
                    "traceparent": run.traceparent, "persist": run.persist_result,
                    "persist_by_default": self.s.persist_by_default,
                    "storage_path": self.s.storage_path, "s3": self.s.s3,
                    "inline_max": self.s.inline_max,
                    "log_prints": self.s.log_prints,
                    "api_url": self.s.api_url, "api_key": self.s.api_key}
            self.reporter.report({"id": run.id, "lease_token": run.lease_token,
                                  "state": "RUNNING"})
            _log("debug", "task run started", **_about(run), task=run.task, attempt=run.attempt)
            run.child, child.run = child, run
            if run.timeout_seconds:
                run.deadline = time.monotonic() + run.timeout_seconds
            try:
                child.start(spec)
            except OSError:
                pass  # it died: its end of the socket says so

    def _start_child(self) -> Child:
        child = start_child(self._forks)
        self._children.append(child)
        self._sel.register(child.conn, selectors.EVENT_READ, child)
        return child

    def _no_child(self, run: WorkerRun, e: ForkServerError) -> None:
        """A run for which no process could be started. With the fork server gone no run can
        start any more (another fork of this threaded worker is what the server avoids): the
        run is handed back, free, and the worker stops; serve() then raises, so that the
        program exits with an error and its supervisor starts it again. Otherwise (out of
        processes or memory) the run fails, retried per its policy."""
        if not self._forks.alive():
            _log("error", "the worker's fork server is gone; handing the run back and "
                 "stopping", run=run.id, fork_server=self._forks.pid, error=str(e))
            self._broken = (f"the worker's fork server (pid {self._forks.pid}) ended, so no "
                            f"task process could start; the worker handed its runs back and "
                            f"stopped: start it again")
            self._finish(run, {"state": "SCHEDULED"})
            self.request_stop()
            return
        _log("error", "could not start a process for a task", run=run.id, task=run.task,
             error=str(e))
        self._finish(run, {"state": "FAILED", "retryable": True,
                           "message": f"could not start a process for task '{run.task}': "
                                      f"{e}"})

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for run in self._running():
            if run.deadline is None or now < run.deadline or run.finished:
                continue
            if run.cancel:
                _log("warning", "a cancelled task did not return in time; killed", **_about(run))
                self._finish(run, {"state": "CANCELLED"})
            else:
                _log("warning", "task timed out; killed", **_about(run), task=run.task,
                     timeout_seconds=run.timeout_seconds)
                self._finish(run, {"state": "FAILED", "retryable": True,
                                   "message": f"task timed out after {run.timeout_seconds:g}s"})
            run.child.kill()

    def _on_child(self, child: Child) -> None:
        try:
            msg = child.conn.recv()
        except (EOFError, OSError):
            self._child_gone(child)
            return
        if msg[0] == "log":
            _, run_id, ts, level, message = msg
            self.reporter.log_line(run_id, ts, level, message)
        elif msg[0] == "waiting":
            _, run_id, on = msg
            if child.run is not None and child.run.id == run_id and not child.run.finished:
                self._set_waiting(child.run, on)
        elif msg[0] == "done":
            _, run_id, outcome, peak_kb = msg
            run = child.run
            child.run = None
            child.runs_done += 1
            if run is not None and run.id == run_id:
                if outcome.get("persist_error"):
                    _log("warning", "could not persist a result", run=run_id,
                         error=outcome["persist_error"])
                self._finish(run, self._report_of(outcome))
            limit_mb = self.s.max_memory_per_child
            if (self.s.max_tasks_per_child and
                    child.runs_done >= self.s.max_tasks_per_child) or \
                    (limit_mb and peak_kb / 1024 > limit_mb):
                self._drop(child)
                child.retire()
                child.conn.close()
                self._zombies.append(child)
            elif not child.killed:
                self._idle.append(child)

    def _report_of(self, outcome: dict[str, Any]) -> dict[str, Any]:
        if outcome["ok"]:
            rep: dict[str, Any] = {"state": "COMPLETED"}
            if outcome["result_json"] is not None:
                rep["result"] = json.loads(outcome["result_json"])
            if outcome["result_ref"]:
                rep["result_ref"] = outcome["result_ref"]
            return rep
        return {"state": "FAILED", "message": outcome["message"],
                "retryable": outcome["retryable"]}

    def _child_gone(self, child: Child) -> None:
        self._drop(child)
        if not child.wait_end(STATUS_WAIT_S):
            # Its socket closed, yet its keeper has not reported its end: the pid is still
            # the child's (the keeper has not reaped it), so kill it to be sure.
            _log("warning", "a task's process closed its socket but did not end; killed",
                 pid=child.pid)
            child.kill()
        child.close()
        run = child.run
        if run is not None and not run.finished:
            how = _exit_text(child.exit_status)
            _log("error", "a task's process died", **_about(run), task=run.task, status=how)
            self._finish(run, {"state": "FAILED", "retryable": True,
                               "message": f"the task's process died ({how}) while running "
                                          f"task '{run.task}'"})

    def _drop(self, child: Child) -> None:
        self._sel.unregister(child.conn)
        self._children.remove(child)
        if child in self._idle:
            self._idle.remove(child)

    def _finish(self, run: WorkerRun, report: dict[str, Any] | None) -> None:
        """Ends the worker's part in a run: reports the outcome (None: nothing, the lease is
        lost) unless one was reported already, lets go of its lease, makes room for a claim."""
        if run.finished:
            return
        if run.waiting:
            self._set_waiting(run, False)
        run.finished = True
        if report is not None:
            if run.cancel and report["state"] != "CANCELLED":
                report = {"state": "CANCELLED"}
            with self._mu:
                self._reporting[run.id] = run.lease_token
            self.reporter.report({"id": run.id, "lease_token": run.lease_token, **report})
        with self._mu:
            self._held.pop(run.id, None)
            self._mu.notify_all()

    def _reap(self, block: bool = False) -> None:
        """Lets go of retired children that ended; with ``block`` (the worker is stopping and
        has killed its children) waits for every child, killing a retired one that has not
        ended within STATUS_WAIT_S."""
        if not block:
            self._zombies = [c for c in self._zombies if not c.wait_end(0)]
            return
        for c in self._children + self._zombies:
            if not c.wait_end(STATUS_WAIT_S):
                c.kill()
                c.wait_end(STATUS_WAIT_S)
            c.close()
        self._zombies.clear()


def _epoch(text: str | None) -> float | None:
    """An RFC 3339 time of the server's as seconds since the epoch (None if absent)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _exit_text(status: int | None) -> str:
    if status is None:
        return "its exit status is unknown"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by signal {sig}, {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _raise_fd_limit() -> None:
    """One socket per child: lift the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def serve(*tasks: Task, limit: int | None = None, prefetch: int | None = None,
          name: str | None = None, api_url: str | None = None, api_key: str | None = None,
          lease_seconds: int | None = None, grace_seconds: float | None = None,
          max_tasks_per_child: int | None = None, max_memory_per_child: float | None = None,
          storage_path: str | None = None, log_prints: bool | None = None,
          persist_by_default: bool | None = None, max_waiting: int | None = None) -> None:
    """Serves ``tasks`` until SIGTERM or SIGINT, then stops in order (see the module's
    docstring) and returns. Call it before starting threads of your own: it forks the fork
    server its task processes come from first, and a task sees the program as it was then.
    Raises ``ForkServerError`` (an ``OSError``) after an orderly stop when that server died,
    as no task can start any more: the program should exit with an error and be started
    again.

    Args:
        limit: runs at once, each in its own child process (``ERRAND_WORKER_CONCURRENCY``,
            10).
        prefetch: runs claimed beyond ``limit``, waiting for a free child (0).
        max_waiting: how many runs may wait for other runs (``.delay()`` then ``.result()``
            or ``.wait()`` in a task) with their slot lent to another run, each costing a
            process (``ERRAND_WORKER_MAX_WAITING``, 32; 0: a waiting run keeps its slot). So
            a task that waits for its own subtasks cannot deadlock the pool; past the bound
            a wait keeps its slot (a warning, once).
        name: the worker's name on the server (``<host>-<pid>``).
        api_url, api_key: the server (``ERRAND_API_URL``, ``ERRAND_API_KEY``).
        lease_seconds: the lease to ask for (``ERRAND_LEASE_SECONDS``; the server's).
        grace_seconds: how long running tasks may finish after SIGTERM (30).
        max_tasks_per_child: a child process is replaced after this many runs (never).
        max_memory_per_child: ... or once its peak resident memory passes this many MB.
        storage_path: where persisted results go with local result storage
            (``ERRAND_LOCAL_STORAGE_PATH``); ``ERRAND_RESULT_STORAGE=s3://bucket/prefix``
            sends them to a bucket instead (see the module's docstring).
        log_prints: ``print`` in tasks goes to the runs' logs
            (``ERRAND_LOGGING_LOG_PRINTS``; a task's own ``log_prints`` wins).
        persist_by_default: persist results of runs and tasks that do not say
            (``ERRAND_RESULTS_PERSIST_BY_DEFAULT``).
    """
    try:
        settings = Settings.load(limit=limit, prefetch=prefetch, name=name, api_url=api_url,
                                 api_key=api_key, lease_seconds=lease_seconds,
                                 grace_seconds=grace_seconds,
                                 max_tasks_per_child=max_tasks_per_child,
                                 max_memory_per_child=max_memory_per_child,
                                 storage_path=storage_path, log_prints=log_prints,
                                 persist_by_default=persist_by_default,
                                 max_waiting=max_waiting)
    except ValueError as e:
        _log("error", "invalid settings", error=str(e))
        raise
    Worker(list(tasks), settings).serve()
