# SPDX-License-Identifier: MIT
"""The worker's pool of child processes, as Celery's prefork pool: each task runs in a child
forked from the worker (the fork start method of multiprocessing, done with ``os.fork`` so
that 1,000 children cost no bookkeeping per start), one run at a time, so that

- a timeout or a cancel really stops a task: the child is killed (a ``while True: pass``
  included), and the pool forks another when it needs one;
- a CPU-bound task cannot starve the worker's heartbeats: it holds its own process's GIL,
  not the worker's;
- a crash (``os._exit``, a segfault in an extension module) ends that one run: the worker
  sees the child's socket close and reports the run FAILED with how the process died;
- a child is recycled after ``max_tasks_per_child`` runs or once its peak memory passes
  ``max_memory_per_child`` MB.

The parent side (:class:`Child`) is owned by the worker's dispatcher thread alone. The child
talks to it over a socket pair with :class:`multiprocessing.connection.Connection` (pickled
tuples):

    parent -> child   ("run", spec)       run this (spec: see Child.start)
                      ("stop", run_id)    the runtime asks the run to stop (should_stop())
                      ("exit",)           end the process (recycling)
    child -> parent   ("log", run_id, timestamp, level, message)
                      ("done", run_id, outcome, peak_rss_kb)
"""
from __future__ import annotations

import ctypes
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
from .s3 import S3Error, S3Location, is_run_id
from .tasks import Task, call

MESSAGE_MAX = 65536  # failure and log messages (docs/api.md, "Worker protocol")
RESULT_DEPTH_MAX = 61  # a report body nests 64 levels; its result sits 3 down
PR_SET_PDEATHSIG = 1
RESULT_REF_SCHEME = "local://"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """At most ``limit`` characters, keeping the end (a traceback's last line says most)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


class Child:
    """The parent's handle on one child process."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self.conn = conn
        self.runs_done = 0
        self.run: Any = None  # the worker's run record while it runs one
        self.killed = False

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
        """SIGKILL; the dispatcher reads the socket's end and reaps the process."""
        if not self.killed:
            self.killed = True
            if self.pid <= 0:  # never kill(0) or kill(-1): the group, or every process
                raise ValueError(f"refusing to signal pid {self.pid}")
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def retire(self) -> None:
        """Asks an idle child to exit (recycling); the caller closes and reaps it."""
        try:
            self.conn.send(("exit",))
        except OSError:
            pass


def fork_child(tasks: dict[str, Task], close_fds: list[int]) -> Child:
    """Forks a child serving ``tasks``; ``close_fds`` are the parent's descriptors the child
    must not keep (the other children's sockets, the dispatcher's selector and wake pipe), so
    that a child never holds another's socket open past its death."""
    parent_sock, child_sock = socket.socketpair()
    parent_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            parent_sock.close()
            for fd in close_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            code = _child_main(Connection(child_sock.detach()), tasks, parent_pid)
        except BaseException:  # noqa: BLE001 - the process ends here whatever happened
            traceback.print_exc()
        finally:
            os._exit(code)
    child_sock.close()
    return Child(pid, Connection(parent_sock.detach()))


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


def _die_with_parent(parent_pid: int) -> None:
    """The kernel kills this child when the worker dies (kill -9 included), so no task
    outlives its worker."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)  # the worker died before the line above


def _child_main(conn: Connection, tasks: dict[str, Task], parent_pid: int) -> int:
    # A SIGTERM or Ctrl-C for the whole process group is the worker's to handle: it lets
    # running tasks finish within the grace period, then kills them.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    # Fresh standard streams: another thread of the worker may have held the old ones'
    # locks at the moment of the fork.
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

    ctx._log = emit
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
