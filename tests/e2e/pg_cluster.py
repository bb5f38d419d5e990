# SPDX-License-Identifier: MIT
"""
pg_cluster.py — a throwaway PostgreSQL 15 cluster for the test suites that run errand's
servers against its PostgreSQL store (ERRAND_TEST_STORE=postgresql; tests/e2e/conftest.py
starts one per pytest session). No pytest in here: other suites and scripts import it too.

  store_mode()                       "sqlite" (the default) or "postgresql", from
                                     $ERRAND_TEST_STORE; anything else is an error.
  PgCluster(pg_bin=..., base_dir=...)
    .start()                         initdb -A trust into a new temporary folder, the server on
                                     a free port of 127.0.0.1 (its unix socket in that folder,
                                     fsync and the rest at their defaults), then CREATE
                                     DATABASE errand. As root (initdb refuses root) everything
                                     runs as the system user errand-pg (created when missing)
                                     through runuser, and the folder is that user's.
    .stop()                          pg_ctl stop -m fast (then -m immediate), folder removed.
    .url(schema)                     postgresql://errand@127.0.0.1:PORT/errand?options=
                                     -csearch_path%3DSCHEMA: a connection whose current schema
                                     is SCHEMA, where errand creates its tables.
    .ensure_schema(schema)           CREATE SCHEMA IF NOT EXISTS (through psql).
    .schema_for(home)                a schema name derived from an ERRAND_HOME path: the same
                                     home (a restarted server) always gets the same schema.
    .server_env(home)                what a server on that home needs: ERRAND_DATABASE_URL for
                                     the home's schema (created first), and every PG* variable
                                     of ours removed (libpq would read them).
    .psql(sql)                       runs SQL in the database; returns psql's output.

By hand, for a cluster to try a build against: `python3 tests/e2e/pg_cluster.py [SCHEMA]`
prints a URL and keeps the cluster until Ctrl-C.
"""
import atexit
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path

