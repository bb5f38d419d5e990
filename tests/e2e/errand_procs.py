# SPDX-License-Identifier: MIT
"""
errand_procs.py — real `errand` processes (server, workers, CLI) and a thin HTTP client of
the API: what the end-to-end tests (through conftest.py's fixtures) and the fault campaign
(tests/fault/campaign.py, a plain script) both drive. No pytest in here.

  Server(home, log_dir, env=..., args=...)  `errand server start --port 0` on an
                                     ERRAND_HOME; the port is read from the server's
                                     `msg="listening" ... port=P` log line; restartable on
                                     the same home and port. Its store: the home's SQLite
                                     file, or what STORE (below) gives for the home.
  start_worker(server, log_path, name, execs=..., builtin=True, env=..., args=...)
                                     starts `errand worker [--builtin] [--exec NAME=CMD]...`;
                                     its wait_ready() waits for the "worker started" line.
  Api(base)                          GET/POST helpers over one keep-alive session.
  run_cli(server, *args)             runs the CLI against a server and returns the result.

Nothing here binds a fixed port or sleeps for a guessed time: waits poll a condition with a
deadline. The binaries come from $ERRAND_BUILD/bin (default <repo>/build/bin).
"""
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ERRAND_BUILD", REPO / "build"))
ERRAND = BUILD / "bin" / "errand"
# Built with ASan+UBSan: memory figures then include the sanitizer's redzones and quarantine.
SANITIZED = "ERRAND_SANITIZE:BOOL=ON" in (BUILD / "CMakeCache.txt").read_text() \
    if (BUILD / "CMakeCache.txt").exists() else False
PYTHON = "/usr/bin/python3"

# Generous deadlines: the same suite runs under ASan+UBSan, which is several times slower.
# None of these is a speed assertion; they only stop a hung test.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
FINAL_TIMEOUT = 60.0
POLL_INTERVAL = 0.02

FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer", "ThreadSanitizer")

# The store of the servers: None, each home's own SQLite file (the server's default), or an
# object whose server_env(home) gives the settings of a server on that home, such as
# pg_cluster.PgCluster (set by conftest.py when ERRAND_TEST_STORE=postgresql). A server
# given its own ERRAND_DATABASE_URL keeps it.
STORE = None


