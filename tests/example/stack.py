# SPDX-License-Identifier: MIT
"""
stack.py — the processes of the structured-output example, started for real and driven
over HTTP: the fake chat-completions server (fake_openai.py), an errand server, task
workers and the web API, of either implementation of the app:

  c        examples/structured-output: structured-output-task and structured-output-api
           from $ERRAND_BUILD/bin (Stack);
  fastapi  examples/fastapi-structured-output: the Python worker (`python3 tasks.py`,
           errand.serve) and the FastAPI app under uvicorn (`python3 api.py --port 0`),
           with clients/python on PYTHONPATH (FastAPIStack).

Both answer the same HTTP contract, so one set of tests drives either; ERRAND_EXAMPLE_APP
(conftest.py) picks the app. APPS below maps each name to its Stack class.

Every server listens on port 0 and is found through its `msg="listening" ... port=P` log
line; every wait polls a condition with a deadline (generous, since the same tests run
under ASan+UBSan). Processes are stopped with SIGTERM and must exit 0 with no sanitizer
report.

The binaries come from $ERRAND_BUILD/bin (default <repo>/build/bin).
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ERRAND_BUILD", REPO / "build"))
BIN = BUILD / "bin"
ERRAND = BIN / "errand"
API = BIN / "structured-output-api"
TASK = BIN / "structured-output-task"
FASTAPI_EXAMPLE = REPO / "examples" / "fastapi-structured-output"
PYTHON_CLIENT = REPO / "clients" / "python"
FAKE = Path(__file__).resolve().parent / "fake_openai.py"
PYTHON = "/usr/bin/python3"
TASK_NAME = "create_structured_output"
FAKE_KEY = "sk-test-structured-output"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
FINAL_TIMEOUT = 60.0
# The task retries after 2 s, 4 s and 8 s (+20 % jitter): waits that span every retry.
RETRIES_TIMEOUT = 90.0
POLL_INTERVAL = 0.02
HTTP_TIMEOUT = 30.0

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer")
PORT_RE = re.compile(r'msg="listening".* port=(\d+)')


def wait_until(predicate, timeout, what, interval=POLL_INTERVAL):
    """Polls predicate() until it returns something truthy (returned) or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def child_env(extra):
    """Our environment without ERRAND_*, OPENAI_* or proxy settings (a developer's own must
    not leak into a test), plus extra (a None value removes the variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ERRAND_", "OPENAI_")) and "proxy" not in k.lower()}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def free_port_nobody_listens_on():
    """A loopback port that was free a moment ago: for 'the server is down' tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child whose stderr is read line by line on a thread (so the pipe never fills),
    kept in memory and copied to a log file."""

    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc = subprocess.Popen([str(a) for a in argv], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stderr:
                log.write(raw)
                log.flush()
                with self.cond:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def tail(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def wait_line(self, pattern, timeout=START_TIMEOUT):
        """Waits for a stderr line matching the regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode} "
                                         f"before logging /{pattern}/:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no line /{pattern}/ within "
                                         f"{timeout:.0f}s:\n{self.tail()}")
                self.cond.wait(min(left, 0.2))

    def port(self):
        return int(self.wait_line(PORT_RE.pattern).group(1))

    def stop(self):
        """SIGTERM, wait, and check a clean exit (status 0, no sanitizer report)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT}s:\n"
                                 f"{self.tail()}")
        self.reader.join(timeout=10)
        text = self.text()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, f"{self.name} reported {marker}:\n{self.tail(80)}"
        assert rc == 0, f"{self.name} exited with {rc}:\n{self.tail()}"


class FakeOpenAI:
    """The fake chat-completions server, and its control API."""

    def __init__(self, log_dir, api_key=FAKE_KEY):
        self.api_key = api_key
        self.proc = Process("fake-openai", [PYTHON, FAKE, "--port", "0", "--api-key", api_key],
                            child_env({}), log_dir)
        port = self.proc.port()
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/v1"  # what OPENAI_BASE_URL is set to

    def reset(self):
        requests.post(self.url + "/_fake/reset", timeout=HTTP_TIMEOUT).raise_for_status()

    def script(self, match, *responses):
        """Requests whose messages contain `match` get these responses in turn."""
        requests.post(self.url + "/_fake/rules", json={"match": match,
                      "responses": list(responses)}, timeout=HTTP_TIMEOUT).raise_for_status()

    def release(self, gate):
        requests.post(self.url + "/_fake/release", json={"gate": gate},
                      timeout=HTTP_TIMEOUT).raise_for_status()

    def waiting(self, gate):
        r = requests.get(self.url + "/_fake/waiting", params={"gate": gate}, timeout=HTTP_TIMEOUT)
        return r.json()["waiting"]

    def calls(self, match=None):
        params = {"match": match} if match is not None else {}
        r = requests.get(self.url + "/_fake/calls", params=params, timeout=HTTP_TIMEOUT)
        return r.json()["calls"]

    def stop(self):
        self.proc.stop()


class Stack:
    """An errand server, task workers and the API, in one temporary directory."""

    def __init__(self, tmp, fake=None, log_dir=None):
        self.tmp = Path(tmp)
        self.home = self.tmp / "errand-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir or self.tmp)
        self.fake = fake
        self.server = None
        self.workers = []
        self.api = None
        self.errand_url = None
        self.api_url = None

    # -- starting ------------------------------------------------------------------------
    def start_server(self):
        self.server = Process("errand-server", [ERRAND, "server", "start", "--port", "0"],
                              child_env({"ERRAND_HOME": self.home}), self.log_dir)
        self.errand_url = f"http://127.0.0.1:{self.server.port()}/api"
        return self

    def openai_env(self):
        if self.fake is None:
            return {}
        return {"OPENAI_BASE_URL": self.fake.base_url, "OPENAI_API_KEY": self.fake.api_key}

    def start_worker(self, *args, env=None, name=None, wait_ready=True):
        name = name or f"task-{len(self.workers) + 1}-{uuid.uuid4().hex[:6]}"
        extra = {"ERRAND_HOME": self.home, "ERRAND_API_URL": self.errand_url}
        extra.update(self.openai_env())
        extra.update(env or {})
        w = Process(name, [TASK, "--name", name, *args], child_env(extra), self.log_dir)
        w.worker_name = name
        self.workers.append(w)
        if wait_ready:
            wait_until(lambda: self.worker_active(name), START_TIMEOUT,
                       f"worker {name} to show up at the errand server")
        return w

    def worker_active(self, name):
        r = requests.get(self.errand_url + "/workers", timeout=HTTP_TIMEOUT)
        return any(w["name"] == name and TASK_NAME in w.get("tasks", [])
                   for w in r.json().get("workers", []))

    def start_api(self, errand_url=None, env=None):
        extra = {"ERRAND_HOME": self.home, "ERRAND_API_URL": errand_url or self.errand_url}
        extra.update(env or {})
        self.api = Process("structured-output-api",
                           [API, "--host", "127.0.0.1", "--port", "0"], child_env(extra),
                           self.log_dir)
        self.api_url = f"http://127.0.0.1:{self.api.port()}"
        return self

    def start(self, workers=1, worker_args=()):
        self.start_server()
        for _ in range(workers):
            self.start_worker(*worker_args)
        self.start_api()
        return self

    def stop(self):
        errors = []
        for p in [self.api, *reversed(self.workers), self.server]:
            if p is None:
                continue
            try:
                p.stop()
            except AssertionError as e:
                errors.append(str(e))
        assert not errors, "\n\n".join(errors)

    # -- the web API ---------------------------------------------------------------------
    def submit(self, fields, encoding="urlencoded"):
        """POST /tasks with the fields as a form (urlencoded or multipart) or a JSON body."""
        url = self.api_url + "/tasks"
        if encoding == "urlencoded":
            return requests.post(url, data=fields, timeout=HTTP_TIMEOUT)
        if encoding == "multipart":
            files = {k: (None, v if isinstance(v, str) else json.dumps(v))
                     for k, v in fields.items()}
            return requests.post(url, files=files, timeout=HTTP_TIMEOUT)
        if encoding == "json":
            return requests.post(url, json=fields, timeout=HTTP_TIMEOUT)
        raise ValueError(encoding)

    def submit_ok(self, fields, encoding="urlencoded"):
        r = self.submit(fields, encoding)
        assert r.status_code == 202, (r.status_code, r.text)
        body = r.json()
        assert list(body) == ["task_run_id"], body
        uuid.UUID(body["task_run_id"])
        return body["task_run_id"]

    def status(self, run_id):
        return requests.get(f"{self.api_url}/tasks/{run_id}/status", timeout=HTTP_TIMEOUT)

    def wait_status(self, run_id, want=("completed", "error"), timeout=FINAL_TIMEOUT):
        def done():
            r = self.status(run_id)
            assert r.status_code == 200, (r.status_code, r.text)
            body = r.json()
            return body if body["status"] in want else None
        return wait_until(done, timeout, f"task run {run_id} to reach {want}")

    # -- errand's own API, for what the web API does not show ------------------------------
    def errand(self, method, path, **kw):
        return requests.request(method, self.errand_url + path, timeout=HTTP_TIMEOUT, **kw)

    def run(self, run_id):
        r = self.errand("GET", f"/task_runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()


def python_env(extra):
    """child_env() plus the errand package (clients/python) on the path; the FastAPI
    example's own modules are found beside the script that is run."""
    return child_env({"PYTHONPATH": PYTHON_CLIENT, "PYTHONUNBUFFERED": "1", **extra})


