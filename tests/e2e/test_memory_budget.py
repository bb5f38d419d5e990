# SPDX-License-Identifier: MIT
"""The memory budget: request work in flight (bodies, parsed batches, answers) is bounded by
ERRAND_MAX_INFLIGHT_BYTES. Past it the server answers 503 `overloaded` with Retry-After at
once, stores nothing of the refused request, and serves it when retried; after a burst of
large batches its memory goes back to where it was, and after a steady load of small
requests once the load has passed.
"""
import threading
import time

import requests

from conftest import SANITIZED, STORE_MODE, run_cli, unique_task, wait_until

BUDGET = 1024 * 1024  # the smallest allowed: one large batch is over it on its own
BATCH = 5000  # runs of about 40 bytes: a 200 KB body, estimated at 64 bytes of work per byte
BURST_THREADS = 4
BURST_BATCHES = 3
BURST_RUNS = 10000
RSS_SLACK_KB = 16 * 1024
RSS_SETTLE_S = 10


def batch_body(task, n):
    return {"runs": [{"task": task, "parameters": {"i": i}} for i in range(n)]}


def held_wait(server, run_id, seconds):
    """A long-poll held open for `seconds` on another thread: one request in flight."""
    t = threading.Thread(target=server.api.request, daemon=True,
                         args=("GET", f"/task_runs/{run_id}/wait"),
                         kwargs={"params": {"timeout_seconds": seconds}, "timeout": seconds + 30})
    t.start()
    return t


def test_a_batch_past_the_budget_is_refused_with_retry_after_and_served_later(server_factory):
    server = server_factory(env={"ERRAND_MAX_INFLIGHT_BYTES": str(BUDGET)})
    task = unique_task("budget")
    anchor = server.api.submit(task, {})
    waiting = held_wait(server, anchor["id"], 3)
    time.sleep(0.5)  # the wait is in flight

    r = server.api.request("POST", "/task_runs/batch", json_body=batch_body(task, BATCH))
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After") == "1"
    error = r.json()["error"]
    assert error["code"] == "overloaded", error
    assert "ERRAND_MAX_INFLIGHT_BYTES" in error["message"]
    # A chunked body is refused too, once it grows past the budget.
    chunks = (b'{"runs": [' + b",".join(b'{"task": "%s"}' % task.encode()
                                      for _ in range(BATCH)) + b"]}",)
    r = requests.post(f"{server.url}/task_runs/batch", data=iter(chunks), timeout=60,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 503, r.text
    assert len(server.api.list_all(task=task)) == 1, "nothing of a refused batch is stored"

    waiting.join()
    # Alone, the same batch goes through, although it is larger than the whole budget.
    runs = server.api.batch(batch_body(task, BATCH)["runs"])
    assert len(runs) == BATCH
    assert len(server.api.list_all(task=task)) == BATCH + 1
    # Small requests still fit beside a held one.
    waiting = held_wait(server, anchor["id"], 2)
    time.sleep(0.5)
    assert server.api.submit(task, {"small": True})["state"]["type"] == "SCHEDULED"
    waiting.join()


def rss_kb(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


# ASan's allocator keeps freed memory in quarantine, so the RSS bound is checked against the
# production allocator (glibc) only (SANITIZED); under ASan the test still checks that the
# server gave memory back after the burst.


def test_memory_goes_back_after_a_burst_of_large_batches(server_factory):
    server = server_factory(env={"ERRAND_LOGGING_LEVEL": "debug"})
    task = unique_task("burst")
    server.api.batch(batch_body(task, 100)["runs"])  # warm up the store and the allocator
    base = rss_kb(server.proc.pid)
    errors = []

    def burst():
        try:
            for _ in range(BURST_BATCHES):
                r = server.api.request("POST", "/task_runs/batch",
                                       json_body=batch_body(task, BURST_RUNS), timeout=120)
                if r.status_code not in (201, 503):
                    errors.append(r.text[:200])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=burst) for _ in range(BURST_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    peak = rss_kb(server.proc.pid)
    wait_until(lambda: "memory given back after a burst" in server.stderr_text(), RSS_SETTLE_S,
               "the server giving memory back after the burst")
    if not SANITIZED:
        wait_until(lambda: rss_kb(server.proc.pid) <= base + RSS_SLACK_KB, RSS_SETTLE_S,
                   f"RSS back within {RSS_SLACK_KB} KiB of {base} KiB (peak {peak} KiB, now "
                   f"{rss_kb(server.proc.pid)} KiB)")


# The memory budget's target: the server's peak RSS under errand bench (batches of 500, a
# worker of 128 threads) is at most 64 MiB. Most of the peak is the allocator's free memory,
# kept per arena: the server caps glibc at four arenas (52-55 MiB measured; 70-80 MiB with
# glibc's 16 on two cores). Checked on both stores (a PostgreSQL server peaks at 39 MiB: it
# holds no page cache); under ASan, whose allocator keeps freed memory in quarantine, the
# bench only has to complete.
BENCH_PEAK_KB = 64 * 1024


def test_peak_memory_under_the_bench_stays_within_64_mib(server_factory):
    server = server_factory()
    cp = run_cli(server, "bench", "--runs", 20000, "--json", timeout=300)
    assert cp.returncode == 0, cp.stderr
    peak = rss_kb(server.proc.pid, "VmHWM:")
    if not SANITIZED:
        assert peak <= BENCH_PEAK_KB, (
            f"peak RSS {peak} KiB under errand bench, over {BENCH_PEAK_KB} KiB")


# A load of small requests: batches of 50 runs, and a worker of 16 threads whose claims and
# reports carry at most 16 runs, so the work reserved at once stays far under a burst's 8 MiB
# even when a slow store keeps many requests in flight (with the bench's 128 threads, a report
# of 128 outcomes is estimated at over 1 MiB). Far more than the 200 requests that make a load,
# whatever their rate: the server gives its memory back once they have been quiet for 5 s.
LOAD_RUNS = 10000
LOAD_BATCH = 50
LOAD_WORKERS = 16
QUIET_SETTLE_S = 20


def test_memory_goes_back_after_a_load_of_small_requests(server_factory):
    server = server_factory(env={"ERRAND_LOGGING_LEVEL": "debug"})
    server.api.batch(batch_body(unique_task("warm"), 100)["runs"])
    base = rss_kb(server.proc.pid)
    cp = run_cli(server, "bench", "--runs", LOAD_RUNS, "--batch", LOAD_BATCH,
                 "--workers", LOAD_WORKERS, "--latency-runs", 0, "--json", timeout=300)
    assert cp.returncode == 0, cp.stderr
    wait_until(lambda: "memory given back after a load" in server.stderr_text(),
               QUIET_SETTLE_S, "the server giving memory back after the load")
    # The load made no burst: what gave the memory back is the quiet spell after it.
    assert "memory given back after a burst" not in server.stderr_text()
    # On SQLite most of what the load added is page caches and the allocator's free memory;
    # on PostgreSQL the server holds no page cache and keeps its connections' buffers.
    if not SANITIZED and STORE_MODE == "sqlite":
        peak, now = rss_kb(server.proc.pid, "VmHWM:"), rss_kb(server.proc.pid)
        assert now - base <= (peak - base) * 0.6, (
            f"RSS {now} KiB: not much below the load's peak of {peak} KiB (base {base} KiB)")
