# SPDX-License-Identifier: MIT
"""
conftest.py — fixtures of the worker-protocol conformance suite: a real errand server, and
workers of the runtime under test started through its adapter (runtime.py).

  server_factory(env=...)  starts `errand server start --port 0` on a fresh ERRAND_HOME
                           (the e2e suite's Server, harness.py); stopped at teardown, and
                           it must exit 0 without a sanitizer report.
  server                   one server with default settings.
  worker_factory(server, api_url=None, concurrency=1, prefetch=0, lease_seconds=None,
                 grace_seconds=None)
                           starts one worker of the runtime under test (named by
                           ERRAND_CONFORMANCE_RUNTIME, default the C runtime) with those
                           options and returns its adapter once it serves. At teardown a
                           worker still running is stopped with SIGTERM and must exit 0;
                           every worker's check() must pass.
  link_proxy(server, ...)  a WorkerLinkProxy (link_proxy.py) in front of the server, closed
                           at teardown.
"""
import uuid

import pytest

from harness import STOP_TIMEOUT, Server, teardown_each
from link_proxy import WorkerLinkProxy
from runtime import RUNTIME_ENV, WorkerOptions, load_runtime

RUNTIME = load_runtime()


def pytest_report_header(config):
    return (f"worker runtime under test: {RUNTIME.label} "
            f"({RUNTIME.__module__}:{RUNTIME.__name__}; set {RUNTIME_ENV} for another)")


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(env=None):
        s = Server(tmp_path / f"home{len(servers) + 1}", tmp_path, env=env)
        servers.append(s)
        return s.start()

    yield make
    errors = teardown_each(servers, lambda s: s.stop())
    if errors:
        pytest.fail("server teardown: " + "\n".join(errors))


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture
def worker_factory(tmp_path):
    workers = []

    def make(server, api_url=None, concurrency=1, prefetch=0, lease_seconds=None,
             grace_seconds=None):
        n = len(workers) + 1
        options = WorkerOptions(
            api_url=api_url or server.url, api_key=server.key,
            name=f"conformance-{n}-{uuid.uuid4().hex[:8]}", home=server.home,
            log_path=tmp_path / f"worker-{n}.log", concurrency=concurrency, prefetch=prefetch,
            lease_seconds=lease_seconds, grace_seconds=grace_seconds)
        worker = RUNTIME(options)
        workers.append(worker)
        worker.start()
        return worker

    yield make
    errors = []
    for w in workers:
        try:
            if w.running():
                rc = w.stop(STOP_TIMEOUT)
                assert rc == 0, f"worker {w.name} exited with {rc}:\n{w.output()}"
            w.check()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("worker teardown: " + "\n".join(errors))


@pytest.fixture
def link_proxy():
    proxies = []

    def make(server, **kw):
        p = WorkerLinkProxy(server.port, **kw)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()