class FastAPIStack(Stack):
    """An errand server, Python workers and the FastAPI app, in one temporary directory:
    Stack's starting, log reading and clean-stop checks; only the worker and the API
    differ."""

    def start_worker(self, *args, env=None, name=None, wait_ready=True):
        name = name or f"py-task-{len(self.workers) + 1}-{uuid.uuid4().hex[:6]}"
        extra = {"ERRAND_HOME": self.home, "ERRAND_API_URL": self.errand_url}
        extra.update(self.openai_env())
        extra.update(env or {})
        w = Process(name, [PYTHON, FASTAPI_EXAMPLE / "tasks.py", "--name", name, *args],
                    python_env(extra), self.log_dir)
        w.worker_name = name
        self.workers.append(w)
        if wait_ready:
            wait_until(lambda: self.worker_active(name), START_TIMEOUT,
                       f"worker {name} to show up at the errand server")
        return w

    def start_api(self, errand_url=None, env=None):
        extra = {"ERRAND_HOME": self.home, "ERRAND_API_URL": errand_url or self.errand_url}
        extra.update(env or {})
        self.api = Process("fastapi-api",
                           [PYTHON, FASTAPI_EXAMPLE / "api.py", "--host", "127.0.0.1",
                            "--port", "0"], python_env(extra), self.log_dir)
        self.api_url = f"http://127.0.0.1:{self.api.port()}"
        return self


