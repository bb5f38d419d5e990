# SPDX-License-Identifier: MIT
"""Process isolation from the CLI: `errand worker --isolate` runs each C task run (the builtin
ones here) in a process of its own, and a cancel still reaches it through the heartbeat path
within a few seconds (the lease, the fallback, is 30 s). The crashes it contains — segfault,
abort, memory and CPU limits, timeouts — are tested with C tasks in
tests/unit/test_worker_isolation.c."""
import time

from conftest import parse_ts, run_cli

LEASE_S = 30
STOPPED_WITHIN_S = 5.0


def test_isolated_worker_runs_and_cancels_builtin_tasks(server, worker_factory):
    worker_factory(server, env={"ERRAND_LEASE_SECONDS": str(LEASE_S)},
                   args=["--isolate", "--memory-limit-mb", "256", "--cpu-limit-seconds", "60"])
    done = server.api.wait_final(server.api.submit("errand.noop", {"x": 1})["id"])
    assert done["state"]["type"] == "COMPLETED", done
    run = server.api.submit("errand.sleep", {"seconds": 30})
    server.api.wait_state(run["id"], lambda r: r["state"]["type"] == "RUNNING", what="RUNNING")
    server.api.cancel(run["id"])
    done = server.api.wait_final(run["id"], timeout=25)
    assert done["state"]["type"] == "CANCELLED", done
    at = {s["type"]: parse_ts(s["timestamp"]) for s in server.api.states(run["id"])}
    assert at["CANCELLED"] - at["CANCELLING"] < STOPPED_WITHIN_S


def test_worker_refuses_bad_limits(server):
    for flag, value in (("--memory-limit-mb", "-1"), ("--cpu-limit-seconds", "nope"),
                        ("--prefetch", "100001")):
        r = run_cli(server, "worker", "--builtin", flag, value, timeout=30)
        assert r.returncode == 2, (flag, r.returncode, r.stderr)
        assert flag.lstrip("-") in r.stderr, r.stderr
