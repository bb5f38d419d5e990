"""A finished run's outcome reaches the server, however many a worker has to send at once.

The worker batches its state reports; a batch must stay within what the server accepts in one
request (core/wire_limits.h), or the server refuses the whole body and every outcome in it is
lost. Here one worker starts more runs at once than one report may carry, so its RUNNING
outcomes queue up past that limit: the server is stopped (SIGSTOP) while the runs finish, as
a server too busy to answer would be.
"""
import signal
import time

from conftest import parse_ts, wait_until

# More than one report request may carry (WIRE_REPORTS_MAX, 1,000): one worker runs them all
# at once, long enough that they are all started before the first ends.
RUNS = 1500
SLEEP_SECONDS = 5.0
CARRIED_MAX = 1000


def test_more_outcomes_than_one_request_carries_all_reach_the_server(server_factory,
                                                                     worker_factory):
    server = server_factory()
    runs = server.api.batch([{"task": "errand.sleep", "parameters": {"seconds": SLEEP_SECONDS},
                              "retries": 0} for _ in range(RUNS)])
    ids = [r["id"] for r in runs]
    worker_factory(server, args=["--concurrency", str(RUNS)])
    wait_until(lambda: not server.api.list_all(task="errand.sleep", state="SCHEDULED,PENDING"),
               120, f"all {RUNS} runs started")
    server.proc.signal(signal.SIGSTOP)
    try:
        time.sleep(SLEEP_SECONDS + 1)  # the runs finish while the server cannot answer
    finally:
        server.proc.signal(signal.SIGCONT)
    resumed = time.time()

    def all_final():
        return all(
            r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
            for r in server.api.list_all(task="errand.sleep"))

    wait_until(all_final, 120, f"all {RUNS} runs final")
    runs = server.api.list_all(task="errand.sleep")
    finals = [r["state"]["type"] for r in runs]
    assert len(finals) == len(ids)
    assert finals.count("COMPLETED") == RUNS, {s: finals.count(s) for s in set(finals)}
    # The case under test happened: more outcomes than one request carries waited for the
    # server (they reached it after it resumed).
    late = sum(1 for r in runs if parse_ts(r["finished"]) >= resumed - 0.5)
    assert late > CARRIED_MAX, f"only {late} outcomes were held back while the server was stopped"
