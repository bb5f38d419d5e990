"""
harness.py — what the conformance suite shares with the end-to-end suite: the errand server
under test and the HTTP client of its API.

There is one harness, not two copies: tests/e2e/conftest.py is loaded here as the module
`errand_e2e_harness` (pytest loads it as `conftest` only when it runs tests/e2e; both suites
run in separate pytest processes, so the two conftest.py files never meet). Its Server, Api,
Process and waiting helpers are re-exported below; its fixtures are not (the conformance
suite has its own, in conftest.py).
"""
import importlib.util
import sys
from pathlib import Path

_E2E_CONFTEST = Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"


def _load_e2e():
    name = "errand_e2e_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _E2E_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_e2e = _load_e2e()

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
