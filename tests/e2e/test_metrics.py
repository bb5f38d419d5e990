# SPDX-License-Identifier: MIT
"""GET /metrics: Prometheus histograms, gauges and counters after real traffic.

What each test guards:
  - promtool (Debian's prometheus package) finds no problem in the live text after traffic
    of several tasks, failures, retries, delayed runs, cache hits and cancels; and the alert
    rules in docs/prometheus/errand-alerts.yml pass `promtool check rules`.
  - queue wait runs from when a run was due, not from its submit: a run delayed 3 s and
    claimed as soon as it is due, and a retry after a 3 s retry delay, each waited well under
    a second (measured from submit or from the failure, they would show 3 s or more).
  - the store's gauges: 3 ready runs of a task nobody serves show as ready 3, with an
    oldest-ready age that grows between scrapes and no live worker; a delayed run is delayed,
    not ready (age 0), until it is due; a run waiting out its retry delay is delayed.
  - outcomes are counted per task and state name, and run durations per task.
  - labels stay bounded: more than METRICS_TASKS_MAX task names fold into task="other" (a
    task literally named "other" among them), and no run id appears in any label.
"""
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import exec_spec, unique_task, wait_until

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "docs" / "prometheus" / "errand-alerts.yml"
TASKS_MAX = 50  # METRICS_TASKS_MAX (src/server/metrics.h)
PROMPT_ENV = {"ERRAND_SWEEP_INTERVAL_MS": "100", "ERRAND_POLL_RECHECK_MS": "200"}
DELAY_S = 3.0
PROMPT_WAIT_S = 1.0  # well under DELAY_S: a wait measured from submit would exceed it
SCRAPES = 10
# The PostgreSQL tables whose size grows with the runs stored.
RUN_TABLES = ("task_runs", "task_run_tags", "task_run_states", "task_run_logs", "run_feed")

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(server):
    r = server.api.request("GET", server.root + "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    return r.text


def samples(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in LABEL.findall(m.group(2) or "")}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def value(text, name, **labels):
    found = [v for n, l, v in samples(text) if n == name and all(l.get(k) == x for k, x in labels.items())
             and (not labels or set(labels) <= set(l))]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def series(text, name):
    return [(l, v) for n, l, v in samples(text) if n == name]


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install prometheus (scripts/install-deps.sh test)"
    return path


def fails_once_script(tmp_path):
    marker = tmp_path / "failed-once"
    return ("sh", "-c", f'if [ -e {marker} ]; then exit 0; fi; touch {marker}; echo first >&2; exit 1')


def test_promtool_finds_no_problem_after_real_traffic(server_factory, worker_factory, tmp_path,
                                                      promtool):
    server = server_factory(env=PROMPT_ENV)
    fail_task, flaky_task, slow_task = unique_task("fail"), unique_task("flaky"), unique_task("slow")
    worker_factory(server, execs=[exec_spec(fail_task, "sh", "-c", "echo boom >&2; exit 1"),
                                  exec_spec(flaky_task, *fails_once_script(tmp_path)),
                                  exec_spec(slow_task, "sleep", "0.3")])
    ids = [server.api.submit("errand.noop", {"i": i})["id"] for i in range(5)]
    ids += [server.api.submit(fail_task, {"i": i}, retries=0)["id"] for i in range(2)]
    ids.append(server.api.submit(flaky_task, {}, retries=1, retry_delay_seconds=0.5)["id"])
    ids.append(server.api.submit(slow_task, {}, delay_seconds=0.5)["id"])
    ids += [server.api.submit("errand.noop", {"c": 1}, cache_key="k1")["id"]]
    server.api.wait_all_final(ids)
    ids.append(server.api.submit("errand.noop", {"c": 1}, cache_key="k1")["id"])  # a cache hit
    queued = [server.api.submit("never.served", {"i": i})["id"] for i in range(3)]
    server.api.submit("never.served", {}, delay_seconds=3600)
    server.api.cancel(queued[0])
    server.api.request("GET", "/no/such/path")
    server.api.get(ids[0])
    text = scrape(server)
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", (
        f"promtool: rc={r.returncode}\n{r.stdout}\n{r.stderr}\n---\n{text}")
    # Labels are bounded: route patterns, never a run id.
    assert not any(i in text for i in ids + queued), "a run id in /metrics"
    assert value(text, "errand_http_request_duration_seconds_count", method="GET",
                 route="/api/task_runs/{id}") >= 1
    assert value(text, "errand_http_request_duration_seconds_count", method="GET",
                 route="unmatched") >= 1
    assert value(text, "errand_claim_duration_seconds_count") >= 1
    assert value(text, "errand_store_commit_duration_seconds_count") >= len(ids)
    assert value(text, "errand_runs_finished_total", task="errand.noop", state="Cached") == 1
    assert value(text, "errand_runs_finished_total", task=flaky_task, state="Completed") == 1
    assert value(text, "errand_runs_finished_total", task=flaky_task, state="Failed") == 0


