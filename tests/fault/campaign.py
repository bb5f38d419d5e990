#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
campaign.py — errand's fault campaign: a real server, three real workers and a stream of
submissions, while the campaign kills the server (SIGKILL) at random moments, kills workers
with their tasks mid-run (SIGKILL to the worker's whole session, as a container's end would),
deploys workers (SIGTERM, then SIGKILL when they are not gone within a termination period, a
replacement started at once) and cuts one worker off from the server (cutoff_proxy.py
black-holes its traffic for longer than a lease, then lets it through again). Then it heals
everything, waits for every run to end, and checks what errand promises
(docs/architecture.md, docs/operations.md):

 1. No acknowledged run is lost: every submission answered 2xx with a run id is in the store
    afterwards, with the parameters it was submitted with.
 2. Every run ends final, in a state the rules allow:
      COMPLETED  always; its result must be {"k": <its key>}, the task's own output.
      FAILED     only with a message naming a failure the faults cause (an exec task stopped
                 or killed by its worker, a worker stopped or its lease lost) and only once
                 the run used every attempt (attempt = max_attempts): the task itself never
                 fails.
      CRASHED    only with a message, and only once the run was redelivered max_redeliveries
                 times (ERRAND_MAX_REDELIVERIES): a lost lease, a lost claim answer or a
                 deploy spends a redelivery, never an attempt.
      CANCELLED  never: nothing cancels.
    Runs are submitted with retries=0: a fault must never need a retry, so every run must
    complete (a FAILED run is a fault-caused failure that should have been a redelivery).
 3. No run is executed twice unless errand redelivered it: the task (ledger_task.py) appends
    a line to a ledger at the start of every execution, and a run started E times must show
    at least E - 1 redeliveries in its state history (GET /api/task_runs/{id}/states):
    "lease expired on worker X", "handed back by worker X", or a retry (AwaitingRetry) after
    a failure the faults caused. Also: never more executions than claims (PENDING entries),
    and no COMPLETED run the task never started.
 4. Every redelivery has a cause: a lost lease follows a fault of the worker that held it
    (killed, deployed, cut off) or of the server, within a lease and EXPLAIN_SLACK; a
    hand-back follows a SIGTERM of that worker. A worker that drops outcomes, or a sweeper
    that expires live leases, breaks this one and no other.
 5. Every process errand is asked to stop (the workers at a deploy and at the end, the server
    at the end) exits 0, no process exits by itself, and none reports a sanitizer error
    (run the campaign against build-asan/ with ERRAND_BUILD to have them checked).

The knobs that differ between errand versions — which history messages mark a redelivery,
when CRASHED and FAILED are allowed — are in Rules (invariants.py), to be tightened as the rules are.

Forms: --short (CI, `make fault`: one round of 4 server kills, 2 worker kills, 2 deploys -
one patient, one hasty - and 1 cut-off; 30-50 s), or --rounds N by hand (each round a
random mix, about 18 s; default 20). Every run prints its seed first; --seed S replays the
same schedule (which faults, when, on which worker, for how long) and the same submissions.
Thread timing still varies, so a replay repeats the faults, not every interleaving. Exit
status 0 when every invariant held, 1 when one did not (the summary lists each violation), 2
when the campaign itself could not run. The work directory (server and worker logs, the
ledger) is kept when a run fails, or with --keep.

Run it with ERRAND_BUILD pointing at a build (default <repo>/build):
  ERRAND_BUILD=$PWD/build-dev tests/fault/campaign.py --short
