# SPDX-License-Identifier: MIT
"""The encoder hook: how task parameters and results that are not plain JSON become JSON.

Parameters (``fn.delay(...)``) and results (what a served task returns) travel as JSON. The
default encoder turns, in this order:

- a future of another run (what ``fn.delay()`` returned) into ``{"$result": "<its id>"}``: the
  server makes the new run wait for that run and hands it that run's result (docs/api.md,
  "Dependencies"); in eager mode, into the result itself;
- a dataclass instance into a dict of its fields (``dataclasses.asdict``);
- an object with a ``model_dump()`` method (pydantic v2 models) into what it returns
  (``model_dump(mode="json")`` when it takes that argument);
- an object with a ``dict()`` method (pydantic v1 models) into what it returns;
- ``datetime``/``date``/``time`` into ISO 8601 text, ``UUID`` and ``Decimal`` into text, a
  ``set``/``frozenset``/``tuple`` into a list, ``Enum`` members into their value;

and refuses anything else with ``TypeError`` naming the type. Install your own with
:func:`set_encoder` (it gets the object the default could not encode and returns something
JSON can hold, or raises ``TypeError``), e.g.::

    def encode(obj):
        if isinstance(obj, Money):
            return {"amount": str(obj.amount), "currency": obj.currency}
        return errand.encoding.default_encoder(obj)   # the default for the rest

    errand.set_encoder(encode)

The hook is per process: a worker's child processes inherit it (they are forked from the
process that called ``errand.serve``), so set it at import time of the module defining the
tasks.
"""
from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

Encoder = Callable[[Any], Any]


def default_encoder(obj: Any) -> Any:
    """The default hook (see the module's docstring); raises TypeError for other types."""
    reference = getattr(obj, "__errand_reference__", None)
    if callable(reference):  # a TaskFuture: the run's result, filled in by the server
        return reference()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            if "mode" in inspect.signature(dump).parameters:
                return dump(mode="json")
        except (TypeError, ValueError):
            pass
        return dump()
    as_dict = getattr(obj, "dict", None)
    if callable(as_dict) and not isinstance(obj, dict):
        return as_dict()
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, (uuid.UUID, Decimal)):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    raise TypeError(f"cannot encode a {type(obj).__module__}.{type(obj).__qualname__} as "
                    f"JSON: give it a model_dump() or dict() method, make it a dataclass, or "
                    f"install an encoder with errand.set_encoder()")


_encoder: Encoder = default_encoder


def set_encoder(encoder: Encoder | None) -> None:
    """Installs the encoder hook for this process (None: back to :func:`default_encoder`)."""
    global _encoder
    _encoder = encoder or default_encoder


def get_encoder() -> Encoder:
    """The encoder hook in use."""
    return _encoder


def dumps(value: Any) -> str:
    """``value`` as compact JSON text, through the encoder hook."""
    return json.dumps(value, default=_encoder, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, text, numbers), through the encoder hook."""
    return json.loads(dumps(value))


def nesting(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text`` (0 for a scalar)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
