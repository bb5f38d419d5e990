# SPDX-License-Identifier: MIT
"""
conftest.py — fixtures for the structured-output example's end-to-end tests.

  fake_session / fake   the fake chat-completions server (fake_openai.py); `fake` also
                        forgets earlier scripts and releases held requests before the test.
  stack                 one errand server + one task worker + the web API, shared by the
                        session (runs never collide: every test puts its own token in the
                        payload, which also keeps cache keys apart).
  make_stack            builds a private Stack (more workers, other settings); stopped,
                        and checked for a clean exit, after the test.
  token                 a fresh unique string for the test.
"""
import uuid

import pytest

from stack import FakeOpenAI, Stack


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
def stack(tmp_path_factory, fake_session):
    s = Stack(tmp_path_factory.mktemp("stack"), fake=fake_session)
    try:
        s.start()
    except BaseException:
        s.stop()
        raise
    yield s
    fake_session.reset()
    s.stop()


@pytest.fixture
def make_stack(tmp_path, fake_session):
    made = []

    def make(fake=fake_session):
        s = Stack(tmp_path / f"stack{len(made)}", fake=fake)
        made.append(s)
        return s
    yield make
    fake_session.reset()
    for s in made:
        s.stop()


@pytest.fixture
def token():
    return "tok-" + uuid.uuid4().hex[:16]
