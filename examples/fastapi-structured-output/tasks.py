# SPDX-License-Identifier: MIT
"""
tasks.py — the background task, ``create_structured_output``, and its worker.

The web API (api.py) imports the task to submit runs of it (``.delay_async()``); run as a
program, this file is the worker that serves it (the seed's ``python src/foo/task.py``)::

    python3 tasks.py [--concurrency N] [--name NAME]

The task asks the chat-completions endpoint (chat.py) to turn ``payload`` into a value of
``target`` (a type expression or a JSON Schema, schema.py), checks the answer against the
target's schema and returns it typed. The policy is the C example's (task_def.c): 3 retries
after 2, 4 and 8 s, 300 s per attempt, results persisted (so the same payload, target and
instructions answer from the first completed run without calling the model again).
Failures that no retry can fix (a refusal, 400/401/403/404, no quota, bad parameters) end
the run at once (``errand.TaskError(..., retryable=False)``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import errand

from chat import NOT_CONFIGURED_MESSAGE, ChatFailed, Config, chat
from schema import WRAP_MEMBER, SchemaError, TargetError, check, for_request, is_strict, \
    parse_target

TASK_RETRIES = 3
TASK_RETRY_DELAYS_SECONDS = [2, 4, 8]  # exponential backoff from 2 s, as the C example's
TASK_TIMEOUT_SECONDS = 300
SCHEMA_NAME = "structured_output"
LOG_RESULT_EXCERPT = 200
SYSTEM_PROMPT = ("You convert the data the user gives you into the requested type. Answer "
                 "with JSON that matches the response schema, and nothing else.")

logger = logging.getLogger("structured_output.task")


def _read_answer(content: str, wrapped: bool, schema: dict[str, Any]) -> Any:
    """The model's JSON text as the checked, typed result; a slip of the model is worth
    another attempt, so every failure here is retryable."""
    try:
        answer = json.loads(content)
    except ValueError as e:
        raise errand.TaskError(f"the model's answer is not JSON: {e}") from None
    if wrapped:
        if not isinstance(answer, dict) or WRAP_MEMBER not in answer:
            raise errand.TaskError(f"the model's answer has no \"{WRAP_MEMBER}\" member")
        answer = answer[WRAP_MEMBER]
    try:
        return check(answer, schema)
    except SchemaError as e:
        raise errand.TaskError(f"the model's answer does not match the target type: "
                               f"{e}") from None


@errand.task(retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAYS_SECONDS,
             timeout_seconds=TASK_TIMEOUT_SECONDS, persist_result=True)
def create_structured_output(payload: Any, target: Any, instructions: str | None = None) -> Any:
    """``payload`` converted to ``target`` by the model, checked and typed."""
    if instructions is not None and not isinstance(instructions, str):
        raise errand.TaskError("parameter 'instructions' must be a string or null",
                               retryable=False)
    try:
        schema, canonical = parse_target(target)
    except TargetError as e:
        raise errand.TaskError(f"parameter 'target': {e}", retryable=False) from None
    try:
        cfg = Config.from_env()
    except ValueError as e:
        raise errand.TaskError(str(e), retryable=False) from None
    if not cfg.usable:
        raise errand.TaskError(NOT_CONFIGURED_MESSAGE, retryable=False)

    request_schema, wrapped = for_request(schema)
    system_prompt = SYSTEM_PROMPT
    if wrapped:
        system_prompt += f' Put the converted value in the "{WRAP_MEMBER}" member.'
    if instructions:
        system_prompt += f"\n\nInstructions: {instructions}"
    ctx = errand.context()
    # Goes to the run's logs when log prints are on (ERRAND_LOGGING_LOG_PRINTS).
    print(f"create_structured_output: casting the payload to {json.dumps(canonical)} "
          f"(attempt {ctx.attempt if ctx else 1}, model {cfg.model})", flush=True)
    try:
        content = chat(cfg, system_prompt, json.dumps(payload, separators=(",", ":")),
                       SCHEMA_NAME, request_schema, is_strict(request_schema))
    except ChatFailed as e:
        raise errand.TaskError(e.message, retryable=e.retryable) from None
    result = _read_answer(content, wrapped, schema)
    if ctx:
        ctx.log(f"structured output ready: {json.dumps(result)[:LOG_RESULT_EXCERPT]}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py", description="Serves "
                                     "create_structured_output until SIGTERM or SIGINT.")
    parser.add_argument("--concurrency", type=int, help="runs at once in this worker "
                        "(ERRAND_WORKER_CONCURRENCY, 10)")
    parser.add_argument("--name", help="the worker's name at the server (<host>-<pid>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='ts=%(asctime)s level=%(levelname)s msg="%(message)s"')
    try:
        cfg = Config.from_env()
    except ValueError as e:
        logger.error("bad configuration: %s", e)
        return 2
    logger.info("serving task=create_structured_output openai_base_url=%s model=%s",
                cfg.base_url, cfg.model)
    if not cfg.usable:
        logger.warning("no chat-completions endpoint configured; every run will fail: %s",
                       NOT_CONFIGURED_MESSAGE)
    # The seed's compose turns PREFECT_LOGGING_LOG_PRINTS on; here it is on unless set false.
    log_prints = os.environ.get("ERRAND_LOGGING_LOG_PRINTS", "true").strip().lower() not in (
        "0", "false", "no", "off")
    errand.serve(create_structured_output, limit=args.concurrency, name=args.name,
                 log_prints=log_prints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
