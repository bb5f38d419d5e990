#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/prefill.py — fills a running errand server with a population of stored runs, so that
`errand bench` can be measured against a store that is not empty (standard library only).

    bench/prefill.py --delayed 300000                 # runs of errand.noop delayed by a day
    bench/prefill.py --unserved 1000000               # queued runs of a task nobody serves
    bench/prefill.py --queued 1000000                 # a backlog of errand.noop (bench/drain.sh)
    bench/prefill.py --final 800000 --cache-hits 100000
    bench/prefill.py --failed 1000000                 # FAILED runs, in a few failure groups
    bench/prefill.py --delayed 3000000 --keys random  # each run keyed as clients before 0.3
    errand bench --runs 20000                         # then measure as usual

The runs go in through POST /api/task_runs/batch, --batch per request. Delayed runs are of
the bench's own task (errand.noop by default), so every claim the bench makes meets them.
Final runs are made without a worker: prefill completes one run of a task itself (through the
worker protocol), then submits runs with its cache key, which the server stores directly as
COMPLETED ("Cached"); --final spreads them over keys of 1,000 runs each, --cache-hits puts
them all on one key. Failed runs are claimed by a worker named "prefill" and reported FAILED
with one of a few messages (numbers vary), so they form a few failure groups.

Every run carries an idempotency key as liberrand and the Python client give each submission
they may retry: --keys time (the default: "errand-retry-", milliseconds, random hex, as they
make them now), random (random hex, as they did up to 0.2.x) or none.
"""
import argparse
import json
import secrets
import sys
import time
import urllib.request

DAY_SECONDS = 86400


def call(url, key, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def cache_source(url, key, cache_key):
    """One COMPLETED run of task prefill.final with cache_key, completed through the worker
    protocol, so that later submissions with the key are cache hits."""
    task = "prefill.final"
    call(url, key, "/task_runs", {"task": task, "cache_key": cache_key})
    claimed = call(url, key, "/workers/claim",
                   {"worker": "prefill", "tasks": [task], "limit": 1, "wait_seconds": 5})["runs"]
    if not claimed:
        sys.exit("prefill: the cache source was not claimable (is another worker serving "
                 "prefill.final?)")
    c = claimed[0]
    call(url, key, "/workers/report", {"worker": "prefill", "reports": [
        {"id": c["id"], "lease_token": c["lease_token"], "state": "COMPLETED",
         "result": {"prefilled": True}}]})


def fill_final(url, key, n, batch, per_key, what):
    if n <= 0:
        return
    started = time.monotonic()
    done = 0
    while done < n:
        cache_key = f"prefill-{time.time_ns()}"
        cache_source(url, key, cache_key)
        in_key = min(per_key, n - done)
        sent = 0
        while sent < in_key:
            k = min(batch, in_key - sent)
            post_batch(url, key, [{"task": "prefill.final", "cache_key": cache_key}] * k)
            sent += k
        done += in_key
    took = time.monotonic() - started
    print(f"prefill: {n} {what} in {took:.1f} s ({n / took if took else 0:.0f} runs/s)")


FAILURE_MESSAGES = ["timeout after {n} ms", "connection refused by 10.0.{m}.{n}",
                    "KeyError: 'field_{n}'", "upstream answered 50{m}"]


def fill_failed(url, key, n, batch):
    """n runs of prefill.failing, claimed by worker "prefill" and reported FAILED."""
    if n <= 0:
        return
    task, started, done = "prefill.failing", time.monotonic(), 0
    while done < n:
        k = min(batch, 1000, n - done)  # a claim hands out at most 1,000 runs
        post_batch(url, key, [{"task": task, "retries": 0}] * k)
        claimed = call(url, key, "/workers/claim", {"worker": "prefill", "tasks": [task],
                                                     "limit": k, "wait_seconds": 5})["runs"]
        if not claimed:
            sys.exit("prefill: the failing runs were not claimable (is a worker serving "
                     "prefill.failing?)")
        call(url, key, "/workers/report", {"worker": "prefill", "reports": [
            {"id": c["id"], "lease_token": c["lease_token"], "state": "FAILED",
             "message": FAILURE_MESSAGES[(done + i) % len(FAILURE_MESSAGES)].format(
                 n=done + i, m=i % 10)}
            for i, c in enumerate(claimed)]})
        done += len(claimed)
    took = time.monotonic() - started
    print(f"prefill: {n} failed runs in {took:.1f} s ({n / took if took else 0:.0f} runs/s)")


KEYS = "time"  # --keys


def keyed(run):
    """run with an idempotency key as a client that may retry it would give it."""
    if KEYS == "time":
        run["idempotency_key"] = (f"errand-retry-{time.time_ns() // 1_000_000:012x}"
                                  f"{secrets.token_hex(10)}")
    elif KEYS == "random":
        run["idempotency_key"] = f"errand-retry-{secrets.token_hex(16)}"
    return run


def post_batch(url, key, runs):
    runs = [keyed(dict(r)) for r in runs]
    req = urllib.request.Request(url + "/task_runs/batch", data=json.dumps({"runs": runs}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=120) as resp:
        if resp.status not in (200, 201):
            sys.exit(f"prefill: the server answered {resp.status}")


def fill(url, key, n, batch, make, what):
    if n <= 0:
        return
    started = time.monotonic()
    done = 0
    while done < n:
        k = min(batch, n - done)
        post_batch(url, key, [make() for _ in range(k)])
        done += k
    took = time.monotonic() - started
    print(f"prefill: {n} {what} in {took:.1f} s ({n / took if took else 0:.0f} runs/s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api-url", default="http://127.0.0.1:4200/api")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--task", default="errand.noop", help="task of the delayed runs")
    ap.add_argument("--delayed", type=int, default=0, help="runs of --task delayed by a day")
    ap.add_argument("--queued", type=int, default=0, help="runs of --task due now (a backlog)")
    ap.add_argument("--unserved", type=int, default=0, help="queued runs of a task nobody serves")
    ap.add_argument("--final", type=int, default=0,
                    help="final (COMPLETED, cached) runs, 1,000 per cache key")
    ap.add_argument("--cache-hits", type=int, default=0, help="cache hits on one single key")
    ap.add_argument("--failed", type=int, default=0,
                    help="FAILED runs of prefill.failing (worker \"prefill\")")
    ap.add_argument("--batch", type=int, default=1000, help="runs per request (at most 10000)")
    ap.add_argument("--keys", choices=("time", "random", "none"), default="time",
                    help="idempotency keys as clients make them: time-ordered (default), "
                    "random (clients up to 0.2.x) or none")
    a = ap.parse_args()
    global KEYS
    KEYS = a.keys
    fill(a.api_url, a.api_key, a.delayed, a.batch,
         lambda: {"task": a.task, "delay_seconds": DAY_SECONDS}, f"delayed runs of {a.task}")
    fill(a.api_url, a.api_key, a.queued, a.batch, lambda: {"task": a.task},
         f"queued runs of {a.task}")
    fill(a.api_url, a.api_key, a.unserved, a.batch,
         lambda: {"task": "bench.unserved"}, "queued runs of bench.unserved")
    fill_final(a.api_url, a.api_key, a.final, a.batch, 1000, "final runs (cache hits, 1,000 a key)")
    fill_final(a.api_url, a.api_key, a.cache_hits, a.batch, max(a.cache_hits, 1),
               "cache hits on one key")
    fill_failed(a.api_url, a.api_key, a.failed, a.batch)


if __name__ == "__main__":
    main()
