# SPDX-License-Identifier: MIT
"""Lost answers: the server did the work but its answer never reached the worker (the
connection broke). The worker asks again the way the protocol makes safe — the same claim
under its request_id, the same report batch under its batch_id — and everything happens once
(docs/api.md, "Delivery guarantees", "Lost answers"). A proxy between worker and server
(link_proxy.py) loses the answers, twice in a row: an HTTP library may send a request again
once on its own when a reused connection dies (libcurl does), with the same body, so the
second loss is what makes the runtime itself ask again."""

LOST = 2
import time
import uuid

from harness import wait_until
from runtime import TASK_ECHO, TASK_LOG


def test_a_claim_whose_answer_was_lost_is_redelivered_at_once(server, link_proxy,
        worker_factory):
    """The worker sends the claim again under the same request id and gets the same run and
    lease back, instead of waiting 30 s for the lease to run out."""
    proxy = link_proxy(server, lose_claims=LOST)
    run = server.api.submit(TASK_ECHO, {"lost": "claim"}, retries=0)
    worker_factory(server, api_url=proxy.url)
    done = server.api.wait_final(run["id"], timeout=10)  # the lease is 30 s
    assert proxy.lost_claims == LOST, "the proxy lost the claim's answers"
    assert done["state"]["type"] == "COMPLETED", done
    assert done["attempt"] == 1 and done["redeliveries"] == 0, done
    states = [s["type"] for s in server.api.states(run["id"])]
    assert states.count("SCHEDULED") == 1 and states.count("PENDING") == 1, states


def test_a_report_whose_answer_was_lost_is_sent_again_and_applied_once(server, link_proxy,
        worker_factory):
    """The server applies the report batch that carries the run's log lines, and its answer
    is lost: the worker sends the batch again (under its batch_id), and the run's log lines
    are stored once, its states recorded once."""
    marker = f"m{uuid.uuid4().hex[:12]}"
    lines = [f"{marker} line {i}" for i in range(3)]
    proxy = link_proxy(server, lose_reports=LOST, report_marker=marker.encode())
    run = server.api.submit(TASK_LOG, {"lines": lines}, retries=0)
    worker_factory(server, api_url=proxy.url)
    wait_until(lambda: sum(marker.encode() in body for body in proxy.reports) > LOST, 20,
               "the worker to send the batch again")  # the lease is 30 s
    assert proxy.lost_reports == LOST, "the proxy lost the report's answers"
    done = server.api.wait_final(run["id"], timeout=20)
    assert done["state"]["type"] == "COMPLETED", done
    assert done["attempt"] == 1 and done["redeliveries"] == 0, done
    assert [entry["message"] for entry in server.api.logs(run["id"])["logs"]] == lines
    types = [s["type"] for s in server.api.states(run["id"])]
    assert types in (["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"],
                     ["SCHEDULED", "PENDING", "COMPLETED"]), types


LATE_LEASE_S = 2
LATE_BY_S = 6  # the claim's answer arrives three leases late


def test_a_claim_answer_that_arrives_after_its_lease_is_not_run(server, link_proxy,
        worker_factory):
    """The network holds a claim's answer past the lease it grants; meanwhile the run is
    redelivered and another worker runs it. When the answer finally arrives, the first worker
    must not run the run as well (its log line would then be stored twice)."""
    marker = f"m{uuid.uuid4().hex[:12]}"
    proxy = link_proxy(server, delay_claims=1, claim_delay=LATE_BY_S)
    run = server.api.submit(TASK_LOG, {"lines": [marker]}, retries=0)
    worker_factory(server, api_url=proxy.url, lease_seconds=LATE_LEASE_S)
    server.api.wait_state(run["id"], lambda r: r["redeliveries"] == 1,
                          what="redelivered: the lease ran out while the answer was held")
    second = worker_factory(server)
    done = server.api.wait_final(run["id"], timeout=20)
    assert done["state"]["type"] == "COMPLETED" and done["worker"] == second.name, done
    wait_until(lambda: proxy.late_claims_sent == 1, 20, "the held answer to be delivered")
    time.sleep(2)  # room for the late worker to (wrongly) run it and report its log line
    logs = [entry["message"] for entry in server.api.logs(run["id"])["logs"]]
    assert logs == [marker], f"the run ran twice: {logs}"
