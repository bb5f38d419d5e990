# SPDX-License-Identifier: MIT
"""
link_proxy.py — WorkerLinkProxy, a stand-in for the network between a worker and the server
(not for errand): an HTTP proxy in front of the server that a worker is pointed at instead.
"""
import http.client
import http.server
import threading
import time

UPSTREAM_TIMEOUT_S = 120
SHUTDOWN_POLL_S = 0.05  # how soon close() takes effect


class WorkerLinkProxy:
    """Passes every request on to the server at once, except that it
      - holds every POST /api/workers/report for `delay` seconds before passing it on (a
        server slow to take reports, as a busy one is);
      - loses the answers of the first `lose_claims` claims that handed out runs: the server
        committed them, then the connection broke before the worker heard back;
      - loses the answers of the first `lose_reports` reports whose body contains
        `report_marker` (bytes), the same way: the server applied them;
      - holds the answers of the first `delay_claims` claims that handed out runs for
        `claim_delay` seconds (a network that stalls, then delivers late).
    A lost answer closes the connection without a byte of response. `lost_claims` and
    `lost_reports` count what it lost; `reports` keeps the body of every report the server
    has answered (whether the answer got through or not)."""

    def __init__(self, upstream_port, delay=0, lose_claims=0, lose_reports=0, report_marker=b"",
                 delay_claims=0, claim_delay=0.0):
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
                is_report = self.path.startswith("/api/workers/report")
                if is_report:
                    time.sleep(proxy.delay)
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port,
                                                  timeout=UPSTREAM_TIMEOUT_S)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "authorization")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if is_report:
                    with proxy.lock:
                        proxy.reports.append(body)
                if proxy.lose_answer(self.path, body, data):
                    self.close_connection = True  # no answer: the connection just ends
                    return
                held = proxy.hold_answer(self.path, data)
                if held:
                    time.sleep(proxy.claim_delay)
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type",
                                     resp.getheader("Content-Type") or "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    if held:
                        with proxy.lock:
                            proxy.late_claims_sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the worker hung up (it is stopping)

        self.delay = delay
        self.lose_claims = lose_claims
        self.lose_reports = lose_reports
        self.report_marker = report_marker
        self.delay_claims = delay_claims
        self.claim_delay = claim_delay
        self.held_claims = 0
        self.late_claims_sent = 0  # held answers delivered (late)
        self.lost_claims = 0
        self.lost_reports = 0
        self.reports = []
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever,
                         kwargs={"poll_interval": SHUTDOWN_POLL_S}, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/api"

    def lose_answer(self, path, body, answer):
        """True when the answer to this request is to be lost (and counts it)."""
        with self.lock:
            if (path.startswith("/api/workers/claim") and self.lose_claims > 0
                    and b'"lease_token"' in answer):
                self.lose_claims -= 1
                self.lost_claims += 1
                return True
            if (path.startswith("/api/workers/report") and self.lose_reports > 0
                    and self.report_marker in body):
                self.lose_reports -= 1
                self.lost_reports += 1
                return True
        return False

    def hold_answer(self, path, answer):
        """True when the answer to this claim is to arrive late (and counts it)."""
        with self.lock:
            if (path.startswith("/api/workers/claim") and self.delay_claims > 0
                    and b'"lease_token"' in answer):
                self.delay_claims -= 1
                self.held_claims += 1
                return True
        return False

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
