# SPDX-License-Identifier: MIT
"""Process isolation from the CLI: `errand worker --isolate` runs each C task run (the builtin
ones here) in a process of its own, and a cancel still reaches it through the heartbeat path
within a few seconds (the lease, the fallback, is 30 s). The crashes it contains — segfault,
abort, memory and CPU limits, timeouts — are tested with C tasks in
tests/unit/test_worker_isolation.c. An exec task's command gets stdin, stdout and stderr,
and none of the worker's own descriptors."""
import os
import signal
import time

from conftest import PYTHON, exec_spec, parse_ts, run_cli, write_script

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


def children_of(pid):
    """The pids of a process's children (every thread's)."""
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            kids += [int(p) for p in f.read().split()]
    return kids


def test_a_worker_whose_fork_server_died_hands_the_run_back_and_stops(server, worker_factory):
    """Isolated task processes are forked by the worker's fork server; if it dies (killed,
    out of memory) no isolated task can start: the run goes back to the queue (no retry
    used), and the worker stops with an error naming the cause, for its supervisor to
    restart it."""
    w = worker_factory(server, args=["--isolate"])
    done = server.api.wait_final(server.api.submit("errand.noop", {})["id"])
    assert done["state"]["type"] == "COMPLETED", done
    kids = children_of(w.proc.pid)
    assert len(kids) == 1, kids  # the fork server (no task runs now)
    assert kids[0] > 0
    os.kill(kids[0], signal.SIGKILL)
    run = server.api.submit("errand.noop", {"after": "the fork server died"})
    assert w.proc.wait(60) not in (0, None), w.proc.tail()
    assert "fork server has died" in w.proc.stderr_text(), w.proc.tail()
    back = server.api.get(run["id"])
    assert back["state"]["type"] == "SCHEDULED", back
    # Another worker takes it: it never failed, and no retry was spent on it.
    worker_factory(server, args=["--isolate"])
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert "FAILED" not in [s["type"] for s in server.api.states(run["id"])]


# Lists the descriptors the exec task holds beyond stdin, stdout and stderr.
FDS = """
import json, os
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[name] = os.readlink(f"/proc/self/fd/{name}")
    except OSError:
        continue  # the directory listdir had open, closed since
print(json.dumps({k: v for k, v in fds.items() if int(k) > 2}))
"""


def test_an_exec_task_holds_none_of_the_workers_descriptors(server, worker_factory, tmp_path):
    """A command inherits stdin, stdout and stderr only: not the worker's connections to the
    server, which would outlive a killed worker (the server would go on answering its parked
    claim) and be the command's to write to."""
    script = write_script(tmp_path / "fds.py", FDS)
    worker_factory(server, execs=[exec_spec("iso.fds", PYTHON, script)], builtin=False,
                   args=["--concurrency", "4"])
    runs = [server.api.submit("iso.fds", {}) for _ in range(4)]
    for r in runs:
        done = server.api.wait_final(r["id"])
        assert done["state"]["type"] == "COMPLETED", done["state"]
        assert done["result"] == {}, f"the command held the worker's: {done['result']}"
