# SPDX-License-Identifier: MIT
"""
conftest.py — fixtures for the structured-output example's end-to-end tests, which run
against either implementation of the app (stack.py): ERRAND_EXAMPLE_APP=c (the default:
`make example`, and `make asan`) or ERRAND_EXAMPLE_APP=fastapi (`make example-fastapi`).
Every test runs against both; where the apps answer differently on purpose, the test
asserts each app's answer from the table stack.DIFFERENCES.

  app                   the name of the app under test ("c" or "fastapi").
  fake_session / fake   the fake chat-completions server (fake_openai.py); `fake` also
                        forgets earlier scripts and releases held requests before the test.
  stack                 one errand server + one task worker + the web API, shared by the
                        session (runs never collide: every test puts its own token in the
                        payload, which also keeps cache keys apart).
  make_stack            builds a private stack of the app (more workers, other settings);
                        stopped, and checked for a clean exit, after the test.
  token                 a fresh unique string for the test.
"""
import os
import uuid

import pytest

from stack import APPS, FakeOpenAI

APP_ENV = "ERRAND_EXAMPLE_APP"
DEFAULT_APP = "c"


def selected_app():
    app = os.environ.get(APP_ENV, DEFAULT_APP)
    if app not in APPS:
        raise pytest.UsageError(f"{APP_ENV}={app!r} names no example app: use one of "
                                f"{', '.join(sorted(APPS))}")
    return app


def pytest_configure(config):
    selected_app()  # a wrong name fails at once, before any test runs


def pytest_report_header(config):
    return f"example app: {selected_app()} ({APP_ENV})"


@pytest.fixture(scope="session")
def app():
    return selected_app()


@pytest.fixture(scope="session")
def fake_session(tmp_path_factory):
    f = FakeOpenAI(tmp_path_factory.mktemp("fake-openai"))
    yield f
    f.stop()


@pytest.fixture
def fake(fake_session):
    fake_session.reset()
    yield fake_session
    fake_session.reset()  # releases anything a failed test left held


@pytest.fixture(scope="session")
def stack(tmp_path_factory, fake_session, app):
    s = APPS[app](tmp_path_factory.mktemp("stack"), fake=fake_session)
    try:
        s.start()
    except BaseException:
        s.stop()
        raise
    yield s
    fake_session.reset()
    s.stop()


@pytest.fixture
def make_stack(tmp_path, fake_session, app):
    made = []

    def make(fake=fake_session):
        s = APPS[app](tmp_path / f"stack{len(made)}", fake=fake)
        made.append(s)
        return s
    yield make
    fake_session.reset()
    for s in made:
        s.stop()


@pytest.fixture
def token():
    return "tok-" + uuid.uuid4().hex[:16]
