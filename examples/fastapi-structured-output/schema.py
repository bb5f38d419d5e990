# SPDX-License-Identifier: MIT
"""
schema.py — target types and JSON Schemas, as the C example's target_type.c and schema.c:

- ``parse_target(value)`` reads a ``target_type`` (``str``, ``int``, ``float``, ``bool``,
  ``list[T]``, ``dict[str, T]``, nested freely, or a JSON Schema as text starting with ``{``
  or as an object) into ``(schema, canonical)``; ``canonical`` is what the run's parameters
  carry, so ``List[str]`` and ``list[str]`` share a cache key. ``TargetError`` says why not.
- ``check(value, schema)`` checks the model's answer against the schema and reads it as its
  type (an integer for ``float`` becomes ``3.0``, ``3.0`` for ``int`` becomes ``3``).
- ``for_request(schema)`` wraps a non-object schema as ``{"value": S}`` (OpenAI wants an
  object at the root); ``is_strict(schema)`` says whether OpenAI's strict mode accepts it.

Pure functions of JSON values: the web API validates with them, the task uses them to ask
and to check. Recursion is bounded by ``MAX_DEPTH`` (a ``$ref`` cycle ends in an error).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
TARGET_MAX_DEPTH = 32
NAME_MAX_LEN = 64
CANONICAL_MAX = 512
WRAP_MEMBER = "value"
MAX_EXACT_INTEGER = 2.0 ** 53  # a real beyond this is not read as an integer
SUPPORTED_TYPES = "str, int, float, bool, list[T], dict[str, T], or a JSON Schema object"
JSON_TYPES = ("string", "integer", "number", "boolean", "null", "array", "object")
_PREFIXES = ("builtins.", "typing.", "collections.abc.")
_SCALARS = {"str": ("string", "str"), "string": ("string", "str"),
            "int": ("integer", "int"), "integer": ("integer", "int"),
            "float": ("number", "float"), "number": ("number", "float"),
            "bool": ("boolean", "bool"), "boolean": ("boolean", "bool")}
_LISTS = ("list", "List", "Sequence")
_DICTS = ("dict", "Dict", "Mapping")
_NAME = re.compile(r"[A-Za-z0-9_.]*")


class TargetError(ValueError):
    """A target_type the task cannot use; the message says why and what is supported."""


class SchemaError(ValueError):
    """A value that does not match its schema: ``at PATH: what``."""


# ---- target types ----------------------------------------------------------------------------

class _Parser:
    """type := name [ '[' type { ',' type } ']' ]; name := identifier { '.' identifier }."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.canon = text, 0, []

    def fail(self, what: str) -> TargetError:
        return TargetError(f"unsupported target_type '{self.text}': {what}; use "
                           f"{SUPPORTED_TYPES}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def emit(self, s: str) -> None:
        self.canon.append(s)
        if sum(map(len, self.canon)) >= CANONICAL_MAX:
            raise self.fail("too long")

    def name(self) -> str:
        self.skip_space()
        name = _NAME.match(self.text, self.pos).group(0)  # type: ignore[union-attr]
        if len(name) + 1 >= NAME_MAX_LEN:
            raise self.fail("a type name is too long")
        if not name:
            raise self.fail("expected a type name" if self.peek()
                            else "expected a type name at the end")
        self.pos += len(name)
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                return name[len(prefix):]
        return name

    def type(self, depth: int) -> dict[str, Any]:
        if depth > TARGET_MAX_DEPTH:
            raise self.fail("nested too deeply")
        name = self.name()
        if name in _SCALARS:
            json_type, canon = _SCALARS[name]
            self.emit(canon)
            return {"type": json_type}
        is_list, is_dict = name in _LISTS, name in _DICTS
        if not is_list and not is_dict:
            raise self.fail(f"unknown type '{name}'")
        self.emit("list" if is_list else "dict")
        self.skip_space()
        if self.peek() != "[":  # a bare list or dict: any elements
            return {"type": "array" if is_list else "object"}
        self.pos += 1
        self.emit("[")
        if is_dict:
            if self.name() != "str":
                raise self.fail("dict keys must be str (JSON object keys are strings)")
            self.skip_space()
            if self.peek() != ",":
                raise self.fail("dict takes two arguments, dict[str, T]")
            self.pos += 1
            self.emit("str, ")
        item = self.type(depth + 1)
        self.skip_space()
        if self.peek() != "]":
            raise self.fail("expected ']' after dict[str, T]" if is_dict
                            else "expected ']' after list[T]")
        self.pos += 1
        self.emit("]")
        if is_list:
            return {"type": "array", "items": item}
        return {"type": "object", "additionalProperties": item}


def _adopt_schema(schema: Any) -> tuple[dict[str, Any], Any]:
    try:
        lint(schema)
    except SchemaError as e:
        raise TargetError(f"target_type is not a usable JSON Schema: {e}") from None
    return schema, schema


def parse_target(target: Any) -> tuple[dict[str, Any], Any]:
    """``(schema, canonical)`` for a target_type given as text or as a JSON Schema object."""
    if isinstance(target, dict):
        return _adopt_schema(target)
    if not isinstance(target, str):
        raise TargetError('target_type must be a type name such as "list[str]" or a JSON '
                          'Schema object')
    text = target.lstrip()
    if not text:
        raise TargetError(f"target_type is empty; use {SUPPORTED_TYPES}")
    if text.startswith("{"):
        try:
            schema = json.loads(text)
        except ValueError as e:
            raise TargetError(f"target_type looks like a JSON Schema but is not valid JSON: "
                              f"{e}") from None
        return _adopt_schema(schema)
    p = _Parser(text)
    schema = p.type(0)
    p.skip_space()
    if p.peek():
        raise p.fail("unexpected text after the type")
    return schema, "".join(p.canon)


# ---- lint ------------------------------------------------------------------------------------

def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if v is None:
        return "null"
    return {dict: "object", list: "array", str: "string", int: "integer",
            float: "number"}.get(type(v), type(v).__name__)


def resolve_ref(root: Any, ref: str) -> Any:
    """``#/$defs/Name`` (any depth of plain segments) inside root, or None."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node = root
    for seg in ref[2:].split("/"):
        seg = seg.replace("~1", "/").replace("~0", "~")
        node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def lint(schema: Any) -> None:
    """Raises SchemaError unless schema is a JSON Schema the checks below can use."""
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON Schema must be an object, got {_type_name(schema)}")
    _lint(schema, schema, "$", 0)


def _lint(root: Any, s: Any, path: str, depth: int) -> None:
    def fail(what: str) -> SchemaError:
        return SchemaError(f"at {path}: {what}")
    if isinstance(s, bool):
        return
    if not isinstance(s, dict):
        raise fail(f"a schema must be an object, got {_type_name(s)}")
    if depth > MAX_DEPTH:
        raise fail(f"nested deeper than {MAX_DEPTH}")
    t = s.get("type")
    if t is not None:
        if isinstance(t, str):
            if t not in JSON_TYPES:
                raise fail(f"unknown type '{t}'")
        elif isinstance(t, list):
            if not all(isinstance(x, str) and x in JSON_TYPES for x in t):
                raise fail('"type" lists something that is not a JSON type')
        else:
            raise fail('"type" must be a string or an array of strings')
    props = s.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise fail('"properties" must be an object')
        for key, sub in props.items():
            _lint(root, sub, f"{path}.properties.{key}", depth + 1)
    req = s.get("required")
    if req is not None and (not isinstance(req, list)
                            or not all(isinstance(r, str) for r in req)):
        raise fail('"required" must be an array of property names')
    enum = s.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise fail('"enum" must be a non-empty array')
    for key in ("items", "additionalProperties"):
        if key in s:
            _lint(root, s[key], f"{path}.{key}", depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key not in s:
            continue
        alts = s[key]
        if not isinstance(alts, list) or not alts:
            raise fail(f'"{key}" must be a non-empty array of schemas')
        for i, alt in enumerate(alts):
            _lint(root, alt, f"{path}.{key}[{i}]", depth + 1)
    if "$ref" in s and (not isinstance(s["$ref"], str)
                        or resolve_ref(root, s["$ref"]) is None):
        raise fail('"$ref" must point inside this schema ("#/$defs/Name")')
    for key in ("$defs", "definitions"):
        if key not in s:
            continue
        if not isinstance(s[key], dict):
            raise fail(f'"{key}" must be an object of schemas')
        for name, sub in s[key].items():
            _lint(root, sub, f"{path}.{key}.{name}", depth + 1)


# ---- checking an answer ----------------------------------------------------------------------

def _matches(v: Any, t: str) -> bool:
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and math.isfinite(v) and v == math.floor(v)
            and abs(v) <= MAX_EXACT_INTEGER)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return _type_name(v) == t


def _coerce(v: Any, t: str) -> Any:
    if t == "number" and isinstance(v, int):
        return float(v)
    if t == "integer" and isinstance(v, float):
        return int(v)
    return v


def _check_type(v: Any, t: Any, path: str) -> Any:
    if t is None:
        return v
    if isinstance(t, str):
        if _matches(v, t):
            return _coerce(v, t)
        raise SchemaError(f"at {path}: expected {t}, got {_type_name(v)}")
    if _type_name(v) in t:  # a union: an exact JSON type wins over a coercion
        return v
    for one in t:
        if _matches(v, one):
            return _coerce(v, one)
    raise SchemaError(f"at {path}: expected one of {json.dumps(t)}, got {_type_name(v)}")


def _check_bounds(v: Any, s: dict[str, Any], path: str) -> None:
    def bound(key: str) -> Any:
        b = s.get(key)
        return b if isinstance(b, (int, float)) and not isinstance(b, bool) else None
    fails = []
    if isinstance(v, str):
        if bound("minLength") is not None and len(v) < s["minLength"]:
            fails.append(f"string shorter than {s['minLength']} characters")
        if bound("maxLength") is not None and len(v) > s["maxLength"]:
            fails.append(f"string longer than {s['maxLength']} characters")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if bound("minimum") is not None and v < s["minimum"]:
            fails.append(f"{v:g} is below the minimum {s['minimum']:g}")
        if bound("maximum") is not None and v > s["maximum"]:
            fails.append(f"{v:g} is above the maximum {s['maximum']:g}")
        if bound("exclusiveMinimum") is not None and v <= s["exclusiveMinimum"]:
            fails.append(f"{v:g} is not above {s['exclusiveMinimum']:g}")
        if bound("exclusiveMaximum") is not None and v >= s["exclusiveMaximum"]:
            fails.append(f"{v:g} is not below {s['exclusiveMaximum']:g}")
    if isinstance(v, list):
        if bound("minItems") is not None and len(v) < s["minItems"]:
            fails.append(f"fewer than {s['minItems']} items")
        if bound("maxItems") is not None and len(v) > s["maxItems"]:
            fails.append(f"more than {s['maxItems']} items")
    if fails:
        raise SchemaError(f"at {path}: {fails[0]}")


def _check(root: Any, v: Any, s: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SchemaError(f"at {path}: nested deeper than {MAX_DEPTH}")
    if s is True:
        return v
    if not isinstance(s, dict):
        raise SchemaError(f"at {path}: no value is allowed here")
    ref = s.get("$ref")
    if isinstance(ref, str):
        target = resolve_ref(root, ref)
        if target is None:
            raise SchemaError(f"at {path}: unresolvable $ref '{ref}'")
        return _check(root, v, target, path, depth + 1)
    if "const" in s and not _equal(v, s["const"]):
        raise SchemaError(f"at {path}: not the constant the schema requires")
    enum = s.get("enum")
    if isinstance(enum, list) and not any(_equal(v, e) for e in enum):
        raise SchemaError(f"at {path}: not one of {json.dumps(enum)}")
    value = _check_type(v, s.get("type"), path)
    _check_bounds(value, s, path)
    if isinstance(value, list) and "items" in s:
        value = [_check(root, item, s["items"], f"{path}[{i}]", depth + 1)
                 for i, item in enumerate(value)]
    elif isinstance(value, dict):
        value = _check_object(root, value, s, path, depth)
    for key in ("anyOf", "oneOf"):
        alts = s.get(key)
        if isinstance(alts, list):
            value = _first_match(root, value, alts, key, path, depth)
    for part in s.get("allOf") or []:
        value = _check(root, value, part, path, depth + 1)
    return value


def _check_object(root: Any, v: dict[str, Any], s: dict[str, Any], path: str,
                  depth: int) -> dict[str, Any]:
    props = s.get("properties") or {}
    extra = s.get("additionalProperties")
    for name in s.get("required") or []:
        if name not in v:
            raise SchemaError(f"at {path}: missing required property '{name}'")
    out = {}
    for key, member in v.items():
        sub = props.get(key)
        if sub is None and extra is False:
            raise SchemaError(f"at {path}: unexpected property '{key}'")
        if sub is None:
            sub = extra  # a schema for the other members, or None (anything)
        out[key] = member if sub is None else _check(root, member, sub, f"{path}.{key}",
                                                     depth + 1)
    return out


def _first_match(root: Any, v: Any, alts: list[Any], key: str, path: str, depth: int) -> Any:
    for alt in alts:
        try:
            return _check(root, v, alt, path, depth + 1)
        except SchemaError:
            continue
    raise SchemaError(f"at {path}: matches none of the {key} alternatives")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 and True differ, 1 and 1.0 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def check(value: Any, schema: Any) -> Any:
    """The value checked against schema and read as its type; SchemaError says where not."""
    return _check(schema, value, schema, "$", 0)


# ---- the request's schema --------------------------------------------------------------------

def _is_object_schema(s: Any) -> bool:
    return isinstance(s, dict) and s.get("type") == "object"


def for_request(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema to send, and whether it wraps the target as ``{"value": ...}``."""
    if _is_object_schema(schema):
        return schema, False
    inner = json.loads(json.dumps(schema))
    root: dict[str, Any] = {"type": "object", "properties": {WRAP_MEMBER: inner},
                            "required": [WRAP_MEMBER], "additionalProperties": False}
    for key in ("$defs", "definitions"):  # stay at the root, where "#/$defs/..." looks
        if key in inner:
            root[key] = inner.pop(key)
    return root, True


def is_strict(s: Any, depth: int = 0) -> bool:
    """True when OpenAI's strict mode accepts the schema: every object lists, requires and
    closes its properties; every array says its items."""
    if not isinstance(s, dict):
        return True
    if depth > MAX_DEPTH:
        return False
    props = s.get("properties")
    if _is_object_schema(s):
        req = s.get("required")
        if not isinstance(props, dict) or s.get("additionalProperties") is not False:
            return False
        if not isinstance(req, list) or len(req) != len(props) or \
                not all(isinstance(r, str) and r in props for r in req):
            return False
    if s.get("type") == "array" and "items" not in s:
        return False
    subs = list(props.values()) if isinstance(props, dict) else []
    if "items" in s:
        subs.append(s["items"])
    for key in ("anyOf", "allOf"):
        subs += s.get(key) or []
    for key in ("$defs", "definitions"):
        if isinstance(s.get(key), dict):
            subs += s[key].values()
    return all(is_strict(sub, depth + 1) for sub in subs)
