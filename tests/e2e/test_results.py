# SPDX-License-Identifier: MIT
"""Results: inline in the run when small, persisted to the result storage when asked (per run,
or by the worker's default) or when too large to inline; read back only through the server
(GET /api/task_runs/{id}/result, `errand runs result`), which accepts and resolves result
references only as this run's file in its own storage: no path, scheme, `..` or symlink
makes a client or the server read another file."""
import json
from pathlib import Path

from conftest import PYTHON, exec_spec, run_cli, unique_task, write_script

# Returns a string of the requested size.
BIG = """
import json, sys
p = json.load(sys.stdin)
print(json.dumps({"blob": "r" * p["size"]}))
"""


def ref_path(ref):
    assert ref and ref.startswith("local://"), ref
    return Path(ref[len("local://"):])


def test_small_result_is_inline_and_not_persisted_by_default(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {"v": 1})
    done = server.api.wait_final(run["id"])
    assert done["result"] == {"v": 1}
    assert done.get("result_ref") in (None, ""), done


def test_persist_result_per_run_writes_the_result_file(server, worker_factory):
    worker_factory(server)
    run = server.api.submit("errand.noop", {"keep": "me"}, persist_result=True)
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    path = ref_path(done["result_ref"])
    assert path.exists(), path
    assert json.loads(path.read_text()) == {"keep": "me"}
    assert run["id"] in path.name
    assert done["result"] == {"keep": "me"}, "small results are inlined as well"


def test_persist_by_default_on_the_worker(server_factory, worker_factory, tmp_path):
    storage = tmp_path / "results"
    server = server_factory(env={"ERRAND_LOCAL_STORAGE_PATH": storage})
    worker_factory(server, env={"ERRAND_RESULTS_PERSIST_BY_DEFAULT": "true",
                                "ERRAND_LOCAL_STORAGE_PATH": storage})
    done = server.api.wait_final(server.api.submit("errand.noop", {"d": 1})["id"])
    path = ref_path(done["result_ref"])
    assert path.parent.resolve() == storage.resolve()
    assert json.loads(path.read_text()) == {"d": 1}
    # persist_result false on the run beats the worker's default
    done2 = server.api.wait_final(server.api.submit("errand.noop", {"d": 2},
                                                    persist_result=False)["id"])
    assert done2.get("result_ref") in (None, ""), done2