def test_the_alert_rules_pass_promtool(promtool):
    r = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "SUCCESS" in r.stdout, r.stdout


def test_queue_wait_runs_from_when_a_run_was_due(server_factory, worker_factory, tmp_path):
    server = server_factory(env=PROMPT_ENV)
    delayed_task, retried_task = unique_task("delayed"), unique_task("retried")
    worker_factory(server, execs=[exec_spec(delayed_task, "true"),
                                  exec_spec(retried_task, *fails_once_script(tmp_path))])
    a = server.api.submit(delayed_task, {}, delay_seconds=DELAY_S)
    b = server.api.submit(retried_task, {}, retries=1, retry_delay_seconds=DELAY_S)
    started = time.time()
    server.api.wait_all_final([a["id"], b["id"]])
    assert time.time() - started >= DELAY_S  # both really were held back
    text = scrape(server)
    assert value(text, "errand_queue_wait_seconds_count", task=delayed_task) == 1
    assert value(text, "errand_queue_wait_seconds_sum", task=delayed_task) < PROMPT_WAIT_S
    # Two claims of the retried run: the first at once, the second when its delay ended.
    assert value(text, "errand_queue_wait_seconds_count", task=retried_task) == 2
    assert value(text, "errand_queue_wait_seconds_sum", task=retried_task) < PROMPT_WAIT_S
    assert value(text, "errand_queue_wait_seconds_bucket", task=delayed_task, le="1") == 1


def test_ready_runs_of_an_unserved_task_age_in_the_gauges(server_factory, worker_factory):
    server = server_factory()
    worker_factory(server)  # serves errand.* only
    server.api.wait_final(server.api.submit("errand.noop", {})["id"])
    unserved, later = unique_task("unserved"), unique_task("later")
    for i in range(3):
        server.api.submit(unserved, {"i": i})
    server.api.submit(unserved, {"late": True}, delay_seconds=3600)
    server.api.submit(later, {}, delay_seconds=3600)
    first = scrape(server)
    assert value(first, "errand_store_ready_runs", task=unserved) == 3
    assert value(first, "errand_store_delayed_runs", task=unserved) == 1
    assert value(first, "errand_store_task_workers_alive", task=unserved) == 0
    assert value(first, "errand_store_ready_runs", task=later) == 0
    assert value(first, "errand_store_delayed_runs", task=later) == 1
    assert value(first, "errand_store_oldest_ready_age_seconds", task=later) == 0  # none ready
    age1 = value(first, "errand_store_oldest_ready_age_seconds", task=unserved)
    time.sleep(1.5)
    second = scrape(server)
    age2 = value(second, "errand_store_oldest_ready_age_seconds", task=unserved)
    assert age2 - age1 >= 1.0, (age1, age2)
    assert value(second, "errand_store_workers_alive") >= 1
    assert value(second, "errand_store_task_workers_alive", task="errand.noop") >= 1


def test_delayed_runs_become_ready_when_due_and_retries_wait_delayed(server_factory,
                                                                    worker_factory):
    server = server_factory(env=PROMPT_ENV)
    soon, failing = unique_task("soon"), unique_task("failing")
    worker_factory(server, execs=[exec_spec(failing, "sh", "-c", "exit 1")])
    server.api.submit(soon, {}, delay_seconds=1.0)
    run = server.api.submit(failing, {}, retries=1, retry_delay_seconds=3600)
    text = scrape(server)
    assert value(text, "errand_store_delayed_runs", task=soon) == 1
    assert value(text, "errand_store_ready_runs", task=soon) == 0

    def moved():
        t = scrape(server)
        return (value(t, "errand_store_ready_runs", task=soon) == 1
                and value(t, "errand_store_delayed_runs", task=soon) == 0
                and value(t, "errand_store_delayed_runs", task=failing) == 1)
    wait_until(moved, 20, "the due run ready, the failed one waiting out its retry delay")
    assert server.api.get(run["id"])["state"]["type"] == "SCHEDULED"
    server.api.cancel(run["id"])
    text = scrape(server)
    assert value(text, "errand_store_delayed_runs", task=failing) == 0
    assert value(text, "errand_store_ready_runs", task=failing) == 0


