# SPDX-License-Identifier: MIT
"""
Bad submissions answer 422 with FastAPI's body naming the field, and submit nothing (the C
app answers as the FastAPI app does); unknown routes and methods answer as FastAPI does;
oversized bodies 413.
"""
import json

import pytest
import requests

from stack import HTTP_TIMEOUT


def runs_of_the_task(stack):
    r = stack.errand("GET", "/task_runs", params={"task": "create_structured_output",
                                                   "limit": 1000})
    return len(r.json()["runs"])


@pytest.fixture
def nothing_submitted(stack):
    before = runs_of_the_task(stack)
    yield
    assert runs_of_the_task(stack) == before, "a refused request must not submit a run"


def detail(r):
    assert r.status_code == 422, (r.status_code, r.text)
    return r.json()["detail"]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "json"])
def test_missing_payload(stack, nothing_submitted, encoding):
    d = detail(stack.submit({"target_type": "float"}, encoding))
    assert d == [{"type": "missing", "loc": ["body", "payload"], "msg": "Field required",
                  "input": None}]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "json"])
def test_missing_target_type(stack, nothing_submitted, encoding):
    d = detail(stack.submit({"payload": "x"}, encoding))
    assert d == [{"type": "missing", "loc": ["body", "target_type"], "msg": "Field required",
                  "input": None}]


def test_every_missing_field_is_named(stack, nothing_submitted):
    for r in (requests.post(stack.api_url + "/tasks", timeout=HTTP_TIMEOUT),
              stack.submit({}, "json"),
              stack.submit({"payload": "", "target_type": "  "})):
        assert [e["loc"] for e in detail(r)] == [["body", "payload"], ["body", "target_type"]]


@pytest.mark.parametrize("target", ["banana", "list[", "dict[int, str]", "list[str] extra",
                                    "{not json", '{"type": "nonsense"}', "[1, 2]"])
def test_an_unusable_target_type(stack, nothing_submitted, target):
    (d,) = detail(stack.submit({"payload": "x", "target_type": target}))
    assert d["loc"] == ["body", "target_type"] and d["type"] == "value_error"
    assert d["msg"].startswith("Value error, ") and d["input"] == target


def test_a_target_type_error_says_what_is_supported(stack, nothing_submitted):
    (d,) = detail(stack.submit({"payload": "x", "target_type": "banana"}))
    assert "unknown type 'banana'" in d["msg"] and "list[T]" in d["msg"]


def test_wrong_json_types(stack, nothing_submitted):
    d = detail(stack.submit({"payload": None, "target_type": 5, "instructions": ["x"]}, "json"))
    assert [(e["loc"], e["type"]) for e in d] == [
        (["body", "payload"], "missing"), (["body", "target_type"], "string_type"),
        (["body", "instructions"], "string_type")]


def test_a_body_that_is_not_json(stack, nothing_submitted):
    r = requests.post(stack.api_url + "/tasks", data=b'{"payload": ',
                      headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)
    (d,) = detail(r)
    assert d["type"] == "json_invalid" and d["loc"][0] == "body"
    assert d["msg"] == "JSON decode error"


def test_a_json_body_that_is_not_an_object(stack, nothing_submitted):
    r = requests.post(stack.api_url + "/tasks", data=b'[1]',
                      headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)
    (d,) = detail(r)
    assert d["loc"] == ["body"] and d["type"] == "dict_type"


def test_form_text_that_is_not_utf8(stack, nothing_submitted):
    r = requests.post(stack.api_url + "/tasks", data=b"payload=%FF&target_type=str",
                      headers={"Content-Type": "application/x-www-form-urlencoded"},
                      timeout=HTTP_TIMEOUT)
    (d,) = detail(r)
    assert d["loc"] == ["body", "payload"] and d["type"] == "string_unicode"


def test_a_body_over_the_limit_is_413(stack, nothing_submitted):
    r = requests.post(stack.api_url + "/tasks",
                      data={"payload": "x" * (1024 * 1024 + 1), "target_type": "str"},
                      timeout=HTTP_TIMEOUT)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_unknown_routes_and_methods(stack):
    r = requests.get(stack.api_url + "/nope", timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = requests.get(stack.api_url + "/tasks", timeout=HTTP_TIMEOUT)
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    assert r.headers["Allow"] == "POST"
    r = requests.post(stack.api_url + "/tasks/" + "0" * 32 + "/status", timeout=HTTP_TIMEOUT)
    assert r.status_code == 405


def test_instructions_are_optional(stack, fake, token):
    fake.script(token, {"value": 1})
    run_id = stack.submit_ok({"payload": json.dumps([token]), "target_type": "int"})
    assert stack.wait_status(run_id)["result"] == 1
    assert stack.run(run_id)["parameters"]["instructions"] is None
