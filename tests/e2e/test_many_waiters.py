# SPDX-License-Identifier: MIT
"""Waiting clients cost memory, not threads: 10,000 clients each holding a long-poll
(GET /wait) are parked, not given a thread each — the server's thread count does not grow
with them and its memory grows by a few KiB a waiter. While they wait, a new client is
served within a second and a worker's claim still wakes at once for a new run. When the run
they wait for ends, every one of them gets its answer, woken by the run's notification (the
fallback re-check is set to ten minutes, so a timer cannot be what answered them). Clients
still waiting when the server stops are answered, and the server exits cleanly.

The bounds prove the mechanism (parking and keyed wake-ups) while the fallback poll is set
600 times longer; they are not speed claims."""
import resource
import selectors
import socket
import time

import requests

from conftest import SANITIZED, Api, unique_task, wait_until

WAITERS = 10000
AT_SHUTDOWN = 2000
RECHECK_MS = 600000
SERVED_WITHIN_S = 1.0
# Threads the server may start besides its fixed ones while the waiters connect: none is
# needed; a few allow for the allocator's or libmicrohttpd's own.
THREAD_SLACK = 8
# Memory a parked waiter may cost the server: its connection (libmicrohttpd's buffers), its
# request and its waiter (measured about 5 KiB; 20 under ASan, whose redzones count).
KIB_PER_WAITER = 16 * (2 if SANITIZED else 1)
ANSWER_WITHIN_S = 60


def descriptor_room(need):
    """Raises this process's descriptor limit to its hard limit; the waiters it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - 500
    assert room >= need // 2, f"descriptor limit {soft} leaves room for too few waiters"
    return min(need, room)


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def parked(server):
    text = requests.get(server.root + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("errand_long_polls_parked "):
            return int(line.split()[1])
    raise AssertionError("no errand_long_polls_parked in /metrics:\n" + text)


def open_waiters(server, run_id, n):
    request = (f"GET /api/task_runs/{run_id}/wait?timeout_seconds=300 HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\n\r\n").encode()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
    return socks


def read_answers(socks, timeout):
    """Reads each socket until it has a whole response (headers and Content-Length bytes);
    returns the responses received, as bytes."""
    sel = selectors.DefaultSelector()
    got = {}
    for s in socks:
        got[s] = b""
        sel.register(s, selectors.EVENT_READ)
    done = []
    deadline = time.monotonic() + timeout
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            got[s] += chunk
            head, sep, body = got[s].partition(b"\r\n\r\n")
            length = None
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not chunk or (sep and length is not None and len(body) >= length):
                sel.unregister(s)
                done.append(got[s])
    sel.close()
    return done


def serves_new_connections(server):
    """Whether a new connection is served: once the server has seen thousands of clients
    close, their connections no longer count against ERRAND_MAX_CONNECTIONS."""
    try:
        return requests.get(server.root + "/api/health", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def assert_all_answered(socks, state):
    """Every socket got a 200 with the run in state (its JSON text)."""
    answers = read_answers(socks, ANSWER_WITHIN_S)
    assert len(answers) == len(socks), f"{len(answers)} of {len(socks)} waiters answered"
    for a in answers:
        assert a.startswith(b"HTTP/1.1 200") and state in a, a[:300]


def test_ten_thousand_waiting_clients_hold_no_threads(server_factory, worker_factory):
    n = descriptor_room(WAITERS + AT_SHUTDOWN)
    at_shutdown = min(AT_SHUTDOWN, n // 5)
    n -= at_shutdown
    server = server_factory(env={"ERRAND_POLL_RECHECK_MS": RECHECK_MS,
                                 "ERRAND_MAX_CONNECTIONS": n + at_shutdown + 100})
    worker_factory(server)  # its claim is parked too
    waited = server.api.submit(unique_task("nobody.serves"), {})
    pid = server.proc.pid
    threads_before = proc_status(pid, "Threads")
    rss_before_kib = proc_status(pid, "VmRSS")

    socks = open_waiters(server, waited["id"], n)
    try:
        wait_until(lambda: parked(server) >= n, 120, f"{n} waits parked")
        threads = proc_status(pid, "Threads")
        rss_kib = proc_status(pid, "VmRSS")
        assert threads <= threads_before + THREAD_SLACK, (threads_before, threads)
        per_waiter = (rss_kib - rss_before_kib) / n
        assert per_waiter <= KIB_PER_WAITER, f"{per_waiter:.1f} KiB a waiter"
        print(f"{n} waiters: threads {threads_before} -> {threads}, "
              f"RSS {rss_before_kib} -> {rss_kib} KiB ({per_waiter:.1f} KiB a waiter)")

        # A new client, and a worker's parked claim woken by a submission.
        api = Api(server.url)
        t0 = time.monotonic()
        r = api.request("GET", "/task_runs?limit=1", timeout=SERVED_WITHIN_S,
                        headers={"Connection": "close"})
        assert r.status_code == 200 and time.monotonic() - t0 < SERVED_WITHIN_S, r.text
        t0 = time.monotonic()
        run = api.submit("errand.noop", {"n": 1})
        done = api.wait_final(run["id"], timeout=10)
        took = time.monotonic() - t0
        assert done["state"]["type"] == "COMPLETED", done
        assert took < 2 * SERVED_WITHIN_S, f"a run took {took:.2f}s with {n} clients waiting"

        # The run they wait for ends: all of them are answered, by its notification.
        server.api.cancel(waited["id"])
        assert_all_answered(socks, b'"CANCELLED"')
    finally:
        for s in socks:
            s.close()

    # Clients still waiting when the server stops get the run's current state. The ten
    # thousand just closed may still count against the connection limit for a moment, and
    # server.api's kept-alive connection may have idled out meanwhile: a new client, once the
    # server serves new connections again.
    wait_until(lambda: serves_new_connections(server), 60, "new connections served again")
    pending = Api(server.url).submit(unique_task("nobody.serves"), {})
    socks = open_waiters(server, pending["id"], at_shutdown)
    try:
        wait_until(lambda: parked(server) >= at_shutdown, 60, f"{at_shutdown} waits parked")
        server.stop()  # asserts a clean exit
        assert_all_answered(socks, b'"SCHEDULED"')
    finally:
        for s in socks:
            s.close()
