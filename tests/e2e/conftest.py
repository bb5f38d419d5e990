# SPDX-License-Identifier: MIT
"""
conftest.py — fixtures for errand's end-to-end tests: real `errand` processes (server,
workers, CLI) driven over real HTTP. The processes and the HTTP client live in
errand_procs.py (the fault campaign, tests/fault/, drives them too); their names are
imported here so tests keep importing them from conftest.

  server_factory(env=..., args=...)  starts `errand server start --port 0` on a fresh
                                     ERRAND_HOME under tmp_path; the port is read from the
                                     server's `msg="listening" ... port=P` log line.
  server                             one server with default settings.
  worker_factory(server, execs=..., builtin=True, env=...)
                                     starts `errand worker [--builtin] [--exec NAME=CMD]...`.
  run_cli(server, *args)             runs the CLI against a server and returns the result.

Every process is stopped with SIGTERM at teardown and must exit 0 without a sanitizer
report on stderr (the same suite runs against the ASan+UBSan build in build-asan/).
Nothing here binds a fixed port or sleeps for a guessed time: waits poll a condition
with a deadline.

The binaries come from $ERRAND_BUILD/bin (default <repo>/build/bin).
"""
import pytest

from errand_procs import (  # noqa: F401 (the tests import these from conftest)
    BUILD, PYTHON, SANITIZED, Api, Server, exec_spec, parse_ts, run_cli, start_worker, teardown_each,
    unique_task, wait_until, write_script)


@pytest.fixture
def server_factory(tmp_path):
    servers = []
    counter = [0]

    def make(env=None, args=(), home=None, start=True):
        counter[0] += 1
        s = Server(home or tmp_path / f"home{counter[0]}", tmp_path, env=env, args=args)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = teardown_each(servers, lambda s: s.stop())
    if errors:
        pytest.fail("server teardown: " + "\n".join(errors))


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture
def worker_factory(tmp_path, server_factory):
    workers = []
    counter = [0]

    def make(server, execs=(), builtin=True, env=None, args=(), wait_ready=True):
        counter[0] += 1
        w = start_worker(server, tmp_path / f"worker-{counter[0]}.log", f"worker#{counter[0]}",
                         execs=execs, builtin=builtin, env=env, args=args)
        workers.append(w)
        if wait_ready:
            w.wait_ready()
        return w

    yield make
    errors = []
    for w in workers:
        if w.running():
            try:
                w.stop()
            except AssertionError as e:
                errors.append(str(e))
        else:
            try:
                w.proc.check_sanitizers()
            except AssertionError as e:
                errors.append(str(e))
    if errors:
        pytest.fail("worker teardown: " + "\n".join(errors))


@pytest.fixture
def cli():
    return run_cli
