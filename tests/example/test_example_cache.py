# SPDX-License-Identifier: MIT
"""
Caching by inputs, as the seed's task (and the task's version in the C app, its source in
the FastAPI app: stack.DIFFERENCES, "cache_key"): the same request again answers from the
first run's result without calling the endpoint, whatever the encoding or the spelling of
the target type; a different request calls it again.
"""
import json


def test_the_same_request_twice_answers_from_the_cache(stack, fake, token):
    fake.script(token, {"value": ["a", "b"]})
    fields = {"payload": f'{{"words": "a b {token}"}}', "target_type": "list[str]",
              "instructions": "split"}
    first = stack.submit_ok(fields)
    assert stack.wait_status(first)["result"] == ["a", "b"]

    second = stack.submit_ok(fields, "multipart")  # same fields, another encoding
    assert second != first
    # Answered at submission: completed on the very first look, no second call.
    assert stack.status(second).json() == {"task_run_id": second, "status": "completed",
                                           "result": ["a", "b"]}
    assert stack.run(second)["state"]["name"] == "Cached"
    assert stack.run(second)["cache_key"] == stack.run(first)["cache_key"]
    assert len(fake.calls(token)) == 1

    # Type names are normalised before the key is made: List[str] is list[str].
    third = stack.submit_ok({**fields, "target_type": "List[ builtins.str ]"})
    assert stack.status(third).json()["status"] == "completed"
    assert len(fake.calls(token)) == 1


def test_different_inputs_are_not_cached(stack, fake, token):
    fake.script(token, {"value": 1}, {"value": 2})
    first = stack.submit_ok({"payload": token, "target_type": "int"})
    assert stack.wait_status(first)["result"] == 1
    second = stack.submit_ok({"payload": token, "target_type": "int", "instructions": "other"})
    assert stack.wait_status(second)["result"] == 2
    assert len(fake.calls(token)) == 2


def test_a_failed_run_is_not_cached(stack, fake, token):
    fake.script(token, {"status": 401}, {"value": 5})
    fields = {"payload": token, "target_type": "int"}
    assert stack.wait_status(stack.submit_ok(fields))["status"] == "error"
    assert stack.wait_status(stack.submit_ok(fields))["result"] == 5
    assert len(fake.calls(token)) == 2


def test_a_spelled_out_target_answers_from_the_cache(stack, fake, token):
    fake.script(token, {"value": ["x"]})
    fields = {"payload": json.dumps([token]), "target_type": "list[str]"}
    first = stack.submit_ok(fields)
    assert stack.wait_status(first)["result"] == ["x"]
    second = stack.submit_ok({**fields, "target_type": "typing.List[ str ]"})
    assert stack.wait_status(second)["result"] == ["x"]
    assert stack.run(second)["state"]["name"] == "Cached"
    assert len(fake.calls(token)) == 1
