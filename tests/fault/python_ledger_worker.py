# SPDX-License-Identifier: MIT
"""
python_ledger_worker.py — the fault campaign's task (ledger_task.py) served by the Python
runtime, `errand.serve` (clients/python), for `campaign.py --runtime python|mixed`:

  python3 python_ledger_worker.py TASK LEDGER NAME CONCURRENCY GRACE_SECONDS

(ERRAND_API_URL and ERRAND_LEASE_SECONDS from the environment). The task writes the same
ledger lines as the exec task does — `start <k> <worker> <pid>` when an execution starts,
`end <k> <worker> <pid>` once its work is done, one write(2) each — sleeps the parameter `s`
between them and returns {"k": <k>}. It never fails on its own. Serves until SIGTERM; exits 0
after a clean stop.
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import errand  # noqa: E402

TASK, LEDGER, NAME = sys.argv[1], sys.argv[2], sys.argv[3]


def note(what, key):
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {key} {NAME} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


@errand.task(name=TASK)
def ledger(k, s=0, **_):
    note("start", k)
    time.sleep(float(s))
    note("end", k)
    return {"k": k}


if __name__ == "__main__":
    errand.serve(ledger, name=NAME, limit=int(sys.argv[4]), grace_seconds=float(sys.argv[5]))
