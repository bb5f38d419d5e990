# SPDX-License-Identifier: MIT
"""
python_worker.py — errand.serve (clients/python) serving the conformance tasks: the Python
runtime under test of the worker-protocol conformance suite (README.md defines each task;
conformance_worker.c is the C runtime's twin).

  python3 python_worker.py --api-url URL --name NAME [--concurrency N] [--prefetch N]
                           [--lease-seconds S] [--grace-seconds S]

Serves until SIGTERM/SIGINT, then stops as errand.serve does: exit 0 after a clean stop.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import errand  # noqa: E402


@errand.task(name="conformance.echo")
def echo(**parameters):
    return parameters


@errand.task(name="conformance.log")
def log(lines):
    for line in lines:
        errand.context().log(line, "info")
    return {"logged": len(lines)}


@errand.task(name="conformance.fail")
def fail(message="failed on purpose", retryable=True, **_):
    raise errand.TaskError(f"{message} (attempt {errand.context().attempt})",
                           retryable=retryable is not False)


@errand.task(name="conformance.sleep")
def sleep(seconds):
    # Waits on the stop event itself, not in short steps: 1,500 sleeping runs each waking every
    # 20 ms kept the interpreter so busy that the last of them started 14 s after the first.
    ctx = errand.context()
    start = time.monotonic()
    if ctx.wait_stop(seconds):
        took = time.monotonic() - start
        ctx.log(f"stopped after {took:.3f} seconds")
        raise errand.TaskError(f"stopped after {took:.3f} of {seconds:g} seconds",
                               retryable=False)
    return {"slept": seconds}


@errand.task(name="conformance.deep")
def deep(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--api-url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--prefetch", type=int, default=0)
    p.add_argument("--lease-seconds", type=int)
    p.add_argument("--grace-seconds", type=float)
    a = p.parse_args()
    errand.serve(echo, log, fail, sleep, deep, api_url=a.api_url, name=a.name,
                 limit=a.concurrency, prefetch=a.prefetch, lease_seconds=a.lease_seconds,
                 grace_seconds=a.grace_seconds)


if __name__ == "__main__":
    main()