"""
import argparse
import heapq
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

import requests  # noqa: E402

import errand_procs as ep  # noqa: E402
from cutoff_proxy import CutoffProxy  # noqa: E402
from invariants import TASK, Rules, check  # noqa: E402

LEDGER_TASK = HERE / "ledger_task.py"
PYTHON_WORKER = HERE / "python_ledger_worker.py"
# Which runtime serves each worker slot (--runtime): liberrand's C worker (`errand worker`
# with the task as an exec task), the Python runtime (errand.serve), or both, the slots
# taking turns (slot 0, behind the cut-off proxy, a C worker).
RUNTIMES = ("c", "python", "mixed")

# The system under test: short leases and a quick sweeper, so a lost lease costs seconds.
LEASE_SECONDS = 3
SWEEP_INTERVAL_MS = 100
WORKER_SLOTS = 3  # slot 0 reaches the server through the cut-off proxy
WORKER_CONCURRENCY = 4
GRACE_SECONDS = 1  # errand worker --grace-seconds: a deploy catches runs still running
RETRIES = 0  # per submission: faults cost redeliveries, never attempts

# The load: submissions per second over SUBMITTERS threads (every BATCH_EVERY-th request a
# batch); most runs short, LONG_SHARE of them longer than the grace, so faults catch runs
# in flight.
SUBMIT_RATE = 10.0
SUBMITTERS = 2
BATCH_EVERY = 8
BATCH_SIZE = (2, 8)
SHORT_SLEEP = (0.02, 0.4)
LONG_SLEEP = (1.0, 3.0)
LONG_SHARE = 0.2
SUBMIT_TIMEOUT = 10.0
REFUSED_PAUSE = 0.05  # after a submission that got no answer (the server is down)

# The faults, in seconds.
FIRST_FAULT_AT = 2.0
GAP = (2.0, 5.0)  # between two faults
SERVER_DOWNTIME = (0.1, 2.0)
WORKER_RESTART_DELAY = (0.0, 1.0)  # a killed worker's replacement
# A deploy sends SIGTERM, starts the replacement, and SIGKILLs the old worker when it is
# still there after a termination period: a patient deploy's period covers everything a
# worker may take to stop (its grace, its exec tasks' kill grace, its report flush: 1 + 2 +
# 1 + 10 s in errand 0.1.0, so needing SIGKILL is a violation); a hasty one's ends mid-grace.
PATIENT_PERIOD = 15.0
HASTY_PERIOD = (0.3, GRACE_SECONDS + 1.0)
CUTOFF_LEASES = (1.5, 2.5)  # how long a cut-off lasts, in leases: leases must run out
TAIL = 2.0  # load after the last fault healed
DEFER = 0.5  # a fault whose target is busy (down, or in another fault) waits this long
# A lost lease is explained by a fault of its worker (or of the server) that began at most
# EXPLAIN_BEFORE before it, and ended (or began) at most a lease + EXPLAIN_SLACK before it:
# a lease given just before a kill runs out a lease later; after an outage, the worker's
# next heartbeat (retried every second, against a server busy with everyone's backlog)
# has EXPLAIN_SLACK to land. A cut-off adds a lease after it heals: a claim held in the
# proxy reaches the server then, and its answer may reach nobody.
EXPLAIN_BEFORE = 0.5
EXPLAIN_SLACK = 3.0
DRAIN_TIMEOUT = 60.0  # after the faults, for every run to be final
MONITOR_INTERVAL = 0.1
SHORT_MIX = {"server kill": 4, "worker kill": 2, "deploy": 1, "hasty deploy": 1, "cut-off": 1}
LONG_MIX = {"server kill": (1, 3), "worker kill": (1, 2), "deploy": (0, 1),
            "hasty deploy": (0, 1), "cut-off": (0, 1)}
DEFAULT_ROUNDS = 20
DUPLICATES_LISTED = 20  # justified reruns printed; unjustified ones are all printed
VIOLATIONS_LISTED = 20  # per invariant, in the summary

NON_FINAL = "SCHEDULED,PENDING,RUNNING,CANCELLING"


# ---- the load ---------------------------------------------------------------------------


class Load:
    """SUBMITTERS threads submitting runs of TASK, each with a key of its own in its
    parameters; remembers what was sent and what was acknowledged."""

    def __init__(self, base_url, seed, rate):
        self.base_url = base_url
        self.seed = seed
        self.rate = rate
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.sent = {}  # key -> parameters (guarded by lock)
        self.acked = {}  # run id -> key
        self.unanswered = set()  # keys of submissions that got no 2xx with a run id
        self.outcomes = Counter()  # "201", "503", "ConnectionError", ... per request
        self.threads = [threading.Thread(target=self._run, args=(i,), name=f"submitter-{i}",
                                         daemon=True) for i in range(SUBMITTERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=SUBMIT_TIMEOUT + 5)

    def _item(self, rng, i, n, j):
        key = f"s{i}.{n}.{j}"
        sleep = rng.uniform(*(LONG_SLEEP if rng.random() < LONG_SHARE else SHORT_SLEEP))
        params = {"k": key, "s": round(sleep, 3)}
        return key, {"task": TASK, "parameters": params, "retries": RETRIES}

    def _run(self, i):
        rng = random.Random(f"{self.seed}/load/{i}")
        api = ep.Api(self.base_url)
        period = SUBMITTERS / self.rate  # seconds per run, per thread
        next_at = time.monotonic()
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            size = rng.randint(*BATCH_SIZE) if n % BATCH_EVERY == 0 else 1
            items = [self._item(rng, i, n, j) for j in range(size)]
            keys = [k for k, _ in items]
            with self.lock:
                for key, body in items:
                    self.sent[key] = body["parameters"]
            ids = None
            try:
                if size == 1:
                    r = api.request("POST", "/task_runs", json_body=items[0][1],
                                    timeout=SUBMIT_TIMEOUT)
                    if 200 <= r.status_code < 300:
                        ids = [r.json()["id"]]
                else:
                    r = api.request("POST", "/task_runs/batch",
                                    json_body={"runs": [b for _, b in items]},
                                    timeout=SUBMIT_TIMEOUT)
                    if 200 <= r.status_code < 300:
                        ids = [x["id"] for x in r.json()["runs"]]
                outcome = str(r.status_code)
            except (requests.RequestException, ValueError, KeyError, TypeError) as e:
                outcome = type(e).__name__
            with self.lock:
                self.outcomes[outcome] += 1
                if ids is not None and len(ids) == len(keys):
                    self.acked.update(zip(ids, keys))
                else:
                    self.unanswered.update(keys)
            if ids is None:
                self.stop_flag.wait(REFUSED_PAUSE)
            next_at += period * size
            now = time.monotonic()
            if next_at < now - 1.0:
                next_at = now  # after an outage, go on at the rate rather than in a burst
            self.stop_flag.wait(max(0.0, next_at - now))


# ---- the workers ------------------------------------------------------------------------


@dataclass
class Incarnation:
    slot: int
    name: str
    worker: object  # errand_procs.Worker
    leaving: bool = False  # we signalled it: its end is expected
    deployed: bool = False  # sent SIGTERM by a deploy
    done: bool = False  # its end has been accounted for
    stopping: object = None  # the Window from its SIGTERM to its end


class Fleet:
    """WORKER_SLOTS worker slots; each holds one worker at a time, named w<slot>.<n> after
    its n-th incarnation. Slot 0 talks to the server through the cut-off proxy."""

    def __init__(self, server, proxy, workdir, ledger, runtime="c"):
        self.server = server
        self.runtime = runtime
        self.proxy = proxy
        self.workdir = workdir
        self.ledger = ledger
        self.current = [None] * WORKER_SLOTS
        self.busy = [False] * WORKER_SLOTS  # a kill or deploy is under way
        self.made = [0] * WORKER_SLOTS
        self.all = []

    def start(self, slot):
        self.made[slot] += 1
        name = f"w{slot}.{self.made[slot]}"
        url = f"http://127.0.0.1:{self.proxy.port}/api" if slot == 0 else self.server.url
        env = {"ERRAND_API_URL": url, "ERRAND_LEASE_SECONDS": LEASE_SECONDS}
        log = self.workdir / f"worker-{name}.log"
        if self.runtime == "python" or (self.runtime == "mixed" and slot % 2 == 1):
            extra = {**env, "ERRAND_API_KEY": self.server.key} if self.server.key else env
            proc = ep.Process([ep.PYTHON, PYTHON_WORKER, TASK, self.ledger, name,
                               str(WORKER_CONCURRENCY), str(GRACE_SECONDS)],
                              ep.child_env(self.server.home, extra), log, name)
            w = ep.Worker(self.server, proc)
        else:
            spec = ep.exec_spec(TASK, ep.PYTHON, "-I", "-S", LEDGER_TASK, self.ledger, name)
            w = ep.start_worker(self.server, log, name, execs=[spec], builtin=False, env=env,
                                args=["--name", name, "--concurrency", WORKER_CONCURRENCY,
                                      "--grace-seconds", GRACE_SECONDS])
        inc = Incarnation(slot, name, w)
        self.all.append(inc)
        w.wait_ready()
        self.current[slot] = inc
        return inc


# ---- the campaign -----------------------------------------------------------------------


@dataclass
class Window:
    """A fault's time span (wall clock, as the server's timestamps): scope "server", a
    worker's name, or "slot0" for the cut-off (whichever worker is in slot 0)."""
    scope: str
    start: float
    end: float = None  # None while it lasts
    lingers: float = 0.0  # how long after its end it may still cost a lease

    def explains(self, t):
        end = self.end if self.end is not None else time.time()
        latest = max(end + self.lingers, self.start + LEASE_SECONDS) + EXPLAIN_SLACK
        return self.start - EXPLAIN_BEFORE <= t <= latest


