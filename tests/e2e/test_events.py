# SPDX-License-Identifier: MIT
"""GET /api/events: the change feed as server-sent events.

A stream sees every state a run enters, in commit order, filtered as asked; a client that
reconnects with its Last-Event-ID gets exactly the events it missed — across a server
restart too, since the feed is in the store — and one that was away longer than the
window (ERRAND_EVENTS_BUFFER) or names an id the server never sent gets a "reset" event.
A commit wakes the streams: with the fallback re-read set to 30 s, events still arrive
well within a second (a bound that proves the wake-up path, not a speed claim).
"""
import http.client
import json
import queue
import socket
import sqlite3
import threading
import time
import urllib.parse

import requests

import errand_procs
from conftest import exec_spec, wait_until

FALLBACK_MS = "30000"
WOKEN_WITHIN_S = 1.0
EVENT_TIMEOUT_S = 15


def feed_query(server, sql):
    """One row of sql over the server's run_feed table, read from its store: the home's SQLite
    file, or its PostgreSQL schema (ERRAND_TEST_STORE=postgresql)."""
    if errand_procs.STORE is not None:
        schema = errand_procs.STORE.schema_for(server.home)
        out = errand_procs.STORE.psql(f"SET search_path TO {schema}; {sql}").strip()
        return tuple(int(v) if v else None for v in out.split("|"))
    db = server.home / "errand.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return c.execute(sql).fetchone()


class Stream:
    """One SSE connection read on a thread; events (dicts with id, event, data) queue up."""

    def __init__(self, server, params=None, last_event_id=None, key=None):
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        key = key or server.key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.conn.request("GET", "/api/events?" + urllib.parse.urlencode(params or {}),
                          headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        assert self.resp.getheader("Content-Type").startswith("text/event-stream")
        self.events = queue.Queue()
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        ev = {}
        try:
            while True:
                raw = self.resp.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "event" in ev or "data" in ev:
                        if "data" in ev:
                            ev["data"] = json.loads(ev["data"])
                        ev["at"] = time.time()
                        self.events.put(ev)
                    ev = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    ev[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError, http.client.HTTPException):
            pass
        self.ended.set()

    def next(self, timeout=EVENT_TIMEOUT_S):
        return self.events.get(timeout=timeout)

    def take(self, n, timeout=EVENT_TIMEOUT_S):
        return [self.next(timeout) for _ in range(n)]

    def nothing_within(self, seconds):
        try:
            ev = self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected event {ev}")

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)  # unblocks the reading thread at once
        except OSError:
            pass
        self.ended.wait(5)
        self.conn.close()


def states_of(events):
    return [(e["data"]["id"], e["data"]["state"]["type"]) for e in events]


def test_a_stream_follows_runs_through_their_states_in_order(server_factory, worker_factory):
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": FALLBACK_MS})
    everything = Stream(server)
    by_task = Stream(server, params={"task": "errand.noop"})
    finals = Stream(server, params={"state": "COMPLETED,FAILED"})
    worker_factory(server, execs=[exec_spec("events.fail", "sh", "-c", "exit 3")])
    noop = server.api.submit("errand.noop", {"n": 1})
    failing = server.api.submit("events.fail", {}, retries=0)
    server.api.wait_all_final([noop["id"], failing["id"]])
    seen = []
    while len([s for s in seen if s[1] in ("COMPLETED", "FAILED")]) < 2:
        e = everything.next()
        assert e["event"] == "run", e
        assert int(e["id"]) == e["data"]["seq"]
        seen.append((e["data"]["id"], e["data"]["state"]["type"]))
        assert e["data"]["task"] in ("errand.noop", "events.fail")
    for run in (noop, failing):
        mine = [t for i, t in seen if i == run["id"]]
        assert mine[:2] == ["SCHEDULED", "PENDING"], mine  # RUNNING only when reported apart
    assert [t for i, t in seen if i == noop["id"]][-1] == "COMPLETED"
    assert [t for i, t in seen if i == failing["id"]][-1] == "FAILED"
    # The history the API keeps and the feed agree, state for state.
    for run in (noop, failing):
        history = [s["type"] for s in server.api.states(run["id"])]
        assert history == [t for i, t in seen if i == run["id"]]
    noop_events = by_task.take(len([1 for i, _ in seen if i == noop["id"]]))
    assert {e["data"]["id"] for e in noop_events} == {noop["id"]}
    assert [e["data"]["state"]["type"] for e in noop_events][-1] == "COMPLETED"
    final_events = finals.take(2)
    assert sorted(states_of(final_events)) == sorted(
        [(noop["id"], "COMPLETED"), (failing["id"], "FAILED")])
    assert finals.nothing_within(0.5) and by_task.nothing_within(0.1)
    for s in (everything, by_task, finals):
        s.close()


