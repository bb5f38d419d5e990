# SPDX-License-Identifier: MIT
"""Failover: ERRAND_API_URL as a comma-separated list of servers sharing one store. Clients
and workers spread over the list and move to another server when theirs dies, losing no
submission (liberrand keys every submission it may send again) and no report (lease tokens,
report batch ids and claim request ids make those safe to send again)."""
import json
import threading

from conftest import run_cli, wait_until

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
