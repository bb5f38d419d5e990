# SPDX-License-Identifier: MIT
"""
fastapi_stack.py — the processes of the FastAPI example (examples/fastapi-structured-output),
started for real and driven over HTTP: an errand server ($ERRAND_BUILD/bin/errand), the
Python worker (``python3 tasks.py``, errand.serve), the FastAPI app under uvicorn
(``python3 api.py --port 0``) and the chat-completions stand-in. The C example's harness
(tests/example/stack.py) does the starting, log reading and clean-stop checks; only the
worker and the API differ.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "example"))

import stack as c_stack  # noqa: E402
from stack import (FakeOpenAI, Process, START_TIMEOUT, child_env,  # noqa: E402,F401
                   wait_until)

EXAMPLE = REPO / "examples" / "fastapi-structured-output"
CLIENT = REPO / "clients" / "python"
PYTHON = "/usr/bin/python3"


def python_env(extra):
    """child_env() plus the errand package (clients/python) on the path; the example's own
    modules are found beside the script that is run."""
    return child_env({"PYTHONPATH": CLIENT, "PYTHONUNBUFFERED": "1", **extra})


class FastAPIStack(c_stack.Stack):
    """An errand server, Python workers and the FastAPI app, in one temporary directory."""

    def start_worker(self, *args, env=None, name=None, wait_ready=True):
        name = name or f"py-task-{len(self.workers) + 1}"
        extra = {"ERRAND_HOME": self.home, "ERRAND_API_URL": self.errand_url}
        extra.update(self.openai_env())
        extra.update(env or {})
        w = Process(name, [PYTHON, EXAMPLE / "tasks.py", "--name", name, *args],
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
                           [PYTHON, EXAMPLE / "api.py", "--host", "127.0.0.1", "--port", "0"],
                           python_env(extra), self.log_dir)
        self.api_url = f"http://127.0.0.1:{self.api.port()}"
        return self
