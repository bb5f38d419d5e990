# SPDX-License-Identifier: MIT
"""
harness.py — what the conformance suite shares with the end-to-end suite: the errand server
under test and the HTTP client of its API.

There is one harness, not two copies: tests/e2e/errand_procs.py (processes, the API client,
waiting helpers; no pytest in it) is imported from here, and its Server, Api, Process and
helpers are re-exported below; the fixtures are each suite's own (conftest.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import errand_procs as _e2e  # noqa: E402

REPO = _e2e.REPO
BUILD = _e2e.BUILD
FINAL_TIMEOUT = _e2e.FINAL_TIMEOUT
START_TIMEOUT = _e2e.START_TIMEOUT
STOP_TIMEOUT = _e2e.STOP_TIMEOUT
FINAL_STATES = _e2e.FINAL_STATES
Api = _e2e.Api
Process = _e2e.Process
Server = _e2e.Server
child_env = _e2e.child_env
parse_logfmt = _e2e.parse_logfmt
parse_ts = _e2e.parse_ts
wait_until = _e2e.wait_until
teardown_each = _e2e.teardown_each
