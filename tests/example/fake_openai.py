#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
fake_openai.py — a local stand-in for an OpenAI-compatible chat-completions endpoint, for
the structured-output example's tests (and demos without a key). Standard library only.

    python3 tests/example/fake_openai.py [--host 127.0.0.1] [--port 0] [--api-key KEY]

It logs `msg="listening" host=H port=P` on stderr once ready (port 0 = any free port), then
serves under http://H:P/v1 (use that as OPENAI_BASE_URL):

  POST /v1/chat/completions   the real protocol: {"model", "messages", "response_format":
                              {"type": "json_schema", "json_schema": {"name", "schema",
                              "strict"}}} -> a chat.completion object whose
                              choices[0].message.content is JSON text. Checks the request as
                              OpenAI does (400 invalid_request_error for a missing model or
                              messages, a bad response_format, a schema that strict mode would
                              refuse); with --api-key, a wrong or missing key gets 401.
  GET  /v1/models             one model, "gpt-4o-mini".

Errors have OpenAI's shape {"error": {"message", "type", "param", "code"}}.

Behaviour is scripted by the tests over a control API (JSON bodies):
  POST /_fake/rules    {"match": TEXT, "responses": [R, ...]}: a request whose messages
                       contain TEXT gets the next response of the list; the last one repeats.
                       R is one of
                         {"value": V}            answer V (wrapped as {"value": V} when the
                                                 request's schema is the wrapper of a
                                                 non-object target)
                         {"content": "TEXT"}     answer exactly this content
                         {"refusal": "TEXT"}     a refusal
                         {"status": 429, "message": ..., "type": ..., "code": ...}
                                                 an error (defaults per status, as OpenAI's)
                       and may add "hold": GATE to wait, before answering, until the gate
                       is released.
  POST /_fake/release  {"gate": GATE}: lets held requests (and later ones) through.
  GET  /_fake/waiting?gate=GATE   {"waiting": N}: requests held at that gate right now.
  GET  /_fake/calls[?match=TEXT]  {"count": N, "calls": [{"match", "status", "body",
                                  "authorization"}]}: every chat-completions request seen.
  POST /_fake/reset    forgets rules and calls, releases every gate.
A request that matches no rule gets an example value built from its schema (numbers 3.14,
integers 42, strings "example", ...), so the app works end to end without a script.
"""
import argparse
import json
import re
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HOLD_TIMEOUT_SECONDS = 120.0  # a held request never hangs a worker for ever
MAX_BODY_BYTES = 4 * 1024 * 1024
SCHEMA_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MODELS = ["gpt-4o-mini"]

ERROR_DEFAULTS = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: sk-test. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error",
          "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model `gpt-4o-mini` does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for gpt-4o-mini in organization org-fake on requests per min "
          "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def log(msg, **fields):
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    sys.stderr.write(f'ts={ts} level=info msg="{msg}"{extra}\n')
    sys.stderr.flush()


class RequestError(Exception):
    """A request OpenAI would refuse: status, message, param, code."""

    def __init__(self, status, message, param=None, code=None, type_="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = (
            status, message, param, code, type_)


class State:
    """Rules, gates and the call log; one lock guards all of it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []      # [{"match": str, "responses": [...], "next": int}]
        self.calls = []
        self.gates = {}      # name -> threading.Event
        self.waiting = {}    # name -> count of requests held there

    def reset(self):
        with self.lock:
            for gate in self.gates.values():
                gate.set()
            self.rules, self.calls, self.gates, self.waiting = [], [], {}, {}

    def add_rule(self, match, responses):
        with self.lock:
            self.rules.append({"match": match, "responses": list(responses), "next": 0})

    def gate(self, name):
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def next_response(self, text):
        """The first rule whose match occurs in text, and its next response."""
        with self.lock:
            for rule in self.rules:
                if rule["match"] in text:
                    i = min(rule["next"], len(rule["responses"]) - 1)
                    rule["next"] += 1
                    return rule["match"], rule["responses"][i]
        return None, None


STATE = State()


# --- the schema checks OpenAI applies, and example values -------------------------------

def check_strict_schema(schema, path="()"):
    """Raises RequestError where OpenAI's strict mode would refuse the schema."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            raise RequestError(400, f"In context={path}, 'additionalProperties' is required to "
                               "be supplied and to be false.", "response_format")
        props = schema.get("properties", {})
        missing = [k for k in props if k not in schema.get("required", [])]
        if missing:
            raise RequestError(400, f"In context={path}, 'required' is required to be supplied "
                               f"and to be an array including every key in properties. Missing "
                               f"'{missing[0]}'.", "response_format")
        for key, sub in props.items():
            check_strict_schema(sub, path + f", 'properties', '{key}'")
    if schema.get("type") == "array" and "items" not in schema:
        raise RequestError(400, f"In context={path}, array schema missing items.",
                           "response_format")
    if "items" in schema:
        check_strict_schema(schema["items"], path + ", 'items'")
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            check_strict_schema(sub, path + f", '{key}', {i}")
    for defs in ("$defs", "definitions"):
        for name, sub in schema.get(defs, {}).items():
            check_strict_schema(sub, path + f", '{defs}', '{name}'")


def is_wrapper(schema):
    """True for the app's wrapper of a non-object target: {"value": <target schema>}."""
    return (isinstance(schema, dict) and schema.get("type") == "object"
            and set(schema.get("properties", {})) == {"value"}
            and schema.get("required") == ["value"])


def example_value(schema, root, index=0, depth=0):
    """A value that matches schema, for requests no rule scripts."""
    if not isinstance(schema, dict) or depth > 20:
        return None
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {}) if part else node
        return example_value(node, root, index, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_value(schema[key][0], root, index, depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), t[0] if t else None)
    if t == "string":
        return "example" if index == 0 else f"example {index + 1}"
    if t == "integer":
        return 42 + index
    if t == "number":
        return 3.14
    if t == "boolean":
        return True
    if t == "null":
        return None
    if t == "array":
        return [example_value(schema.get("items", {"type": "string"}), root, i, depth + 1)
                for i in range(2)]
    if t == "object" or "properties" in schema:
        props = schema.get("properties")
        if props:
            return {k: example_value(v, root, 0, depth + 1) for k, v in props.items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return {"key": example_value(extra, root, 0, depth + 1)}
        return {}
    return "example"


# --- the protocol ------------------------------------------------------------------------

def validate_request(body):
    """Returns (messages text, schema) or raises RequestError, as OpenAI would."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "Missing required parameter: 'messages'.", "messages",
                           "missing_required_parameter")
    texts = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user",
                                                            "assistant"):
            raise RequestError(400, f"Invalid value for 'messages[{i}].role'.",
                               f"messages[{i}].role", "invalid_value")
        if not isinstance(m.get("content"), str):
            raise RequestError(400, f"Invalid type for 'messages[{i}].content'.",
                               f"messages[{i}].content", "invalid_type")
        texts.append(m["content"])
    schema = None
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object",
                                                                "json_schema"):
            raise RequestError(400, "Invalid value for 'response_format.type'.",
                               "response_format.type", "invalid_value")
        if fmt["type"] == "json_schema":
            js = fmt.get("json_schema")
            if not isinstance(js, dict) or not isinstance(js.get("name"), str):
                raise RequestError(400, "Missing required parameter: "
                                   "'response_format.json_schema.name'.",
                                   "response_format.json_schema.name",
                                   "missing_required_parameter")
            if not SCHEMA_NAME_RE.match(js["name"]):
                raise RequestError(400, "Invalid 'response_format.json_schema.name': string "
                                   "does not match pattern. Expected a string that matches the "
                                   "pattern '^[a-zA-Z0-9_-]+$'.",
                                   "response_format.json_schema.name", "invalid_value")
            schema = js.get("schema")
            if not isinstance(schema, dict):
                raise RequestError(400, "Invalid type for 'response_format.json_schema.schema'"
                                   ": expected an object.",
                                   "response_format.json_schema.schema", "invalid_type")
            if schema.get("type") != "object":
                raise RequestError(400, f"Invalid schema for response_format '{js['name']}': "
                                   "schema must be a JSON Schema of 'type: \"object\"', got "
                                   f"'type: \"{schema.get('type')}\"'.", "response_format",
                                   "invalid_json_schema")
            if js.get("strict") is True:
                try:
                    check_strict_schema(schema)
                except RequestError as e:
                    e.message = f"Invalid schema for response_format '{js['name']}': {e.message}"
                    e.code = "invalid_json_schema"
                    raise
    return "\n".join(texts), schema


def completion(model, content=None, refusal=None):
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def error_body(status, message=None, type_=None, code=None, param=None):
    d_msg, d_type, d_code = ERROR_DEFAULTS.get(status, ("Error.", "server_error", None))
    return {"error": {"message": message or d_msg, "type": type_ or d_type, "param": param,
                      "code": code if code is not None else d_code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"
    api_key = None

    def log_message(self, fmt, *args):  # quiet: the tests read the call log instead
        pass

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY_BYTES:
            raise RequestError(413, "Request too large.")
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in MODELS]})
        if url.path == "/_fake/calls":
            match = q.get("match", [None])[0]
            with STATE.lock:
                calls = [c for c in STATE.calls if match is None or match in c["text"]]
            return self.send_json(200, {"count": len(calls), "calls": [
                {k: v for k, v in c.items() if k != "text"} for c in calls]})
        if url.path == "/_fake/waiting":
            gate = q.get("gate", [""])[0]
            with STATE.lock:
                return self.send_json(200, {"waiting": STATE.waiting.get(gate, 0)})
        if url.path == "/_fake/health":
            return self.send_json(200, {"status": "ok"})
        self.send_json(404, error_body(404, f"Invalid URL (GET {url.path})", "invalid_request_error",
                                       None))

    def do_POST(self):
        url = urlparse(self.path)
        try:
            raw = self.read_body()
        except RequestError as e:
            return self.send_json(e.status, error_body(e.status, e.message))
        if url.path.startswith("/_fake/"):
            return self.control(url.path, raw)
        if url.path != "/v1/chat/completions":
            return self.send_json(404, error_body(404, f"Invalid URL (POST {url.path})",
                                                  "invalid_request_error", None))
        self.chat(raw)

    def control(self, path, raw):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.send_json(400, {"error": "control body is not JSON"})
        if path == "/_fake/rules":
            if not isinstance(body.get("match"), str) or not body.get("responses"):
                return self.send_json(400, {"error": "need match (string) and responses (list)"})
            STATE.add_rule(body["match"], body["responses"])
            return self.send_json(200, {"ok": True})
        if path == "/_fake/release":
            STATE.gate(str(body.get("gate", ""))).set()
            return self.send_json(200, {"ok": True})
        if path == "/_fake/reset":
            STATE.reset()
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": f"no control endpoint {path}"})

    def record(self, text, match, status, body):
        with STATE.lock:
            STATE.calls.append({"match": match, "status": status, "body": body, "text": text,
                                "authorization": self.headers.get("Authorization")})

    def chat(self, raw):
        auth = self.headers.get("Authorization")
        try:
            body = json.loads(raw)
        except ValueError:
            self.record("", None, 400, None)
            return self.send_json(400, error_body(
                400, "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)", "invalid_request_error"))
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            self.record("", None, 401, body)
            if not auth:
                return self.send_json(401, error_body(
                    401, "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    , code=None))
            return self.send_json(401, error_body(401))
        try:
            text, schema = validate_request(body)
        except RequestError as e:
            self.record("", None, e.status, body)
            return self.send_json(e.status, error_body(e.status, e.message, e.type, e.code,
                                                       e.param))
        match, response = STATE.next_response(text)
        if response is None:
            response = {"value": example_value(
                schema["properties"]["value"] if is_wrapper(schema) else schema, schema)
                if schema else "example"}
        gate_name = response.get("hold")
        if gate_name:
            gate = STATE.gate(gate_name)
            with STATE.lock:
                STATE.waiting[gate_name] = STATE.waiting.get(gate_name, 0) + 1
            gate.wait(HOLD_TIMEOUT_SECONDS)
            with STATE.lock:
                STATE.waiting[gate_name] -= 1
        status = int(response.get("status", 200))
        self.record(text, match, status, body)
        if status != 200:
            headers = {"retry-after": "1"} if status == 429 else None
            return self.send_json(status, error_body(status, response.get("message"),
                                                     response.get("type"), response.get("code")),
                                  headers)
        if "refusal" in response:
            return self.send_json(200, completion(body["model"], None, response["refusal"]))
        if "content" in response:
            content = response["content"]
        else:
            value = response.get("value")
            content = json.dumps({"value": value} if is_wrapper(schema) else value)
        self.send_json(200, completion(body["model"], content))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=None, help="require this bearer key (default: any)")
    args = ap.parse_args()
    Handler.api_key = args.api_key
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    log("listening", host=args.host, port=server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        STATE.reset()
        server.server_close()


if __name__ == "__main__":
    main()
