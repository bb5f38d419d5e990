# SPDX-License-Identifier: MIT
"""
invariants.py — what the fault campaign (campaign.py) accepts and how it checks it once the
faults are over: the rules errand's states must follow (Rules, tightened as errand's rules
tighten), the task's ledger of executions, and the checks of invariants 1-3 against the store
(campaign.py's docstring states them).
"""
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import errand_procs as ep

TASK = "fault.ledger"


@dataclass
class Rules:
    """What the campaign accepts. Tighten here when errand's rules tighten."""

    # State-history messages of a run that went back to the queue after a worker held it
    # (its task may have started): it may run again.
    redelivery_markers: dict = field(default_factory=lambda: {
        "lease expired": re.compile(r"^lease expired on worker ([^\s;]+)"),
        "handed back": re.compile(r"^handed back by worker ([^\s;]+)"),
    })
    # Failures that only the faults cause: the worker stopped or killed the task (deploy),
    # or lost the lease. A stopping worker hands its runs back instead (a redelivery), so a
    # retry never justifies a rerun; with retries=0, a run that ends FAILED with one of these
    # shows a fault that spent an attempt.
    fault_failure: re.Pattern = re.compile(
        r"exec task '[^']*' was (stopped|killed by signal)|worker stopped before the task "
        r"finished|lost the run's lease")
    retries_justify_reruns: bool = False
    # ERRAND_MAX_REDELIVERIES given to the server (which ignores it if it predates it): a run
    # may end CRASHED once redelivered this many times, or once it used every attempt.
    max_redeliveries: int = 10


def read_ledger(path):
    """key -> [(worker, pid)] of the executions that started, and of those that ended."""
    starts, ends = defaultdict(list), defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:
                (starts if parts[0] == "start" else ends)[parts[1]].append(
                    (parts[2], int(parts[3])))
    return starts, ends


@dataclass
class Verdict:
    runs: list
    finals: Counter
    markers: Counter
    executions: int
    reruns: list  # (run id, key, executions, workers, justification, justified)
    stored_unanswered: int


def history_markers(rules, history):
    """Counts of the redeliveries (and retries) a state history shows, and their texts."""
    counts, texts = Counter(), []
    for s in history:
        if s["type"] != "SCHEDULED" or not s["message"]:
            continue
        for kind, pattern in rules.redelivery_markers.items():
            if pattern.search(s["message"]):
                counts[kind] += 1
                texts.append(s["message"])
                break
        else:
            if s["name"] == "AwaitingRetry":
                counts["retry"] += 1
                texts.append(f"retried after: {s['message']}")
    return counts, texts


def check(c):
    """Invariants 1-3 (4 is checked as the processes end); fills c.violations."""
    rules, load, api = c.rules, c.load, c.server.api

    def v(invariant, message):
        c.violation(invariant, message, live=False)

    starts, ends = read_ledger(c.ledger)
    runs = api.list_all(task=TASK)
    by_id = {r["id"]: r for r in runs}
    by_key = defaultdict(list)
    for r in runs:
        by_key[(r.get("parameters") or {}).get("k")].append(r)

    # 1. acknowledged runs, all there with what was sent
    for run_id, key in load.acked.items():
        run = by_id.get(run_id)
        if run is None:
            r = api.request("GET", f"/task_runs/{run_id}")
            v("acknowledged runs kept", f"run {run_id} (key {key}) was acknowledged but the "
              f"store answers {r.status_code}")
        elif run["parameters"] != load.sent[key]:
            v("acknowledged runs kept", f"run {run_id} was submitted with {load.sent[key]}, "
              f"the store has {run['parameters']}")
    for key, found in by_key.items():
        if key not in load.sent:
            v("acknowledged runs kept", f"run {found[0]['id']} has a key nobody sent: {key}")
        elif len(found) > 1:
            v("acknowledged runs kept", f"key {key} was sent once but stored "
              f"{len(found)} times: {[r['id'] for r in found]}")
    stored_unanswered = sum(1 for k in load.unanswered if k in by_key)

    # 2 and 3, run by run
    finals, markers, reruns, executions = Counter(), Counter(), [], 0
    for run in runs:
        rid, key = run["id"], run["parameters"].get("k")
        state, message = run["state"]["type"], run["state"]["message"] or ""
        finals[state] += 1
        history = api.states(rid)
        counts, texts = history_markers(rules, history)
        markers.update(counts)
        redeliveries = counts["lease expired"] + counts["handed back"]
        out_of_attempts = run["attempt"] >= run["max_attempts"]
        if state == "COMPLETED":
            if run.get("result") != {"k": key}:
                v("final states", f"run {rid} COMPLETED with result {run.get('result')!r}, "
                  f"not its task's {{'k': {key!r}}}")
        elif state == "FAILED":
            if not (rules.fault_failure.search(message) and out_of_attempts):
                v("final states", f"run {rid} FAILED ('{message}') on attempt "
                  f"{run['attempt']} of {run['max_attempts']}: only a failure the faults "
                  f"cause, with no attempt left, may fail a run")
        elif state == "CRASHED":
            if not message or not (out_of_attempts
                                   or redeliveries >= rules.max_redeliveries):
                v("final states", f"run {rid} CRASHED ('{message}') on attempt "
                  f"{run['attempt']} of {run['max_attempts']} after {redeliveries} "
                  f"redeliveries: allowed only with a message, once out of attempts or "
                  f"after {rules.max_redeliveries} redeliveries")
        elif state == "CANCELLED":
            v("final states", f"run {rid} ended CANCELLED ('{message}'): nothing cancels")
        else:
            v("final states", f"run {rid} is still {state}, not final")

        for s in history:
            if s["name"] == "AwaitingRetry" and not rules.fault_failure.search(s["message"]):
                v("final states", f"run {rid} failed on its own and was retried: "
                  f"'{s['message']}' (the campaign's task never fails)")
            for kind, pattern in rules.redelivery_markers.items():
                m = pattern.search(s["message"] or "")
                if m and not c.explained(kind, m.group(1), ep.parse_ts(s["timestamp"])):
                    v("redeliveries explained", f"run {rid}: '{s['message']}' at "
                      f"{s['timestamp']}, and no fault of that worker or of the server "
                      f"could have cost it that lease then")
        ran = starts.get(key, [])
        executions += len(ran)
        claims = sum(1 for s in history if s["type"] == "PENDING")
        allowed = 1 + redeliveries + (counts["retry"] if rules.retries_justify_reruns else 0)
        if state == "COMPLETED" and not ran:
            v("no unjustified reruns", f"run {rid} COMPLETED but its task never started")
        if len(ran) > 1 or len(ran) > claims:
            justified = len(ran) <= min(allowed, claims)
            why = "; ".join(texts) if texts else "no redelivery in its history"
            reruns.append((rid, key, len(ran), [w for w, _ in ran],
                           len(ends.get(key, [])), why, justified))
            if not justified:
                v("no unjustified reruns", f"run {rid} started {len(ran)} times (on "
                  f"{', '.join(w for w, _ in ran)}), claimed {claims} times, redelivered "
                  f"{allowed - 1} times: {why}")
    return Verdict(runs, finals, markers, executions, reruns, stored_unanswered)