def test_outcomes_and_run_durations_are_counted_per_task(server_factory, worker_factory):
    server = server_factory()
    fail_task, slow_task = unique_task("fail"), unique_task("slow")
    worker_factory(server, execs=[exec_spec(fail_task, "sh", "-c", "exit 3"),
                                  exec_spec(slow_task, "sleep", "0.5")])
    ok = [server.api.submit("errand.noop", {"i": i})["id"] for i in range(3)]
    bad = [server.api.submit(fail_task, {"i": i}, retries=0)["id"] for i in range(2)]
    slow = server.api.submit(slow_task, {})["id"]
    queued = server.api.submit("never.served", {})["id"]
    server.api.cancel(queued)
    server.api.wait_all_final(ok + bad + [slow])
    text = scrape(server)
    expect = {("errand.noop", "Completed"): 3, (fail_task, "Failed"): 2, (slow_task, "Completed"): 1,
              ("never.served", "Cancelled"): 1}
    got = {(l["task"], l["state"]): v for l, v in series(text, "errand_runs_finished_total") if v}
    assert got == expect
    assert value(text, "errand_run_duration_seconds_count", task=slow_task) == 1
    assert 0.4 <= value(text, "errand_run_duration_seconds_sum", task=slow_task) < 30
    assert value(text, "errand_run_duration_seconds_count", task="never.served") == 0


def test_task_names_past_the_limit_fold_into_other(server_factory):
    server = server_factory()
    names = [f"fold.{i:03d}" for i in range(TASKS_MAX + 5)] + ["other"]
    runs = server.api.batch([{"task": n, "parameters": {}} for n in names])
    text = scrape(server)
    queued = {l["task"]: v for l, v in series(text, "errand_store_ready_runs")}
    assert len(queued) == TASKS_MAX + 1 and "other" in queued
    assert sum(queued.values()) == len(names)
    assert queued["other"] == 6  # 5 past the limit and the task named "other"
    for r in runs:
        server.api.cancel(r["id"])
    text = scrape(server)
    finished = {l["task"]: v for l, v in series(text, "errand_runs_finished_total")
                if l["state"] == "Cancelled"}
    assert len(finished) == TASKS_MAX + 1 and sum(finished.values()) == len(names)
    assert finished["other"] == 6
    labels = {l["task"] for l, _ in series(text, "errand_queue_wait_seconds_count")}
    assert len(labels) <= TASKS_MAX + 1


def _seq_scans(pg_cluster, schema):
    """{table: sequential scans so far} of the schema's tables, as PostgreSQL counted them."""
    out = pg_cluster.psql("SELECT pg_stat_clear_snapshot(); SELECT relname, seq_scan FROM "
                          f"pg_stat_user_tables WHERE schemaname = '{schema}';")
    scans = {}
    for line in out.splitlines():
        if "|" in line:
            name, n = line.split("|")
            scans[name] = int(n)
    return scans


@pytest.mark.postgres_only("PostgreSQL's own statistics count the scans (SQLite's plans and "
                           "row visits are bounded by unit tests)")
def test_a_scrape_scans_no_table_on_postgresql(pg_cluster, server_factory):
    schema = pg_cluster.ensure_schema(f"metrics_{uuid.uuid4().hex[:16]}")
    server = server_factory(env={"ERRAND_DATABASE_URL": pg_cluster.url(schema)})
    tasks = [unique_task("scan") for _ in range(3)]
    for task in tasks:  # ready runs, delayed ones and final ones of each task
        server.api.batch([{"task": task, "parameters": {"i": i}} for i in range(3000)])
        server.api.batch([{"task": task, "delay_seconds": 3600} for _ in range(3000)])
    for run in server.api.list_all(task=tasks[0])[:200]:
        server.api.request("POST", f"/task_runs/{run['id']}/cancel")
    pg_cluster.psql(f'SET search_path = "{schema}"; ANALYZE;')

    def settled():
        """The counts once the sessions of a stopped server have handed theirs in (a backend
        does as it ends): two reads in a row alike, a second after the stop."""
        time.sleep(1)
        last = _seq_scans(pg_cluster, schema)
        for _ in range(50):
            time.sleep(0.2)
            now = _seq_scans(pg_cluster, schema)
            if now == last:
                return now
            last = now
        raise AssertionError("PostgreSQL's statistics did not settle")

    def scans_while(action):
        """Sequential scans by a server that starts, does action and stops."""
        before = settled()
        server.start()
        action()
        server.stop()
        after = settled()
        return {t: after.get(t, 0) - before.get(t, 0) for t in after}

    def idle():
        time.sleep(0.5)

    def scrapes():
        for _ in range(SCRAPES):
            text = scrape(server)
            assert value(text, "errand_store_ready_runs", task=tasks[1]) == 3000
            assert value(text, "errand_store_delayed_runs", task=tasks[1]) == 3000
        time.sleep(0.5)

    server.stop()
    baseline = scans_while(idle)
    scraped = scans_while(scrapes)
    # No table that grows with the runs is scanned: a scan per scrape would add SCRAPES
    # there; starting and stopping adds the same to both. (The tables of figures kept per
    # task and state, per minute and per worker are small, and read whole.)
    for table in RUN_TABLES:
        assert scraped.get(table, 0) - baseline.get(table, 0) < SCRAPES, (table, baseline, scraped)
