# SPDX-License-Identifier: MIT
"""
test_schedules.py — schedules over the wire (docs/api.md, Schedules), on real servers:

  - two servers on one store (one SQLite file, or one PostgreSQL schema under
    ERRAND_TEST_STORE=postgresql) fire an interval schedule of 1 s; one of them is killed
    with SIGKILL across tick boundaries, again and again, and restarted: every tick from the
    first to the last has exactly one run (counted from the store: the runs tagged
    schedule:<name>, by the tick in their idempotency key) — no duplicate, no gap;
  - both servers stopped across several ticks: catch_up "skip" makes no run for the missed
    ticks, "once" makes exactly one, for the first missed tick; ticks on time fire as usual;
  - a cron schedule in Europe/Berlin across both daylight-saving changes of 2027, with the
    server's scheduler clock set a few seconds before each (ERRAND_SCHEDULER_CLOCK_OFFSET_
    SECONDS, a setting, not a mock: the real scheduler, store and submission run on a
    clock shifted by a constant): the skipped 02:30 fires at 03:00 CEST, once; the repeated
    02:59 fires at its first occurrence and not again an hour later;
  - bad schedules are refused with 400 naming the field.

The runs' own times are stamped with the wall clock; the ticks with the scheduler's.
"""
import collections
import re
import time
import uuid
from datetime import datetime, timezone

import pytest

import json

from conftest import STORE_MODE, parse_ts, run_cli, unique_task, wait_until

SCHEDULER_MS = 200  # the servers' look interval (they also wake at each next tick)
KILL_ROUNDS = 6
# Where in a second each kill lands, relative to a tick boundary (s): before, at, just after
# (mid-fire), well after.
KILL_OFFSETS = (-0.05, 0.0, 0.002, 0.01, 0.03, 0.3)
KEY = re.compile(r"^schedule:(?P<name>[^:]+):(?P<tick>.+)$")


@pytest.fixture
def shared_url(tmp_path, pg_cluster):
    """One store for several servers: a PostgreSQL schema of this test's own, or a SQLite
    file outside every server's home."""
    if STORE_MODE == "postgresql":
        return pg_cluster.url(pg_cluster.ensure_schema(f"sched_{uuid.uuid4().hex[:16]}"))
    return f"sqlite://{tmp_path}/shared.db"


def shared_servers(server_factory, url, n=2, env=None):
    base = {"ERRAND_DATABASE_URL": url, "ERRAND_SCHEDULER_INTERVAL_MS": str(SCHEDULER_MS)}
    return [server_factory(env={**base, **(env or {})}) for _ in range(n)]


def put_schedule(api, expect=201, **body):
    r = api.request("POST", "/schedules", json_body=body)
    assert r.status_code == expect, f"POST /schedules {body} -> {r.status_code} {r.text}"
    return r.json()


def control(api, action, name, expect=200):
    r = api.request("POST", f"/schedules/{action}", json_body={"name": name})
    assert r.status_code == expect, f"{action} {name} -> {r.status_code} {r.text}"
    return r.json()


def get_schedule(api, name):
    found = [s for s in api.get_json("/schedules")["schedules"] if s["name"] == name]
    assert found, f"no schedule {name}"
    return found[0]


def runs_by_tick(api, name):
    """{tick (Unix ms): [runs]} of the schedule's runs, as the store has them."""
    ticks = collections.defaultdict(list)
    for run in api.list_all(tag=f"schedule:{name}"):
        m = KEY.match(run["idempotency_key"] or "")
        assert m and m["name"] == name, f"a run of schedule {name} without its key: {run}"
        ticks[ms(m["tick"])].append(run)
    return ticks


def ms(text):
    return int(round(parse_ts(text) * 1000))


def tick_ms(ticks):
    return sorted(ticks)


def sleep_until_boundary(offset):
    """Sleeps until `offset` seconds after the next whole second (a 1 s schedule's tick)."""
    now = time.time()
    target = int(now) + 1 + offset
    while target - now < 0.2:
        target += 1
    time.sleep(target - now)


