# SPDX-License-Identifier: MIT
"""The worker's pool of child processes, as Celery's prefork pool: each task runs in a child
process, one run at a time, so that

- a timeout or a cancel really stops a task: the child is killed (a ``while True: pass``
  included), and the pool starts another when it needs one;
- a CPU-bound task cannot starve the worker's heartbeats: it holds its own process's GIL,
  not the worker's;
- a crash (``os._exit``, a segfault in an extension module) ends that one run: the worker
  sees the child's socket close and reports the run FAILED with how the process died;
- a child is recycled after ``max_tasks_per_child`` runs or once its peak memory passes
  ``max_memory_per_child`` MB.

A child is not a fork of the running worker, whose other threads may hold a lock at that
instant: it is forked by the worker's fork server (fork_server.py), itself forked when
``serve`` started, while the worker had one thread. So a child sees the program as it was
then: what the program did before ``serve`` (imports, ``set_encoder``, globals), not what the
worker's threads changed since. Its keeper process reports its pid and, once it ended, its wait
status on the child's status socket: the worker never calls ``waitpid`` on a child.

The parent side (:class:`Child`) is owned by the worker's dispatcher thread alone. The child
talks to it over a socket pair with :class:`multiprocessing.connection.Connection` (pickled
tuples):

    parent -> child   ("run", spec)       run this (spec: see Child.start)
                      ("stop", run_id)    the runtime asks the run to stop (should_stop())
                      ("exit",)           end the process (recycling)
    child -> parent   ("log", run_id, timestamp, level, message)
                      ("waiting", run_id, bool)  the task begins (True) or ends (False) a wait
                                           for other runs: the worker lends its slot
                                           meanwhile (errand.context.waiting_for_runs)
                      ("done", run_id, outcome, peak_rss_kb)
"""
from __future__ import annotations

import functools
import io
import os
import queue
import resource
import signal
import socket
import sys
import threading
import traceback
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import encoding
from .context import RunContext, _enter_run, _leave_run
from .errors import TaskError
from .fork_server import ForkServer, TaskMain, read_status
from .s3 import S3Error, S3Location, is_run_id
from . import tasks as _tasks_module
from .client import Client
from .tasks import Task, call, set_client

MESSAGE_MAX = 65536  # failure and log messages (docs/api.md, "Worker protocol")
RESULT_DEPTH_MAX = 61  # a report body nests 64 levels; its result sits 3 down
RESULT_REF_SCHEME = "local://"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """At most ``limit`` characters, keeping the end (a traceback's last line says most)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


class Child:
    """The parent's handle on one child process."""

    def __init__(self, pid: int, conn: Connection, status: socket.socket) -> None:
        self.pid = pid
        self.conn = conn
        self.status = status  # its keeper's socket: how the process ended
        self.runs_done = 0
        self.run: Any = None  # the worker's run record while it runs one
        self.killed = False
        self.ended = False
        self.exit_status: int | None = None  # once ended; None: unknown (its keeper died)

    def fileno(self) -> int:
        return self.conn.fileno()

    def start(self, spec: dict[str, Any]) -> None:
        """Sends a run: spec holds id, task, parameters, attempt, max_attempts,
        traceparent, persist (bool), persist_by_default, storage_path, s3 (an
        :class:`~errand.s3.S3Location`, or None for local results), inline_max,
        log_prints."""
        self.conn.send(("run", spec))

    def ask_stop(self, run_id: str) -> None:
        try:
            self.conn.send(("stop", run_id))
        except OSError:
            pass  # it died: its end is read by the dispatcher

    def kill(self) -> None:
        """SIGKILL; the dispatcher reads the socket's end and how the process ended. Not once
        its keeper said it ended: the keeper reaped it then, and the pid may be another's."""
        if self.killed:
            return
        self.killed = True
        if self.pid <= 0:  # never kill(0) or kill(-1): the group, or every process
            raise ValueError(f"refusing to signal pid {self.pid}")
        if self.wait_end(0):
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def retire(self) -> None:
        """Asks an idle child to exit (recycling); the caller closes its connection and waits
        for its end (wait_end)."""
        try:
            self.conn.send(("exit",))
        except OSError:
            pass

    def wait_end(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the process to end; true once it has (then
        ``exit_status`` says how, and the status socket is closed)."""
        if not self.ended:
            self.ended, self.exit_status = read_status(self.status, timeout)
            if self.ended:
                self.status.close()
        return self.ended

    def close(self) -> None:
        """Lets go of the process: closes both sockets (it ends at EOF on its connection)."""
        self.conn.close()
        self.status.close()


def start_child(server: ForkServer) -> Child:
    """Starts a child through the fork server (it serves the tasks it was started with); the
    child holds its own socket and what the program had open when serve started, never the
    worker's later descriptors nor another child's socket. Raises ForkServerError."""
    parent_sock, child_sock = socket.socketpair()
    try:
        pid, status = server.spawn(child_sock.fileno())
    except BaseException:
        parent_sock.close()
        raise
    finally:
        child_sock.close()
    return Child(pid, Connection(parent_sock.detach()), status)


def task_main(tasks: dict[str, Task]) -> TaskMain:
    """What each child runs (ForkServer.start): given its socket, serves ``tasks``."""
    return functools.partial(_child_fd_main, tasks)


# ---- the child's side ----------------------------------------------------------------------

class _Sender:
    """The child's one writer to the parent (the task's threads print and log too)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, msg: tuple) -> None:
        with self.lock:
            self.conn.send(msg)


class _LogPrints(io.TextIOBase):
    """sys.stdout while a task runs with log_prints: each line printed becomes an info log
    line of the run."""

    def __init__(self, emit) -> None:
        self.emit = emit
        self.partial = ""
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            lines = (self.partial + text).split("\n")
            self.partial = lines.pop()
        for line in lines:
            self.emit("info", line)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            line, self.partial = self.partial, ""
        if line:
            self.emit("info", line)


