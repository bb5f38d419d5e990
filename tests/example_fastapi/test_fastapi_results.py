# SPDX-License-Identifier: MIT
"""
The seed's happy path through the FastAPI example: a form (urlencoded, multipart or JSON)
submitted to POST /tasks answers 202 {"task_run_id"}, the run is pending while the model
works, then completed with the typed, validated value; the page and /health are served.
"""
import json

import pytest
import requests

from fastapi_stack import wait_until
from stack import FINAL_TIMEOUT, HTTP_TIMEOUT

PERSON_SCHEMA = {"type": "object",
                 "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                 "required": ["name", "age"], "additionalProperties": False}

# (target_type as sent, value the model answers, expected result, strict mode, wrapped).
CASES = [
    ("str", "hello", "hello", True, True),
    ("int", 42.0, 42, True, True),          # 42.0 for int is read as 42
    ("float", 3, 3.0, True, True),          # 3 for float is read as 3.0
    ("bool", True, True, True, True),
    ("List[str]", ["a", "b"], ["a", "b"], True, True),
    ("dict[str, int]", {"k": 1}, {"k": 1}, False, False),
    (json.dumps(PERSON_SCHEMA), {"name": "Ada", "age": 36}, {"name": "Ada", "age": 36}, True,
     False),
]
ENCODINGS = ["urlencoded", "multipart", "json"]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0][:20] for c in CASES])
def test_each_target_type_completes_with_the_typed_value(stack, fake, token, i):
    target, answer, expected, strict, wrapped = CASES[i]
    encoding = ENCODINGS[i % len(ENCODINGS)]
    fake.script(token, {"value": answer, "hold": token})
    fields = {"payload": json.dumps({"text": f"convert this {token}"}),
              "target_type": target, "instructions": f"be precise {token}"}
    if encoding == "json":  # a JSON body carries the payload as JSON, not as text
        fields["payload"] = {"text": f"convert this {token}"}
    r = stack.submit(fields, encoding)
    assert r.status_code == 202, (r.status_code, r.text)
    assert list(r.json()) == ["task_run_id"]
    run_id = r.json()["task_run_id"]

    # The model is answering (held at the stand-in): the run is pending.
    wait_until(lambda: fake.waiting(token) == 1, FINAL_TIMEOUT, "the task to call the model")
    r = stack.status(run_id)
    assert r.status_code == 200
    assert r.json() == {"task_run_id": run_id, "status": "pending"}

    fake.release(token)
    body = stack.wait_status(run_id)
    assert body == {"task_run_id": run_id, "status": "completed", "result": expected}
    assert type(body["result"]) is type(expected)

    # What the endpoint was asked: the real protocol, the schema of the target type.
    (call,) = fake.calls(token)
    req = call["body"]
    assert call["authorization"] == f"Bearer {fake.api_key}"
    assert req["model"] == "gpt-4o-mini"
    fmt = req["response_format"]
    assert (fmt["type"], fmt["json_schema"]["name"]) == ("json_schema", "structured_output")
    assert fmt["json_schema"]["strict"] is strict
    schema = fmt["json_schema"]["schema"]
    if wrapped:
        assert schema["required"] == ["value"] and schema["additionalProperties"] is False
    elif target.startswith("dict"):
        assert schema == {"type": "object", "additionalProperties": {"type": "integer"}}
    else:
        assert schema == PERSON_SCHEMA
    system, user = req["messages"]
    assert system["role"] == "system" and f"be precise {token}" in system["content"]
    assert json.loads(user["content"]) == {"text": f"convert this {token}"}

    # The run errand stored: the task's name and the parameters the seed's delay() sends,
    # the target in its canonical spelling (List[str] -> list[str]: one cache key).
    run = stack.run(run_id)
    assert run["task"] == "create_structured_output"
    assert run["parameters"]["payload"] == {"text": f"convert this {token}"}
    assert run["parameters"]["instructions"] == f"be precise {token}"
    if target == "List[str]":
        assert run["parameters"]["target"] == "list[str]"


def test_form_text_that_is_not_json_becomes_data(stack, fake, token):
    fake.script(token, {"value": 7})
    run_id = stack.submit_ok({"payload": f"seven {token}", "target_type": "int"})
    assert stack.wait_status(run_id)["result"] == 7
    assert stack.run(run_id)["parameters"]["payload"] == {"data": f"seven {token}"}


def test_a_wrong_answer_is_never_shown_as_a_result(stack, fake, token):
    """An answer that does not match the schema is not the result: the run retries."""
    fake.script(token, {"value": "three"}, {"value": 3.5})
    run_id = stack.submit_ok({"payload": f"the value {token}", "target_type": "float"})
    from stack import RETRIES_TIMEOUT
    body = stack.wait_status(run_id, timeout=RETRIES_TIMEOUT)
    assert body == {"task_run_id": run_id, "status": "completed", "result": 3.5}
    assert len(fake.calls(token)) == 2 and stack.run(run_id)["attempt"] == 2


def test_the_same_request_answers_from_the_cache(stack, fake, token):
    fake.script(token, {"value": ["x"]})
    fields = {"payload": json.dumps([token]), "target_type": "list[str]"}
    first = stack.submit_ok(fields)
    assert stack.wait_status(first)["result"] == ["x"]
    second = stack.submit_ok({**fields, "target_type": "typing.List[ str ]"})
    assert stack.wait_status(second)["result"] == ["x"]
    assert stack.run(second)["state"]["name"] == "Cached"
    assert len(fake.calls(token)) == 1


def test_the_page_and_health(stack):
    r = requests.get(stack.api_url + "/", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'name="target_type"' in r.text and "tasks" in r.text
    r = requests.get(stack.api_url + "/health", timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
