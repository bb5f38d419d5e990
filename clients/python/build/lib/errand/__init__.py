# SPDX-License-Identifier: MIT
"""errand for Python: submit background task runs to an errand server, check on them and read
their results, from sync code or asyncio (``Client``, ``AsyncClient``)::

    import errand
    client = errand.Client()                   # ERRAND_API_URL, ERRAND_API_KEY
    run = client.submit("send_email", {"to": "a@example.com"}, retries=3)
    done = client.wait(run.id, timeout=30)
    if done.state.is_completed():
        print(client.result(done))
"""
from . import errors
from .client import AsyncClient, Client, submission
from .errors import ErrandError
from .run import State, TaskRun

__all__ = ["AsyncClient", "Client", "ErrandError", "State", "TaskRun", "errors", "submission"]
__version__ = "0.1.0"
