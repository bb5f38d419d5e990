# SPDX-License-Identifier: MIT
"""Failure groups (GET /api/failures) and bulk actions (POST /api/task_runs/bulk).

Failures that differ only in numbers and ids are one group, kept in step as runs fail, are
retried and are deleted. A bulk action works a page at a time (next_cursor) over exactly the
runs its filter selects, skips runs it does not apply to, and refuses to run unfiltered.
"""
from conftest import exec_spec, run_cli, unique_task


def bulk(server, expect=200, **body):
    r = server.api.request("POST", "/task_runs/bulk", json_body=body)
    assert r.status_code == expect, r.text
    return r.json()


def bulk_all(server, **body):
    done, matched, cursor = 0, 0, None
    while True:
        page = bulk(server, **body, **({"cursor": cursor} if cursor else {}))
        done += page["done"]
        matched += page["matched"]
        cursor = page["next_cursor"]
        if not cursor:
            return done, matched


def test_failures_are_grouped_and_a_group_is_retried_and_deleted(server_factory, worker_factory,
                                                                  tmp_path):
    server = server_factory()
    flaky = unique_task("flaky")
    # The message carries the process id: different each time, the same shape.
    worker_factory(server, execs=[
        exec_spec(flaky, "sh", "-c", 'echo "timeout after $$ ms on attempt $$" >&2; exit 1'),
        exec_spec("other.fail", "sh", "-c", "echo disk full >&2; exit 1")])
    ids = [server.api.submit(flaky, {"i": i})["id"] for i in range(5)]
    other = server.api.submit("other.fail", {})["id"]
    server.api.wait_all_final(ids + [other])
    groups = server.api.get_json("/failures")["groups"]
    mine = [g for g in groups if g["task"] == flaky]
    assert len(mine) == 1, groups
    g = mine[0]
    assert g["count"] == 5 and g["fingerprint"] == "timeout after # ms on attempt #"
    assert g["last_run"] in ids and g["message"].startswith("timeout after ")
    assert [x["task"] for x in server.api.get_json("/failures", params={"task": "other.fail"})[
        "groups"]] == ["other.fail"]

    # Retry the group, two a page: five new runs, linked, which fail again into the group.
    done, matched = bulk_all(server, action="retry", task=flaky, fingerprint=g["fingerprint"],
                             limit=2)
    assert (done, matched) == (5, 5)
    retried = [r for r in server.api.list_all(task=flaky) if r["retry_of"]]
    assert sorted(r["retry_of"] for r in retried) == sorted(ids)
    server.api.wait_all_final([r["id"] for r in retried])
    g = next(x for x in server.api.get_json("/failures")["groups"] if x["task"] == flaky)
    assert g["count"] == 10

    # Delete the group: the failed runs go (history and logs with them); the other task's
    # failure stays.
    done, _ = bulk_all(server, action="delete", task=flaky, fingerprint=g["fingerprint"])
    assert done == 10
    assert server.api.list_all(task=flaky) == []
    assert server.api.request("GET", f"/task_runs/{ids[0]}").status_code == 404
    assert [x["task"] for x in server.api.get_json("/failures")["groups"]] == ["other.fail"]
    stats = server.api.get_json("/stats")
    assert stats["counts"]["FAILED"] == 1


def test_bulk_cancel_pages_through_exactly_the_filter(server_factory):
    server = server_factory()
    task = unique_task("queued")
    server.api.batch([{"task": task, "parameters": {"i": i}, "tags": ["x"] if i % 2 else []}
                      for i in range(25)])
    keep = server.api.submit(unique_task("keep"), {})["id"]
    done, matched = bulk_all(server, action="cancel", task=task, tag="x", limit=4)
    assert (done, matched) == (12, 12)
    states = [r["state"]["type"] for r in server.api.list_all(task=task)]
    assert states.count("CANCELLED") == 12 and states.count("SCHEDULED") == 13
    # Cancelling again skips the runs already over.
    page = bulk(server, action="cancel", task=task, state="CANCELLED")
    assert page["done"] == 0 and page["skipped"] == 12 and page["next_cursor"] is None
    # Delete only takes finished runs.
    done, _ = bulk_all(server, action="delete", task=task)
    assert done == 12 and len(server.api.list_all(task=task)) == 13
    assert server.api.get(keep)["state"]["type"] == "SCHEDULED"
    # The CLI does the same, every page.
    r = run_cli(server, "runs", "bulk", "cancel", "--task", task)
    assert r.returncode == 0 and r.stdout.strip() == "cancel: 13 of 13 matching runs", r.stderr
    r = run_cli(server, "runs", "bulk", "explode", "--task", task)
    assert r.returncode == 2
    r = run_cli(server, "failures")
    assert r.returncode == 0


def test_bad_bulk_requests_name_the_field_and_change_nothing(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": "adm", "ERRAND_API_KEYS_READ": "rk"})
    run = server.api.submit("t.bulk", {})["id"]
    cases = [({}, "action"), ({"action": "explode", "task": "t"}, "action"),
             ({"action": "cancel"}, None), ({"action": "cancel", "state": "DONE"}, "state"),
             ({"action": "cancel", "state": [5]}, "state"), ({"action": "cancel", "task": ""}, "task"),
             ({"action": "cancel", "task": "t", "limit": 0}, "limit"),
             ({"action": "cancel", "task": "t", "limit": 5000}, "limit"),
             ({"action": "cancel", "task": "t", "cursor": "nope"}, "cursor"),
             ({"action": "cancel", "task": "t", "bogus": 1}, "bogus")]
    for body, field in cases:
        r = server.api.request("POST", "/task_runs/bulk", json_body=body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (body, r.text)
    assert server.api.get(run)["state"]["type"] == "SCHEDULED"
    r = server.api.request("GET", "/failures", params={"limit": "0"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "limit"
    import requests
    reader = {"Authorization": "Bearer rk"}
    r = requests.post(server.url + "/task_runs/bulk", json={"action": "cancel", "task": "t.bulk"},
                      headers=reader, timeout=10)
    assert r.status_code == 403
    assert requests.get(server.url + "/failures", headers=reader, timeout=10).status_code == 200
    assert server.api.get(run)["state"]["type"] == "SCHEDULED"
