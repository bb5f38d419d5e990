#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What N connected dashboards cost the server: N GET /api/events streams held open while
`errand bench` runs, against the same bench without them, on one fresh store each. The
streams ask for max_rate=20, as the dashboard's pages do (--max-rate 0: every event, a
firehose per stream).

    bench/sse_streams.py [--streams 1000] [--runs 20000] [--rounds 2] [--max-rate 20]
                         [--errand build/bin/errand]

Prints, for each round and each setting: end-to-end runs/s, the server's CPU seconds and
peak RSS during the bench, the events the streams received and the server's thread count.
By hand, not in CI (docs/performance.md)."""
import argparse
import json
import os
import re
import selectors
import socket
import subprocess
import tempfile
import threading
import time


def start_server(errand, home):
    env = dict(os.environ, ERRAND_HOME=home, ERRAND_MAX_CONNECTIONS="20000")
    p = subprocess.Popen([errand, "server", "start", "--port", "0"], env=env,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r'msg="listening".* port=(\d+)', line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, int(m.group(1))
    raise SystemExit("the server did not start")


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    return cpu, int(status["VmHWM"].split()[0]), int(status["Threads"])


class Streams:
    """N SSE connections read by one selector thread; counts the events they receive."""

    def __init__(self, port, n, max_rate):
        self.sel = selectors.DefaultSelector()
        self.events = 0
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            q = f"?max_rate={max_rate}" if max_rate else ""
            s.sendall(f"GET /api/events{q} HTTP/1.1\r\nHost: x\r\n"
                      "Accept: text/event-stream\r\n\r\n".encode())
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.2):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                self.events += data.count(b"\nevent: run\n")

    def close(self):
        self.stop = True
        self.t.join()
        for s in self.socks:
            s.close()


def one(errand, streams, runs, max_rate):
    with tempfile.TemporaryDirectory() as home:
        server, port = start_server(errand, home)
        try:
            st = Streams(port, streams, max_rate) if streams else None
            time.sleep(1)
            cpu0, _, threads = proc_stat(server.pid)
            out = subprocess.run([errand, "bench", "--runs", str(runs), "--latency-runs", "0",
                                  "--json"], env=dict(os.environ,
                                  ERRAND_API_URL=f"http://127.0.0.1:{port}/api"),
                                 capture_output=True, text=True, check=True).stdout
            time.sleep(1)
            cpu1, hwm, _ = proc_stat(server.pid)
            got = st.events if st else 0
            if st:
                st.close()
            return {"streams": streams, "e2e_per_s": round(json.loads(out)["e2e_per_s"]),
                    "server_cpu_s": round(cpu1 - cpu0, 2), "peak_rss_mib": round(hwm / 1024, 1),
                    "server_threads": threads, "events_received": got}
        finally:
            server.terminate()
            server.wait(60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-rate", type=int, default=20)
    ap.add_argument("--errand", default="build/bin/errand")
    a = ap.parse_args()
    for r in range(a.rounds):
        for n in (0, a.streams):
            print(json.dumps({"round": r + 1, **one(a.errand, n, a.runs, a.max_rate)}),
                  flush=True)


if __name__ == "__main__":
    main()
