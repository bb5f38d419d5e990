# SPDX-License-Identifier: MIT
"""
api.py — the web API (the seed's ``src/foo/api.py``): FastAPI, with errand's asyncio client.

    POST /tasks                    -> 202 {"task_run_id": "<uuid>"}   (form.py: the fields)
    GET  /tasks/{task_run_id}/status -> {"task_run_id", "status": "pending" | "completed" |
                                       "error", "result" | "message"}  (status.py)
    GET  /        the page (the C example's page.html: the same API, so the same page)
    GET  /health  {"status": "ok"}

Run it with uvicorn (``uvicorn api:app``) or as a program, which binds first and logs
``msg="listening" host=H port=P`` (the real port when given 0)::

    python3 api.py [--host 0.0.0.0] [--port 8000] [--errand-api-url URL]

Settings: flag over environment over default: ``--host`` / ``ERRAND_EXAMPLE_API_HOST``
(``0.0.0.0``), ``--port`` / ``ERRAND_EXAMPLE_API_PORT`` (8000), ``--errand-api-url`` /
``ERRAND_API_URL`` (``http://127.0.0.1:4200/api``), ``ERRAND_API_KEY``.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

import errand
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from form import StructuredOutputRequest, Unprocessable, get_form_data
from status import BadRunId, bad_run_id_detail, canonical_run_id, get_task_result, \
    valid_traceparent
from tasks import create_structured_output

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8000
PAGE = Path(__file__).resolve().parent.parent / "structured-output" / "page.html"

logger = logging.getLogger("structured_output.api")
app = FastAPI(title="structured-output on errand")
client = errand.AsyncClient()
errand.set_client(client.sync)  # .delay_async() submits with the same client


def _errand_failure(action: str, e: errand.ErrandError) -> JSONResponse:
    """An errand server that cannot be reached is 503 (nothing was done: try again); one
    that refuses the key or answers something unexpected is 502."""
    where = f"the errand server at {','.join(client.sync.servers)}"
    if isinstance(e, (errand.errors.ConnectionFailed, errand.errors.Unavailable)):
        status, detail = 503, f"could not {action}: {where} is unavailable ({e}); try again later"
    elif isinstance(e, (errand.errors.Unauthorized, errand.errors.Forbidden)):
        status, detail = 502, (f"could not {action}: {where} refused the API key ({e}); check "
                               f"ERRAND_API_KEY")
    else:
        status, detail = 502, f"could not {action}: {where} answered: {e}"
    logger.warning("errand server call failed action=%r status=%d error=%r", action, status,
                   str(e))
    return JSONResponse({"detail": detail}, status_code=status)


@app.exception_handler(Unprocessable)
async def _unprocessable(request: Request, exc: Unprocessable) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=422)


@app.post("/tasks", status_code=202)
async def submit_task(request: Request,
                      form_data: StructuredOutputRequest = Depends(get_form_data)):
    """Submits a run of create_structured_output; the request's W3C traceparent (when
    valid) becomes the run's, so one trace id follows the request into the background."""
    traceparent = valid_traceparent(request.headers.get("traceparent"))
    try:
        with errand.trace_context(traceparent):
            future = await create_structured_output.delay_async(
                form_data.payload, target=form_data.target,
                instructions=form_data.instructions)
    except errand.ErrandError as e:
        return _errand_failure("submit the task", e)
    trace = f" trace_id={traceparent[3:35]}" if traceparent else ""
    logger.info("Submitted task run: %s task_run_id=%s task=%s%s", future.task_run_id,
                future.task_run_id, create_structured_output.name, trace)
    return {"task_run_id": future.task_run_id}


@app.get("/tasks/{task_run_id}/status")
async def get_task_status_api(task_run_id: str):
    """The run's status, as the seed's get_task_result maps it (status.py)."""
    try:
        run_id = canonical_run_id(task_run_id)
    except BadRunId as e:
        return JSONResponse({"detail": bad_run_id_detail(task_run_id, str(e))}, status_code=422)
    try:
        status, data = await get_task_result(client, run_id)
    except errand.errors.NotFound:
        return JSONResponse({"detail": f"Task run {run_id} not found"}, status_code=404)
    except errand.ErrandError as e:
        return _errand_failure("check the task run", e)
    body = {"task_run_id": run_id, "status": status}
    if status == "completed":
        body["result"] = data
    elif status == "error":
        body["message"] = data
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@app.get("/", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    env = os.environ
    parser = argparse.ArgumentParser(prog="api.py", description="The structured-output web "
                                     "API on errand (FastAPI under uvicorn).")
    parser.add_argument("--host", default=env.get("ERRAND_EXAMPLE_API_HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int,
                        default=int(env.get("ERRAND_EXAMPLE_API_PORT") or DEFAULT_PORT),
                        help="0 = any free port")
    parser.add_argument("--errand-api-url", help="the errand server (ERRAND_API_URL)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='ts=%(asctime)s level=%(levelname)s msg="%(message)s"')
    if args.errand_api_url:
        global client
        client = errand.AsyncClient(args.errand_api_url)
        errand.set_client(client.sync)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        logger.error("cannot listen on %s port %d: %s", args.host, args.port, e)
        return 1
    sock.listen(128)
    port = sock.getsockname()[1]
    print(f'msg="listening" host={args.host} port={port} errand_api_url='
          f'{",".join(client.sync.servers)}', file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
