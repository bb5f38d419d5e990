# SPDX-License-Identifier: MIT
"""
conftest.py — fixtures for the FastAPI example's end-to-end tests (tests/example's, with the
Python worker and the FastAPI app in place of the C binaries):

  fake_session / fake   the chat-completions stand-in (tests/example/fake_openai.py)
  stack                 errand server + Python worker + FastAPI app, shared by the session
                        (every test puts its own token in the payload: runs and cache keys
                        never collide)
  token                 a fresh unique string for the test
"""
import uuid

import pytest

from fastapi_stack import FakeOpenAI, FastAPIStack


@pytest.fixture(scope="session")
def fake_session(tmp_path_factory):
    f = FakeOpenAI(tmp_path_factory.mktemp("fake-openai"))
    yield f
    f.stop()


@pytest.fixture
def fake(fake_session):
    fake_session.reset()
    yield fake_session
    fake_session.reset()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, fake_session):
    s = FastAPIStack(tmp_path_factory.mktemp("stack"), fake=fake_session)
    try:
        s.start()
    except BaseException:
        s.stop()
        raise
    yield s
    fake_session.reset()
    s.stop()


@pytest.fixture
def token():
    return "tok-" + uuid.uuid4().hex[:16]
