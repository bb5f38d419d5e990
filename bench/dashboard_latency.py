#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/dashboard_latency.py — how long each API call the dashboard makes takes on a running
server (after bench/prefill.py filled it), median and max of --repeat calls each, over
loopback: every filter the runs page offers, alone and combined, the first and a later page,
a filter that matches one run, the overview's figures, the failure groups, one run's page;
then a sparse combination (the cache sources among worker "prefill"'s runs, which prefill
--failed buried under a million failures) followed through next_cursor to its end: how many
requests, the slowest, the total.

    bench/dashboard_latency.py --api-url http://127.0.0.1:4200/api [--repeat 20]

It submits two runs of its own (a task and a tag no other run has) so the rare filters have
one run to find. Standard library only; by hand, not in CI (docs/performance.md)."""
import argparse
import json
import statistics
import time
import urllib.request

STATES = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLING",
          "CANCELLED"]


def get(url, key):
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
    return (time.perf_counter() - t) * 1000, body


def post(url, key, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api-url", default="http://127.0.0.1:4200/api")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    base, key = a.api_url.rstrip("/"), a.api_key
    rare = post(base + "/task_runs", key, {"task": "dashboard.rare", "tags": ["rare-tag"]})
    post(base + "/task_runs", key, {"task": "dashboard.rare2"})
    _, first = get(base + "/task_runs?limit=50", key)
    cursor = json.loads(first)["next_cursor"]
    paths = ["/stats?window=hour", "/stats?window=day", "/workers?limit=1000",
             "/task_runs?limit=50", f"/task_runs?limit=50&cursor={cursor}"]
    paths += [f"/task_runs?limit=50&state={s}" for s in STATES]
    paths += ["/task_runs?limit=50&task=errand.noop", "/task_runs?limit=50&task=dashboard.rare",
              "/task_runs?limit=50&tag=rare-tag",
              "/task_runs?limit=50&task=errand.noop&state=COMPLETED",
              "/task_runs?limit=50&task=dashboard.rare&state=SCHEDULED",
              "/task_runs?limit=50&task=dashboard.rare&state=FAILED",
              "/task_runs?limit=50&tag=rare-tag&state=SCHEDULED",
              "/task_runs?limit=50&tag=rare-tag&state=FAILED",
              "/task_runs?limit=50&task=prefill.failing&state=FAILED",
              "/task_runs?limit=50&task=bench.unserved&state=SCHEDULED",
              "/task_runs?limit=50&worker=prefill",
              "/task_runs?limit=50&worker=prefill&state=FAILED",
              "/task_runs?limit=50&worker=prefill&state=COMPLETED",
              "/task_runs?limit=50&worker=nobody",
              "/failures?limit=100", "/failures?task=prefill.failing",
              f"/task_runs/{rare['id']}", f"/task_runs/{rare['id']}/states",
              f"/task_runs/{rare['id']}/logs"]
    root = base[: -len("/api")] if base.endswith("/api") else base
    for p in ["/metrics"] + paths:
        url = root + p if p == "/metrics" else base + p
        times = [get(url, key)[0] for _ in range(a.repeat)]
        print(f"{statistics.median(times):8.2f} ms median {max(times):8.2f} ms max  GET "
              f"{'' if p == '/metrics' else '/api'}{p}",
              flush=True)
    follow = "/task_runs?limit=50&worker=prefill&state=COMPLETED"
    cursor, calls, found, times = None, 0, 0, []
    while True:
        ms, body = get(base + follow + (f"&cursor={cursor}" if cursor else ""), key)
        page = json.loads(body)
        calls, found = calls + 1, found + len(page["runs"])
        times.append(ms)
        cursor = page["next_cursor"]
        if not cursor:
            break
    print(f"followed GET /api{follow} to its end: {calls} requests, {found} runs, "
          f"{max(times):.2f} ms the slowest, {sum(times):.0f} ms in all", flush=True)


if __name__ == "__main__":
    main()
