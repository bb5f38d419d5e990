# SPDX-License-Identifier: MIT
"""
recording_proxy.py — RecordingProxy, the network between a client and the server, watched: an
HTTP proxy that passes every request on and keeps what batch submissions asked and got.
"""
import http.client
import http.server
import threading

# Headers a proxy does not pass on (hop-by-hop, or set again by http.client).
HOP_HEADERS = {"host", "connection", "keep-alive", "content-length", "transfer-encoding"}
BATCH_PATH = "/api/task_runs/batch"


class RecordingProxy:
    """The network between a client and the server, recording it: passes every request on
    (headers and body), and keeps the request headers and the answer of every batch
    submission."""

    def __init__(self, upstream_port):
        proxy = self
        self.batches = []  # (request headers, status, answer headers, answer body)
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                answer_headers = [(k, v) for k, v in resp.getheaders()
                                  if k.lower() not in HOP_HEADERS]
                conn.close()
                if self.command == "POST" and self.path.startswith(BATCH_PATH):
                    with proxy.lock:
                        proxy.batches.append((dict(self.headers.items()), resp.status,
                                              dict(answer_headers), data))
                self.send_response(resp.status)
                for k, v in answer_headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
