# SPDX-License-Identifier: MIT
"""The worker's reporter: one thread that sends the runs' reports and log lines to the
server in batches (``POST /api/workers/report``), never losing one.

- A batch carries at most 1,000 reports and 10,000 log lines (docs/api.md, "Worker
  protocol"); what piles up while the server is slow goes in the next batches, in order.
- Each batch has a ``batch_id``; when no answer comes (connection broken, timeout, 5xx) the
  same batch is sent again under the same id until it is answered, so the server applies it
  once (its log lines stored once, its outcomes applied once).
- A batch the server refuses (400) is sent again in halves until the refused item is alone:
  a refused outcome is reported as FAILED with the server's message (not retryable), a
  refused log line or RUNNING report is dropped, and the rest are delivered.

Once a batch is answered, ``on_delivered`` gets its reports: the worker heartbeats a run's
lease until its outcome is delivered, so a server slow to take reports does not let the
lease of a finished run run out. Reports and log lines keep their order: a run's log lines
are sent with or before its outcome. The queue is guarded by ``_cond``; the thread alone
sends.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from . import errors
from .client import Client

REPORTS_MAX = 1000
LOGS_MAX = 10000
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 2.0
REPORT_TIMEOUT_S = 60.0

Item = tuple[str, dict[str, Any]]  # ("report" | "log", its JSON object)


class Reporter:
    def __init__(self, client: Client, worker: str, log: Callable[..., None],
                 on_delivered: Callable[[list[dict[str, Any]]], None]) -> None:
        self.client = client
        self.on_delivered = on_delivered
        self.worker = worker
        self.log = log
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._abandon = False
        self._thread = threading.Thread(target=self._main, name="errand-reporter",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, report: dict[str, Any]) -> None:
        """Queues a report ({"id", "lease_token", "state", ...})."""
        self._put(("report", report))

    def log_line(self, run_id: str, timestamp: str, level: str, message: str) -> None:
        self._put(("log", {"id": run_id, "timestamp": timestamp, "level": level,
                           "message": message}))

    def _put(self, item: Item) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Sends what is queued (waiting up to ``timeout`` seconds) and ends the thread;
        False when some was left unsent."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._items or self._busy) and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            left = len(self._items) + (1 if self._busy else 0)
            self._abandon = True
            self._cond.notify_all()
        self._thread.join(1.0)
        return left == 0

    def _take(self) -> list[Item] | None:
        with self._cond:
            while not self._items and not self._closing:
                self._cond.wait()
            if not self._items:
                return None
            batch: list[Item] = []
            reports = logs = 0
            while self._items:
                kind = self._items[0][0]
                if (kind == "report" and reports == REPORTS_MAX) or \
                        (kind == "log" and logs == LOGS_MAX):
                    break
                batch.append(self._items.popleft())
                reports += kind == "report"
                logs += kind == "log"
            self._busy = True
            return batch

    def _main(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, batch: list[Item]) -> None:
        body = {"worker": self.worker, "batch_id": uuid.uuid4().hex,
                "reports": [d for kind, d in batch if kind == "report"],
                "logs": [d for kind, d in batch if kind == "log"]}
        pause = RETRY_FIRST_S
        while True:
            try:
                self.client._request("POST", "/workers/report", body, accept=(409,),
                                     timeout=REPORT_TIMEOUT_S)
                self.on_delivered(body["reports"])
                return
            except errors.BadRequest as e:
                self._refused(batch, e)
                return
            except errors.ErrandError as e:
                # No answer, or one that says nothing was done (5xx, 401 while keys
                # rotate): the same batch again, same batch_id.
                with self._cond:
                    if self._abandon:
                        return
                self.log("warning", "report not delivered; sending it again",
                         error=str(e), batch_id=body["batch_id"])
                time.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)

    def _refused(self, batch: list[Item], e: errors.ErrandError) -> None:
        if len(batch) > 1:
            half = len(batch) // 2
            self._deliver(batch[:half])
            self._deliver(batch[half:])
            return
        kind, item = batch[0]
        if kind == "report" and item.get("state") in ("COMPLETED", "FAILED", "CANCELLED",
                                                      "SCHEDULED"):
            self.log("warning", "the server refused an outcome; reporting it FAILED",
                     run=item["id"], error=str(e))
            if item.get("state") == "FAILED" and "server refused" in item.get("message", ""):
                self.on_delivered([item])
                return  # refused twice: nothing more to try
            failed = {"id": item["id"], "lease_token": item["lease_token"], "state": "FAILED",
                      "retryable": False,
                      "message": f"the server refused the run's outcome: {e.message}"[:65536]}
            self._deliver([("report", failed)])
        else:
            self.log("warning", "the server refused a report item; dropped", kind=kind,
                     run=item.get("id"), error=str(e))
            if kind == "report":
                self.on_delivered([item])
