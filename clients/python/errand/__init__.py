# SPDX-License-Identifier: MIT
"""errand for Python: submit background task runs to an errand server, check on them and read
their results, from sync code or asyncio (``Client``, ``AsyncClient``)::

    import errand
    client = errand.Client()                   # ERRAND_API_URL, ERRAND_API_KEY
    run = client.submit("send_email", {"to": "a@example.com"}, retries=3)
    done = client.wait(run.id, timeout=30)
    if done.state.is_completed():
        print(client.result(done))

Background tasks, served by a worker in Python (see README.md)::

    @errand.task(retries=2)
    def create_report(account: str) -> dict: ...

    future = create_report.delay("acme")       # in the web app
    errand.serve(create_report, limit=10)      # in the worker process
"""
from . import encoding, errors
from .client import AsyncClient, Client, submission
from .context import RunContext, context, current_traceparent, trace_context
from .encoding import set_encoder
from .errors import ErrandError, TaskError
from .run import State, TaskRun
from .tasks import NO_CACHE, CacheKeyContext, Task, TaskFuture, set_client, task
from .worker import serve

__all__ = ["AsyncClient", "CacheKeyContext", "Client", "ErrandError", "NO_CACHE", "RunContext",
           "State", "Task", "TaskError", "TaskFuture", "TaskRun", "context",
           "current_traceparent", "encoding", "errors", "serve", "set_client", "set_encoder",
           "submission", "task", "trace_context"]
__version__ = "0.2.0"