def test_worker_flag_false_beats_the_environment_true(server, worker_factory, tmp_path):
    # `errand worker` tells liberrand "no" outright (ERRAND_NO): a false left at liberrand's
    # zero, its "default", would fall back to the environment's true.
    storage = tmp_path / "results"
    worker_factory(server, env={"ERRAND_RESULTS_PERSIST_BY_DEFAULT": "true",
                                "ERRAND_LOCAL_STORAGE_PATH": storage},
                   args=["--results-persist-by-default=false"])
    done = server.api.wait_final(server.api.submit("errand.noop", {"d": 3})["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done.get("result_ref") in (None, ""), done
    assert not storage.exists() or not any(storage.iterdir())


def test_large_result_goes_to_storage_and_reads_back(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "big.py", BIG)
    task = unique_task("big")
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False)
    size = 200_000  # over the 64 KiB inline limit
    done = server.api.wait_final(server.api.submit(task, {"size": size})["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done.get("result") is None, "too large to inline"
    path = ref_path(done["result_ref"])
    assert json.loads(path.read_text()) == {"blob": "r" * size}
    cp = run_cli(server, "runs", "result", done["id"])
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == {"blob": "r" * size}


def test_runs_result_of_a_failed_run_exits_1(server, worker_factory, tmp_path):
    script = write_script(tmp_path / "fail.sh", "#!/bin/sh\necho 'bad thing' >&2\nexit 3\n")
    task = unique_task("fail")
    worker_factory(server, execs=[exec_spec(task, script)], builtin=False)
    done = server.api.wait_final(server.api.submit(task, {})["id"])
    assert done["state"]["type"] == "FAILED"
    cp = run_cli(server, "runs", "result", done["id"])
    assert cp.returncode == 1
    assert "bad thing" in cp.stderr


def report_ref(server, task, ref):
    """Claims the one run of task by hand and reports it COMPLETED with result_ref = ref
    (which may mention the run id as {id}); returns the run id and the raw answer."""
    run = server.api.submit(task, {})
    claim = server.api.request("POST", "/workers/claim", json_body={
        "worker": "w", "tasks": [task], "wait_seconds": 5}).json()["runs"][0]
    r = server.api.request("POST", "/workers/report", json_body={"worker": "w", "reports": [
        {"id": run["id"], "lease_token": claim["lease_token"], "state": "COMPLETED",
         "result_ref": ref.format(id=run["id"])}]})
    return run["id"], r


def test_result_references_outside_the_runs_own_file_are_refused(server, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    other = "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21"
    for ref in ("local://" + str(secret), "local:///etc/passwd", str(secret),
                "s3://bucket/{id}.json", "file:///tmp/{id}.json", "/tmp/{id}.json",
                f"local:///tmp/{other}.json", "local:///tmp/{id}.json/..", "local://{id}.json",
                "local:///tmp/{id}.JSON.txt"):
        run_id, r = report_ref(server, unique_task("ref"), ref)
        assert r.status_code == 400, (ref, r.text)
        err = r.json()["error"]
        assert err["field"] == "reports[0].result_ref", err
        assert server.api.get(run_id)["state"]["type"] == "PENDING", "nothing applied"


def test_an_accepted_reference_points_into_the_servers_storage(server, tmp_path):
    """Whatever directory the worker names (its own mount, `..` in it), the stored reference
    is the run's file in the server's storage, and the result is read from there only."""
    run_id, r = report_ref(server, unique_task("ref"), "local:///elsewhere/../x/{id}.json")
    assert r.status_code == 200, r.text
    done = server.api.get(run_id)
    path = ref_path(done["result_ref"])
    assert path.name == run_id + ".json" and path.parent == server.home / "storage", path
    gone = server.api.request("GET", f"/task_runs/{run_id}/result")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found", gone.text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"from": "storage"}')
    r = server.api.request("GET", f"/task_runs/{run_id}/result")
    assert r.status_code == 200 and r.json() == {"from": "storage"}, r.text
    assert r.headers["Content-Type"].startswith("application/json")


def test_a_symlinked_result_file_is_not_followed(server, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    run_id, r = report_ref(server, unique_task("ref"), "local:///w/{id}.json")
    assert r.status_code == 200, r.text
    path = ref_path(server.api.get(run_id)["result_ref"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(secret)
    r = server.api.request("GET", f"/task_runs/{run_id}/result")
    assert r.status_code == 404, r.text
    assert "hunter2" not in r.text
    cp = run_cli(server, "runs", "result", run_id)
    assert cp.returncode != 0 and "hunter2" not in cp.stdout + cp.stderr, cp


def test_result_endpoint_serves_inline_cached_and_unfinished_runs(server, worker_factory):
    worker_factory(server)
    done = server.api.wait_final(server.api.submit(
        "errand.noop", {"c": 1}, persist_result=True, cache_key="res-k")["id"])
    r = server.api.request("GET", f"/task_runs/{done['id']}/result")
    assert r.status_code == 200 and r.json() == {"c": 1}, r.text
    hit = server.api.submit("errand.noop", {"c": 1}, cache_key="res-k")
    assert hit["state"]["name"] == "Cached" and hit["result_ref"] == done["result_ref"], hit
    r = server.api.request("GET", f"/task_runs/{hit['id']}/result")
    assert r.status_code == 200 and r.json() == {"c": 1}, r.text
    later = server.api.submit("nobody.serves.this", {})
    r = server.api.request("GET", f"/task_runs/{later['id']}/result")
    assert r.status_code == 409 and "SCHEDULED" in r.json()["error"]["message"], r.text