STORE_ENV = "ERRAND_TEST_STORE"
STORE_MODES = ("sqlite", "postgresql")
PG_BIN_ENV = "ERRAND_TEST_PG_BIN"  # another PostgreSQL's bin folder (default: Debian's 15)
DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
SYSTEM_USER = "errand-pg"  # runs the cluster when we are root
SUPERUSER = "errand"  # the cluster's bootstrap superuser, the user of every URL
DATABASE = "errand"
START_TIMEOUT_S = 60
START_ATTEMPTS = 5  # another process may take the free port between our probe and the bind
STOP_TIMEOUT_S = 60
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def store_mode():
    """The store the suites run errand's servers on: $ERRAND_TEST_STORE, default sqlite."""
    mode = os.environ.get(STORE_ENV, "").strip().lower() or "sqlite"
    if mode not in STORE_MODES:
        raise ValueError(f"{STORE_ENV}={os.environ[STORE_ENV]!r}: use one of "
                         f"{', '.join(STORE_MODES)}")
    return mode


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_system_user(name=SYSTEM_USER):
    """The system user `name` (created when missing, without a home or a login shell)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    cp = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                         "/usr/sbin/nologin", name], capture_output=True, text=True)
    try:  # another session may have created it meanwhile (useradd then exits 9)
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"cannot create the system user {name} to run PostgreSQL as "
                           f"(initdb refuses root): useradd exited {cp.returncode}: "
                           f"{cp.stderr.strip()}") from None


def _traversable_by_others(path):
    """True when every folder from / down to path lets any user through (o+x)."""
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        if not os.stat(d).st_mode & 0o001:
            return False
    return True


def _clean_env():
    """Our environment without libpq's PG* variables (PGOPTIONS, PGSERVICE, PGHOST...): the
    cluster's tools and clients get only what we pass them."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PgCluster:
    def __init__(self, pg_bin=None, base_dir=None, database=DATABASE, superuser=SUPERUSER):
        self.pg_bin = Path(pg_bin or os.environ.get(PG_BIN_ENV) or DEFAULT_PG_BIN)
        self.base_parent = base_dir
        self.database = database
        self.superuser = superuser
        self.base = None
        self.port = None
        self.as_user = None  # the pwd entry we run the cluster as, when we are root
        self.started = False
        self._schemas = set()
        self._lock = threading.Lock()

    # ---- paths and commands ----------------------------------------------------------------

    @property
    def data_dir(self):
        return self.base / "data"

    @property
    def socket_dir(self):
        return self.base / "socket"

    @property
    def log_path(self):
        return self.base / "postgres.log"

    def _tool(self, name):
        path = self.pg_bin / name
        if not path.exists():
            if name == "psql" and shutil.which("psql"):
                return shutil.which("psql")
            raise RuntimeError(f"{path} not found: install Debian's postgresql package "
                               f"(scripts/install-deps.sh test), or set {PG_BIN_ENV}")
        return str(path)

    def _run_as_owner(self, argv, timeout, check=True, cwd=None):
        """Runs a cluster tool as the cluster's owner (errand-pg when we are root), in the
        cluster's folder (a tool run by errand-pg could not enter, say, /root)."""
        argv = [str(a) for a in argv]
        if self.as_user is not None:
            argv = ["runuser", "-u", self.as_user.pw_name, "--", *argv]
        cp = subprocess.run(argv, cwd=cwd or self.base, env=_clean_env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {cp.returncode}:\n{cp.stdout}"
                               f"{cp.stderr}{self._log_tail()}")
        return cp

    def _log_tail(self, n=30):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return f"\n--- {self.log_path} (last lines) ---\n" + "\n".join(lines)

    # ---- life --------------------------------------------------------------------------------

    def start(self):
        assert not self.started, "cluster already started"
        parent = self.base_parent or tempfile.gettempdir()
        if os.geteuid() == 0:
            self.as_user = ensure_system_user()
            if not _traversable_by_others(parent):
                parent = "/tmp"  # errand-pg could not reach a folder under, say, /root
        self.base = Path(tempfile.mkdtemp(prefix="errand-pg-", dir=parent))
        atexit.register(self.stop)
        try:
            self._init()
            self._start_server()
            self.psql(f'CREATE DATABASE "{self.database}"', database="postgres")
        except BaseException:
            self.stop()
            raise
        return self

    def _init(self):
        self.base.chmod(0o755)
        self.socket_dir.mkdir()
        if self.as_user is not None:
            for p in (self.base, self.socket_dir):
                os.chown(p, self.as_user.pw_uid, self.as_user.pw_gid)
        self._run_as_owner([self._tool("initdb"), "-D", self.data_dir, "-A", "trust",
                            "-U", self.superuser, "-E", "UTF8", "--no-locale",
                            "--no-instructions"], timeout=120)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# errand's test cluster (tests/e2e/pg_cluster.py)\n"
                       "listen_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.socket_dir}'\n"
                       # Every server of a test holds a few; killed ones hold theirs until
                       # the kernel closes their sockets.
                       "max_connections = 300\n")

    def _start_server(self):
        failure = None
        for _ in range(START_ATTEMPTS):
            port = free_port()
            cp = self._run_as_owner([self._tool("pg_ctl"), "-D", self.data_dir, "-l",
                                     self.log_path, "-w", "-t", START_TIMEOUT_S, "-o",
                                     f"-p {port}", "start"],
                                    timeout=START_TIMEOUT_S + 30, check=False)
            if cp.returncode == 0:
                self.port = port
                self.started = True
                return
            failure = f"pg_ctl start exited {cp.returncode}:\n{cp.stdout}{cp.stderr}"
            if "could not bind" not in self._log_tail(10) and \
                    "Address already in use" not in self._log_tail(10):
                break
        raise RuntimeError(f"cannot start PostgreSQL in {self.base}: {failure}{self._log_tail()}")

    def stop(self):
        """Stops the cluster (fast, then immediate) and removes its folder. Idempotent."""
        with self._lock:
            base, self.base = self.base, None
            started, self.started = self.started, False
        if base is None:
            return
        atexit.unregister(self.stop)
        try:
            # Also after a start that failed late (pg_ctl gave up waiting, say): a postmaster
            # may be running on the folder.
            if started or (base / "data" / "postmaster.pid").exists():
                for mode in ("fast", "immediate"):
                    cp = self._run_as_owner([self._tool("pg_ctl"), "-D", base / "data", "-m",
                                             mode, "-w", "-t", STOP_TIMEOUT_S, "stop"],
                                            timeout=STOP_TIMEOUT_S + 30, check=False, cwd=base)
                    if cp.returncode == 0:
                        break
        finally:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- clients -----------------------------------------------------------------------------

    def psql(self, sql, database=None, timeout=60):
        assert self.started, "cluster not started"
        cp = subprocess.run([self._tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                             "-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser,
                             "-d", database or self.database, "-c", sql],
                            env=_clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=timeout)
        if cp.returncode != 0:
            raise RuntimeError(f"psql {sql!r} exited {cp.returncode}: {cp.stderr.strip()}")
        return cp.stdout

    def url(self, schema=None, database=None):
        """The libpq URI of the database; with schema, its search_path is just that schema
        (options=-csearch_path=SCHEMA, percent-encoded as libpq's URI rules ask)."""
        assert self.started, "cluster not started"
        url = f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{database or self.database}"
        if schema is not None:
            check_schema_name(schema)
            url += "?options=" + urllib.parse.quote(f"-csearch_path={schema}", safe="")
        return url

    def ensure_schema(self, schema):
        check_schema_name(schema)
        with self._lock:
            if schema in self._schemas:
                return schema
            self.psql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._schemas.add(schema)
        return schema

    @staticmethod
    def schema_for(home):
        """A schema name for an ERRAND_HOME: readable (its folder's name) and unique (a hash
        of its full path), at most 63 bytes, needing no quotes."""
        path = str(Path(home).resolve())
        name = re.sub(r"[^a-z0-9_]", "_", Path(path).name.lower())[:24] or "home"
        return f"e2e_{name}_{hashlib.sha256(path.encode()).hexdigest()[:20]}"

    def server_env(self, home):
        """The environment (child_env extras) of a server on `home`: its database URL, and
        None for every PG* variable we have, so that the child does not inherit it."""
        env = {k: None for k in os.environ if k.startswith("PG")}
        env["ERRAND_DATABASE_URL"] = self.url(self.ensure_schema(self.schema_for(home)))
        return env


def check_schema_name(schema):
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema name {schema!r}: use lowercase letters, digits and _ "
                         f"(at most 63), starting with a letter or _")


def main(argv):
    import signal
    schema = argv[1] if len(argv) > 1 else "public"
    with PgCluster() as cluster:
        cluster.ensure_schema(schema)
        print(f"PostgreSQL {cluster.port} in {cluster.base} (Ctrl-C stops it)")
        print(f"ERRAND_DATABASE_URL='{cluster.url(schema)}'", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    import sys
    main(sys.argv)
