# SPDX-License-Identifier: MIT
"""`errand bench` against a real server: it finishes and prints one JSON object with the
documented keys. Its figures are reported, never asserted (no speed thresholds in tests).
A bench whose runs do not all complete exits 1 and says why."""
import json
import re

from conftest import PYTHON, exec_spec, run_cli, unique_task, write_script
from recording_proxy import RecordingProxy

KEYS = ("submit_per_s", "e2e_per_s", "p50_ms", "p90_ms", "p99_ms")


def test_bench_json_prints_the_documented_keys(server):
    cp = run_cli(server, "bench", "--runs", "2000", "--json", timeout=240)
    assert cp.returncode == 0, cp.stderr[-2000:]
    result = json.loads(cp.stdout)
    assert isinstance(result, dict), cp.stdout
    for key in KEYS:
        assert key in result, f"bench --json lacks '{key}': {result}"
        assert isinstance(result[key], (int, float)) and result[key] > 0, (key, result[key])
    assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"], result
    assert result["not_completed"] == {}, result
    # The runs were real: the server saw them complete.
    completed = server.api.list(state="COMPLETED", limit=1000)["runs"]
    assert completed, "bench runs are stored and completed"
    # Its batches (errand_submit_batch) gave every run a retry key of its own, drawn for the
    # whole batch at once: the time, then 20 random hex digits.
    runs = [r for r in server.api.list_all(task="errand.noop")
            if r["parameters"].get("i") is not None]
    keys = [r["idempotency_key"] for r in runs]
    assert len(runs) >= 2000, len(runs)
    assert len(set(keys)) == len(keys), "each run its own key"
    assert all(re.fullmatch(r"errand-retry-[0-9a-f]{32}", k) for k in keys), keys[:3]
    assert len({k[25:] for k in keys}) == len(keys), "the random part differs from run to run"


def test_bench_batches_ask_for_minimal_answers(server, worker_factory):
    """The bench submits with errand_submit_batch and no `out`: liberrand asks for the ids alone
    (Prefer: return=minimal) and the server answers so, as seen on the wire between them."""
    worker_factory(server)
    proxy = RecordingProxy(server.port)
    try:
        cp = run_cli(server, "bench", "--workers", "0", "--runs", 300, "--batch", 100,
                     "--latency-runs", 0, env={"ERRAND_API_URL": proxy.url}, timeout=240)
    finally:
        proxy.close()
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(proxy.batches) >= 3, [b[1] for b in proxy.batches]
    for request, status, answer, body in proxy.batches:
        prefer = {k.lower(): v for k, v in request.items()}.get("prefer", "")
        assert "return=minimal" in prefer, request
        assert status == 201, (status, body[:200])
        assert {k.lower(): v for k, v in answer.items()}.get("preference-applied") == \
            "return=minimal", answer
        runs = json.loads(body)["runs"]
        assert len(runs) == 100 and all(list(r) == ["id"] for r in runs), body[:200]


# Fails every FAIL_EVERY-th bench run (the bench numbers its runs in the parameter "i"), with
# a message on stderr, as a broken task would.
FAIL_EVERY = 4
FAILING = f"""
import json, sys
p = json.load(sys.stdin)
if p["i"] % {FAIL_EVERY} == 0:
    print("boom: bench run", p["i"], "fails", file=sys.stderr)
    sys.exit(3)
"""
RUNS = 40


def test_bench_exits_1_and_says_how_runs_ended_when_some_do_not_complete(server, worker_factory,
                                                                        tmp_path):
    """The bench's runs are served by a worker whose task fails one run in four: the bench
    prints its summary, says on stderr how many runs ended in which state with a sample run
    and its message, and exits 1 (it measured failing runs, not the platform)."""
    task = unique_task("benchfail")
    script = write_script(tmp_path / "failing.py", FAILING)
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)], builtin=False,
                   args=["--concurrency", "4"])
    cp = run_cli(server, "bench", "--workers", "0", "--task", task, "--runs", RUNS,
                 "--batch", 10, timeout=240)
    failed = RUNS // FAIL_EVERY
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert f"{RUNS - failed} completed, {failed} failed" in cp.stdout, cp.stdout
    assert "skipped: bench runs did not complete" in cp.stdout, cp.stdout
    m = re.search(rf"errand bench: {failed} of {RUNS} bench runs of {re.escape(task)} did not "
                  rf"complete: {failed} FAILED \(e\.g\. run (\S+): boom: bench run (\d+) fails\)",
                  cp.stderr)
    assert m, cp.stderr
    sample = server.api.get(m.group(1))
    assert sample["task"] == task and sample["state"]["type"] == "FAILED", sample
    assert sample["parameters"]["i"] == int(m.group(2)), sample

    cp = run_cli(server, "bench", "--workers", "0", "--task", task, "--runs", RUNS,
                 "--batch", 10, "--json", timeout=240)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    result = json.loads(cp.stdout)
    assert result["failed"] == failed, result
    nc = result["not_completed"]
    assert list(nc) == ["FAILED"] and nc["FAILED"]["runs"] == failed, nc
    assert nc["FAILED"]["sample_message"].startswith("boom: bench run"), nc
    assert "did not complete" in cp.stderr, cp.stderr