def test_a_run_filter_sees_only_that_run_and_a_commit_wakes_the_stream(server_factory):
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": FALLBACK_MS})
    run = server.api.submit("never.served", {})
    stream = Stream(server, params={"run": run["id"].upper()})
    time.sleep(0.3)  # the stream is held: nothing to send
    for _ in range(3):
        server.api.submit("never.served", {})  # other runs: filtered out
    sent = time.time()
    server.api.cancel(run["id"])
    e = stream.next()
    if e["data"]["state"]["type"] == "SCHEDULED":  # committed just before the subscription
        e = stream.next()
    assert (e["data"]["id"], e["data"]["state"]["type"]) == (run["id"], "CANCELLED")
    assert e["at"] - sent < WOKEN_WITHIN_S, f"event arrived {e['at'] - sent:.3f} s after commit"
    assert stream.nothing_within(0.3)
    stream.close()


def test_reconnecting_with_the_last_event_id_resumes_without_a_gap(server_factory):
    server = server_factory()
    first = Stream(server)
    ids = [server.api.submit("never.served", {"i": i})["id"] for i in range(6)]
    got = first.take(6)
    assert [e["data"]["id"] for e in got] == ids
    first.close()
    missed = [server.api.submit("never.served", {"i": i})["id"] for i in range(6, 10)]
    again = Stream(server, last_event_id=got[2]["id"])
    resumed = again.take(7)
    assert [e["data"]["id"] for e in resumed] == ids[3:] + missed
    assert again.nothing_within(0.3)
    again.close()
    # ?after= does the same for a client that cannot set the header.
    by_query = Stream(server, params={"after": got[4]["id"]})
    assert [e["data"]["id"] for e in by_query.take(5)] == ids[5:] + missed
    by_query.close()


def test_the_feed_survives_a_restart_and_old_or_foreign_ids_get_a_reset(server_factory):
    server = server_factory(env={"ERRAND_EVENTS_BUFFER": "16"})
    ids = [server.api.submit("never.served", {"i": i})["id"] for i in range(4)]
    s = Stream(server, params={"after": "0"})
    got = s.take(4)
    s.close()
    server.restart()
    later = server.api.submit("never.served", {})["id"]
    resumed = Stream(server, last_event_id=got[1]["id"])
    assert [e["data"]["id"] for e in resumed.take(3)] == ids[2:] + [later]
    resumed.close()
    # Away longer than the window: 40 events pass a buffer of 16 (read by the feed, as
    # `watcher` shows, before the client comes back).
    watcher = Stream(server)
    server.api.batch([{"task": "never.served", "parameters": {"i": i}} for i in range(40)])
    while int(watcher.next()["id"]) < 45:  # its own reset, once the batch passes the ring
        pass
    watcher.close()
    behind = Stream(server, last_event_id=got[3]["id"])
    reset = behind.next()
    assert reset["event"] == "reset", reset
    assert reset["data"]["after"] == int(got[3]["id"]) and reset["data"]["newest"] >= 45
    assert int(reset["id"]) == reset["data"]["newest"]
    nxt = server.api.submit("never.served", {})["id"]
    e = behind.next()
    assert e["event"] == "run" and e["data"]["id"] == nxt
    behind.close()
    foreign = Stream(server, last_event_id=10 ** 12)
    assert foreign.next()["event"] == "reset"
    foreign.close()


