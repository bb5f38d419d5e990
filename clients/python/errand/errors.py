# SPDX-License-Identifier: MIT
"""Errors of the errand client: one class per error code of the HTTP API (docs/api.md,
"Errors"), all under :class:`ErrandError`, so callers catch what they can handle."""
from __future__ import annotations


class ErrandError(Exception):
    """An error from the errand server or from reaching it.

    Attributes:
        code: the API's error code (``"not_found"``, ``"invalid_field"``, ...), or
            ``"connection_failed"`` when no server answered.
        message: what went wrong, in words (the server's message when it sent one).
        field: the request field at fault (``"runs[3].task"``), or None.
        status: the HTTP status, or 0 when there was no answer.
    """

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.field = field
        self.status = status

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"HTTP {self.status} " if self.status else ""
        return f"{status}{self.code}: {self.message}{where}"


class ConnectionFailed(ErrandError):
    """No server of ERRAND_API_URL answered (refused, unreachable, or no answer in time)."""
    code = "connection_failed"


class BadRequest(ErrandError):
    """400: the request was refused as it was written; ``field`` names what to fix."""
    code = "bad_request"


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidField(BadRequest):
    code = "invalid_field"


class MissingField(BadRequest):
    code = "missing_field"


class UnknownField(BadRequest):
    code = "unknown_field"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


class Unauthorized(ErrandError):
    code = "unauthorized"


class Forbidden(ErrandError):
    code = "forbidden"


class NotFound(ErrandError):
    code = "not_found"


class MethodNotAllowed(ErrandError):
    code = "method_not_allowed"


class Conflict(ErrandError):
    """409: not in a state that allows it (cancel of a final run, the result of a run that
    has not completed)."""
    code = "conflict"


class BodyTooLarge(ErrandError):
    code = "body_too_large"


class StoreError(ErrandError):
    code = "store_error"


class Unavailable(ErrandError):
    """503: the server is stopping or overloaded; nothing was done, a retry is safe."""
    code = "unavailable"


class Overloaded(Unavailable):
    code = "overloaded"


class InsufficientStorage(ErrandError):
    code = "insufficient_storage"


class RunFailed(ErrandError):
    """The run ended FAILED, CRASHED or CANCELLED, so it has no result: ``run`` is the run."""
    code = "run_failed"

    def __init__(self, run, message: str) -> None:
        super().__init__(message)
        self.run = run


class TaskError(Exception):
    """Raised by a task to fail its run with exactly ``message`` (no traceback), and to say
    whether a retry could help (``retryable=False`` ends the run FAILED at once, whatever
    retries remain). Any other exception fails the run with its traceback, retryable."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class TaskRunFailed(RunFailed):
    """The run ended FAILED: ``message`` is the run's message (for a task served by
    :func:`errand.serve`, the exception and its Python traceback)."""
    code = "run_failed"


class TaskRunCrashed(RunFailed):
    """The run ended CRASHED: its workers were lost more often than the server allows."""
    code = "run_crashed"


class TaskRunCancelled(RunFailed):
    """The run was cancelled."""
    code = "run_cancelled"


def run_failure(run) -> RunFailed:
    """The typed error for a final run that did not complete, carrying its message."""
    cls = {"CRASHED": TaskRunCrashed, "CANCELLED": TaskRunCancelled}.get(run.state.type,
                                                                        TaskRunFailed)
    return cls(run, f"run {run.id} ended {run.state.type}"
                    + (f": {run.state.message}" if run.state.message else ""))


class WaitTimeout(ErrandError):
    """The run was not final within the time given: ``run`` is its latest snapshot."""
    code = "timeout"

    def __init__(self, run, message: str) -> None:
        super().__init__(message)
        self.run = run


_BY_CODE = {cls.code: cls for cls in (
    InvalidJson, InvalidField, MissingField, UnknownField, InvalidParameter, Unauthorized,
    Forbidden, NotFound, MethodNotAllowed, Conflict, BodyTooLarge, StoreError, Unavailable,
    Overloaded, InsufficientStorage)}
_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
              405: MethodNotAllowed, 409: Conflict, 413: BodyTooLarge, 503: Unavailable,
              507: InsufficientStorage}


def from_response(status: int, body: object) -> ErrandError:
    """The error a non-2xx answer stands for: by its ``error.code``, else by its status."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = err.get("message") if isinstance(err.get("message"), str) else ""
        field = err.get("field") if isinstance(err.get("field"), str) else None
    else:
        code, message, field = None, "", None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or ErrandError
    return cls(message or f"HTTP {status}", code=code, field=field, status=status)
