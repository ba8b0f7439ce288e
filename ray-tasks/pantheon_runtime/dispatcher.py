"""The dispatcher: a detached, named actor that owns every step's Ray task.

Because the dispatcher (not the Node worker, not the bridge) submits the task,
the task outlives a crashed worker, and a retried activity with the same key
attaches to it instead of starting the side effect again. Each key remembers
the run and attempt that submitted it:

- running or pending work is always attached to;
- a success is attached to by the same workflow run (a new run of the same
  workflow id starts afresh);
- a failure is returned to the attempt that saw it, and a later attempt
  resubmits (a new generation).

If the dispatcher itself dies, the tasks it owns die with it, and the next
attempt resubmits: that edge is at-least-once.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

import ray
from ray import exceptions as rex

from .runner import StepOutputRejected, run_step
from .task_refs import TaskRefRefused

run_step_task = ray.remote(run_step)
ALLOWED_OPTION_KEYS = {"num_cpus", "num_gpus", "memory", "resources", "label_selector"}
NODE_LOST_ERRORS = tuple(
    e
    for e in (
        getattr(rex, name, None)
        for name in ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError")
    )
    if e is not None
)


@dataclass
class Entry:
    key: str
    run: str
    attempt: int
    generation: int
    ref: Any
    submitted_at: float
    state: str = "pending"  # pending | running | succeeded | failed | cancelled
    node: Optional[str] = None
    nodes: list = field(default_factory=list)
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    outcome: Optional[dict] = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def classify_failure(err: BaseException) -> dict:
    """Turns a Ray exception into a plain failure record the worker can act on."""
    if isinstance(err, rex.TaskCancelledError):
        return {"kind": "cancelled", "type": "TaskCancelledError", "message": "the Ray task was cancelled"}
    if isinstance(err, rex.OutOfMemoryError):
        return {"kind": "oom", "type": "OutOfMemoryError", "message": str(err).splitlines()[0][:2000]}
    if isinstance(err, NODE_LOST_ERRORS):
        return {"kind": "node_lost", "type": type(err).__name__, "message": str(err).splitlines()[0][:2000]}
    if isinstance(err, rex.RayTaskError):
        cause = err.cause if getattr(err, "cause", None) is not None else err
        kind = "rejected" if isinstance(cause, (TaskRefRefused, StepOutputRejected)) else "application"
        module = type(cause).__module__
        type_name = type(cause).__qualname__ if module in ("builtins", None) else f"{module}.{type(cause).__qualname__}"
        return {
            "kind": kind,
            "type": type_name,
            "message": str(cause)[:4000],
            "traceback": "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))[-4000:],
        }
    return {"kind": "ray", "type": type(err).__name__, "message": str(err)[:4000]}


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Dispatcher:
    def __init__(self, finished_ttl_seconds: float = 6 * 3600) -> None:
        self._entries: dict[str, Entry] = {}
        self._ttl = finished_ttl_seconds
        self._last_sweep = time.time()

    async def ping(self) -> dict:
        return {"entries": len(self._entries)}

    async def submit(self, key: str, run: str, attempt: int, call: dict) -> dict:
        self._sweep()
        entry = self._entries.get(key)
        if entry is not None and self._attaches(entry, run, attempt):
            return self._describe(entry, attached=True)
        options = {k: v for k, v in call.get("options", {}).items() if k in ALLOWED_OPTION_KEYS and v is not None}
        generation = entry.generation + 1 if entry else 1
        nodes = list(entry.nodes) if entry else []
        ref = run_step_task.options(max_retries=0, retry_exceptions=False, **options).remote(
            key, generation, call["task"], call.get("args", []), call.get("kwargs", {}), call["limits"]
        )
        entry = Entry(key=key, run=run, attempt=attempt, generation=generation, ref=ref, submitted_at=time.time(), nodes=nodes)
        self._entries[key] = entry
        asyncio.get_running_loop().create_task(self._watch(entry))
        return self._describe(entry, attached=False)

    @staticmethod
    def _attaches(entry: Entry, run: str, attempt: int) -> bool:
        if entry.state in ("pending", "running"):
            return True
        if entry.run != run:
            return False
        if entry.state == "succeeded":
            return True
        return attempt <= entry.attempt

    async def _watch(self, entry: Entry) -> None:
        try:
            result = await entry.ref
            entry.node = result.get("node") or entry.node
            if entry.node and entry.node not in entry.nodes:
                entry.nodes.append(entry.node)  # the start notice may arrive after the result
            entry.outcome = {"ok": True, "output": result.get("output"), "node": entry.node}
            entry.state = "succeeded"
        except BaseException as err:  # noqa: BLE001 — every failure becomes a record
            failure = classify_failure(err)
            entry.outcome = {"ok": False, "error": failure, "node": entry.node}
            entry.state = "cancelled" if failure["kind"] == "cancelled" else "failed"
        entry.finished_at = time.time()
        entry.outcome.update(self._timing(entry))
        entry.outcome["nodes"] = list(entry.nodes)
        entry.outcome["generation"] = entry.generation
        entry.done.set()

    def started(self, key: str, generation: int, node_id: str, pid: int, at: float) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.generation != generation or entry.state != "pending":
            return
        entry.state = "running"
        entry.node = node_id
        entry.started_at = at
        entry.nodes.append(node_id)

    async def wait(self, key: str, generation: int) -> dict:
        entry = self._entries.get(key)
        if entry is None or entry.generation != generation:
            return {"ok": False, "error": {"kind": "lost", "type": "StepLost", "message": f"no task for {key} generation {generation}"}}
        await entry.done.wait()
        return entry.outcome

    async def status(self, key: str) -> Optional[dict]:
        entry = self._entries.get(key)
        return None if entry is None else self._describe(entry)

    async def cancel(self, key: str, force: bool = False) -> dict:
        entry = self._entries.get(key)
        if entry is None or entry.state not in ("pending", "running"):
            return {"cancelled": False}
        ray.cancel(entry.ref, force=force, recursive=True)
        return {"cancelled": True}

    def _timing(self, entry: Entry) -> dict:
        now = time.time()
        started = entry.started_at
        end = entry.finished_at or now
        return {
            "queuedMs": round(((started or end) - entry.submitted_at) * 1000),
            "runningMs": round((end - started) * 1000) if started else 0,
        }

    def _describe(self, entry: Entry, attached: Optional[bool] = None) -> dict:
        described = {
            "key": entry.key,
            "generation": entry.generation,
            "state": entry.state,
            "node": entry.node,
            "nodes": list(entry.nodes),
            "attempt": entry.attempt,
            **self._timing(entry),
        }
        if attached is not None:
            described["attached"] = attached
        return described

    def _sweep(self) -> None:
        now = time.time()
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        expired = [k for k, e in self._entries.items() if e.finished_at is not None and now - e.finished_at > self._ttl]
        for key in expired:
            del self._entries[key]