class Campaign:
    def __init__(self, args, workdir):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(f"{args.seed}/faults")
        self.rules = Rules(max_redeliveries=args.max_redeliveries)
        self.workdir = workdir
        self.ledger = workdir / "ledger.txt"
        self.violations = defaultdict(list)  # invariant -> messages
        self.faults = Counter()
        self.deploy_sigkills = 0
        self.cutoff_seconds = 0.0
        self.events = []  # the timed heap: (at, seq, fn, args, moot)
        self.windows = []  # every fault's Window
        self.open_window = {}  # "server" / "slot0" -> the Window of the fault under way
        self.seq = 0
        self.t0 = None
        self.server = None
        self.server_up = False
        self.proxy = None
        self.fleet = None
        self.load = None
        self.times = {}

    # -- output --

    def say(self, text):
        t = time.monotonic() - self.t0 if self.t0 else 0.0
        print(f"  +{t:6.2f}s  {text}", flush=True)

    def window_open(self, scope, end_now=False, lingers=0.0):
        w = Window(scope, time.time(), lingers=lingers)
        if end_now:
            w.end = w.start
        else:
            self.open_window[scope] = w
        self.windows.append(w)
        return w

    def window_close(self, scope):
        self.open_window.pop(scope).end = time.time()

    def explained(self, kind, worker, t):
        """Whether a fault explains a redelivery of this kind, from this worker, at wall time
        t: a hand-back only the worker's own SIGTERM; a lost lease also its death, its
        cut-off (slot 0) or the server's."""
        m = re.match(r"w(\d+)\.", worker)
        scopes = {worker}
        if kind != "handed back":
            scopes |= {"server", f"slot{m.group(1)}" if m else None}
        return any(w.scope in scopes and w.explains(t) for w in self.windows)

    def violation(self, invariant, message, live=True):
        """Records a broken invariant; live ones (seen as they happen) are printed at once,
        the checks at the end print theirs in the summary."""
        self.violations[invariant].append(message)
        if live:
            self.say(f"VIOLATION ({invariant}): {message}")

    # -- the schedule --

    def plan(self):
        """The faults and their parameters, drawn from the seed before anything runs."""
        rounds = 1 if self.args.short else self.args.rounds
        plan, t = [], FIRST_FAULT_AT
        for _ in range(rounds):
            if self.args.short:
                mix = SHORT_MIX
            else:
                mix = {k: self.rng.randint(*span) for k, span in LONG_MIX.items()}
            kinds = [k for k, n in mix.items() for _ in range(n)]
            self.rng.shuffle(kinds)
            for kind in kinds:
                if kind == "server kill":
                    plan.append((t, self.kill_server, (self.rng.uniform(*SERVER_DOWNTIME),)))
                elif kind == "worker kill":
                    plan.append((t, self.kill_worker, (self.rng.randrange(WORKER_SLOTS),
                                                       self.rng.uniform(*WORKER_RESTART_DELAY))))
                elif kind == "deploy":
                    plan.append((t, self.deploy, (self.rng.randrange(WORKER_SLOTS),
                                                  PATIENT_PERIOD)))
                elif kind == "hasty deploy":
                    plan.append((t, self.deploy, (self.rng.randrange(WORKER_SLOTS),
                                                  self.rng.uniform(*HASTY_PERIOD))))
                else:
                    plan.append((t, self.cut_off,
                                 (self.rng.uniform(*CUTOFF_LEASES) * LEASE_SECONDS,)))
                t += self.rng.uniform(*GAP)
        return plan

    def at(self, t, fn, *args, moot=None):
        """Runs fn(*args) at t seconds into the campaign, unless moot() turns true first."""
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, fn, args, moot))

    def later(self, delay, fn, *args, moot=None):
        self.at(time.monotonic() - self.t0 + delay, fn, *args, moot=moot)

    # -- the faults (each returns False when its target is busy: it is tried again later) --

    def kill_server(self, downtime):
        if not self.server_up:
            return False
        self.window_open("server")
        try:
            self.server.kill9()
        except AssertionError as e:  # a sanitizer report on its stderr
            self.violation("clean exits", f"server: {e}")
        self.server_up = False
        self.faults["server kills"] += 1
        self.say(f"server killed (SIGKILL); back in {downtime:.2f} s")
        self.later(downtime, self.restart_server)
        return True

    def restart_server(self):
        try:
            self.server.start(port=self.port)
        except AssertionError as e:
            raise CampaignAbort(f"the server did not start again after a kill: {e}")
        self.server_up = True
        self.window_close("server")
        self.say("server started again on the same database and port")

    def kill_worker(self, slot, restart_delay):
        slot = self.free_slot(slot)
        if slot is None:
            return False
        inc = self.fleet.current[slot]
        inc.leaving = True
        self.fleet.busy[slot] = True
        inc.worker.proc.kill_session9()
        self.window_open(inc.name, end_now=True)
        self.account_end(inc, killed=True)
        self.faults["worker kills"] += 1
        self.say(f"worker {inc.name} and its tasks killed (SIGKILL); replaced in "
                 f"{restart_delay:.2f} s")
        self.later(restart_delay, self.replace_worker, slot)
        return True

    def replace_worker(self, slot):
        inc = self.fleet.start(slot)
        self.fleet.busy[slot] = False
        self.say(f"worker {inc.name} started")

    def deploy(self, slot, period):
        slot = self.free_slot(slot)
        if slot is None:
            return False
        old = self.fleet.current[slot]
        old.leaving = old.deployed = True
        self.fleet.busy[slot] = True  # until the old worker is gone
        old.worker.proc.signal(signal.SIGTERM)
        old.stopping = self.window_open(old.name, end_now=True)
        self.faults["deploys"] += 1
        new = self.fleet.start(slot)
        self.say(f"deploy: {old.name} sent SIGTERM (SIGKILL in {period:.2f} s if still "
                 f"there); {new.name} started")
        self.later(period, self.deploy_deadline, old, period == PATIENT_PERIOD,
                   moot=lambda: old.done)
        return True

    def deploy_deadline(self, old, patient):
        if old.done or not old.worker.running():
            return
        old.worker.proc.kill_session9()
        self.deploy_sigkills += 1
        self.say(f"deploy: {old.name} still there after its period: SIGKILL")
        self.account_end(old, killed=True)
        if patient:
            self.violation("clean exits", f"worker {old.name} did not stop within "
                           f"{PATIENT_PERIOD:g} s of SIGTERM; stderr:\n{old.worker.proc.tail()}")

    def cut_off(self, seconds):
        if self.proxy.is_cut:
            return False
        self.proxy.cut()
        self.window_open("slot0", lingers=LEASE_SECONDS)
        self.faults["cut-offs"] += 1
        self.cutoff_seconds += seconds
        name = self.fleet.current[0].name if self.fleet.current[0] else "slot 0"
        self.say(f"worker {name} cut off from the server for {seconds:.2f} s")
        self.later(seconds, self.heal_cut)
        return True

    def heal_cut(self):
        self.proxy.restore()
        self.window_close("slot0")
        self.say("cut-off healed")

    def free_slot(self, wanted):
        for k in range(WORKER_SLOTS):
            slot = (wanted + k) % WORKER_SLOTS
            if not self.fleet.busy[slot] and self.fleet.current[slot] is not None:
                return slot
        return None

    # -- watching the processes --

    def account_end(self, inc, killed=False):
        """The end of a worker we signalled: SIGKILL needs nothing more; after SIGTERM alone
        it must have exited 0. Either way no sanitizer report."""
        if inc.done:
            return
        inc.done = True
        if inc.stopping:
            inc.stopping.end = time.time()
        if inc.deployed:
            self.fleet.busy[inc.slot] = False
        proc = inc.worker.proc
        try:
            if killed:
                proc.check_sanitizers()
                return
            rc = proc.wait(ep.STOP_TIMEOUT)
            if rc is None:
                proc.kill_session9()
                raise AssertionError(f"still running {ep.STOP_TIMEOUT:g} s after SIGTERM; "
                                     f"stderr:\n{proc.tail()}")
            proc.check_clean_exit(rc)
        except AssertionError as e:
            self.violation("clean exits", f"worker {inc.name}: {e}")

    def watch(self):
        """Between events: anything that ended without being asked is a violation."""
        if self.server_up and not self.server.proc.running():
            rc = self.server.proc.proc.returncode
            self.violation("clean exits", f"the server exited by itself with status {rc}; "
                           f"stderr:\n{self.server.proc.tail()}")
            self.window_open("server")
            try:
                self.server.kill9()
            except AssertionError as e:
                self.violation("clean exits", f"server: {e}")
            self.server_up = False
            self.restart_server()
        for inc in list(self.fleet.all):
            if inc.done or inc.worker.running():
                continue
            if inc.leaving:
                self.account_end(inc)  # a deployed worker that left within its period
                continue
            inc.done = True
            rc = inc.worker.proc.proc.returncode
            self.violation("clean exits", f"worker {inc.name} exited by itself with status "
                           f"{rc}; stderr:\n{inc.worker.proc.tail()}")
            if self.fleet.current[inc.slot] is inc:
                self.fleet.start(inc.slot)

    def sleep_until(self, t, moot=None):
        """Watches the processes until t; False when moot() turned true first."""
        while True:
            self.watch()
            if moot and moot():
                return False
            left = self.t0 + t - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, MONITOR_INTERVAL))

    # -- phases --

    def setup(self):
        env = {"ERRAND_LEASE_SECONDS": LEASE_SECONDS,
               "ERRAND_SWEEP_INTERVAL_MS": SWEEP_INTERVAL_MS,
               "ERRAND_MAX_REDELIVERIES": self.rules.max_redeliveries}
        self.server = ep.Server(self.workdir / "home", self.workdir, env=env).start()
        self.server_up = True
        self.port = self.server.port
        self.proxy = CutoffProxy(self.port)
        self.fleet = Fleet(self.server, self.proxy, self.workdir, self.ledger, self.args.runtime)
        for slot in range(WORKER_SLOTS):
            self.fleet.start(slot)
        self.load = Load(self.server.url, self.seed, self.args.rate)

    def run_faults(self, plan):
        for t, fn, args in plan:
            self.at(t, fn, *args)
        self.load.start()
        self.say(f"load started: {self.args.rate:g} submissions/s of {TASK}, retries={RETRIES}")
        while self.events:
            t, _, fn, args, moot = heapq.heappop(self.events)
            if self.sleep_until(t, moot) and fn(*args) is False:
                self.later(DEFER, fn, *args)
        self.sleep_until(time.monotonic() - self.t0 + TAIL)
        self.load.stop()
        self.say(f"load stopped: {len(self.load.sent)} submissions sent")

    def drain(self):
        """Waits until no run of TASK is unfinished (every fault is healed by now)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            self.watch()
            try:
                left = self.server.api.list(task=TASK, state=NON_FINAL, limit=1)["runs"]
            except (requests.RequestException, AssertionError):
                left = [None]
            if not left:
                self.say("every run is final")
                return
            if time.monotonic() > deadline:
                stuck = self.server.api.list_all(task=TASK, state=NON_FINAL)
                self.violation("final states", f"{len(stuck)} runs still not final "
                               f"{DRAIN_TIMEOUT:.0f} s after the faults ended, e.g. "
                               + ", ".join(f"{r['id']} {r['state']['type']}"
                                           for r in stuck[:5]))
                return
            time.sleep(MONITOR_INTERVAL)

    def stop_workers(self):
        for inc in self.fleet.all:
            if inc.done:
                continue
            inc.leaving = True
            if inc.worker.running():
                inc.worker.proc.signal(signal.SIGTERM)
                inc.stopping = self.window_open(inc.name, end_now=True)
            self.account_end(inc)

    def stop_server(self):
        try:
            self.server.stop()
        except AssertionError as e:
            self.violation("clean exits", f"server: {e}")
        self.server_up = False

    def run(self):
        self.t0 = time.monotonic()
        plan = self.plan()
        self.setup()
        self.times["setup"] = time.monotonic() - self.t0
        try:
            self.run_faults(plan)
            self.times["faults"] = time.monotonic() - self.t0 - self.times["setup"]
            t = time.monotonic()
            self.drain()
            self.times["drain"] = time.monotonic() - t
            self.stop_workers()
            verdict = check(self)
            self.stop_server()
        finally:
            self.teardown()
        self.times["total"] = time.monotonic() - self.t0
        return verdict

    def teardown(self):
        if self.load:
            self.load.stop()
        if self.proxy:
            self.proxy.close()
        for inc in (self.fleet.all if self.fleet else []):
            if inc.worker.running():
                inc.worker.proc.kill_session9()
        if self.server and self.server.proc and self.server.proc.running():
            self.server.kill9()


class CampaignAbort(Exception):
    """The campaign cannot go on (the server will not start again): fails the run."""


# ---- the summary ------------------------------------------------------------------------

INVARIANTS = (
    ("acknowledged runs kept", "every acknowledged run is in the store, as submitted"),
    ("final states", "every run is final, in a state the rules allow"),
    ("no unjustified reruns", "no run started twice without a redelivery"),
    ("redeliveries explained", "every redelivery follows a fault of its worker or server"),
    ("clean exits", "processes exit 0 when asked, never by themselves"),
)


def summary(c, verdict, form):
    load = c.load
    rows = []
    if verdict is not None:
        acked = len(load.acked)
        rows += [
            ("submissions", f"{len(load.sent)} sent, {acked} acknowledged (2xx with a run "
                            f"id), {len(load.unanswered)} unanswered; requests answered "
                            + ", ".join(f"{k} x{n}" for k, n in load.outcomes.most_common())),
            ("runs in the store", f"{len(verdict.runs)}: {acked} acknowledged + "
                                  f"{verdict.stored_unanswered} stored though unanswered"),
            ("final states", ", ".join(f"{s} {n}" for s, n in verdict.finals.most_common())
             or "none"),
        ]
    rows += [
        ("faults", f"server kills {c.faults['server kills']}, worker kills "
                   f"{c.faults['worker kills']}, deploys {c.faults['deploys']} "
                   f"({c.deploy_sigkills} needed SIGKILL), cut-offs {c.faults['cut-offs']} "
                   f"({c.cutoff_seconds:.1f} s)"),
    ]
    if verdict is not None:
        m = verdict.markers
        rr = verdict.reruns
        rows += [
            ("redeliveries seen", f"lease expired {m['lease expired']}, handed back "
                                  f"{m['handed back']}, retries after a fault's failure "
                                  f"{m['retry']}"),
            ("executions", f"{verdict.executions} task starts for {len(verdict.runs)} runs; "
                           f"{len(rr)} runs started more than once "
                           f"({sum(1 for r in rr if r[6])} justified, "
                           f"{sum(1 for r in rr if not r[6])} not)"),
        ]
    rows.append(("time", ", ".join(f"{k} {v:.1f} s" for k, v in c.times.items())))
    print(f"\n== fault campaign: seed {c.seed}, {form} ==")
    width = max(len(k) for k, _ in rows)
    for k, text in rows:
        print(f"  {k:<{width}}  {text}")

    if verdict is not None and verdict.reruns:
        print("\n  runs started more than once (starts, of which ran to the end; workers; "
              "why):")
        shown = 0
        for rid, key, n, workers, n_ends, why, justified in verdict.reruns:
            if justified and shown >= DUPLICATES_LISTED:
                continue
            shown += justified
            mark = "justified" if justified else "NOT JUSTIFIED"
            print(f"    {rid}  {n} starts, {n_ends} ended; on {', '.join(workers)}; "
                  f"{mark}: {why}")
        hidden = sum(1 for r in verdict.reruns if r[6]) - shown
        if hidden > 0:
            print(f"    ... and {hidden} more, all justified")

    print("\n  invariant" + " " * 50 + "result")
    for key, text in INVARIANTS:
        found = c.violations.get(key, [])
        print(f"  {text:<58} {'ok' if not found else f'FAILED ({len(found)})'}")
    failed = sum(len(x) for x in c.violations.values())
    if failed:
        print(f"\nFAILED: {failed} violation(s):")
        for key, messages in c.violations.items():
            for msg in messages[:VIOLATIONS_LISTED]:
                print(f"  [{key}] {msg}")
            if len(messages) > VIOLATIONS_LISTED:
                print(f"  [{key}] ... and {len(messages) - VIOLATIONS_LISTED} more")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].split("— ", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    form = ap.add_mutually_exclusive_group()
    form.add_argument("--short", action="store_true",
                      help="the CI form: one round (4 server kills, 2 worker kills, 2 "
                           "deploys, 1 cut-off), about 40 s")
    form.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                      help=f"rounds of random faults (default {DEFAULT_ROUNDS}, several "
                           "minutes)")
    ap.add_argument("--seed", type=int, default=None,
                    help="replay the schedule of an earlier run (printed at its start)")
    ap.add_argument("--rate", type=float, default=SUBMIT_RATE,
                    help=f"submissions per second (default {SUBMIT_RATE:g})")
    ap.add_argument("--max-redeliveries", type=int, default=Rules.max_redeliveries,
                    help="ERRAND_MAX_REDELIVERIES for the server, and the redeliveries after "
                         f"which CRASHED is allowed (default {Rules.max_redeliveries})")
    ap.add_argument("--runtime", choices=RUNTIMES, default="c",
                    help="the workers: liberrand's C worker (default), the Python runtime "
                         "(errand.serve), or mixed (slots taking turns)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs, ledger) even when the run passes")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    form_text = "short form" if args.short else f"{args.rounds} rounds"
    replay = f"ERRAND_BUILD={ep.BUILD} {Path(sys.argv[0])} " \
             f"{'--short' if args.short else f'--rounds {args.rounds}'} " \
             f"--runtime {args.runtime} --seed {args.seed}"
    print(f"fault campaign: seed {args.seed}, {form_text}, errand {ep.ERRAND}\n"
          f"  replay with: {replay}", flush=True)
    if not ep.ERRAND.exists():
        print(f"fault campaign: {ep.ERRAND} is not built (run make, or set ERRAND_BUILD)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="errand-fault-"))
    c = Campaign(args, workdir)
    verdict, broken = None, False
    try:
        verdict = c.run()
    except CampaignAbort as e:
        c.violations["clean exits"].append(str(e))
    except Exception:  # the campaign itself failed: say where, keep what it left
        traceback.print_exc()
        broken = True
    failed = summary(c, verdict, form_text) or broken
    if failed or args.keep:
        print(f"\n  logs and ledger kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print(f"  replay with: {replay}")
    print("PASSED" if not failed else "FAILED")
    return 2 if broken else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
