# SPDX-License-Identifier: MIT
"""The Python worker runtime (errand.serve, clients/python) and @errand.task against a real
server: tasks served in Python for a submission from C and the other way round, the pool of
child processes (forked by a fork server of one thread, a timeout kills a task that never
returns, a task holding the GIL keeps its lease, a crash ends one run, children recycled after
N runs or N MB), stopping with SIGTERM, a cancel reaching a task that never checks, a kill -9
of the worker mid-run, and the testing helpers. The worker-protocol behaviours shared with
the C runtime are the conformance suite's (ERRAND_CONFORMANCE_RUNTIME=
python_runtime:PythonRuntime, tests/conformance/)."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from errand_procs import (ERRAND, REPO, Process, START_TIMEOUT, child_env, log_fields,
                          log_msg_is, parse_ts, run_cli, wait_until)

sys.path.insert(0, str(REPO / "clients" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import errand  # noqa: E402
import errand.testing  # noqa: E402
from errand import errors  # noqa: E402
import py_runtime_tasks as t  # noqa: E402

WORKER = Path(__file__).resolve().parent / "py_runtime_tasks.py"


class PyWorker:
    def __init__(self, proc):
        self.proc = proc
        line = proc.wait_line(lambda l: log_msg_is(l, "worker started"), START_TIMEOUT,
                              "the 'worker started' log line")
        self.name = log_fields(line).get("worker")

    def stop(self, timeout=60):
        return self.proc.stop(timeout)


@pytest.fixture
def py_worker(tmp_path):
    """Starts `python3 py_runtime_tasks.py OPTIONS` against a server; stopped at teardown,
    where it must exit 0 after SIGTERM."""
    workers = []

    def make(server, env=None, **options):
        n = len(workers) + 1
        extra = {"ERRAND_API_URL": server.url, **(env or {})}
        if server.key:
            extra["ERRAND_API_KEY"] = server.key
        proc = Process([sys.executable, WORKER, json.dumps(options)],
                       child_env(server.home, extra), tmp_path / f"py-worker-{n}.log",
                       f"py-worker#{n}")
        w = PyWorker(proc)
        workers.append(w)
        return w

    yield make
    for w in workers:
        if w.proc.running():
            rc = w.stop()
            assert rc == 0, f"{w.name} exited with {rc}:\n{w.proc.tail()}"


@pytest.fixture
def client(server):
    c = errand.Client(server.url, server.key)
    errand.set_client(c)
    yield c
    errand.set_client(None)


def test_a_python_worker_serves_a_run_submitted_from_c(server, py_worker, client):
    """`errand submit` (liberrand) → errand.serve: the dataclass result arrives as JSON, the
    task's prints as the run's log lines."""
    py_worker(server)
    cp = run_cli(server, "submit", "py.greet", "--params", '{"name": "C"}', "--json")
    assert cp.returncode == 0, cp.stderr
    run_id = json.loads(cp.stdout)["id"]
    done = client.wait(run_id, timeout=30)
    assert done.state.is_completed(), done.state
    assert done.result == {"text": "hello, C!", "words": 2}
    assert [entry["message"] for entry in client.logs(run_id)] == ["greeting C", "second line"]


def test_a_c_worker_serves_a_run_submitted_with_delay(server, worker_factory, client):
    """fn.delay() → `errand worker --builtin`: parameters bound by the signature."""
    worker_factory(server)

    @errand.task(name="errand.noop")
    def noop(hello, n=1, **more):
        raise AssertionError("runs on the C worker, not here")

    future = noop.delay("c", n=2, extra=[1])
    assert future.task_run_id and future.state.type in ("SCHEDULED", "PENDING", "RUNNING",
                                                         "COMPLETED")
    assert future.result(timeout=30) == {"hello": "c", "n": 2, "extra": [1]}
    assert future.state.is_completed()


def test_async_tasks_model_dump_results_and_persisted_results(server, py_worker, client):
    py_worker(server, env={"ERRAND_LOCAL_STORAGE_PATH": str(server.home / "storage")})
    assert t.model.delay(7).result(timeout=30) == {"x": 7, "async_task": True,
                                                   "dumped_as": "json"}
    future = t.persist.delay(100_000)  # over the 64 KiB inline limit
    assert future.result(timeout=30) == {"data": "x" * 100_000}
    run = future.wait(1)
    assert run.result_ref and not run.has_inline_result, run.raw
    assert (server.home / "storage" / f"{run.id}.json").exists()


def test_a_failed_run_keeps_the_traceback(server, py_worker, client):
    py_worker(server)
    with pytest.raises(errors.TaskRunFailed) as e:
        t.fail.delay("no luck").result(timeout=30)
    message = e.value.run.state.message
    assert "ValueError: no luck" in message and "Traceback (most recent call last)" in message
    assert "in deeper" in message, message


def test_a_timeout_kills_a_task_that_never_returns(server, py_worker, client):
    """py.spin is `while True: pass` with timeout_seconds=1. With one child, the next run can
    only start once that child is gone: killed, not merely told."""
    py_worker(server, limit=1)
    spun = t.spin.delay()
    after = t.pid.delay()
    with pytest.raises(errors.TaskRunFailed, match="timed out after 1s"):
        spun.result(timeout=30)
    assert isinstance(after.result(timeout=30), int)


LEASE_S = 2
HOG_S = 5


def test_a_task_holding_the_gil_does_not_starve_the_heartbeats(server_factory, py_worker,
                                                                 client):
    """A task that holds the GIL for 5 s (sum() over a range: no switch until it returns)
    under 2 s leases: its heartbeats go on (the task runs in another process), so the run
    completes with no lease expiry."""
    server = server_factory(env={"ERRAND_SWEEP_INTERVAL_MS": 100})
    c = errand.Client(server.url, server.key)
    py_worker(server, lease_seconds=LEASE_S)
    run = c.submit("py.gil_hog", {"seconds": HOG_S}, retries=0)
    done = c.wait(run.id, timeout=60)
    assert done.state.is_completed(), done.state
    assert done.result["held_s"] > LEASE_S, "the GIL was held longer than a lease"
    assert done.raw["redeliveries"] == 0 and done.attempt == 1, done.raw
    assert [s["type"] for s in c.states(run.id)] == ["SCHEDULED", "PENDING", "RUNNING",
                                                     "COMPLETED"]


def test_a_crashing_task_ends_its_run_not_the_worker(server, py_worker, client):
    """os._exit and a segfault each fail their run (retried per its policy: retries=1 gives
    two attempts), with how the process died; the worker serves on."""
    w = py_worker(server, limit=1)
    segv = client.submit("py.crash", {"how": "segv"}, retries=1, retry_delay_seconds=0)
    exited = client.submit("py.crash", {"how": "exit"}, retries=0)
    done = client.wait(segv.id, timeout=30)
    assert done.state.is_failed() and done.attempt == 2, done.raw
    assert "killed by signal 11, SIGSEGV" in done.state.message, done.state
    done = client.wait(exited.id, timeout=30)
    assert done.state.is_failed() and "exited with status 3" in done.state.message, done.state
    assert isinstance(t.pid.delay().result(timeout=30), int)
    assert w.proc.running()


def test_task_processes_are_forked_by_a_one_thread_fork_server(server, py_worker, client):
    """A fork of the threaded worker would copy the locks its other threads held at that
    instant, and the child could wait on one for ever: each task process is forked by a
    keeper, forked by the fork server, forked by the worker before its threads started — both
    one thread. 40 runs at limit 4 with a new child each (max_tasks_per_child=1: forks while
    the worker's threads run) all complete, in 40 processes under the one server, each holding
    no descriptor beyond stdin/out/err but its own socket (no other child's, no status or
    control socket, not the dispatcher's selector or wake pipe)."""
    w = py_worker(server, limit=4, max_tasks_per_child=1)
    futures = [t.lineage.delay() for _ in range(40)]
    results = [f.result(timeout=60) for f in futures]
    servers = set()
    for r in results:
        task, keeper, fork_server, worker = r["chain"]
        assert keeper["threads"] == 1 and fork_server["threads"] == 1, r
        assert worker["pid"] == w.proc.pid, r
        assert worker["threads"] > 1, "the worker's threads run meanwhile"
        servers.add(fork_server["pid"])
        fds = list(r["fds"].values())
        assert len(fds) == 1 and fds[0].startswith("socket:"), r["fds"]
    assert len(servers) == 1, servers
    pids = {r["chain"][0]["pid"] for r in results}
    assert len(pids) == 40, f"{len(pids)} processes for 40 runs"


def test_a_worker_whose_fork_server_died_hands_its_run_back_and_stops(server, py_worker,
                                                                       client):
    """Without its fork server a worker can start no task process (forking itself, threaded,
    is what the server avoids): the fork server killed, its children die with it, and the next
    run is handed back unstarted (free: attempt and redeliveries untouched) as the worker
    stops, with an error for its supervisor to start it again; another worker runs it."""
    w = py_worker(server, limit=1)
    fork_server, = _children(w.proc.pid)
    below = _descendants(fork_server)
    assert len(below) == 2, f"a keeper and its task process: {below}"
    os.kill(fork_server, signal.SIGKILL)
    wait_until(lambda: not any(_alive(p) for p in below), 10, "the keeper and task to die")
    run = client.submit("py.pid", {}, retries=0)
    assert w.proc.wait(30) == 1, w.proc.tail()
    err = w.proc.stderr_text()
    assert "the worker's fork server is gone" in err and "start it again" in err, err
    assert client.get(run.id).state.is_scheduled()
    py_worker(server)
    done = client.wait(run.id, timeout=30)
    assert done.state.is_completed() and done.attempt == 1, done.raw
    assert done.raw["redeliveries"] == 0, done.raw


def test_children_are_recycled_after_n_runs(server, py_worker, client):
    py_worker(server, limit=1, max_tasks_per_child=2)
    pids = [t.pid.delay().result(timeout=30) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4], pids


def test_children_are_recycled_after_n_mb(server, py_worker, client):
    py_worker(server, limit=1, max_memory_per_child=200)
    pids = [t.pid.delay().result(timeout=30) for _ in range(2)]
    big = t.pid.delay(allocate_mb=300).result(timeout=30)
    assert pids[0] == pids[1] == big, "the same child while under 200 MB"
    assert t.pid.delay().result(timeout=30) != big, "replaced: its peak passed 200 MB"


def test_sigterm_lets_a_running_task_finish_within_the_grace(server, py_worker, client):
    """A task that ends within the grace period completes on the stopping worker, which then
    exits 0 (the hand-back when the grace runs out is the conformance suite's)."""
    w = py_worker(server, grace_seconds=20)
    run = client.submit("py.sleep", {"seconds": 2}, retries=0)
    wait_until(lambda: client.get(run.id).state.is_running(), 30, "RUNNING")
    assert w.stop() == 0, w.proc.tail()
    done = client.get(run.id)
    assert done.state.is_completed() and done.worker == w.name, done.raw
    assert done.raw["redeliveries"] == 0


def test_a_cancel_kills_a_task_that_never_checks(server, py_worker, client, tmp_path):
    """py.sleep never looks at should_stop(): its child is killed after CANCEL_KILL_S, the
    run ends CANCELLED long before its 60 s sleep or the 30 s lease."""
    py_worker(server)
    pid_file = tmp_path / "task.pid"
    run = client.submit("py.sleep", {"seconds": 60, "pid_file": str(pid_file)})
    wait_until(lambda: client.get(run.id).state.is_running() and pid_file.exists(), 30,
               "RUNNING")
    client.cancel(run.id)
    done = client.wait(run.id, timeout=20)
    assert done.state.is_cancelled(), done.state
    states = client.states(run.id)
    took = parse_ts(states[-1]["timestamp"]) - parse_ts(states[-2]["timestamp"])
    assert took < 10, f"CANCELLING to CANCELLED took {took:.1f} s"
    wait_until(lambda: not _alive(int(pid_file.read_text())), 5, "the task's child killed")


def test_kill9_of_a_python_worker_mid_run_the_run_completes_elsewhere(server_factory,
                                                                       py_worker, tmp_path):
    """The worker dies with SIGKILL while its task runs: the task's child dies with it (no
    orphan running on), and the run is redelivered to another worker once the lease ran
    out, with retries 0."""
    server = server_factory(env={"ERRAND_SWEEP_INTERVAL_MS": 100})
    c = errand.Client(server.url, server.key)
    # A plain process whose output goes to a file: the harness's Process reads its pipes,
    # and that must not be what ends the task's child.
    log = tmp_path / "first-worker.log"
    env = child_env(server.home, {"ERRAND_API_URL": server.url, "ERRAND_API_KEY": server.key})
    with open(log, "wb") as out:
        first = subprocess.Popen([sys.executable, WORKER, json.dumps({"lease_seconds": 2})],
                                 env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
    wait_until(lambda: 'msg="worker started"' in log.read_text(), START_TIMEOUT,
               "the first worker to start")
    pid_file = tmp_path / "task.pid"
    run = c.submit("py.sleep", {"seconds": 6, "pid_file": str(pid_file)}, retries=0)
    wait_until(lambda: c.get(run.id).state.is_running() and pid_file.exists(), 30, "RUNNING")
    task_pid = int(pid_file.read_text())
    second = py_worker(server, lease_seconds=2)
    first.kill()
    first.wait()
    # Well before the task's 6 s sleep would end on its own.
    wait_until(lambda: not _alive(task_pid), 2, "the task's child to die with its worker")
    done = c.wait(run.id, timeout=60)
    assert done.state.is_completed() and done.worker == second.name, done.raw
    # Redelivered because the dead worker's lease ran out, not charged to the retries (0). A
    # 2 s lease on a loaded machine may run out once more under the second worker, if its
    # heartbeat comes late: at least one redelivery, the first the dead worker's.
    states = server.api.states(run.id)
    expired = [s["message"] for s in states if "lease expired" in s["message"]]
    assert done.attempt == 1 and done.raw["redeliveries"] >= 1 and expired, (done.raw, states)
    assert expired[0].endswith(f"-{first.pid}") or f"-{first.pid};" in expired[0], expired


def _children(pid):
    kids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                kids.append(int(entry.name))
        except OSError:
            pass  # ended meanwhile
    return kids


def _descendants(pid):
    found = []
    for kid in _children(pid):
        found += [kid] + _descendants(kid)
    return found


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not reaped yet by a dead parent's reaper) is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# ---- tasks and the testing helpers without a worker -------------------------------------

def test_the_default_cache_key_is_inputs_and_source():
    @errand.task(name="k.one", persist_result=True)
    def one(a, b=2):
        return a

    @errand.task(name="k.one", persist_result=True)
    def other_source(a, b=2):
        return a + 0

    key = one.cache_key(one.parameters(1))
    assert key == one.cache_key({"a": 1}) != one.cache_key({"a": 2})
    assert key != other_source.cache_key({"a": 1}), "the source is part of the key"
    assert errand.task(name="k.two")(lambda a: a).cache_key({"a": 1}) is None, \
        "no key when results are not persisted"
    custom = errand.task(name="k.three", cache_key_fn=lambda ctx, p: f"{ctx.task_name}:{p['a']}")
    assert custom(lambda a: a).cache_key({"a": 5}) == "k.three:5"


def test_a_task_is_named_after_its_function_and_still_callable():
    @errand.task
    def create_structured_output(payload, target="str"):
        return [payload, target]

    assert create_structured_output.name == "create_structured_output"
    assert create_structured_output("p") == ["p", "str"], "a plain call runs the function"
    assert errand.context() is None, "outside a served task"


def test_the_encoder_hook():
    class Money:
        def __init__(self, cents):
            self.cents = cents

    @errand.task(name="enc.pay")
    def pay(amount, greeting):
        return amount

    assert pay.parameters(t.Model(a=1), t.Greeting("hi", 1)) == {
        "amount": {"a": 1, "dumped_as": "json"}, "greeting": {"text": "hi", "words": 1}}
    with pytest.raises(TypeError, match="set_encoder"):
        pay.parameters(Money(5), None)
    errand.set_encoder(lambda o: {"cents": o.cents} if isinstance(o, Money)
                       else errand.encoding.default_encoder(o))
    try:
        assert pay.parameters(Money(5), None)["amount"] == {"cents": 5}
    finally:
        errand.set_encoder(None)


def test_eager_mode_runs_delay_inline():
    with errand.testing.eager():
        assert t.greet.delay("eager").result() == {"text": "hello, eager!", "words": 2}
        assert t.model.delay(1).result()["async_task"] is True
        with pytest.raises(errors.TaskRunFailed, match="ValueError: boom"):
            t.fail.delay("boom").result()


def test_the_errand_server_helper(tmp_path):
    with errand.testing.errand_server(binary=str(ERRAND)) as s:
        c = s.client()
        assert c.health()["status"] == "ready"
        run = c.submit("nobody.serves.this", {"x": 1})
        assert c.get(run.id).state.is_scheduled()
    with pytest.raises(errors.ConnectionFailed):
        errand.Client(s.url, submit_retry_seconds=0).health()


def test_traceparent_is_sent_only_when_there_is_one(monkeypatch):
    monkeypatch.delenv("TRACEPARENT", raising=False)
    assert "traceparent" not in errand.submission("t", {})
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with errand.trace_context(tp):
        assert errand.submission("t", {})["traceparent"] == tp
    monkeypatch.setenv("TRACEPARENT", tp)
    assert errand.submission("t", {})["traceparent"] == tp
    assert errand.submission("t", {}, traceparent="00-other")["traceparent"] == "00-other"


def test_a_run_passes_its_traceparent_to_the_runs_it_submits(server, py_worker, client):
    py_worker(server)
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    run = client.submit("py.traceparent", {}, traceparent=tp)
    result = client.result(run.id, timeout=30)
    assert result["seen"] == tp  # errand.context().traceparent: the run's own
    child = client.get(result["child"]).raw.get("traceparent")
    # the subtask joins the trace as a child span: same trace id and flags, a new parent id
    assert child[:36] == tp[:36] and child[52:] == tp[52:] and child[36:52] != tp[36:52]


def test_the_worker_logs_json_with_run_and_trace_ids_when_asked(server, py_worker, client):
    """ERRAND_LOGGING_FORMAT=json and ERRAND_LOGGING_LEVEL, as the C side reads them: one JSON
    object a line, numbers as numbers, and the run and trace ids on lines about a run."""
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    w = py_worker(server, env={"ERRAND_LOGGING_FORMAT": "json", "ERRAND_LOGGING_LEVEL": "debug"},
                  limit=1)
    traced = client.submit("py.pid", {}, traceparent=tp)
    plain = client.submit("py.pid", {})
    for run in (traced, plain):
        client.result(run.id, timeout=30)
    events = [json.loads(line) for line in w.proc.stderr_text().splitlines() if line.strip()]
    assert all({"ts", "level", "msg"} <= e.keys() for e in events), events
    started = [e for e in events if e["msg"] == "worker started"]
    assert started and started[0]["concurrency"] == 1, started  # a number
    runs = {e["run"]: e for e in events if e["msg"] == "task run started"}
    assert runs[traced.id]["trace_id"] == tp[3:35], runs
    assert runs[traced.id]["attempt"] == 1, runs
    assert "trace_id" not in runs[plain.id], runs
    # At the default level the debug lines are left out.
    w2 = py_worker(server, env={"ERRAND_LOGGING_FORMAT": "json"}, limit=1)
    w.stop()
    quiet = client.submit("py.pid", {})
    client.result(quiet.id, timeout=30)
    assert not [l for l in w2.proc.stderr_text().splitlines() if '"level":"debug"' in l]
