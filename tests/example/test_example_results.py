# SPDX-License-Identifier: MIT
"""
The seed's happy path, end to end: a form (urlencoded, multipart or JSON) submitted to
POST /tasks answers 202 {"task_run_id"}, the run is pending while the model works, then
completed with the typed, validated value — for every supported target type; the page and
/health are served.
"""
import json
import re

import pytest
import requests

from stack import FINAL_TIMEOUT, HTTP_TIMEOUT, difference, wait_until

PERSON_SCHEMA = {"type": "object",
                 "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                 "required": ["name", "age"], "additionalProperties": False}

# (id, target_type as sent, encoding, value the model answers, expected result, strict mode,
# schema sent). Object targets (dict, an object schema) are sent as they are (the schema is
# given); others are wrapped as {"value": ...} (WRAPPED). dict[str, T] has open keys, which
# strict mode cannot express.
WRAPPED = "wrapped"
CASES = [
    ("str", "str", "urlencoded", "hello", "hello", True, WRAPPED),
    ("int", "int", "multipart", 42, 42, True, WRAPPED),
    ("int-from-42.0", "int", "multipart", 42.0, 42, True, WRAPPED),  # 42.0 for int is 42
    ("float", "float", "json", 3.14, 3.14, True, WRAPPED),
    ("float-from-3", "float", "json", 3, 3.0, True, WRAPPED),        # 3 for float is 3.0
    ("builtins.float", "builtins.float", "urlencoded", 2.5, 2.5, True, WRAPPED),
    ("bool", "bool", "multipart", True, True, True, WRAPPED),
    ("bool-urlencoded", "bool", "urlencoded", True, True, True, WRAPPED),
    ("list[str]", "list[str]", "json", ["a", "b"], ["a", "b"], True, WRAPPED),
    ("List[str]", "List[str]", "multipart", ["a", "b"], ["a", "b"], True, WRAPPED),
    ("list[int]", "list[int]", "urlencoded", [1, 2, 3], [1, 2, 3], True, WRAPPED),
    ("dict[str, str]", "dict[str, str]", "multipart", {"k": "v", "x": "y"},
     {"k": "v", "x": "y"}, False, {"type": "object", "additionalProperties": {"type": "string"}}),
    ("dict[str, int]", "dict[str, int]", "json", {"k": 1}, {"k": 1}, False,
     {"type": "object", "additionalProperties": {"type": "integer"}}),
    ("schema-json", json.dumps(PERSON_SCHEMA), "json", {"name": "Ada", "age": 36},
     {"name": "Ada", "age": 36}, True, PERSON_SCHEMA),
    ("schema-urlencoded", json.dumps(PERSON_SCHEMA), "urlencoded", {"name": "Ada", "age": 36},
     {"name": "Ada", "age": 36}, True, PERSON_SCHEMA),
]
# The spelling each target is stored in (and so cached under), where it is not as sent.
CANONICAL = {"List[str]": "list[str]", "builtins.float": "float"}


def held(token, value):
    return {"value": value, "hold": token}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_target_type_completes_with_the_typed_value(stack, fake, token, case):
    _, target, encoding, answer, expected, strict, sent_schema = case
    fake.script(token, held(token, answer))
    fields = {"payload": json.dumps({"text": f"convert this {token}"}),
              "target_type": target, "instructions": f"be precise {token}"}
    if encoding == "json":  # a JSON body carries the payload as JSON, not as text
        fields["payload"] = {"text": f"convert this {token}"}
    run_id = stack.submit_ok(fields, encoding)

    # The model is answering (held at the fake): the run is pending.
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
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "structured_output"
    assert fmt["json_schema"]["strict"] is strict
    schema = fmt["json_schema"]["schema"]
    assert schema["type"] == "object"
    if sent_schema == WRAPPED:
        assert schema["required"] == ["value"] and schema["additionalProperties"] is False
    else:
        assert schema == sent_schema
    system, user = req["messages"]
    assert system["role"] == "system" and f"be precise {token}" in system["content"]
    assert user["role"] == "user" and json.loads(user["content"]) == {
        "text": f"convert this {token}"}

    # The run errand stored: the task's name and the parameters the seed's delay() sends,
    # the target in its canonical spelling (List[str] -> list[str]: one cache key).
    run = stack.run(run_id)
    assert run["task"] == "create_structured_output"
    assert run["parameters"]["payload"] == {"text": f"convert this {token}"}
    assert run["parameters"]["instructions"] == f"be precise {token}"
    if target in CANONICAL:
        assert run["parameters"]["target"] == CANONICAL[target]


def test_float_target_reads_an_integer_answer_as_a_float(stack, fake, token):
    fake.script(token, {"value": 3})
    run_id = stack.submit_ok({"payload": token, "target_type": "float"})
    body = stack.wait_status(run_id)
    assert body["status"] == "completed"
    assert body["result"] == 3.0 and isinstance(body["result"], float)


def test_nested_and_spelled_out_types(stack, fake, token):
    fake.script(token, {"value": {"a": [1, 2], "b": []}})
    run_id = stack.submit_ok({"payload": token, "target_type": "typing.Dict[str, List[int]]"})
    assert stack.wait_status(run_id)["result"] == {"a": [1, 2], "b": []}
    schema = fake.calls(token)[0]["body"]["response_format"]["json_schema"]["schema"]
    assert schema == {"type": "object",
                      "additionalProperties": {"type": "array", "items": {"type": "integer"}}}


def test_plain_text_payload_is_sent_as_data(stack, fake, token):
    text = f"just some words {token}"
    fake.script(token, {"value": "ok"})
    run_id = stack.submit_ok({"payload": text, "target_type": "str"}, "multipart")
    assert stack.wait_status(run_id)["status"] == "completed"
    user = fake.calls(token)[0]["body"]["messages"][1]
    assert json.loads(user["content"]) == {"data": text}
    assert stack.run(run_id)["parameters"] == {
        "payload": {"data": text}, "target": "str", "instructions": None}


def test_a_json_schema_object_in_a_json_body(stack, fake, token):
    schema = {"type": "array", "items": {"type": "string", "enum": ["red", "green"]},
              "minItems": 1}
    fake.script(token, {"value": ["green"]})
    run_id = stack.submit_ok({"payload": {"t": token}, "target_type": schema}, "json")
    assert stack.wait_status(run_id)["result"] == ["green"]
    sent = fake.calls(token)[0]["body"]["response_format"]["json_schema"]
    assert sent["schema"]["properties"]["value"] == schema
    assert sent["strict"] is True


def test_a_file_upload_counts_as_the_payload(stack, fake, token):
    fake.script(token, {"value": 7})
    files = {"payload": ("data.json", json.dumps({"n": token}), "application/json"),
             "target_type": (None, "int")}
    r = requests.post(stack.api_url + "/tasks", files=files, timeout=HTTP_TIMEOUT)
    assert r.status_code == 202, r.text
    assert stack.wait_status(r.json()["task_run_id"])["result"] == 7


def test_submission_is_logged_like_the_seed(app, stack, fake, token):
    fake.script(token, {"value": "x"})
    run_id = stack.submit_ok({"payload": token, "target_type": "str"})
    stack.api.wait_line(difference(app, "submitted_line", id=run_id))


def test_runs_carry_the_task_policy_and_persist_their_results(app, stack, fake, token):
    fake.script(token, {"value": [1]})
    run_id = stack.submit_ok({"payload": token, "target_type": "list[int]"})
    assert stack.wait_status(run_id)["result"] == [1]
    run = stack.run(run_id)
    assert run["task"] == "create_structured_output"
    assert run["retries"] == 3 and run["max_attempts"] == 4
    assert run["retry_delay_seconds"] == [2, 4, 8]
    assert run["timeout_seconds"] == 300
    assert re.fullmatch(difference(app, "cache_key"), run["cache_key"] or ""), run["cache_key"]
    assert run["persist_result"] is True
    assert run.get("result_ref"), run  # persisted to ERRAND_LOCAL_STORAGE_PATH


def test_task_prints_reach_the_run_logs(stack, fake, token):
    fake.script(token, {"value": True})
    run_id = stack.submit_ok({"payload": token, "target_type": "bool"})
    stack.wait_status(run_id)

    def printed():
        logs = stack.errand("GET", f"/task_runs/{run_id}/logs").json()["logs"]
        return any("casting the payload to" in line["message"] for line in logs)
    wait_until(printed, FINAL_TIMEOUT, "the task's print in the run's logs")


def test_form_text_that_is_not_json_becomes_data(stack, fake, token):
    fake.script(token, {"value": 7})
    run_id = stack.submit_ok({"payload": f"seven {token}", "target_type": "int"})
    assert stack.wait_status(run_id)["result"] == 7
    assert stack.run(run_id)["parameters"]["payload"] == {"data": f"seven {token}"}


def test_the_web_page_and_health_are_served(stack):
    r = requests.get(stack.api_url + "/", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    for needle in ('id="task-form"', 'id="payload"', 'id="target_type"', 'id="instructions"',
                   'id="task-run-id"', 'id="result"', 'name="target_type"', "tasks"):
        assert needle in r.text
    r = requests.get(stack.api_url + "/health", timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
