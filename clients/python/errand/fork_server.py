# SPDX-License-Identifier: MIT
"""The process that starts the worker's task processes: the Python twin of liberrand's
``src/worker/fork_server.c``.

A task runs in a copy of the worker's memory (its imported tasks, the encoder hook, what the
program set up), so its process must be a fork, not an exec. But a fork of a threaded process
copies every lock another thread held at that instant — an ``io`` buffer's, ``logging``'s,
the import lock, one inside ssl or urllib — and the child waits for ever on the first one it
takes (Python 3.12 warns about exactly this). So :func:`ForkServer.start` forks this server
once, at the start of ``errand.serve`` while the worker still has one thread, and every task
process is forked from it: a process whose only thread waits on a socket holds no lock when it
forks. A task process therefore sees the program as it was when ``serve`` started.

The worker and the server share a ``SOCK_SEQPACKET`` socket pair. A request is one message,
``b"spawn"``, carrying two descriptors (``SCM_RIGHTS``): the task process's end of its
connection to the worker, and one end of a second socket pair made for that process alone, on
which its *keeper* sends two messages: the task process's pid, then its wait status. For each
request the server forks the keeper, which forks the task process, reports its pid, waits for
it (``os.waitpid``) and reports how it ended. A keeper that dies first leaves EOF there: the
status is unknown (and the task process is dead too, see below).

The server ignores SIGINT and SIGTERM (a Ctrl-C to the terminal's process group is the
worker's to handle), lets the kernel reap its keepers (SIGCHLD ignored) and ends when the
worker closes its end of the socket. Each of the three levels dies by SIGKILL with its parent
(``PR_SET_PDEATHSIG``, and a check that the parent is still the one it was forked from), so a
worker killed with ``kill -9`` takes the server, the keepers and the task processes with it.

The server's descriptors are the worker's at ``serve``'s start less ``close_fds``; it holds a
request's two descriptors only until it has forked that keeper, so a task process holds its
own connection and what the program had open before ``serve``, never another task's socket.

Owned by one thread of the worker (the dispatcher): :class:`ForkServer` has no lock.
"""
from __future__ import annotations

import array
import ctypes
import os
import signal
import socket
import struct
import sys
import traceback
from typing import Callable

SPAWN_REPLY_S = 10.0  # how long a spawn waits for the keeper to report the task's pid
PR_SET_PDEATHSIG = 1
REQUEST = b"spawn"
REQUEST_FDS = 2  # the task's connection, the status socket
_INT = struct.Struct("i")  # a pid or a wait status, as the keeper sends them

# What a task process runs: given its end of the connection to the worker (a descriptor it
# owns), it returns the process's exit status.
TaskMain = Callable[[int], int]

_prctl = None  # libc's prctl, looked up before the server forks


class ForkServerError(OSError):
    """A task process could not be started: the server is gone, or could not fork."""


class ForkServer:
    """The worker's handle on its fork server."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    @classmethod
    def start(cls, task_main: TaskMain, close_fds: list[int]) -> ForkServer:
        """Forks the server. Call it while the process has one thread (before ``serve``
        starts its threads). ``task_main`` is what each task process runs; ``close_fds`` are
        the worker's descriptors the server and the task processes must not hold."""
        global _prctl
        if _prctl is None:
            try:
                _prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                _prctl = False
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = os.getpid()
        for stream in (sys.stdout, sys.stderr):  # else both processes would write it out
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        # A Ctrl-C or SIGTERM in the instant between the fork and the server ignoring them
        # would end the server: they wait (pending) until it ignores them.
        stops = {signal.SIGINT, signal.SIGTERM}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            mine.close()
            theirs.close()
            raise
        if pid == 0:  # the server: never returns
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                mine.close()
                for fd in close_fds:
                    _close(fd)
                code = _serve(theirs, worker, task_main)
            except BaseException:  # noqa: BLE001 - the process ends here whatever happened
                traceback.print_exc()
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        theirs.close()
        return cls(pid, mine)

    def spawn(self, conn_fd: int) -> tuple[int, socket.socket]:
        """Starts a task process with ``conn_fd`` (its end of the connection to the worker;
        the caller keeps and closes its own copy) and returns its pid and the status socket
        (the caller's to close): :func:`read_status` reads how the process ended."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            try:
                socket.send_fds(self.sock, [REQUEST], [conn_fd, theirs.fileno()])
            except OSError as e:
                raise ForkServerError("cannot reach the worker's fork server to start a task "
                                      f"process: {e.strerror or e}") from e
            finally:
                theirs.close()
            mine.settimeout(SPAWN_REPLY_S)
            try:
                data = mine.recv(_INT.size)
            except OSError:
                data = b""
            if len(data) != _INT.size:
                raise ForkServerError("the worker's fork server could not start a task "
                                      f"process within {SPAWN_REPLY_S:g}s (out of processes "
                                      "or memory?)")
            pid = _INT.unpack(data)[0]
            if pid <= 0:  # never hand out a pid that kill() would read as a group or all
                raise ForkServerError(f"the fork server reported pid {pid}")
        except BaseException:
            mine.close()
            raise
        return pid, mine

    def alive(self) -> bool:
        """False once the server process has ended (it is reaped then)."""
        try:
            return os.waitpid(self.pid, os.WNOHANG)[0] == 0
        except ChildProcessError:
            return False

    def stop(self) -> None:
        """Closes the socket, which ends the server, and reaps it."""
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def read_status(sock: socket.socket, timeout: float) -> tuple[bool, int | None]:
    """Waits up to ``timeout`` seconds (0: not at all) for how a task process ended:
    ``(True, wait status)`` once it ended, ``(True, None)`` when its keeper died without
    saying (the process is gone too), ``(False, None)`` while it runs on."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(_INT.size)
    except (BlockingIOError, TimeoutError):
        return False, None
    except OSError:
        return True, None
    if len(data) != _INT.size:
        return True, None
    return True, _INT.unpack(data)[0]


