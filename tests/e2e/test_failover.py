# SPDX-License-Identifier: MIT
"""Failover: ERRAND_API_URL as a comma-separated list of servers sharing one store. Clients
and workers spread over the list and move to another server when theirs dies, losing no
submission (liberrand and the Python client key every submission they may send again) and
no report (lease tokens, report batch ids and claim request ids make those safe to send
again)."""
import json
import socket
import sys
import threading

from conftest import run_cli, unique_task, wait_until
from errand_procs import REPO

sys.path.insert(0, str(REPO / "clients" / "python"))
import errand  # noqa: E402  (the Python client, from the source tree)

THREADS = 4
SUBMITS_EACH = 25
KILL_AFTER = 30


def test_clients_and_workers_move_on_when_a_server_dies(server_factory, worker_factory):
    a = server_factory()
    b = server_factory(home=a.home)  # a second server on the same store
    urls = f"{a.url},{b.url}"
    worker = worker_factory(a, env={"ERRAND_API_URL": urls})
    results = []
    lock = threading.Lock()

    def submit_all(t):
        for i in range(SUBMITS_EACH):
            cp = run_cli(a, "submit", "errand.noop", "--params", json.dumps({"i": t * 1000 + i}),
                         "--json", env={"ERRAND_API_URL": urls}, timeout=60)
            with lock:
                results.append(cp)

    threads = [threading.Thread(target=submit_all, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) >= KILL_AFTER, 60, f"{KILL_AFTER} submissions")
    a.kill9()  # for good: everything goes on through b
    for t in threads:
        t.join(timeout=120)
    failed = [cp.stderr for cp in results if cp.returncode != 0]
    assert not failed, failed[:3]
    assert len(results) == THREADS * SUBMITS_EACH
    ids = {json.loads(cp.stdout)["id"] for cp in results}

    def runs():
        return b.api.list_all(task="errand.noop")

    stored = runs()
    seen = sorted(r["parameters"]["i"] for r in stored)
    want = sorted(t * 1000 + i for t in range(THREADS) for i in range(SUBMITS_EACH))
    assert seen == want, f"each submission once: {seen}"
    assert ids == {r["id"] for r in stored}
    assert all(r["idempotency_key"].startswith("errand-retry-") for r in stored), stored[0]
    # The worker, whichever server it was on, finishes every run through b.
    wait_until(lambda: all(r["state"]["type"] == "COMPLETED" for r in runs()), 60,
               "every run COMPLETED")
    assert worker.running()


def test_a_first_server_that_is_down_is_passed_over(server_factory):
    down = server_factory()
    down_url = down.url
    down.stop()
    up = server_factory()
    for order in (f"{down_url},{up.url}", f"{up.url},{down_url}"):
        for _ in range(4):  # each process starts at a server drawn at random
            cp = run_cli(up, "runs", "ls", "--limit", "1", env={"ERRAND_API_URL": order})
            assert cp.returncode == 0, cp.stderr
    cp = run_cli(up, "runs", "ls", env={"ERRAND_API_URL": f"{up.url},ftp://nowhere"})
    assert cp.returncode != 0
    assert "api_url" in cp.stderr or "API URL" in cp.stderr, cp.stderr


class AnswerThief:
    """A TCP relay in front of one server: it hands a client's request to the server, reads
    the server's whole answer, then calls on_answer() (the test kills the server there) and
    closes the client's connection without a byte of the answer. So the request is committed
    and its answer is lost with its server: the window between commit and reply, exactly."""

    def __init__(self, upstream_port, on_answer):
        self.upstream_port = upstream_port
        self.on_answer = on_answer
        self.stolen = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api"
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _read_message(conn):
        """One HTTP message (head and Content-Length body) from conn; b"" at EOF."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                request = self._read_message(client)
                if not request:
                    continue
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                    up.sendall(request)
                    answer = self._read_message(up)
                assert answer.startswith(b"HTTP/1.1 20"), answer[:200]
                self.stolen += 1
                self.on_answer()

    def close(self):
        self.sock.close()


def test_a_submission_whose_answer_died_with_its_server_is_stored_once(server_factory):
    a = server_factory()
    b = server_factory(home=a.home)  # a second server on the same store
    thief = AnswerThief(a.port, a.kill9)
    urls = f"{thief.url},{b.url}"  # each CLI process starts at one drawn at random
    try:
        outputs = []
        for i in range(40):
            cp = run_cli(b, "submit", "errand.noop", "--params", json.dumps({"i": i}), "--json",
                         env={"ERRAND_API_URL": urls}, timeout=60)
            assert cp.returncode == 0, cp.stderr
            outputs.append(json.loads(cp.stdout))
            if thief.stolen:
                break
        assert thief.stolen == 1, "no submission went through the relay in 40 tries"
    finally:
        thief.close()
    stored = b.api.list_all(task="errand.noop")
    assert sorted(r["parameters"]["i"] for r in stored) == list(range(len(outputs))), (
        "each submission stored once, the one whose answer was lost too")
    assert {r["id"] for r in stored} == {o["id"] for o in outputs}
    lost = outputs[-1]  # committed by a, its answer lost; sent again to b with the same key
    assert lost["idempotency_key"].startswith("errand-retry-"), lost


def test_a_python_batch_whose_answer_died_with_its_server_is_stored_once(server_factory):
    """The Python client's batch: its answer lost between commit and reply, the client sends
    it again to the other server with the same idempotency keys and gets the stored runs."""
    a = server_factory()
    b = server_factory(home=a.home)
    thief = AnswerThief(a.port, a.kill9)
    task = unique_task("lost_batch")
    try:
        answers = []
        for i in range(40):  # each client starts at a server drawn at random
            c = errand.Client(f"{thief.url},{b.url}", submit_retry_seconds=20)
            answers.append(c.submit_batch([errand.submission(task, {"i": i, "j": j})
                                           for j in range(3)]))
            if thief.stolen:
                break
        assert thief.stolen == 1, "no batch went through the relay in 40 tries"
    finally:
        thief.close()
    stored = b.api.list_all(task=task)
    assert len(stored) == 3 * len(answers), (
        "each batch stored once, the one whose answer was lost too")
    assert {r["id"] for r in stored} == {r.id for runs in answers for r in runs}
