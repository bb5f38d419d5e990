# SPDX-License-Identifier: MIT
"""
ledger_task.py — the task the fault campaign (campaign.py) submits, served by
`errand worker --exec 'fault.ledger=/usr/bin/python3 -I -S ledger_task.py LEDGER WORKER'`.

An exec task learns neither its run id nor its attempt from errand: it gets the run's
parameters on stdin and the worker's own environment. So the campaign gives every submission
a key of its own, `k`, and finds each key's run in the store. Every execution appends a line
to LEDGER when it starts and another when its work is done (O_APPEND, one write(2) each, so
the lines of concurrent executions never mix):

    start <k> <worker> <pid>
    end <k> <worker> <pid>

Between the two it sleeps the parameter `s` (seconds); then it prints {"k": <k>}, so a run's
result names the submission it ran for. It never fails on its own: any failure the campaign
sees comes from the faults it injects.
"""
import json
import os
import sys
import time


def note(fd, what, key, worker):
    os.write(fd, f"{what} {key} {worker} {os.getpid()}\n".encode())


def main():
    ledger, worker = sys.argv[1], sys.argv[2]
    params = json.load(sys.stdin)
    key = params["k"]
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        note(fd, "start", key, worker)
        time.sleep(float(params.get("s", 0)))
        note(fd, "end", key, worker)
    finally:
        os.close(fd)
    print(json.dumps({"k": key}))


if __name__ == "__main__":
    main()
