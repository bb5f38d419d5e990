# SPDX-License-Identifier: MIT
"""The `errand` command line against a real server: submit (and wait), runs ls/show/logs/
cancel, workers ls, config (values and where they came from), --version, --help, exit
statuses (0 ok, 1 the server or the run said no, 2 bad command line)."""
import json
import re
import subprocess

import pytest

from conftest import run_cli, unique_task
from errand_procs import REPO


def test_version_prints_the_release_of_the_changelog(cli):
    # CHANGELOG.md's first release heading is the version's one place (scripts/version.sh).
    release = subprocess.run([str(REPO / "scripts/version.sh")], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", release), release
    cp = cli(None, "--version")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == f"errand {release}\n"


@pytest.mark.parametrize("argv", [["--help"], ["help"], ["submit", "--help"], ["worker", "--help"],
                                  ["runs", "ls", "--help"], ["server", "start", "--help"],
                                  ["config", "--help"], ["bench", "--help"], ["help", "submit"],
                                  ["runs", "--help"], ["workers", "ls", "--help"]])
def test_help_everywhere_exits_0(cli, argv):
    cp = cli(None, *argv)
    assert cp.returncode == 0, f"errand {' '.join(argv)}: {cp.returncode} {cp.stderr}"
    assert "Usage" in cp.stdout or "usage" in cp.stdout, cp.stdout


def test_unknown_command_and_option_exit_2(cli):
    assert cli(None, "frobnicate").returncode == 2
    cp = cli(None, "submit", "t", "--no-such-option")
    assert cp.returncode == 2
    assert "--no-such-option" in cp.stderr


def test_submit_wait_prints_result_and_exits_0(server, worker_factory, cli):
    worker_factory(server)
    cp = cli(server, "submit", "errand.noop", "--params", '{"greeting": "hi", "n": 7}', "--wait")
    assert cp.returncode == 0, cp.stderr
    assert "greeting" in cp.stdout and "hi" in cp.stdout, cp.stdout
    run_id = cp.stdout.split()[0]
    run = server.api.get(run_id)
    assert run["state"]["type"] == "COMPLETED" and run["result"] == {"greeting": "hi", "n": 7}


def test_submit_wait_json_prints_the_final_run(server, worker_factory, cli):
    worker_factory(server)
    cp = cli(server, "submit", "errand.noop", "--params", '{"x": 1}', "--wait", "--json")
    assert cp.returncode == 0, cp.stderr
    run = json.loads(cp.stdout)
    assert run["state"]["type"] == "COMPLETED" and run["result"] == {"x": 1}


def test_submit_wait_of_a_failing_run_exits_1(server, worker_factory, cli):
    worker_factory(server)
    cp = cli(server, "submit", "errand.sleep", "--params", '{"seconds": 30}', "--timeout", "1",
             "--wait")
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    assert "FAILED" in cp.stdout + cp.stderr


def test_submit_wait_says_once_that_no_worker_serves_the_task(server, worker_factory, cli):
    worker_factory(server)  # a live worker, but not for this task
    task = unique_task("cli.unserved")
    cp = cli(server, "submit", task, "--wait", "--wait-timeout", "3")
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    note = f"no live worker serves task '{task}'"
    assert cp.stderr.count(note) == 1, cp.stderr
    assert "still SCHEDULED after 3 s" in cp.stderr, cp.stderr


def test_submit_wait_says_nothing_while_a_worker_serves_the_task(server, worker_factory, cli):
    worker_factory(server)
    # Still SCHEDULED when the wait first asks (delayed past it), but a worker serves the task.
    cp = cli(server, "submit", "errand.noop", "--delay", "2", "--wait", "--wait-timeout", "30")
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    assert "no live worker" not in cp.stderr, cp.stderr


def test_runs_logs_of_a_run_without_lines_says_so(server, cli):
    run = server.api.submit(unique_task("cli.nolog"), {}, delay_seconds=600)
    cp = cli(server, "runs", "logs", run["id"])
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "" and f"run {run['id']} has no log lines" in cp.stderr, cp.stderr
    as_json = cli(server, "runs", "logs", run["id"], "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == {"logs": []}
    assert as_json.stderr == "", as_json.stderr


def test_submit_prints_the_id_and_sends_options(server, cli):
    task = unique_task("cli")
    cp = cli(server, "submit", task, "--params", '{"a": 1}', "--tag", "x", "--tag", "y",
             "--priority", "5", "--retries", "2", "--retry-delay", "1,10", "--delay", "60",
             "--idempotency-key", "cli-key", "--persist-result", "false")
    assert cp.returncode == 0, cp.stderr
    run_id = cp.stdout.strip()
    run = server.api.get(run_id)
    assert run["task"] == task and run["parameters"] == {"a": 1}
    assert run["tags"] == ["x", "y"] and run["priority"] == 5 and run["retries"] == 2
    assert run["retry_delay_seconds"] == [1, 10] and run["idempotency_key"] == "cli-key"
    assert run["persist_result"] is False, "an explicit no, not left to the worker"
    again = cli(server, "submit", task, "--idempotency-key", "cli-key")
    assert again.returncode == 0 and again.stdout.strip() == run_id


@pytest.mark.parametrize("params", ["{bad", "[1, 2]", '"text"', ""])
def test_submit_with_bad_params_exits_2_without_a_request(server, cli, params):
    cp = cli(server, "submit", "t.cli", "--params", params)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert "--params" in cp.stderr
    assert server.api.list(task="t.cli")["runs"] == []


def test_submit_value_refused_by_the_server_exits_2(server, cli):
    cp = cli(server, "submit", "x" * 201)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert "task" in cp.stderr


def test_submit_to_no_server_exits_1_saying_so(cli, tmp_path):
    cp = run_cli(None, "submit", "t", env={"ERRAND_API_URL": "http://127.0.0.1:1/api"},
                 timeout=60)
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "127.0.0.1:1" in cp.stderr


def test_runs_ls_json_parses_and_filters(server, cli):
    task = unique_task("cli.ls")
    ids = [server.api.submit(task, {"i": i}, tags=["t1"])["id"] for i in range(3)]
    server.api.submit(unique_task("other"), {})
    cp = cli(server, "runs", "ls", "--json", "--task", task)
    assert cp.returncode == 0, cp.stderr
    body = json.loads(cp.stdout)
    runs = body["runs"] if isinstance(body, dict) else body
    assert [r["id"] for r in runs] == list(reversed(ids))
    table = cli(server, "runs", "ls")
    assert table.returncode == 0 and all(i in table.stdout for i in ids), table.stdout


def test_runs_show_logs_cancel(server, cli):
    run = server.api.submit(unique_task("cli.show"), {"z": 26}, delay_seconds=600)
    show = cli(server, "runs", "show", run["id"], "--json")
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["id"] == run["id"]
    human = cli(server, "runs", "show", run["id"])
    assert human.returncode == 0 and "SCHEDULED" in human.stdout, human.stdout
    logs = cli(server, "runs", "logs", run["id"])
    assert logs.returncode == 0, logs.stderr
    cancel = cli(server, "runs", "cancel", run["id"])
    assert cancel.returncode == 0, cancel.stderr
    assert server.api.get(run["id"])["state"]["type"] == "CANCELLED"
    again = cli(server, "runs", "cancel", run["id"])
    assert again.returncode == 1, "cancel of a final run is refused"
    missing = cli(server, "runs", "show", "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21")
    assert missing.returncode == 1
    bad = cli(server, "runs", "show", "nope")
    assert bad.returncode in (1, 2)


def test_workers_ls_json(server, worker_factory, cli):
    worker_factory(server)
    run = server.api.submit("errand.noop", {})
    name = server.api.wait_final(run["id"])["worker"]
    cp = cli(server, "workers", "ls", "--json")
    assert cp.returncode == 0, cp.stderr
    body = json.loads(cp.stdout)
    workers = body["workers"] if isinstance(body, dict) else body
    assert name in [w["name"] for w in workers]


def test_config_json_shows_values_and_sources(cli, tmp_path):
    cp = run_cli(None, "config", "--json", env={"ERRAND_LEASE_SECONDS": "7",
                                                "ERRAND_API_KEY": "topsecret"})
    assert cp.returncode == 0, cp.stderr
    cfg = json.loads(cp.stdout)
    assert cfg["ERRAND_LEASE_SECONDS"] == {"value": 7, "source": "env"}
    assert cfg["ERRAND_SWEEP_INTERVAL_MS"] == {"value": 500, "source": "default"}
    assert cfg["ERRAND_API_KEY"]["value"] != "topsecret", "secrets are masked"
    assert cfg["ERRAND_HOME"]["source"] == "env"  # the fixture sets ERRAND_HOME
    assert cfg["ERRAND_DATABASE_URL"]["value"].endswith("/errand.db")
    assert cfg["ERRAND_DATABASE_URL"]["source"] == "default"
    for name in ("ERRAND_API_URL", "ERRAND_SERVER_API_HOST", "ERRAND_SERVER_API_PORT",
                 "ERRAND_DATABASE_SYNC", "ERRAND_LOCAL_STORAGE_PATH",
                 "ERRAND_RESULTS_PERSIST_BY_DEFAULT", "ERRAND_LOGGING_LOG_PRINTS",
                 "ERRAND_MAX_BODY_BYTES"):
        assert name in cfg, name


def test_config_flag_beats_env_beats_default(cli):
    cp = run_cli(None, "config", "--json", "--lease-seconds", "9",
                 env={"ERRAND_LEASE_SECONDS": "7"})
    assert cp.returncode == 0, cp.stderr
    cfg = json.loads(cp.stdout)
    assert cfg["ERRAND_LEASE_SECONDS"] == {"value": 9, "source": "flag"}


def test_bad_setting_value_exits_2_naming_it(cli):
    cp = run_cli(None, "config", env={"ERRAND_SERVER_API_PORT": "abc"})
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert "ERRAND_SERVER_API_PORT" in cp.stderr and "abc" in cp.stderr


def test_config_table_lists_every_setting(cli):
    cp = run_cli(None, "config")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines()[0].split() == ["NAME", "VALUE", "SOURCE"]
    assert "ERRAND_DATABASE_URL" in cp.stdout


def test_workers_ls_pages(server, cli):
    for name in ("page-a", "page-b", "page-c"):
        r = server.api.request("POST", "/workers/claim", json_body={
            "worker": name, "tasks": ["nothing"], "wait_seconds": 0})
        assert r.status_code == 200, r.text
    first = cli(server, "workers", "ls", "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert "more workers: repeat with --cursor" in first.stderr
    cursor = first.stderr.split("--cursor '", 1)[1].split("'", 1)[0]
    rest = cli(server, "workers", "ls", "--limit", "2", "--cursor", cursor, "--json")
    assert rest.returncode == 0, rest.stderr
    shown = [line.split()[0] for line in first.stdout.splitlines()[1:]]
    shown += [w["name"] for w in json.loads(rest.stdout)["workers"]]
    assert sorted(shown) == ["page-a", "page-b", "page-c"]
    bad = cli(server, "workers", "ls", "--limit", "0")
    assert bad.returncode != 0
