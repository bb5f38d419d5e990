# SPDX-License-Identifier: MIT
"""
form.py — a submission's fields, read and checked (the seed's ``get_form_data`` and
``StructuredOutputRequest``), as the C example's form.c and task_request.c:

- the body is ``application/x-www-form-urlencoded``, ``multipart/form-data`` (a file part
  counts as text) or a JSON object; anything else has no fields;
- ``payload`` is required: in a form, text that is JSON is that JSON value and any other text
  becomes ``{"data": "<text>"}``; in a JSON body, any value but null;
- ``target_type`` is required: a type expression or a JSON Schema (schema.py), carried in the
  run's parameters as ``target`` in its canonical form;
- ``instructions`` is optional (blank is none).

Problems answer 422 in FastAPI's (pydantic 2's) shape, one entry per problem, so a client of
the seed's app reads them unchanged, whatever pydantic Debian ships; nothing is submitted.
The body is read up to ``MAX_BODY_BYTES`` (413 beyond).
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from schema import TargetError, parse_target

MAX_BODY_BYTES = 1024 * 1024
MSG_MISSING = "Field required"
MSG_STRING = "Input should be a valid string"
MSG_UNICODE = "Input should be a valid string, unable to parse raw data as a unicode string"
FIELDS = ("payload", "target_type", "instructions")


class Unprocessable(Exception):
    """422 with ``detail``, a list of FastAPI-shaped errors."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("unprocessable submission")
        self.detail = detail


@dataclass(frozen=True)
class StructuredOutputRequest:
    """A checked submission: the run's parameters."""

    payload: Any
    target: Any
    instructions: str | None


def _error(field: str | None, kind: str, msg: str, value: Any = None) -> dict[str, Any]:
    loc = ["body", field] if field else ["body"]
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


async def _read_body(request: Request) -> bytes:
    size = int(request.headers.get("content-length") or 0)
    chunks, seen = [], 0
    if size <= MAX_BODY_BYTES:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > MAX_BODY_BYTES:
                break
            chunks.append(chunk)
    if size > MAX_BODY_BYTES or seen > MAX_BODY_BYTES:
        raise HTTPException(413, f"Request body too large: the limit is {MAX_BODY_BYTES} bytes")
    return b"".join(chunks)


def _urlencoded(body: bytes) -> dict[str, str | None]:
    """The fields (a repeated one: the last); a value that is not UTF-8 reads as None."""
    out: dict[str, str | None] = {}
    text = body.decode("latin-1")
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True,
                                              encoding="utf-8", errors="surrogateescape"):
        out[name] = _utf8(value.encode("utf-8", "surrogateescape"))
    return out


def _multipart(content_type: str, body: bytes) -> dict[str, str | None]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart() or msg.defects:
        raise HTTPException(400, "There was an error parsing the body")
    out: dict[str, str | None] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            out[name] = _utf8(part.get_payload(decode=True) or b"")
    return out


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _blank(text: Any) -> bool:
    return text is None or (isinstance(text, str) and not text.strip())


def _add_target(errors: list[dict[str, Any]], target: Any) -> Any:
    try:
        return parse_target(target)[1]
    except TargetError as e:
        errors.append(_error("target_type", "value_error", f"Value error, {e}", target))
        return None


def _from_fields(fields: dict[str, str | None]) -> tuple[dict[str, Any], list]:
    errors: list[dict[str, Any]] = []
    bad = [n for n in FIELDS if n in fields and fields[n] is None]
    if bad:
        return {}, [_error(n, "string_unicode", MSG_UNICODE) for n in bad]
    params: dict[str, Any] = {}
    payload, target, instructions = (fields.get(n) for n in FIELDS)
    if _blank(payload):
        errors.append(_error("payload", "missing", MSG_MISSING))
    else:
        try:
            params["payload"] = json.loads(payload)  # type: ignore[arg-type]
        except ValueError:
            params["payload"] = {"data": payload}
    if _blank(target):
        errors.append(_error("target_type", "missing", MSG_MISSING))
    else:
        params["target"] = _add_target(errors, target)
    params["instructions"] = None if _blank(instructions) else instructions
    return params, errors


def _from_json(body: bytes) -> tuple[dict[str, Any], list]:
    errors: list[dict[str, Any]] = []
    if not body.strip():
        doc: Any = {}
    else:
        try:
            doc = json.loads(body)
        except ValueError as e:
            pos = getattr(e, "pos", 0)
            return {}, [{"type": "json_invalid", "loc": ["body", pos],
                         "msg": "JSON decode error", "input": {},
                         "ctx": {"error": getattr(e, "msg", str(e))}}]
    if not isinstance(doc, dict):
        return {}, [_error(None, "dict_type", "Input should be a valid dictionary", doc)]
    params: dict[str, Any] = {}
    payload, target, instructions = (doc.get(n) for n in FIELDS)
    if payload is None:
        errors.append(_error("payload", "missing", MSG_MISSING))
    else:
        params["payload"] = payload
    if target is None:
        errors.append(_error("target_type", "missing", MSG_MISSING))
    elif not isinstance(target, (str, dict)):
        errors.append(_error("target_type", "string_type", MSG_STRING, target))
    else:
        params["target"] = _add_target(errors, target)
    if instructions is not None and not isinstance(instructions, str):
        errors.append(_error("instructions", "string_type", MSG_STRING, instructions))
    else:
        params["instructions"] = None if _blank(instructions) else instructions
    return params, errors


async def get_form_data(request: Request) -> StructuredOutputRequest:
    """The FastAPI dependency of ``POST /tasks``: the checked submission, or 413/400/422."""
    body = await _read_body(request)
    content_type = request.headers.get("content-type") or ""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        params, errors = _from_json(body)
    elif kind == "application/x-www-form-urlencoded":
        params, errors = _from_fields(_urlencoded(body))
    elif kind == "multipart/form-data":
        params, errors = _from_fields(_multipart(content_type, body))
    else:
        params, errors = {}, [_error("payload", "missing", MSG_MISSING),
                              _error("target_type", "missing", MSG_MISSING)]
    if errors:
        raise Unprocessable(errors)
    return StructuredOutputRequest(params["payload"], params["target"], params["instructions"])