def _child_fd_main(tasks: dict[str, Task], fd: int) -> int:
    return _child_main(Connection(fd), tasks)


def _child_main(conn: Connection, tasks: dict[str, Task]) -> int:
    # A SIGTERM or Ctrl-C for the whole process group is the worker's to handle: it lets
    # running tasks finish within the grace period, then kills them. (The fork server
    # ignores both already; a task may not.)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Fresh, line-buffered standard streams: a thread the program started before serve()
    # may have held the old ones' locks when the fork server was forked.
    sys.stdout = open(1, "w", closefd=False, buffering=1, encoding="utf-8", errors="replace")
    sys.stderr = open(2, "w", closefd=False, buffering=1, encoding="utf-8", errors="replace")
    sender = _Sender(conn)
    runs: queue.Queue = queue.Queue()
    current: dict[str, RunContext] = {}

    def read() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                runs.put(None)
                return
            if msg[0] == "run":
                runs.put(msg[1])
            elif msg[0] == "stop":
                ctx = current.get(msg[1])
                if ctx is not None:
                    ctx._stop.set()
            else:
                runs.put(None)
                return

    threading.Thread(target=read, name="errand-child-reader", daemon=True).start()
    while True:
        spec = runs.get()
        if spec is None:
            return 0
        ctx = RunContext(spec["id"], spec["task"], spec["attempt"], spec["max_attempts"],
                         spec.get("traceparent"), spec["parameters"])
        current[ctx.run_id] = ctx
        outcome = _execute(tasks, spec, ctx, sender)
        del current[ctx.run_id]
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            sender.send(("done", ctx.run_id, outcome, peak_kb))
        except OSError:
            return 1  # the worker is gone


def _execute(tasks: dict[str, Task], spec: dict[str, Any], ctx: RunContext,
             sender: _Sender) -> dict[str, Any]:
    """Runs one run; its outcome: {"ok": True, "result_json": text or None,
    "result_ref": ref or None} or {"ok": False, "message": text, "retryable": bool}, plus
    "persist_error" (what the result storage said) when the result could not be stored."""
    run_id = ctx.run_id

    def emit(level: str, message: str) -> None:
        sender.send(("log", run_id, utc_now(), level, clip(message)))

    def waiting(on: bool) -> None:
        sender.send(("waiting", run_id, on))

    ctx._log = emit
    ctx._waiting = waiting
    if spec.get("api_url") and _tasks_module._default_client is None:
        # delay() in a task submits through the worker's server, unless the program chose
        # a client of its own before serve().
        set_client(Client(spec["api_url"], spec.get("api_key")))
    task = tasks.get(spec["task"])
    if task is None:
        return {"ok": False, "retryable": False,
                "message": f"this worker has no task '{spec['task']}'"}
    saved_stdout = sys.stdout
    log_prints = task.log_prints if task.log_prints is not None else spec["log_prints"]
    if log_prints:
        sys.stdout = _LogPrints(emit)
    tokens = _enter_run(ctx)
    try:
        value = call(task, ctx.parameters)
        text = encoding.dumps(value)
    except TaskError as e:
        return {"ok": False, "retryable": e.retryable, "message": clip(e.message)}
    except BaseException as e:  # noqa: BLE001 - SystemExit and all: the run's failure
        return {"ok": False, "retryable": True,
                "message": clip(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")}
    finally:
        _leave_run(tokens)
        if log_prints:
            sys.stdout.flush()
            sys.stdout = saved_stdout
    depth = encoding.nesting(text)
    if depth > RESULT_DEPTH_MAX:
        return {"ok": False, "retryable": False,
                "message": f"the task's result nests {depth} levels deep, deeper than the "
                           f"{RESULT_DEPTH_MAX} a report may carry (docs/api.md)"}
    persist = task.persist_result if spec["persist"] is None else spec["persist"]
    if persist is None:
        persist = spec["persist_by_default"]
    fits = len(text.encode()) <= spec["inline_max"]
    ref = None
    if persist or not fits:
        try:
            ref = _store_result(spec, run_id, text)
        except (OSError, ValueError, S3Error) as e:
            # Retryable, as liberrand's worker has it: the store may answer next time.
            return {"ok": False, "retryable": True, "persist_error": str(e),
                    "message": clip(f"could not persist the result: {e}")}
    return {"ok": True, "result_json": text if fits else None, "result_ref": ref}


def _store_result(spec: dict[str, Any], run_id: str, text: str) -> str:
    """Writes the result where the worker's settings say, as liberrand's worker does
    (src/worker/result_store.c): to the S3 bucket as ``<prefix>/<run id>.json`` when
    ``spec["s3"]`` is set, else into ``spec["storage_path"]``; returns its result_ref."""
    # The id comes from the server; an object or file is named after it only if it is a
    # plain UUID.
    if not is_run_id(run_id):
        raise ValueError(f"task-run id '{run_id}' is not a UUID")
    loc: S3Location | None = spec.get("s3")
    if loc is not None:
        key = loc.result_key(run_id)
        loc.put(key, text.encode("utf-8"))
        return loc.ref(key)
    return _write_result(Path(spec["storage_path"]), run_id, text)


def _write_result(storage: Path, run_id: str, text: str) -> str:
    """Writes the result as <storage>/<run id>.json, atomically and durably (as liberrand's
    worker does), and returns its result_ref."""
    storage = storage.resolve()
    storage.mkdir(parents=True, exist_ok=True)
    final = storage / f"{run_id}.json"
    tmp = storage / f".{run_id}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(storage, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return RESULT_REF_SCHEME + str(final)