def test_old_events_are_pruned_from_the_store_keeping_the_newest(server_factory):
    server = server_factory(env={"ERRAND_EVENTS_RETENTION_SECONDS": "1",
                                 "ERRAND_SWEEP_INTERVAL_MS": "100"})
    for i in range(5):
        server.api.submit("never.served", {"i": i})

    def pages():  # a page per commit, here one event each
        return feed_query(server, "SELECT count(*), max(first_seq + n - 1) FROM run_feed")

    wait_until(lambda: pages()[0] == 1, 20, "events older than a second pruned")
    assert pages()[1] == 5  # the newest stays, so numbering goes on
    server.restart()
    assert server.api.submit("never.served", {})
    assert feed_query(server, "SELECT max(first_seq + n - 1) FROM run_feed")[0] == 6
    stream = Stream(server, last_event_id=5)
    e = stream.next()
    assert e["event"] == "run" and int(e["id"]) == 6
    stream.close()


def test_the_feed_keeps_at_most_its_bound_of_events(server_factory):
    server = server_factory(env={"ERRAND_EVENTS_MAX": "40", "ERRAND_SWEEP_INTERVAL_MS": "100"})
    for i in range(10):  # a page of ten events each
        server.api.batch([{"task": "never.served", "parameters": {"i": i, "j": j}}
                          for j in range(10)])

    def held():
        return feed_query(server, "SELECT min(first_seq), max(first_seq + n - 1) FROM run_feed")

    wait_until(lambda: held()[0] == 61, 20, "all but the newest 40 events pruned")
    assert held()[1] == 100
    assert len(server.api.list_all(task="never.served")) == 100  # the runs themselves stay


def test_a_stream_over_its_max_rate_skips_and_says_how_many(server_factory):
    server = server_factory()
    paced = Stream(server, params={"max_rate": "5"})
    full = Stream(server)
    server.api.batch([{"task": "never.served", "parameters": {"i": i}} for i in range(200)])
    got = full.take(200)
    last = int(got[-1]["id"])
    sent, skipped = 0, 0
    while True:
        e = paced.next()
        if e["event"] == "run":
            sent += 1
        else:
            assert e["event"] == "skipped", e
            skipped += e["data"]["skipped"]
            assert int(e["id"]) == e["data"]["newest"]
        if int(e["id"]) >= last:
            break
    assert sent + skipped == 200
    assert 1 <= sent <= 10, sent  # a second's worth (5), and what refilled meanwhile
    paced.close()
    full.close()


def test_bad_event_requests_are_refused_naming_the_field(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": "admin-key", "ERRAND_API_KEYS_WORKER": "wk",
                                 "ERRAND_API_KEYS_READ": "rk"})
    api = server.api
    cases = [({"state": "DONE"}, None, "state"), ({"run": "not-a-uuid"}, None, "run"),
             ({"after": "-3"}, None, "after"), ({"bogus": "1"}, None, "bogus"),
             ({"task": "x" * 300}, None, "task"), ({"max_rate": "-1"}, None, "max_rate"),
             ({}, "abc", "Last-Event-ID")]
    for params, last, field in cases:
        headers = {"Last-Event-ID": last} if last else None
        r = api.request("GET", "/events", params=params, headers=headers)
        assert r.status_code == 400, (params, r.status_code, r.text)
        assert r.json()["error"]["field"] == field, r.text
    anonymous = requests.get(server.url + "/events", timeout=5)
    assert anonymous.status_code == 401
    worker_only = requests.get(server.url + "/events", timeout=5,
                               headers={"Authorization": "Bearer wk"})
    assert worker_only.status_code == 403
    reader = Stream(server, key="rk")
    api.submit("never.served", {})
    assert reader.next()["event"] == "run"
    reader.close()


def test_stopping_the_server_ends_every_stream(server_factory):
    server = server_factory()
    streams = [Stream(server) for _ in range(5)]
    server.api.submit("never.served", {})
    for s in streams:
        assert s.next()["event"] == "run"
    server.stop()  # asserts a clean exit
    for s in streams:
        assert s.ended.wait(10), "a stream outlived the server"
