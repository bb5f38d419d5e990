"""`errand bench` against a real server: it finishes and prints one JSON object with the
documented keys. Its figures are reported, never asserted (no speed thresholds in tests)."""
import json

from conftest import run_cli

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
    # The runs were real: the server saw them complete.
    completed = server.api.list(state="COMPLETED", limit=1000)["runs"]
    assert completed, "bench runs are stored and completed"
