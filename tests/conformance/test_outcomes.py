# SPDX-License-Identifier: MIT
"""Outcomes: what a task returns, fails with or logs reaches the server — a result as the
run's result, a failure retried as the run's policy says, a result the server would refuse
as a failure of that run alone, and every outcome even when more pile up than one report
request may carry (docs/api.md, "Worker protocol")."""
import signal
import time

from harness import FINAL_STATES, parse_ts, wait_until
from runtime import TASK_DEEP, TASK_ECHO, TASK_FAIL, TASK_LOG, TASK_SLEEP

PARAMS = {"text": "hello, wörld ✓", "n": 3, "x": 2.5, "nested": {"list": [1, None, True, "s"]}}
LOG_LINES = ["first line", "second line: ünïcode ✓", "third line"]


def test_an_outcome_and_its_log_lines_are_delivered(server, worker_factory):
    worker = worker_factory(server, concurrency=2)
    echo = server.api.submit(TASK_ECHO, PARAMS, retries=0)
    logged = server.api.submit(TASK_LOG, {"lines": LOG_LINES}, retries=0)
    done = server.api.wait_final(echo["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == PARAMS
    assert done["attempt"] == 1 and done["redeliveries"] == 0, done
    assert done["worker"] == worker.name
    types = [s["type"] for s in server.api.states(echo["id"])]
    assert types in (["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"],
                     ["SCHEDULED", "PENDING", "COMPLETED"]), types

    done = server.api.wait_final(logged["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == {"logged": len(LOG_LINES)}, done
    messages = [entry["message"] for entry in server.api.logs(logged["id"])["logs"]]
    assert messages == LOG_LINES, "each line once, in order, with its text intact"


RETRIES = 2


def test_a_failure_is_retried_per_policy_then_fails_with_its_message(server, worker_factory):
    """Retries are the server's; the runtime's part is to report the failure with its message
    and whether it may be retried. A task that says a retry cannot help fails at once."""
    worker_factory(server, concurrency=2)
    flaky = server.api.submit(TASK_FAIL, {"message": "failed on purpose"}, retries=RETRIES)
    final = server.api.submit(TASK_FAIL, {"message": "cannot be helped", "retryable": False},
                              retries=RETRIES)
    done = server.api.wait_final(flaky["id"])
    assert done["state"]["type"] == "FAILED", done
    assert done["attempt"] == RETRIES + 1, done
    assert f"failed on purpose (attempt {RETRIES + 1})" in done["state"]["message"], done["state"]
    states = server.api.states(flaky["id"])
    assert [s["type"] for s in states].count("PENDING") == RETRIES + 1, states
    waits = [s for s in states if s["name"] == "AwaitingRetry"]
    assert [s["type"] for s in waits] == ["SCHEDULED"] * RETRIES, states
    for attempt, s in enumerate(waits, start=1):
        assert f"failed on purpose (attempt {attempt})" in s["message"], s

    done = server.api.wait_final(final["id"])
    assert done["state"]["type"] == "FAILED", done
    assert done["attempt"] == 1, "not retried: the task said a retry cannot help"
    assert "cannot be helped (attempt 1)" in done["state"]["message"], done["state"]


GOOD_RUNS = 18
DEEPEST_ACCEPTED = 61  # a report body may nest 64 levels; its result sits 3 down
TOO_DEEP = 100


def test_a_result_the_server_would_refuse_fails_alone_and_says_why(server, worker_factory):
    """One run whose result nests deeper than a report may carry, finishing with good ones
    (one of them as deep as the server accepts): the good ones complete, the bad one ends
    FAILED with the reason and is not retried, as the task would give the same result again.
    A runtime that sends the result anyway has its whole report batch refused."""
    worker_factory(server, concurrency=GOOD_RUNS + 2)
    runs = server.api.batch(
        [{"task": TASK_ECHO, "parameters": {"i": i}} for i in range(GOOD_RUNS)]
        + [{"task": TASK_DEEP, "parameters": {"depth": DEEPEST_ACCEPTED}},
           {"task": TASK_DEEP, "parameters": {"depth": TOO_DEEP}, "retries": 3}])
    finals = server.api.wait_all_final([r["id"] for r in runs])
    done = [finals[r["id"]] for r in runs]
    states = [d["state"]["type"] for d in done]
    assert states[:GOOD_RUNS + 1] == ["COMPLETED"] * (GOOD_RUNS + 1), states
    assert [d["result"] for d in done[:GOOD_RUNS]] == [{"i": i} for i in range(GOOD_RUNS)]
    assert [d["redeliveries"] for d in done] == [0] * len(done), "no outcome was lost"
    deepest = done[GOOD_RUNS]["result"]
    for _ in range(DEEPEST_ACCEPTED):
        assert isinstance(deepest, list) and len(deepest) == 1, done[GOOD_RUNS]
        deepest = deepest[0]
    assert deepest == 0
    bad = done[GOOD_RUNS + 1]
    assert bad["state"]["type"] == "FAILED", bad
    assert "deeper than" in bad["state"]["message"], bad
    assert bad["attempt"] == 1, "not retried: the task would give the same result again"


# More than one report request may carry (1,000 reports): one worker runs them all at once,
# long enough that they are all started before the first ends (on a loaded 2-core machine the
# last of 1,500 started up to ~7 s after the first: 5 s let hundreds end before the stop).
RUNS = 1500
SLEEP_SECONDS = 12.0
CARRIED_MAX = 1000


def test_more_outcomes_than_one_request_carries_all_reach_the_server(server, worker_factory):
    """The server is stopped (SIGSTOP, a server too busy to answer) while the runs finish, so
    their outcomes queue up in the worker past what one report request may carry; a runtime
    that sends them in one request has it refused whole and loses them all."""
    runs = server.api.batch([{"task": TASK_SLEEP, "parameters": {"seconds": SLEEP_SECONDS},
                              "retries": 0} for _ in range(RUNS)])
    ids = [r["id"] for r in runs]
    worker_factory(server, concurrency=RUNS)
    # One run per poll, not every waiting one: a short poll keeps the moment all have
    # started close to the moment the first ends (SLEEP_SECONDS after the first started).
    wait_until(lambda: not server.api.list(task=TASK_SLEEP, state="SCHEDULED,PENDING",
                                           limit=1)["runs"],
               120, f"all {RUNS} runs started")
    server.proc.signal(signal.SIGSTOP)
    try:
        time.sleep(SLEEP_SECONDS + 1)  # the runs finish while the server cannot answer
    finally:
        server.proc.signal(signal.SIGCONT)
    resumed = time.time()

    def all_final():
        return all(r["state"]["type"] in FINAL_STATES
                   for r in server.api.list_all(task=TASK_SLEEP))

    wait_until(all_final, 120, f"all {RUNS} runs final")
    runs = server.api.list_all(task=TASK_SLEEP)
    finals = [r["state"]["type"] for r in runs]
    assert len(finals) == len(ids)
    assert finals.count("COMPLETED") == RUNS, {s: finals.count(s) for s in set(finals)}
    # ... the first time: not by running again after an outcome was lost and its lease ran out.
    redelivered = [r for r in runs if r["redeliveries"] != 0]
    assert not redelivered, f"{len(redelivered)} runs lost their outcome and ran again"
    # The case under test happened: more outcomes than one request carries waited for the
    # server (they reached it after it resumed).
    late = sum(1 for r in runs if parse_ts(r["finished"]) >= resumed - 0.5)
    assert late > CARRIED_MAX, f"only {late} outcomes were held back while the server was stopped"
