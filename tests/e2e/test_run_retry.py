# SPDX-License-Identifier: MIT
"""Retrying a run by hand (POST /api/task_runs/{id}/retry, `errand runs retry`): a FAILED,
CRASHED or CANCELLED run runs again as a new run of the same task, parameters and options,
due now, linked to the original by retry_of; the original keeps its state and history; a
run that is not over, or COMPLETED, is refused with 409 and nothing is created."""
from conftest import PYTHON, exec_spec, run_cli, unique_task, write_script

# What a retry copies from the original run.
COPIED = ("task", "parameters", "priority", "tags", "retries", "retry_delay_seconds",
          "retry_jitter_factor", "timeout_seconds", "persist_result")


def test_a_failed_run_runs_again_as_a_new_run_linked_to_it(server, worker_factory, tmp_path):
    fixed = tmp_path / "fixed"
    script = write_script(tmp_path / "flaky.py", f"""
import pathlib, sys
params = sys.stdin.read()
if not pathlib.Path({str(fixed)!r}).exists():
    sys.exit("the upstream service is down")
print(params)
""")
    task = unique_task("flaky")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False)
    run = server.api.submit(task, {"order": 7}, priority=3, tags=["billing"],
                            retry_delay_seconds=[1, 2], timeout_seconds=60, persist_result=False)
    failed = server.api.wait_final(run["id"])
    assert failed["state"]["type"] == "FAILED", failed
    history = server.api.states(run["id"])

    fixed.touch()
    r = server.api.request("POST", f"/task_runs/{run['id']}/retry")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["id"] != run["id"] and new["retry_of"] == run["id"], new
    assert new["state"]["type"] == "SCHEDULED" and new["attempt"] == 0, new
    for field in COPIED:
        assert new[field] == failed[field], (field, new[field], failed[field])
    assert new["idempotency_key"] is None and new["cache_key"] is None
    done = server.api.wait_final(new["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == {"order": 7}, done
    assert done["retry_of"] == run["id"]

    original = server.api.get(run["id"])
    assert original["state"]["type"] == "FAILED" and original["retry_of"] is None, original
    assert server.api.states(run["id"]) == history


def test_runs_not_over_or_completed_are_not_retried(server, worker_factory):
    worker_factory(server)
    completed = server.api.submit("errand.noop", {})
    assert server.api.wait_final(completed["id"])["state"]["type"] == "COMPLETED"
    waiting = server.api.submit(unique_task("nobody.serves"), {})
    before = len(server.api.list_all())
    for run, state in ((completed, "COMPLETED"), (waiting, "SCHEDULED")):
        r = server.api.request("POST", f"/task_runs/{run['id']}/retry")
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "conflict" and state in err["message"], err
    assert len(server.api.list_all()) == before  # nothing was created


def test_the_cli_retries_a_cancelled_run(server):
    run = server.api.submit(unique_task("nobody.serves"), {"x": 1})
    server.api.cancel(run["id"])
    out = run_cli(server, "runs", "retry", run["id"])
    assert out.returncode == 0, out.stderr
    new_id, state = out.stdout.split()
    assert state == "SCHEDULED"
    new = server.api.get(new_id)
    assert new["retry_of"] == run["id"] and new["parameters"] == {"x": 1}, new
    again = run_cli(server, "runs", "retry", new_id)  # SCHEDULED: refused, with a message
    assert again.returncode != 0 and "SCHEDULED" in again.stderr, again