# ---- the server's side ---------------------------------------------------------------------

def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _die_with_parent(parent: int) -> None:
    """The kernel kills this process when its parent dies (kill -9 included); it ends at once
    if the parent died before that was in place."""
    if _prctl:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _receive(sock: socket.socket) -> tuple[int, list[int]]:
    """1 with a request's descriptors, 0 at EOF, -1 for a message that is not a request of
    ours (dropped, its descriptors closed: its caller sees EOF). The descriptors arrive
    close-on-exec, as the worker's own were."""
    fds = array.array("i")
    msg, anc, flags, _ = sock.recvmsg(len(REQUEST), socket.CMSG_SPACE(REQUEST_FDS * fds.itemsize),
                                      socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    if not msg and not fds:
        return 0, []
    if msg != REQUEST or len(fds) != REQUEST_FDS or flags & (socket.MSG_CTRUNC |
                                                            socket.MSG_TRUNC):
        for fd in fds:
            _close(fd)
        return -1, []
    return 1, list(fds)


def _serve(sock: socket.socket, worker: int, task_main: TaskMain) -> int:
    _die_with_parent(worker)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    server = os.getpid()
    while True:
        try:
            got, fds = _receive(sock)
        except OSError:
            return 1
        if got == 0:
            return 0  # the worker closed its end: serve() is over
        if got < 0:
            continue
        try:
            keeper = os.fork()
        except OSError:
            keeper = -1  # closing the descriptors below leaves the caller EOF
        if keeper == 0:
            sock.close()
            _keep(fds[0], fds[1], server, task_main)
        for fd in fds:
            os.close(fd)


def _keep(conn_fd: int, status_fd: int, server: int, task_main: TaskMain) -> None:
    """The keeper of one task process (see the top of the file); never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its child is its own to wait for
        _die_with_parent(server)
        status = socket.socket(fileno=status_fd)
        keeper = os.getpid()
        task = os.fork()
        if task == 0:
            status.close()
            _task(conn_fd, keeper, task_main)
        os.close(conn_fd)
        try:
            status.send(_INT.pack(task))
        except OSError:  # the worker gave up on this spawn
            os.kill(task, signal.SIGKILL)  # fork() returned it: > 0
            raise
        _, wait_status = os.waitpid(task, 0)
        try:
            status.send(_INT.pack(wait_status))
        except OSError:
            pass  # the worker stopped waiting: nobody to tell
        code = 0
    except BaseException:  # noqa: BLE001 - EOF on the status socket says it
        pass
    finally:
        os._exit(code)


def _task(conn_fd: int, keeper: int, task_main: TaskMain) -> None:
    """A task process; never returns."""
    code = 1
    try:
        _die_with_parent(keeper)
        code = task_main(conn_fd)
    except BaseException:  # noqa: BLE001 - the process ends here whatever happened
        traceback.print_exc()
    finally:
        os._exit(code)
