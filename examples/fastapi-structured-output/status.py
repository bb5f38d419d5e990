# SPDX-License-Identifier: MIT
"""
status.py — what ``GET /tasks/{id}/status`` answers (the seed's ``get_task_result``), as the
C example's status.c: the id read as a UUID in errand's canonical spelling, the run's state
mapped to ``pending``, ``completed`` (with the result) or ``error`` (with the message).

| the run's state                                         | status      |
|---------------------------------------------------------|-------------|
| SCHEDULED (incl. AwaitingRetry), PENDING, RUNNING, CANCELLING | pending |
| COMPLETED (incl. Cached)                                | completed   |
| FAILED, CRASHED, CANCELLED                              | error       |
"""
from __future__ import annotations

import logging
import re
import string
from typing import Any, Literal

import errand

Status = Literal["completed", "pending", "error"]
COULD_NOT_RETRIEVE_RESULT = "<Could not retrieve result>"
FAILED_WITHOUT_MESSAGE = "Task failed without specific error message."
CANCELLED_WITHOUT_MESSAGE = "Task run was cancelled."
UUID_TEXT_LEN, UUID_HEX_DIGITS = 36, 32
_DASHES_AT = (8, 13, 18, 23)
_HEX = set(string.hexdigits)

logger = logging.getLogger("structured_output.api")


class BadRunId(ValueError):
    """Not a UUID; the message is pydantic's reason (``invalid length: ...``)."""


def canonical_run_id(text: str) -> str:
    """The id lowercase with dashes (any case, with or without dashes, is accepted)."""
    dashed = len(text) == UUID_TEXT_LEN
    if not dashed and len(text) != UUID_HEX_DIGITS:
        raise BadRunId(f"invalid length: expected length 32 for simple format, found "
                       f"{len(text)}")
    digits = []
    for i, c in enumerate(text):
        if dashed and i in _DASHES_AT:
            if c != "-":
                raise BadRunId(f"invalid group separator: expected `-`, found `{c}` at {i + 1}")
            continue
        if c not in _HEX:
            raise BadRunId(f"invalid character: expected an optional prefix of `urn:uuid:` "
                           f"followed by [0-9a-fA-F-], found `{c}` at {i + 1}")
        digits.append(c.lower())
    h = "".join(digits)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def bad_run_id_detail(text: str, reason: str) -> list[dict[str, Any]]:
    """The 422 ``detail`` FastAPI (pydantic 2) gives a path parameter that is not a UUID."""
    return [{"type": "uuid_parsing", "loc": ["path", "task_run_id"],
             "msg": f"Input should be a valid UUID, {reason}", "input": text,
             "ctx": {"error": reason}}]


async def get_task_result(client: errand.AsyncClient, run_id: str) -> tuple[Status, Any]:
    """``(status, data)``: data is the result when completed, the message on error, None
    while pending. errand's errors (NotFound, ConnectionFailed, ...) go to the caller."""
    run = await client.get(run_id)
    state = run.state
    if state.is_completed():
        try:
            return "completed", await client.result(run)
        except errand.ErrandError as e:
            logger.warning("could not retrieve the result of a completed task run "
                           "task_run_id=%s error=%s", run_id, e)
            return "completed", COULD_NOT_RETRIEVE_RESULT
    if state.is_failed() or state.is_crashed():
        return "error", state.message or FAILED_WITHOUT_MESSAGE
    if state.is_cancelled():
        return "error", state.message or CANCELLED_WITHOUT_MESSAGE
    return "pending", None


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def valid_traceparent(header: str | None) -> str | None:
    """The header when it is a valid W3C traceparent (version 00, ids not all zeros), else
    None: W3C says an invalid one is ignored."""
    m = _TRACEPARENT.fullmatch(header or "")
    if not m or set(m.group(1)) == {"0"} or set(m.group(2)) == {"0"}:
        return None
    return header