def assert_one_run_per_tick(ticks, period_ms, what):
    got = tick_ms(ticks)
    dups = {t: len(runs) for t, runs in ticks.items() if len(runs) != 1}
    assert not dups, f"{what}: ticks with more than one run: {dups}"
    expected = list(range(got[0], got[-1] + 1, period_ms))
    missing = sorted(set(expected) - set(got))
    assert not missing, f"{what}: ticks without a run: {missing} (of {len(expected)})"
    assert all(t % period_ms == 0 for t in got), f"{what}: ticks off the grid: {got}"


def test_a_schedule_ticks_exactly_once_per_period_with_two_servers_one_killed(
        server_factory, shared_url):
    a, b = shared_servers(server_factory, shared_url)
    name = f"every-second-{uuid.uuid4().hex[:8]}"
    put_schedule(a.api, name=name, task=unique_task("tick"), every_seconds=1,
                 run={"parameters": {"from": "schedule"}})
    wait_until(lambda: len(runs_by_tick(b.api, name)) >= 2, 10, "the first ticks")
    for i in range(KILL_ROUNDS):
        victim = (a, b)[i % 2]
        sleep_until_boundary(KILL_OFFSETS[i % len(KILL_OFFSETS)])
        victim.kill9()
        time.sleep(1.6)  # a tick or two fired by the survivor alone
        victim.start()
    time.sleep(1.5)
    control(a.api, "pause", name)
    time.sleep(1.0)  # a tick being fired as the pause landed is stored by now
    ticks = runs_by_tick(b.api, name)
    assert len(ticks) >= KILL_ROUNDS * 2, f"too few ticks fired: {len(ticks)}"
    assert_one_run_per_tick(ticks, 1000, "two servers, one killed at each round")
    # The runs say which schedule made them, and carry the schedule's run options.
    run = next(iter(ticks.values()))[0]
    assert f"schedule:{name}" in run["tags"]
    assert run["parameters"] == {"from": "schedule"}
    last = get_schedule(a.api, name)
    assert last["paused"] is True and last["last_run_id"]


def test_catch_up_skip_and_once_after_every_server_was_down(server_factory, shared_url):
    late_s = 1
    a, b = shared_servers(server_factory, shared_url,
                          env={"ERRAND_SCHEDULE_LATE_SECONDS": str(late_s)})
    task = unique_task("catch")
    skip, once = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("skip", "once"))
    put_schedule(a.api, name=skip, task=task, every_seconds=1, catch_up="skip")
    put_schedule(a.api, name=once, task=task, every_seconds=1, catch_up="once")
    wait_until(lambda: len(runs_by_tick(a.api, once)) >= 2 and len(runs_by_tick(a.api, skip)) >= 2,
               10, "the first ticks")
    a.stop()
    b.stop()
    stopped = time.time()
    time.sleep(4.5)  # four ticks or more pass with no server, three or more beyond late_s
    a.start()
    restarted = time.time()  # the first server back decides which ticks are missed: on a
    b.start()  # busy machine b's start can take a second more, and a fires on time meanwhile
    time.sleep(2.5)
    control(a.api, "pause", skip)
    control(a.api, "pause", once)
    time.sleep(1.0)

    for name, policy in ((skip, "skip"), (once, "once")):
        ticks = runs_by_tick(a.api, name)
        got = tick_ms(ticks)
        assert all(len(r) == 1 for r in ticks.values()), f"{policy}: a tick with two runs"
        before = [t for t in got if t / 1000 < stopped]
        after = [t for t in got if t / 1000 >= stopped]
        assert before and after, f"{policy}: ticks {got}"
        first_missed = before[-1] + 1000
        # missed: older than late_s when the servers came back
        missed = [t for t in range(first_missed, int(restarted * 1000), 1000)
                  if restarted - t / 1000 > late_s + 0.2]
        assert len(missed) >= 3, f"{policy}: the servers were not down long enough: {missed}"
        made = [t for t in missed if t in ticks]
        if policy == "skip":
            assert made == [], f"skip made runs for missed ticks {made}"
        else:
            assert made == [first_missed], \
                f"once must make one run, for the first missed tick {first_missed}: made {made}"
            run = ticks[first_missed][0] if first_missed in ticks else None
            assert run is not None
        # after the missed ones, every tick fires once again, without a gap
        on_time = [t for t in after if t > missed[-1]]
        assert on_time, f"{policy}: nothing fired after the restart"
        assert on_time == list(range(on_time[0], on_time[-1] + 1, 1000)), \
            f"{policy}: a gap after the restart: {on_time}"


