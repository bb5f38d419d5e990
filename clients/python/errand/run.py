# SPDX-License-Identifier: MIT
"""A task run as the server describes it (docs/api.md, "Task-run object"), and its state."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass(frozen=True)
class State:
    """A run's state: ``type`` (SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED,
    CANCELLING, CANCELLED), ``name`` ("Completed", "Cached", "AwaitingRetry", ...), when it
    was entered, and its message."""

    type: str
    name: str
    timestamp: datetime | None
    message: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        return cls(type=d.get("type", ""), name=d.get("name", ""),
                   timestamp=_time(d.get("timestamp")), message=d.get("message") or "")

    def is_scheduled(self) -> bool:
        return self.type == "SCHEDULED"

    def is_pending(self) -> bool:
        return self.type == "PENDING"

    def is_running(self) -> bool:
        return self.type == "RUNNING"

    def is_completed(self) -> bool:
        return self.type == "COMPLETED"

    def is_failed(self) -> bool:
        return self.type == "FAILED"

    def is_crashed(self) -> bool:
        return self.type == "CRASHED"

    def is_cancelling(self) -> bool:
        return self.type == "CANCELLING"

    def is_cancelled(self) -> bool:
        return self.type == "CANCELLED"

    def is_cached(self) -> bool:
        return self.type == "COMPLETED" and self.name == "Cached"

    def is_final(self) -> bool:
        """COMPLETED, FAILED, CRASHED or CANCELLED: the run will not change any more."""
        return self.type in FINAL_TYPES


@dataclass(frozen=True)
class TaskRun:
    """One snapshot of a task run. ``raw`` is the whole object the server sent; the
    attributes are its most used fields. An inline result is in ``result``
    (``has_inline_result`` tells a null result from none); a persisted one is read with
    :meth:`errand.Client.result`."""

    id: str
    task: str
    state: State
    parameters: dict[str, Any]
    attempt: int
    max_attempts: int
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    worker: str | None
    tags: tuple[str, ...]
    idempotency_key: str | None
    result_ref: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskRun:
        return cls(id=d["id"], task=d.get("task", ""), state=State.from_json(d.get("state") or {}),
                   parameters=d.get("parameters") or {}, attempt=d.get("attempt") or 0,
                   max_attempts=d.get("max_attempts") or 1, created=_time(d.get("created")),
                   started=_time(d.get("started")), finished=_time(d.get("finished")),
                   worker=d.get("worker"), tags=tuple(d.get("tags") or ()),
                   idempotency_key=d.get("idempotency_key"), result_ref=d.get("result_ref"),
                   raw=d)

    @property
    def wait_for(self) -> list[str]:
        """The upstream runs it was submitted to wait for (docs/api.md, "Dependencies")."""
        return list(self.raw.get("wait_for") or ())

    @property
    def has_inline_result(self) -> bool:
        return "result" in self.raw

    @property
    def result(self) -> Any:
        """The inline result (None when there is none: see :meth:`errand.Client.result`)."""
        return self.raw.get("result")