def wait_until(predicate, timeout, what, interval=POLL_INTERVAL):
    """Polls predicate() until it returns a truthy value (returned) or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def child_env(home, extra=None):
    """The environment of a child process: ours without any ERRAND_*, AWS_* or proxy variable
    (they would leak the developer's settings into the test), plus ERRAND_HOME and extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ERRAND_", "AWS_")) and "proxy" not in k.lower()}
    env["ERRAND_HOME"] = str(home)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def session_members(sid):
    """The ids of the live processes of session sid (from /proc/PID/stat)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue  # it ended meanwhile
        # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if len(fields) > 3 and int(fields[3]) == sid and int(entry) != sid:
            members.append(int(entry))
    return members


class Process:
    """A child process whose stderr is read line by line on a thread (so the pipe never
    fills), kept in memory and copied to a log file next to the test's tmp_path."""

    def __init__(self, argv, env, log_path, name):
        self.argv = [str(a) for a in argv]
        self.name = name
        self.log_path = Path(log_path)
        self.lines = []
        self.lock = threading.RLock()  # wait_line reads tail() while holding it
        self.changed = threading.Condition(self.lock)
        self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.stdout_chunks = []
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True),
                         threading.Thread(target=self._read_stdout, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_stderr(self):
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stderr:
                log.write(raw)
                log.flush()
                with self.changed:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.stdout_chunks.append(raw)

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_line(self, predicate, timeout, what):
        """Waits for a stderr line for which predicate(line) is truthy; returns the line."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if predicate(line):
                        return line
                if self.proc.poll() is not None and seen >= len(self.lines):
                    # Give the reader a last chance to deliver the final lines.
                    self.changed.wait(0.2)
                    if seen >= len(self.lines):
                        raise AssertionError(
                            f"{self.name} exited with {self.proc.returncode} before {what}; "
                            f"stderr:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: timed out waiting for {what}; "
                                         f"stderr:\n{self.tail()}")
                self.changed.wait(min(left, 0.5))

    def tail(self, n=40):
        with self.lock:
            return "\n".join(self.lines[-n:])

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the process to end and for its output to be read: its exit status, or
        None when it still runs after timeout seconds."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join()
        return rc

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._join()

    def kill_session9(self):
        """SIGKILL to this process and then to every process of its session (it leads one of
        its own): a worker and the exec tasks it started in process groups of their own, as
        the end of a container or a machine would take them all at once."""
        self.kill9()
        sid = self.proc.pid
        for _ in range(2):  # a second pass for a child spawned while the first one ran
            for pid in session_members(sid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._join()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM; "
                                 f"stderr:\n{self.tail()}")
        self._join()
        return rc

    def _join(self):
        for t in self._threads:
            t.join(timeout=10)

    def check_sanitizers(self):
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, f"{self.name} reported '{marker}':\n{self.tail(80)}"

    def check_clean_exit(self, rc):
        self.check_sanitizers()
        assert rc == 0, f"{self.name} exited with {rc}; stderr:\n{self.tail()}"


def log_fields(line):
    """The fields of one log line, logfmt or JSON (ERRAND_LOGGING_FORMAT=json), as strings."""
    if line.startswith("{"):
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(line).items()}
    return parse_logfmt(line)


def log_msg_is(line, msg):
    """True when the log line (logfmt or JSON) has this msg."""
    return f'msg="{msg}"' in line or f'"msg":{json.dumps(msg)}' in line


def parse_logfmt(line):
    """key=value fields of one logfmt line (values may be "quoted")."""
    out = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        j = i
        while j < n and line[j] not in "= ":
            j += 1
        key = line[i:j]
        if j < n and line[j] == "=":
            j += 1
            if j < n and line[j] == '"':
                k = j + 1
                val = []
                while k < n and line[k] != '"':
                    if line[k] == "\\" and k + 1 < n:
                        k += 1
                    val.append(line[k])
                    k += 1
                out[key] = "".join(val)
                i = k + 1
            else:
                k = j
                while k < n and line[k] != " ":
                    k += 1
                out[key] = line[j:k]
                i = k
        else:
            if key:
                out[key] = ""
            i = j
    return out


class Api:
    """A thin HTTP client of the errand API, over one keep-alive session."""

    def __init__(self, base, key=None):
        self.base = base
        self.key = key
        self.session = requests.Session()
        self.session.trust_env = False  # never go through a proxy to 127.0.0.1

    def headers(self, extra=None):
        h = {}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(extra or {})
        return h

    def request(self, method, path, json_body=None, data=None, params=None, headers=None,
                timeout=30):
        kw = {"params": params, "headers": self.headers(headers), "timeout": timeout}
        if json_body is not None:
            kw["json"] = json_body
        if data is not None:
            kw["data"] = data
        url = path if path.startswith("http") else self.base + path
        try:
            return self.session.request(method, url, **kw)
        except requests.ConnectionError:
            # A keep-alive connection the server closed while it sat idle (a server stopped
            # with SIGSTOP closes its idle connections as soon as it runs again) fails the
            # first request sent on it; a GET is safe to send again, on a new connection.
            if method != "GET":
                raise
            return self.session.request(method, url, **kw)

    def get_json(self, path, params=None, expect=200):
        r = self.request("GET", path, params=params)
        assert r.status_code == expect, f"GET {path} {params} -> {r.status_code} {r.text}"
        return r.json()

    def submit_raw(self, body, **kw):
        return self.request("POST", "/task_runs", json_body=body, **kw)

    def submit(self, task, parameters=None, expect=201, **fields):
        body = {"task": task}
        if parameters is not None:
            body["parameters"] = parameters
        body.update(fields)
        r = self.submit_raw(body)
        assert r.status_code == expect, f"POST /task_runs {body} -> {r.status_code} {r.text}"
        return r.json()

    def batch(self, runs, expect=201):
        r = self.request("POST", "/task_runs/batch", json_body={"runs": runs}, timeout=120)
        assert r.status_code == expect, f"POST /task_runs/batch -> {r.status_code} {r.text[:500]}"
        return r.json()["runs"]

    def get(self, run_id):
        return self.get_json(f"/task_runs/{run_id}")

    def states(self, run_id):
        return self.get_json(f"/task_runs/{run_id}/states")["states"]

    def logs(self, run_id, **params):
        return self.get_json(f"/task_runs/{run_id}/logs", params=params or None)

    def cancel(self, run_id, expect=200):
        r = self.request("POST", f"/task_runs/{run_id}/cancel")
        assert r.status_code == expect, f"cancel {run_id} -> {r.status_code} {r.text}"
        return r.json()

    def list(self, **params):
        return self.get_json("/task_runs", params=params)

    def list_all(self, limit=1000, **params):
        """Every run matching params, following next_cursor."""
        runs, cursor = [], None
        while True:
            p = dict(params, limit=limit)
            if cursor:
                p["cursor"] = cursor
            page = self.list(**p)
            runs.extend(page["runs"])
            cursor = page.get("next_cursor")
            if not cursor:
                return runs

    def health(self):
        return self.get_json("/health")

    def wait_final(self, run_id, timeout=FINAL_TIMEOUT):
        """Long-polls /wait until the run is final; returns the run."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                run = self.get(run_id)
                raise AssertionError(f"run {run_id} not final after {timeout}s: {run['state']}")
            r = self.request("GET", f"/task_runs/{run_id}/wait",
                             params={"timeout_seconds": max(1, min(10, int(left)))},
                             timeout=left + 15)
            assert r.status_code == 200, f"wait {run_id} -> {r.status_code} {r.text}"
            run = r.json()
            if run["state"]["type"] in FINAL_STATES:
                return run

    def wait_all_final(self, ids, timeout=FINAL_TIMEOUT):
        return {i: self.wait_final(i, timeout) for i in ids}

    def wait_state(self, run_id, predicate, timeout=FINAL_TIMEOUT, what="state"):
        """Polls GET until predicate(run) holds; returns the run."""
        holder = {}

        def check():
            holder["run"] = self.get(run_id)
            return predicate(holder["run"])

        try:
            wait_until(check, timeout, f"run {run_id} {what}")
        except AssertionError:
            raise AssertionError(f"run {run_id} never reached {what}; last: "
                                 f"{holder.get('run', {}).get('state')}")
        return holder["run"]


class Server:
    """One `errand server start` process on an ERRAND_HOME; restartable on the same home."""

    def __init__(self, home, log_dir, env=None, args=()):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir)
        self.env_extra = dict(env or {})
        self.args = list(args)
        self.key = self.env_extra.get("ERRAND_API_KEY")
        self.proc = None
        self.past = []  # earlier processes on this home (after a restart)
        self.generation = 0
        self.port = None
        self.api = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def root(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, port=0):
        """Starts the server; port=0 (the default) lets the OS pick a free port. A restart may
        pass the previous port so that running workers find the server again."""
        assert ERRAND.exists(), f"{ERRAND} not built (run make, or set ERRAND_BUILD)"
        self.generation += 1
        argv = [ERRAND, "server", "start", "--host", "127.0.0.1", "--port", str(port), *self.args]
        env = dict(self.env_extra)
        if STORE is not None and "ERRAND_DATABASE_URL" not in env:
            env = {**STORE.server_env(self.home), **env}
        self.proc = Process(argv, child_env(self.home, env),
                            self.log_dir / f"server-{self.generation}.log",
                            f"server#{self.generation}")
        line = self.proc.wait_line(lambda l: log_msg_is(l, "listening") or "msg=listening" in l,
                                   START_TIMEOUT, "the listening log line")
        fields = log_fields(line)
        assert "port" in fields, f"listening line without port=: {line}"
        self.port = int(fields["port"])
        assert self.port > 0, line
        self.api = Api(self.url, self.key)
        probe = Api(self.url)  # health needs no key

        def healthy():
            try:
                r = probe.request("GET", "/health", timeout=5)
                return r.status_code == 200 and r.json().get("status") == "ok"
            except requests.RequestException:
                return False

        wait_until(healthy, START_TIMEOUT, "GET /api/health ok")
        return self

    def stop(self):
        """SIGTERM; asserts a clean exit (status 0, no sanitizer report)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        rc = proc.stop()
        self.past.append(proc)
        proc.check_clean_exit(rc)

    def kill9(self):
        proc, self.proc = self.proc, None
        proc.kill9()
        self.past.append(proc)
        proc.check_sanitizers()

    def restart(self):
        if self.proc is not None:
            self.stop()
        return self.start()

    def stderr_text(self):
        parts = [p.stderr_text() for p in self.past]
        if self.proc:
            parts.append(self.proc.stderr_text())
        return "\n".join(parts)


class Worker:
    def __init__(self, server, proc):
        self.server = server
        self.proc = proc
        self.name = None  # from its "worker started" line

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self):
        """Waits for the "worker started" line: after it the worker has its signal handlers
        and its threads; before it, a SIGTERM would still have its default action."""
        line = self.proc.wait_line(lambda l: log_msg_is(l, "worker started"), START_TIMEOUT,
                                   "the 'worker started' log line")
        self.name = log_fields(line).get("worker")
        return self

    def stop(self):
        rc = self.proc.stop()
        self.proc.check_clean_exit(rc)

    def kill9(self):
        self.proc.kill9()
        self.proc.check_sanitizers()

    def running(self):
        return self.proc.running()


def start_worker(server, log_path, name, execs=(), builtin=True, env=None, args=()):
    """Starts `errand worker [--builtin] [--exec SPEC]... ARGS` against server (its URL and
    API key; env adds to or overrides them), its stderr copied to log_path; name labels it
    in failure messages. Returns the Worker at once: call wait_ready() before signalling it."""
    argv = [ERRAND, "worker"]
    if builtin:
        argv.append("--builtin")
    for spec in execs:
        argv += ["--exec", spec]
    argv += list(args)
    extra = {"ERRAND_API_URL": server.url}
    if server.key:
        extra["ERRAND_API_KEY"] = server.key
    extra.update(env or {})
    return Worker(server, Process(argv, child_env(server.home, extra), log_path, name))


def run_cli(server, *args, env=None, timeout=120, input_text=None):
    """Runs `errand ARGS...` against server; returns CompletedProcess (text)."""
    extra = {}
    if server is not None:
        extra["ERRAND_API_URL"] = server.url
        if server.key:
            extra["ERRAND_API_KEY"] = server.key
        home = server.home
    else:
        home = Path(os.environ.get("TMPDIR", "/tmp")) / f"errand-cli-{uuid.uuid4().hex}"
    extra.update(env or {})
    cp = subprocess.run([str(ERRAND), *map(str, args)], env=child_env(home, extra),
                        input=input_text, capture_output=True, text=True, timeout=timeout)
    for marker in SANITIZER_MARKERS:
        assert marker not in cp.stderr, f"errand {args} reported '{marker}':\n{cp.stderr}"
    return cp


def write_script(path, text, mode=0o755):
    path = Path(path)
    path.write_text(text)
    path.chmod(mode)
    return path


def exec_spec(name, *cmd):
    """NAME=COMMAND for --exec; the command runs through /bin/sh -c."""
    return f"{name}=" + " ".join(_sh_quote(str(c)) for c in cmd)


def _sh_quote(s):
    import shlex
    return shlex.quote(s)


def unique_task(prefix="t"):
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def parse_ts(text):
    """RFC 3339 UTC with milliseconds -> seconds since the epoch (float)."""
    from datetime import datetime
    assert text, "timestamp missing"
    t = text.replace("Z", "+00:00")
    return datetime.fromisoformat(t).timestamp()


def teardown_each(items, teardown):
    """Calls teardown(item) for every item, even after one fails, and returns the messages of
    the AssertionErrors raised (a fixture fails with them all at the end)."""
    errors = []
    for item in items:
        try:
            teardown(item)
        except AssertionError as e:
            errors.append(str(e))
    return errors