def offset_to(target_iso, seconds_before):
    """ERRAND_SCHEDULER_CLOCK_OFFSET_SECONDS that puts the scheduler's clock about
    seconds_before ahead of target (whole seconds; the clock then runs on)."""
    target = datetime.fromisoformat(target_iso.replace("Z", "+00:00")).timestamp()
    return int(round(target - seconds_before - time.time()))


@pytest.mark.parametrize("change, cron, now_before, fires_at, then_next", [
    # spring forward: 02:00 CET -> 03:00 CEST on 28 March 2027 (01:00Z); 02:30 never
    # happens, so it fires once at the end of the gap, and the next is the next day's 02:30
    ("spring", "30 2 * * *", "2027-03-28T01:00:00Z", "2027-03-28T01:00:00.000Z",
     "2027-03-29T00:30:00.000Z"),
    # fall back: 03:00 CEST -> 02:00 CET on 31 October 2027 (01:00Z); 02:59 happens twice
    # (00:59Z and 01:59Z) and fires at the first only: next is 1 November's
    ("fall", "59 2 * * *", "2027-10-31T00:59:00Z", "2027-10-31T00:59:00.000Z",
     "2027-11-01T01:59:00.000Z"),
])
def test_a_cron_schedule_across_a_daylight_saving_change(server_factory, change, cron,
                                                         now_before, fires_at, then_next):
    server = server_factory(env={
        "ERRAND_SCHEDULER_INTERVAL_MS": str(SCHEDULER_MS),
        "ERRAND_SCHEDULER_CLOCK_OFFSET_SECONDS": str(offset_to(now_before, 4))})
    name = f"berlin-{change}-{uuid.uuid4().hex[:8]}"
    s = put_schedule(server.api, name=name, task=unique_task("dst"), cron=cron,
                     time_zone="Europe/Berlin")
    assert s["next_tick"] == fires_at, s
    wait_until(lambda: len(runs_by_tick(server.api, name)) >= 1, 15, f"the {change} tick")
    time.sleep(1.0)
    ticks = runs_by_tick(server.api, name)
    assert [f"schedule:{name}:{fires_at}"] == [r["idempotency_key"] for v in ticks.values()
                                              for r in v]
    after = get_schedule(server.api, name)
    assert after["last_tick"] == fires_at
    assert after["next_tick"] == then_next, after