# The apps, by the name ERRAND_EXAMPLE_APP gives them.
APPS = {"c": Stack, "fastapi": FastAPIStack}

# Where the two apps answer differently on purpose: one row per difference, one regex per
# app, asserted by the test that meets it (`difference(app, row)`). Everything else the tests
# check, they check the same way for both apps. A new difference adds its row here, says why,
# and is asserted for each app; never a test skipped for one of them.
#
#   cache_key       the cache key of a run. The C app's task policy is
#                   ERRAND_CACHE_INPUTS_AND_VERSION (task_def.c): liberrand's SHA-256 of the
#                   task's name, version and inputs, 64 hex digits. The Python package's
#                   default is Prefect's: "errand-default-" and a SHA-256 of the task's name,
#                   source code and inputs (clients/python/errand/tasks.py).
#   submitted_line  the API's log line for a submission, {id} for the run id. The C app's
#                   logger (applog.c) puts the fields after the message; the FastAPI app logs
#                   them inside msg="..." through Python's logging.
DIFFERENCES = {
    "cache_key": {
        "c": r"[0-9a-f]{64}",
        "fastapi": r"errand-default-[0-9a-f]{64}",
    },
    "submitted_line": {
        "c": r'msg="Submitted task run: {id}" task_run_id={id} task=create_structured_output',
        "fastapi": r'msg="Submitted task run: {id} task_run_id={id} task=create_structured_output',
    },
}


def difference(app, row, **fields):
    """The regex that DIFFERENCES[row] gives for this app, each {name} replaced by the
    escaped value of the field of that name (str.format would read {64} as a field)."""
    rx = DIFFERENCES[row][app]
    for name, value in fields.items():
        rx = rx.replace("{" + name + "}", re.escape(str(value)))
    return rx
