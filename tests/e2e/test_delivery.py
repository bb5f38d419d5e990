"""A finished run's outcome reaches the server, however many a worker has to send at once.

The worker batches its state reports; a batch must stay within what the server accepts in one
request (core/wire_limits.h), or the server refuses the whole body and every outcome in it is
lost. Here one worker starts more runs at once than one report may carry, so its RUNNING
outcomes queue up past that limit: the server is stopped (SIGSTOP) while the runs finish, as
a server too busy to answer would be.
"""
import signal
import threading
import time

from conftest import PYTHON, exec_spec, parse_ts, unique_task, wait_until, write_script

# More than one report request may carry (WIRE_REPORTS_MAX, 1,000): one worker runs them all
# at once, long enough that they are all started before the first ends.
RUNS = 1500
SLEEP_SECONDS = 5.0
CARRIED_MAX = 1000


def test_more_outcomes_than_one_request_carries_all_reach_the_server(server_factory,
                                                                     worker_factory):
    server = server_factory()
    runs = server.api.batch([{"task": "errand.sleep", "parameters": {"seconds": SLEEP_SECONDS},
                              "retries": 0} for _ in range(RUNS)])
    ids = [r["id"] for r in runs]
    worker_factory(server, args=["--concurrency", str(RUNS)])
    wait_until(lambda: not server.api.list_all(task="errand.sleep", state="SCHEDULED,PENDING"),
               120, f"all {RUNS} runs started")
    server.proc.signal(signal.SIGSTOP)
    try:
        time.sleep(SLEEP_SECONDS + 1)  # the runs finish while the server cannot answer
    finally:
        server.proc.signal(signal.SIGCONT)
    resumed = time.time()

    def all_final():
        return all(
            r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
            for r in server.api.list_all(task="errand.sleep"))

    wait_until(all_final, 120, f"all {RUNS} runs final")
    runs = server.api.list_all(task="errand.sleep")
    finals = [r["state"]["type"] for r in runs]
    assert len(finals) == len(ids)
    assert finals.count("COMPLETED") == RUNS, {s: finals.count(s) for s in set(finals)}
    # The case under test happened: more outcomes than one request carries waited for the
    # server (they reached it after it resumed).
    late = sum(1 for r in runs if parse_ts(r["finished"]) >= resumed - 0.5)
    assert late > CARRIED_MAX, f"only {late} outcomes were held back while the server was stopped"


# Prints {"depth": N} nested N levels deep when asked, else the parameters back.
NESTED = """
import json, sys
p = json.load(sys.stdin)
v = p
for _ in range(p.get("nest", 0)):
    v = [v]
print(json.dumps(v))
"""
GOOD_RUNS = 19
TOO_DEEP = 100  # far past what a report body may nest (WIRE_JSON_DEPTH_MAX, 64)


def test_a_result_the_server_would_refuse_fails_alone_and_says_why(server_factory,
                                                                   worker_factory, tmp_path):
    """One run whose result nests too deep, finishing with good ones: the good ones complete,
    the bad one ends FAILED with the reason (it used to take its whole report batch down)."""
    server = server_factory()
    script = write_script(tmp_path / "nested.py", NESTED)
    task = unique_task("nest")
    runs = server.api.batch([{"task": task, "parameters": {"i": i}} for i in range(GOOD_RUNS)]
                            + [{"task": task, "parameters": {"nest": TOO_DEEP}, "retries": 3}])
    worker_factory(server, execs=[exec_spec(task, PYTHON, script)],
                   args=["--concurrency", str(GOOD_RUNS + 1)])
    finals = server.api.wait_all_final([r["id"] for r in runs])
    done = [finals[r["id"]] for r in runs]
    states = [d["state"]["type"] for d in done]
    assert states[:GOOD_RUNS] == ["COMPLETED"] * GOOD_RUNS, states
    bad = done[GOOD_RUNS]
    assert bad["state"]["type"] == "FAILED", bad
    assert "deeper than" in bad["state"]["message"], bad
    assert bad["attempt"] == 1, "not retried: the task would give the same result again"


class WorkerLinkProxy:
    """An HTTP proxy in front of the server, a stand-in for the network between worker and
    server (not for errand): it holds every POST /api/workers/report for `delay` seconds (a
    server slow to take reports, as a busy one is), and loses the answers of the first
    `lose_claims` claims that handed out runs (the server committed them; the connection
    broke before the worker heard back). Everything else passes at once."""

    def __init__(self, upstream_port, delay=0, lose_claims=0):
        import http.client
        import http.server

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.forward()

            def do_GET(self):
                self.forward()

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/api/workers/report"):
                    time.sleep(proxy.delay)
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "authorization")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if (self.path.startswith("/api/workers/claim") and proxy.lose_claims > 0
                        and b'"lease_token"' in data):
                    proxy.lose_claims -= 1
                    proxy.lost_claims += 1
                    self.close_connection = True  # no answer: the connection just ends
                    return
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type") or "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.delay = delay
        self.lose_claims = lose_claims
        self.lost_claims = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


