# SPDX-License-Identifier: MIT
"""The no-op task of bench/peers for Celery and RQ: it returns its argument, and the result is
stored by each system's own result store (Celery's Redis result backend, RQ's job hash).

Celery reads its broker and backend from PEERS_REDIS_URL (database 0 the queue, 1 the
results): `python3 -m celery -A peer_tasks worker`. RQ imports `peer_tasks.noop` by name.
"""
import os

from celery import Celery

REDIS = os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379")

app = Celery("peer_tasks", broker=f"{REDIS}/0", backend=f"{REDIS}/1")
app.conf.update(worker_hijack_root_logger=False, worker_redirect_stdouts=False)


@app.task(name="noop")
def celery_noop(x):
    return x


def noop(x):
    return x
