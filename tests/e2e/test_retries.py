# SPDX-License-Identifier: MIT
"""Retries: the server keeps a failed run in SCHEDULED/AwaitingRetry for the retry delay, a
worker runs it again, and a run that keeps failing ends FAILED with the last message."""
from conftest import PYTHON, exec_spec, parse_ts, unique_task, write_script

# Fails (exit 1) until it has been called `succeed_on` times for the counter file named in
# its parameters, then returns how many calls it took.
FLAKY = """
import json, os, sys
p = json.load(sys.stdin)
path = p["counter"]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
n = len(os.read(fd, 1 << 20)) + 1
os.write(fd, b".")
os.close(fd)
if n < p["succeed_on"]:
    print(f"attempt {n} failed on purpose", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"calls": n}))
"""


def flaky_worker(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "flaky.py", FLAKY)
    task = unique_task("flaky")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False)
    return task


def test_retries_then_success(server, worker_factory, tmp_path):
    task = flaky_worker(server, worker_factory, tmp_path)
    counter = tmp_path / "c1"
    run = server.api.submit(task, {"counter": str(counter), "succeed_on": 3}, retries=3)
    assert run["max_attempts"] == 4
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == {"calls": 3}
    assert done["attempt"] == 3
    assert counter.read_text() == "..."
    states = server.api.states(run["id"])
    names = [s["name"] for s in states]
    assert names.count("AwaitingRetry") == 2, names
    for s in states:
        if s["name"] == "AwaitingRetry":
            assert s["type"] == "SCHEDULED"
            assert "failed on purpose" in s["message"], s


def test_retry_delay_is_kept_by_the_server(server, worker_factory, tmp_path):
    task = flaky_worker(server, worker_factory, tmp_path)
    counter = tmp_path / "c3"
    delay = 2.0
    run = server.api.submit(task, {"counter": str(counter), "succeed_on": 2}, retries=1,
                            retry_delay_seconds=[delay])
    waiting = server.api.wait_state(run["id"], lambda r: r["state"]["name"] == "AwaitingRetry"
                                    or r["state"]["type"] in ("COMPLETED", "FAILED"),
                                    what="AwaitingRetry")
    assert waiting["state"]["name"] == "AwaitingRetry", waiting
    assert waiting["state"]["type"] == "SCHEDULED"
    failed_at = parse_ts(waiting["state"]["timestamp"])
    due = parse_ts(waiting["scheduled_at"])
    assert due - failed_at >= delay - 0.01, f"scheduled_at {waiting['scheduled_at']} is not " \
        f"{delay}s after the failure at {waiting['state']['timestamp']}"

    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    states = server.api.states(run["id"])
    retry_idx = max(i for i, s in enumerate(states) if s["name"] == "AwaitingRetry")
    next_claim = next(s for s in states[retry_idx:] if s["type"] == "PENDING")
    assert parse_ts(next_claim["timestamp"]) >= due - 0.01, \
        f"claimed again at {next_claim['timestamp']}, before the retry was due ({waiting['scheduled_at']})"


def test_retry_delay_list_last_value_repeats(server, worker_factory, tmp_path):
    task = flaky_worker(server, worker_factory, tmp_path)
    counter = tmp_path / "c4"
    run = server.api.submit(task, {"counter": str(counter), "succeed_on": 4}, retries=3,
                            retry_delay_seconds=[0, 0.5])
    assert run["retry_delay_seconds"] == [0, 0.5]
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    states = server.api.states(run["id"])
    gaps = []
    for i, s in enumerate(states):
        if s["name"] == "AwaitingRetry":
            nxt = next(t for t in states[i:] if t["type"] == "PENDING")
            gaps.append(parse_ts(nxt["timestamp"]) - parse_ts(s["timestamp"]))
    assert len(gaps) == 3, states
    assert gaps[1] >= 0.49 and gaps[2] >= 0.49, gaps


def test_retry_delay_as_a_single_number(server):
    run = server.api.submit("nobody.serves.this", {}, retries=2, retry_delay_seconds=1.5)
    assert run["retries"] == 2
    assert run["retry_delay_seconds"] in (1.5, [1.5]), run["retry_delay_seconds"]