def test_bad_schedules_are_refused_naming_the_field(server):
    task = unique_task("bad")
    cases = [
        ({"name": "x", "task": task}, "cron", "missing_field"),
        ({"name": "x", "task": task, "cron": "* * * * *", "every_seconds": 5}, "cron",
         "invalid_field"),
        ({"name": "x", "task": task, "cron": "61 * * * *"}, "cron", "invalid_field"),
        ({"name": "x", "task": task, "cron": "0 0 30 2 *"}, "cron", "invalid_field"),
        ({"name": "x", "task": task, "cron": "@often"}, "cron", "invalid_field"),
        ({"name": "x", "task": task, "cron": "* * * * *", "time_zone": "Mars/Olympus"},
         "time_zone", "invalid_field"),
        ({"name": "x", "task": task, "every_seconds": 5, "time_zone": "UTC"}, "time_zone",
         "invalid_field"),
        ({"name": "x", "task": task, "every_seconds": 0}, "every_seconds", "invalid_field"),
        ({"name": "x", "task": task, "every_seconds": 5, "catch_up": "all"}, "catch_up",
         "invalid_field"),
        ({"name": "a b", "task": task, "every_seconds": 5}, "name", "invalid_field"),
        ({"name": "x", "task": task, "every_seconds": 5, "run": {"idempotency_key": "k"}},
         "run.idempotency_key", "unknown_field"),
        ({"name": "x", "task": task, "every_seconds": 5, "run": {"priority": "high"}},
         "run.priority", "invalid_field"),
        ({"name": "x", "task": task, "every_seconds": 5, "ever": 1}, "ever", "unknown_field"),
    ]
    for body, field, code in cases:
        r = server.api.request("POST", "/schedules", json_body=body)
        assert r.status_code == 400, (body, r.text)
        e = r.json()["error"]
        assert (e["field"], e["code"]) == (field, code), (body, e)
    assert server.api.get_json("/schedules")["schedules"] == []
    control(server.api, "delete", "nothing-here", expect=404)


def test_replacing_pausing_resuming_and_deleting(server):
    task = unique_task("ctl")
    name = f"ctl-{uuid.uuid4().hex[:8]}"
    first = put_schedule(server.api, name=name, task=task, cron="0 * * * *")
    again = put_schedule(server.api, expect=200, name=name, task=task, every_seconds=3600,
                         catch_up="once", run={"priority": 5})
    assert again["created"] == first["created"] and again["every_seconds"] == 3600
    assert again["cron"] is None and again["catch_up"] == "once" and again["run"] == {"priority": 5}
    assert control(server.api, "pause", name)["paused"] is True
    resumed = control(server.api, "resume", name)
    assert resumed["paused"] is False and parse_ts(resumed["next_tick"]) > time.time()
    assert control(server.api, "delete", name) == {"name": name, "deleted": True}
    assert server.api.get_json("/schedules")["schedules"] == []


def test_the_cli_sets_lists_pauses_resumes_and_removes(server):
    task = unique_task("cli")
    cp = run_cli(server, "schedules", "set", "cli-nightly", task, "--cron", "30 2 * * *",
                 "--tz", "Europe/Berlin", "--catch-up", "once", "--params", '{"n": 1}',
                 "--tag", "web", "--retries", "2", "--json")
    assert cp.returncode == 0, cp.stderr
    s = json.loads(cp.stdout)
    assert (s["cron"], s["time_zone"], s["catch_up"]) == ("30 2 * * *", "Europe/Berlin", "once")
    assert s["run"] == {"parameters": {"n": 1}, "retries": 2, "tags": ["web"]}
    cp = run_cli(server, "schedules", "set", "cli-every", task, "--every", "60")
    assert cp.returncode == 0 and "every 60s" in cp.stdout, cp.stdout + cp.stderr
    cp = run_cli(server, "schedules", "ls")
    assert cp.returncode == 0 and "cli-nightly" in cp.stdout and "cli-every" in cp.stdout
    assert run_cli(server, "schedules", "pause", "cli-every").returncode == 0
    assert get_schedule(server.api, "cli-every")["paused"] is True
    assert run_cli(server, "schedules", "resume", "cli-every").returncode == 0
    assert run_cli(server, "schedules", "rm", "cli-every").returncode == 0
    cp = run_cli(server, "schedules", "rm", "cli-every")
    assert cp.returncode == 1 and "cli-every" in cp.stderr
    # refusals: the command line (2), and the server naming the field (2, bad value)
    cp = run_cli(server, "schedules", "set", "x", task)
    assert cp.returncode == 2 and "--cron" in cp.stderr
    cp = run_cli(server, "schedules", "set", "x", task, "--cron", "* * *")
    assert cp.returncode == 2 and "cron" in cp.stderr, (cp.returncode, cp.stderr)
