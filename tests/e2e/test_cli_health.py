# SPDX-License-Identifier: MIT
"""`errand health` against a real server and against peers that misbehave: a ready server
exits 0 and names its store (--json prints its answer), with or without API keys on the
server; a closed port, a peer that accepts and never answers, a 503 with the server's
message, or a 2xx that is not an errand readiness answer exit 1 naming the URL; --url checks
any HTTP URL; bad values exit 2. The silent peer proves --timeout-seconds bounds the check."""
import http.server
import json
import socket
import threading
import time

import pytest
import requests

from conftest import STORE_MODE, run_cli

# The silent peer is given --timeout-seconds 1; without a working timeout the check would run
# for the 5 s default (or curl's 30 s). A bound, not a speed claim: it leaves room for a
# sanitizer build's start-up.
SILENT_TIMEOUT_S = 1
SILENT_BOUND_S = 4.0


def health(*args, url=None, env=None, timeout=60):
    """`errand health ARGS...`, aimed at url (ERRAND_API_URL) when given, with no API key
    unless env sets one."""
    extra = {"ERRAND_API_KEY": None}
    if url:
        extra["ERRAND_API_URL"] = url
    extra.update(env or {})
    return run_cli(None, "health", *args, env=extra, timeout=timeout)


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_peer():
    """A socket that accepts connections and never answers; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield listener.getsockname()[1]
    stop.set()
    t.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def fake_peer():
    """An HTTP server answering every GET with the (status, body) set in answer[0]; yields
    (root URL, answer)."""
    answer = [(200, b"{}")]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answer[0]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", answer
    srv.shutdown()
    srv.server_close()
    t.join()


def test_ready_server_exits_0_naming_its_store(server):
    cp = health(url=server.url)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == f"ready: store {STORE_MODE} ({server.url})\n", cp.stdout


def test_json_prints_the_servers_answer(server):
    cp = health("--json", url=server.url)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == {"status": "ready", "store": STORE_MODE}


def test_api_url_flag_and_a_list_of_servers(server):
    cp = health("--api-url", server.url)
    assert cp.returncode == 0, cp.stderr
    # A list whose other server is down: the client moves on to the one that answers.
    cp = health(url=f"http://127.0.0.1:{closed_port()}/api,{server.url}")
    assert cp.returncode == 0, cp.stderr


def test_server_with_api_keys_is_ready_without_a_key(server_factory):
    s = server_factory(env={"ERRAND_API_KEY": "admin-secret"})
    r = requests.get(s.url + "/task_runs", timeout=30)
    assert r.status_code == 401, "the server must require a key for anything else"
    cp = health(url=s.url)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("ready: "), cp.stdout


def test_closed_port_exits_1_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}/api"
    cp = health(url=url)
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert url in cp.stderr and cp.stdout == "", cp.stderr


def test_silent_peer_fails_within_the_timeout(silent_peer):
    url = f"http://127.0.0.1:{silent_peer}/api"
    start = time.monotonic()
    cp = health("--timeout-seconds", str(SILENT_TIMEOUT_S), url=url, timeout=30)
    elapsed = time.monotonic() - start
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert url in cp.stderr and "no answer" in cp.stderr, cp.stderr
    assert elapsed < SILENT_BOUND_S, f"took {elapsed:.1f} s with --timeout-seconds 1"

    start = time.monotonic()
    cp = health("--url", f"http://127.0.0.1:{silent_peer}/health", "--timeout-seconds",
                str(SILENT_TIMEOUT_S), timeout=30)
    elapsed = time.monotonic() - start
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert "no answer" in cp.stderr, cp.stderr
    assert elapsed < SILENT_BOUND_S, f"--url took {elapsed:.1f} s with --timeout-seconds 1"


def test_not_ready_answer_exits_1_with_the_servers_message(fake_peer):
    root, answer = fake_peer
    answer[0] = (503, json.dumps({"error": {"code": "unavailable", "field": None,
                                            "message": "not ready: disk detached"}}).encode())
    cp = health(url=root + "/api")
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert f"{root}/api/health/ready" in cp.stderr and "HTTP 503" in cp.stderr, cp.stderr
    assert "not ready: disk detached" in cp.stderr, cp.stderr


def test_2xx_that_is_not_a_readiness_answer_exits_1(fake_peer):
    root, answer = fake_peer
    answer[0] = (200, b"<html>hello</html>")
    cp = health(url=root + "/api")
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert "ready" in cp.stderr and cp.stdout == "", cp.stderr


def test_url_checks_any_http_url(server):
    cp = health("--url", server.url + "/health")
    assert cp.returncode == 0, cp.stderr
    assert "HTTP 200" in cp.stdout and server.url in cp.stdout, cp.stdout
    as_json = health("--url", server.url + "/health", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["status"] == "ok"

    nope = health("--url", server.url + "/nope")
    assert nope.returncode == 1, (nope.returncode, nope.stderr)
    assert server.url + "/nope" in nope.stderr and "404" in nope.stderr, nope.stderr


def test_url_of_a_closed_port_exits_1():
    url = f"http://127.0.0.1:{closed_port()}/health"
    cp = health("--url", url)
    assert cp.returncode == 1, (cp.returncode, cp.stderr)
    assert url in cp.stderr, cp.stderr


@pytest.mark.parametrize("args, named", [
    (["--url", "ftp://x"], "--url"),
    (["--url", "127.0.0.1:8000/health"], "--url"),
    (["--timeout-seconds", "0"], "--timeout-seconds"),
    (["--timeout-seconds", "-1"], "--timeout-seconds"),
    (["--timeout-seconds", "abc"], "--timeout-seconds"),
    (["--timeout-seconds", "nan"], "--timeout-seconds"),
    (["extra"], "extra"),
])
def test_bad_values_are_usage_errors(args, named):
    # Aimed at a closed port: a usage error must not depend on (or wait for) a server.
    cp = health(*args, url=f"http://127.0.0.1:{closed_port()}/api")
    assert cp.returncode == 2, (args, cp.returncode, cp.stderr)
    assert named in cp.stderr, cp.stderr


def test_help_documents_the_command():
    cp = run_cli(None, "help", "health")
    assert cp.returncode == 0, cp.stderr
    assert "Usage: errand health" in cp.stdout and "--timeout-seconds" in cp.stdout
    overview = run_cli(None, "--help")
    assert overview.returncode == 0
    assert any(line.split()[:1] == ["health"] for line in overview.stdout.splitlines()), \
        overview.stdout
