# SPDX-License-Identifier: MIT
"""
chat.py — one structured-output call to an OpenAI-compatible chat-completions endpoint, with
the standard library (urllib), as the C example's openai.c: the same settings, the same
request, the same sorting of failures into "retry" and "give up".

Settings (environment): ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``;
``/chat/completions`` is appended), ``OPENAI_API_KEY`` (sent as a bearer token when set),
``OPENAI_MODEL`` (``gpt-4o-mini``), ``OPENAI_TIMEOUT_SECONDS`` (120, for one exchange).
"""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_SECONDS = 120
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
BODY_EXCERPT = 200
USER_AGENT = "errand-fastapi-structured-output/0.2.0"
NOT_CONFIGURED_MESSAGE = ("set OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
                          "OpenAI-compatible server)")
# 429 is retried unless the account has no quota left (waiting will not help).
_RETRYABLE_STATUS = (408, 409, 429)
_SERVER_ERROR = 500


class ChatFailed(Exception):
    """The call did not give an answer: ``retryable`` says whether asking again may help."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Config:
    base_url: str
    base_url_set: bool
    api_key: str
    model: str
    timeout_seconds: int

    @classmethod
    def from_env(cls) -> Config:
        """The settings from the environment; ValueError says which one is wrong."""
        env = os.environ
        base = env.get("OPENAI_BASE_URL") or ""
        url = (base or DEFAULT_BASE_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"OPENAI_BASE_URL must start with http:// or https://, got "
                             f"'{url}'")
        timeout_text = env.get("OPENAI_TIMEOUT_SECONDS") or str(DEFAULT_TIMEOUT_SECONDS)
        if not timeout_text.isdigit() or int(timeout_text) <= 0:
            raise ValueError(f"OPENAI_TIMEOUT_SECONDS must be a positive whole number of "
                             f"seconds, got '{timeout_text}'")
        return cls(url, bool(base), env.get("OPENAI_API_KEY") or "",
                   env.get("OPENAI_MODEL") or DEFAULT_MODEL, int(timeout_text))

    @property
    def usable(self) -> bool:
        return bool(self.api_key) or self.base_url_set


def _error_text(body: bytes) -> tuple[str, str]:
    """The endpoint's own words for an error (error.message, type, code), and its code."""
    try:
        root = json.loads(body)
    except ValueError:
        root = None
    err = root.get("error") if isinstance(root, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        text, kind, code = err["message"], err.get("type"), err.get("code")
        if kind or code:
            text += f" (type {kind or '-'}, code {code or '-'})"
        return text, code if isinstance(code, str) else ""
    if isinstance(err, str):
        return err, ""
    if body:
        return body[:BODY_EXCERPT].decode("utf-8", "replace"), ""
    return "(empty body)", ""


def _read_completion(body: bytes, url: str) -> str:
    try:
        root = json.loads(body)
    except ValueError as e:
        raise ChatFailed(f"{url} answered 200 with a body that is not JSON: {e}", True) from None
    choices = root.get("choices") if isinstance(root, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, dict) else None
    message = message if isinstance(message, dict) else {}
    refusal, content = message.get("refusal"), message.get("content")
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    if isinstance(refusal, str) and refusal:
        raise ChatFailed(f"the model refused: {refusal}", False)
    if not isinstance(content, str):
        raise ChatFailed(f"{url} answered without choices[0].message.content (finish_reason "
                         f"{finish or 'missing'})", True)
    if finish == "length":
        raise ChatFailed("the model's answer was cut off at its token limit (finish_reason "
                         "length)", True)
    return content


def chat(cfg: Config, system_prompt: str, user_prompt: str, schema_name: str,
         schema: dict[str, Any], strict: bool) -> str:
    """The model's answer (JSON text in the schema), or ChatFailed."""
    url = cfg.base_url + "/chat/completions"
    body = {"model": cfg.model,
            "messages": [{"role": "system", "content": system_prompt},
                         {"role": "user", "content": user_prompt}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": schema_name, "schema": schema,
                                                "strict": strict}}}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    req.add_header("User-Agent", USER_AGENT)
    if cfg.api_key:
        req.add_header("Authorization", f"Bearer {cfg.api_key}")
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout_seconds) as resp:
            answer = resp.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as e:
        text, code = _error_text(e.read(MAX_RESPONSE_BYTES))
        retryable = e.code >= _SERVER_ERROR or (e.code in _RETRYABLE_STATUS and
                                                 code != "insufficient_quota")
        raise ChatFailed(f"{url} answered {e.code}: {text}", retryable) from None
    except (TimeoutError, socket.timeout):
        raise ChatFailed(f"{url} did not answer within {cfg.timeout_seconds} s", True) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ChatFailed(f"could not reach {url}: {reason}", True) from None
    if len(answer) > MAX_RESPONSE_BYTES:
        raise ChatFailed(f"{url} answered more than {MAX_RESPONSE_BYTES} bytes", True)
    return _read_completion(answer, url)
