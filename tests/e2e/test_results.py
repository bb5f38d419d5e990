"""Results: inline in the run when small, persisted to the local result storage when asked
(per run, or by the worker's default) or when too large to inline; `errand runs result`
reads them back from wherever they live."""
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


def test_persist_by_default_on_the_worker(server, worker_factory, tmp_path):
    storage = tmp_path / "results"
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