LEASE_S = 3
REPORT_DELAY_S = 4  # longer than the lease
SLOW_RUNS = 3


def test_slow_reports_do_not_cost_a_healthy_worker_its_leases(server_factory, worker_factory):
    """Heartbeats have their own connection: while the server takes 4 s to answer reports,
    a worker with 3 s leases keeps them, and its runs complete rather than expire."""
    server = server_factory()
    proxy = WorkerLinkProxy(server.port, delay=REPORT_DELAY_S)
    try:
        runs = server.api.batch([{"task": "errand.sleep", "parameters": {"seconds": 0.5},
                                  "retries": 0} for _ in range(SLOW_RUNS)])
        worker_factory(server, env={"ERRAND_API_URL": f"http://127.0.0.1:{proxy.port}/api",
                                    "ERRAND_LEASE_SECONDS": str(LEASE_S)},
                       args=["--concurrency", str(SLOW_RUNS)])
        finals = server.api.wait_all_final([r["id"] for r in runs], timeout=120)
        states = {i: f["state"]["type"] for i, f in finals.items()}
        assert list(states.values()) == ["COMPLETED"] * SLOW_RUNS, \
            [f["state"] for f in finals.values()]
    finally:
        proxy.close()


def test_a_claim_whose_answer_was_lost_is_redelivered_at_once(server, worker_factory):
    """The worker sends the claim again under the same request id and gets the same run and
    lease back, instead of waiting 30 s for the lease to run out."""
    proxy = WorkerLinkProxy(server.port, lose_claims=1)
    try:
        run = server.api.submit("errand.noop", {}, retries=0)
        worker_factory(server, env={"ERRAND_API_URL": f"http://127.0.0.1:{proxy.port}/api"})
        done = server.api.wait_final(run["id"], timeout=10)  # the lease is 30 s
        assert proxy.lost_claims == 1, "the proxy lost a claim's answer"
        assert done["state"]["type"] == "COMPLETED", done
        assert done["attempt"] == 1 and done["redeliveries"] == 0, done
        states = [s["type"] for s in server.api.states(run["id"])]
        assert states.count("SCHEDULED") == 1 and states.count("PENDING") == 1, states
    finally:
        proxy.close()


def test_a_report_sent_twice_is_applied_once(server):
    """A worker that did not get the answer to a report sends the same batch again: the
    server answers it as applied (not as a stale lease) and stores its log lines once."""
    api = server.api
    task = unique_task("twice")
    run = api.submit(task, {})
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "w1", "tasks": [task], "wait_seconds": 5}).json()["runs"][0]
    token = claim["lease_token"]
    body = {"worker": "w1", "batch_id": "batch-0001",
            "reports": [{"id": run["id"], "lease_token": token, "state": "RUNNING"},
                        {"id": run["id"], "lease_token": token, "state": "COMPLETED",
                         "result": {"ok": True}}],
            "logs": [{"id": run["id"], "level": "info", "message": "once"}]}
    for attempt in range(2):
        r = api.request("POST", "/workers/report", json_body=body)
        assert r.status_code == 200, (attempt, r.text)
        assert [x["status"] for x in r.json()["reports"]][-1] == 200, r.text
        assert r.json()["reports"][-1]["state"] == "COMPLETED"
    assert [l["message"] for l in api.logs(run["id"])["logs"]] == ["once"]
    assert [s["type"] for s in api.states(run["id"])] == \
        ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    # Another report with that token is not the one that was applied: stale.
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": token, "state": "FAILED", "message": "late"}]})
    assert r.status_code == 409, r.text
    assert api.get(run["id"])["state"]["type"] == "COMPLETED"


def test_an_outcome_after_the_lease_expired_is_accepted_while_not_claimed_again(server_factory):
    """A slow report must not turn one execution into two: its run still waits in the queue,
    so the outcome is the run's (a run claimed again meanwhile refuses it: test_crash)."""
    server = server_factory(env={"ERRAND_SWEEP_INTERVAL_MS": "100"})
    api = server.api
    task = unique_task("late")
    run = api.submit(task, {}, retries=2)
    claim = api.request("POST", "/workers/claim", json_body={
        "worker": "w1", "tasks": [task], "wait_seconds": 5, "lease_seconds": 1}).json()["runs"][0]
    wait_until(lambda: api.get(run["id"])["state"]["type"] == "SCHEDULED", 30,
               "the lease expired")
    r = api.request("POST", "/workers/report", json_body={"worker": "w1", "reports": [
        {"id": run["id"], "lease_token": claim["lease_token"], "state": "COMPLETED",
         "result": 7}]})
    assert r.status_code == 200, r.text
    done = api.get(run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == 7, done
    assert done["attempt"] == 1 and done["redeliveries"] == 0, done
    states = api.states(run["id"])
    assert [s["type"] for s in states] == \
        ["SCHEDULED", "PENDING", "SCHEDULED", "PENDING", "COMPLETED"], states
    assert "lease resumed by worker w1" in states[3]["message"], states
