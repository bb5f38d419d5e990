# SPDX-License-Identifier: MIT
"""The tasks the Python runtime's end-to-end tests (test_python_runtime.py) serve with
errand.serve, and the worker program that serves them:

    python3 py_runtime_tasks.py '{"limit": 2, "max_tasks_per_child": 3, ...}'

(the JSON object is errand.serve's keyword arguments). The tests import this module too, to
submit with ``fn.delay()``.
"""
import asyncio
import ctypes
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
import errand  # noqa: E402


@dataclass
class Greeting:
    text: str
    words: int


class Model:
    """Stands in for a pydantic model: only model_dump() is used."""

    def __init__(self, **fields):
        self.fields = fields

    def model_dump(self, mode="python"):
        return dict(self.fields, dumped_as=mode)


@errand.task(name="py.greet", log_prints=True)
def greet(name: str, punctuation: str = "!") -> Greeting:
    print(f"greeting {name}")
    print("second line")
    return Greeting(f"hello, {name}{punctuation}", 2)


@errand.task(name="py.model")
async def model(x: int) -> Model:
    await asyncio.sleep(0.01)
    return Model(x=x, async_task=True)


@errand.task(name="py.pid")
def pid(allocate_mb: int = 0) -> int:
    hog = bytearray(allocate_mb * 1024 * 1024)  # touched: counts in the peak RSS
    for i in range(0, len(hog), 4096):
        hog[i] = 1
    return os.getpid()


@errand.task(name="py.spin", timeout_seconds=1)
def spin() -> None:
    while True:
        pass


@errand.task(name="py.gil_hog")
def gil_hog(seconds: float) -> dict:
    """Holds the GIL for about `seconds` in one go: sum() over a range runs in C and does not
    let go of it until it returns (sized from the quickest of a few short measurements: on a
    busy machine one of them may be preempted, which would size the sum too small)."""
    per_million = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        sum(range(1_000_000))
        per_million = min(per_million, max(time.perf_counter() - start, 1e-6))
    n = int(seconds / per_million * 1_000_000)
    start = time.monotonic()
    sum(range(n))
    return {"held_s": round(time.monotonic() - start, 3)}


@errand.task(name="py.crash")
def crash(how: str) -> None:
    if how == "exit":
        os._exit(3)
    ctypes.string_at(0)  # a segfault, as a broken extension module would have


@errand.task(name="py.raise")
def fail(message: str) -> None:
    def deeper():
        raise ValueError(message)
    deeper()


@errand.task(name="py.sleep")
def sleep(seconds: float, pid_file: str = "") -> dict:
    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)  # never checks errand.context().should_stop()
    return {"slept": seconds}


@errand.task(name="py.persist", persist_result=True)
def persist(size: int) -> dict:
    return {"data": "x" * size}


@errand.task(name="py.traceparent")
def traceparent() -> dict:
    child = greet.delay("from inside")
    return {"seen": errand.context().traceparent, "child": child.task_run_id}


@errand.task(name="py.lineage")
def lineage() -> dict:
    """The task's process and the three above it (for errand.serve: its keeper, the fork
    server, the worker), each with its thread count; and the descriptors it holds beyond
    stdin, stdout and stderr (fd -> what /proc says it is)."""
    chain = []
    pid = os.getpid()
    for _ in range(4):
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        chain.append({"pid": pid, "threads": int(fields["Threads"])})
        pid = int(fields["PPid"])
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the directory listdir had open, closed since
        if int(name) > 2:
            fds[name] = target
    return {"chain": chain, "fds": fds}


@errand.task(name="py.chain_step")
def chain_step(i: int, prev: dict | None = None) -> dict:
    """One link of a dependency chain (test_dependencies.py): counts the links before it from
    the result it was handed."""
    return {"i": i, "count": (prev["count"] if prev else 0) + 1,
            "prev_i": prev["i"] if prev else None}


@errand.task(name="py.node")
def node(children: int = 0, value: int = 0, child_task: str = "py.node") -> dict:
    """A subtask tree (test_python_subtasks.py): a leaf returns {"sum": value}; a parent
    submits ``children`` runs of ``child_task`` one at a time with ``.delay()``, waits for
    each with ``.result()`` and returns the sum of theirs with their ids."""
    if children == 0:
        return {"sum": value, "children": []}
    total, ids = 0, []
    for i in range(children):
        if child_task == "py.node":
            future = node.delay(value=value * 100 + i)
        else:  # a task nobody serves: the parent waits until it is stopped
            client = errand.tasks.get_client()
            future = errand.TaskFuture(client.submit(child_task, {"value": i}).id, client)
        ids.append(future.task_run_id)
        total += future.result(timeout=None)["sum"]
    return {"sum": total, "children": ids}


TASKS = [greet, model, pid, spin, gil_hog, crash, fail, sleep, persist, traceparent, lineage,
         chain_step, node]

if __name__ == "__main__":
    errand.serve(*TASKS, **json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))
