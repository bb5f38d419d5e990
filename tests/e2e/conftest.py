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

The store: each server's home holds its SQLite file, unless ERRAND_TEST_STORE=postgresql
(`make e2e-postgres`). Then the session starts one PostgreSQL cluster (pg_cluster.py) and
every server home gets a schema of its own in its database `errand` (the same home, the same
schema: a restarted server finds its data); a test that sets ERRAND_DATABASE_URL keeps it.

  @pytest.mark.sqlite_only("why")    a test about SQLite itself (its file, sqlite:// URLs):
                                     skipped, saying why, under ERRAND_TEST_STORE=postgresql.
  @pytest.mark.postgres_only("why")  a test of what only PostgreSQL gives (servers sharing
                                     a schema): skipped, saying why, in the default mode.
  pg_cluster                         the session's PgCluster (None in the default mode).
  STORE_MODE                         "sqlite" or "postgresql".
"""
import pytest

import errand_procs
from errand_procs import (  # noqa: F401 (the tests import these from conftest)
    BUILD, PYTHON, SANITIZED, Api, Server, exec_spec, parse_ts, run_cli, start_worker, teardown_each,
    unique_task, wait_until, write_script)
from pg_cluster import PgCluster, store_mode

try:
    STORE_MODE, _STORE_ERROR = store_mode(), None
except ValueError as e:
    STORE_MODE, _STORE_ERROR = None, str(e)


def pytest_configure(config):
    if _STORE_ERROR:
        raise pytest.UsageError(_STORE_ERROR)
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about the SQLite "
                            "store itself; skipped under ERRAND_TEST_STORE=postgresql")
    config.addinivalue_line("markers", "postgres_only(reason): the test needs the PostgreSQL "
                            "store; skipped unless ERRAND_TEST_STORE=postgresql")


def pytest_report_header(config):
    return f"errand store: {STORE_MODE} (ERRAND_TEST_STORE)"


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in ("sqlite_only", "postgres_only"):
            marker = item.get_closest_marker(name)
            if marker is None:
                continue
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
            if not reason:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name} needs a reason")
            if name == "sqlite_only" and STORE_MODE == "postgresql":
                item.add_marker(pytest.mark.skip(reason=f"SQLite store only: {reason}"))
            elif name == "postgres_only" and STORE_MODE != "postgresql":
                item.add_marker(pytest.mark.skip(
                    reason=f"needs ERRAND_TEST_STORE=postgresql: {reason}"))


@pytest.fixture(scope="session", autouse=True)
def pg_cluster():
    """Under ERRAND_TEST_STORE=postgresql, the session's PostgreSQL cluster, which every
    Server uses (errand_procs.STORE); None otherwise."""
    if STORE_MODE != "postgresql":
        yield None
        return
    cluster = PgCluster().start()
    errand_procs.STORE = cluster
    try:
        yield cluster
    finally:
        errand_procs.STORE = None
        cluster.stop()


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
