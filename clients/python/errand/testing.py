# SPDX-License-Identifier: MIT
"""Testing helpers for apps that use errand.

**A real server for a test.** :func:`errand_server` starts ``errand server start`` on a free
port with a fresh ``ERRAND_HOME`` in a temporary directory, waits until it answers, and stops
it afterwards; the binary is ``$ERRAND_BIN``, else ``errand`` on ``PATH``::

    from errand.testing import errand_server

    def test_report():
        with errand_server() as server:
            client = server.client()
            ...

With pytest, the ``errand_server`` fixture does the same for one test (enable it with
``pytest_plugins = ["errand.testing"]`` in a ``conftest.py``); it also makes ``delay()``
submit to that server (:func:`errand.set_client`).

**Eager mode for unit tests.** Inside ``with eager():`` (or the ``errand_eager`` fixture),
``fn.delay(...)`` runs the task at once in the calling process, retries included, and
returns a future already final: ``future.result()`` gives the result (through the encoder
hook, as a served run's would be) or raises :class:`errand.errors.TaskRunFailed` with the
traceback. No server is involved::

    with errand.testing.eager():
        assert add.delay(2, 3).result() == 5
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import tasks
from .client import Client

BIN_ENV = "ERRAND_BIN"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
_PORT = re.compile(r"\bport=(\d+)")


class ErrandServer:
    """A running ``errand server``: ``url`` (its API, ``http://127.0.0.1:P/api``),
    ``home`` (its ERRAND_HOME), ``port``, ``env()`` for processes that should talk to it,
    ``client()`` for a :class:`errand.Client` of it, ``output()`` for its log so far."""

    def __init__(self, proc: subprocess.Popen, home: Path, port: int,
                 lines: list[str]) -> None:
        self.proc, self.home, self.port, self._lines = proc, home, port, lines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self) -> dict[str, str]:
        """The environment variables that point a worker or a client at this server."""
        return {"ERRAND_API_URL": self.url, "ERRAND_HOME": str(self.home)}

    def client(self, **options: Any) -> Client:
        return Client(self.url, **options)

    def output(self) -> str:
        return "\n".join(self._lines)


def _binary(binary: str | None) -> str:
    found = binary or os.environ.get(BIN_ENV) or shutil.which("errand")
    if not found or not os.access(found, os.X_OK):
        raise FileNotFoundError(f"no errand binary: set {BIN_ENV} to its path, or put "
                                f"'errand' on PATH (got {found!r})")
    return found


@contextlib.contextmanager
def errand_server(env: dict[str, str] | None = None, binary: str | None = None,
                  home: str | os.PathLike | None = None) -> Iterator[ErrandServer]:
    """Runs an errand server for the duration of the block (see the module's docstring).
    ``env`` adds server settings (``{"ERRAND_LEASE_SECONDS": "5"}``); ``home`` keeps its
    data in a directory of yours instead of a temporary one."""
    tmp = None if home is not None else tempfile.TemporaryDirectory(prefix="errand-test-")
    home_path = Path(home if home is not None else tmp.name)  # type: ignore[union-attr]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("ERRAND_")}
    child_env.update({"ERRAND_HOME": str(home_path)}, **(env or {}))
    proc = subprocess.Popen([_binary(binary), "server", "start", "--host", "127.0.0.1",
                             "--port", "0"], env=child_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    port_found = threading.Event()
    port: list[int] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            m = _PORT.search(line)
            if not port and "listening" in line and m:
                port.append(int(m.group(1)))
                port_found.set()
        port_found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not port_found.wait(START_TIMEOUT_S) or not port:
            raise RuntimeError("errand server did not start:\n" + "\n".join(lines[-20:]))
        server = ErrandServer(proc, home_path, port[0], lines)
        _wait_healthy(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(5)
        if tmp is not None:
            tmp.cleanup()


def _wait_healthy(server: ErrandServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("errand server did not answer /api/health:\n"
                               + server.output())
        time.sleep(0.05)


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Within the block, ``delay()`` runs tasks inline (see the module's docstring)."""
    tasks._eager_depth += 1
    try:
        yield
    finally:
        tasks._eager_depth -= 1


try:  # the pytest fixtures, when pytest is there (it is not needed otherwise)
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(name="errand_server")
    def _errand_server_fixture() -> Iterator[ErrandServer]:
        """A real errand server for one test; ``delay()`` submits to it meanwhile."""
        with errand_server() as server:
            tasks.set_client(server.client())
            try:
                yield server
            finally:
                tasks.set_client(None)

    @pytest.fixture(name="errand_eager")
    def _errand_eager_fixture() -> Iterator[None]:
        """Eager mode for one test."""
        with eager():
            yield
