"""The dispatcher: a detached, named actor that owns every step's Ray task.

Because the dispatcher (not the Node worker, not the bridge) submits the task,
the task outlives a crashed worker, and a retried activity with the same key
attaches to it instead of starting the side effect again. Each key remembers
the run and attempt that submitted it:

- running or pending work is always attached to;
- a success is attached to by the same workflow run (a new run of the same
  workflow id starts afresh);
- a failure is returned to the attempt that saw it, and a later attempt
  resubmits (a new generation);
- work that an attempt asked to stop (its timeout, a cancel) is never attached
  to: a later attempt waits until it has stopped (forcing it once the grace
  the cancel named is over), then resubmits.

Every finished generation is remembered in the key's `history` (how it
ended, on which node, with how much memory), which is what the next attempt's
options are planned from (activities/ray/attempt-policy.ts). A submit names
the generation it planned from (`based_on`); if another attempt got there
first, the submit answers `conflict` instead of starting a second task.

Ray never retries underneath: tasks are submitted with max_retries=0 and the
stack sets RAY_task_oom_retries=0, so every retry is Temporal's, and is seen,
planned and recorded.

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

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .memory_guard import MemoryGuardUnavailable, StepMemoryExceeded, inspect_cgroup
from .runner import StepOutputRejected, run_step
from .task_refs import TaskRefRefused

run_step_task = ray.remote(run_step)
inspect_cgroup_task = ray.remote(inspect_cgroup)
ALLOWED_OPTION_KEYS = {"num_cpus", "num_gpus", "memory", "resources", "label_selector"}
# The node itself went away (or its raylet did): the next attempt must avoid it. An object lost
# after the task finished means the node holding the result is gone too.
NODE_LOST_ERRORS = tuple(
    e
    for e in (getattr(rex, name, None) for name in ("NodeDiedError", "LocalRayletDiedError", "ObjectLostError"))
    if e is not None
)
# A cancel that names no grace (an old caller) gets this long before a later attempt forces it.
DEFAULT_CANCEL_GRACE_S = 2.0
# How long a force-killed task may take to be reported finished before a later attempt gives up.
FORCED_STOP_WAIT_S = 30.0
# Entries of a key's history kept for planning; older generations add nothing the policy uses.
HISTORY_LIMIT = 50


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
    memory: Optional[int] = None  # the memory request (bytes) this generation ran with
    guard: Optional[dict] = None  # the runner's memory guard, reported at start
    history: list = field(default_factory=list)  # finished generations of this key, oldest first
    # The (run, attempt) that last submitted or attached: only it may cancel the task, so a stale
    # attempt (its worker stalled past the heartbeat timeout) cannot cancel work a newer one took over.
    claimed: tuple = ("", 0)
    # When a cancel was asked for: the time after which the task is force-killed if still running.
    force_stop_at: Optional[float] = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:2000]


def classify_failure(err: BaseException) -> dict:
    """Turns a Ray exception into a plain failure record the worker can act on.

    Kinds: cancelled, oom (Ray's memory monitor, or the step's memory guard),
    node_lost (the node died: avoid it next time), worker_crashed (the worker
    process died on a node that is still there), rejected (never retried),
    application (the step's own exception), ray (anything else from Ray).
    """
    if isinstance(err, rex.TaskCancelledError):
        return {"kind": "cancelled", "type": "TaskCancelledError", "message": "the Ray task was cancelled"}
    if isinstance(err, rex.OutOfMemoryError):
        return {"kind": "oom", "type": "OutOfMemoryError", "message": _first_line(err)}
    if isinstance(err, NODE_LOST_ERRORS):
        return {"kind": "node_lost", "type": type(err).__name__, "message": _first_line(err)}
    if isinstance(err, rex.WorkerCrashedError):
        return {"kind": "worker_crashed", "type": "WorkerCrashedError", "message": _first_line(err)}
    if isinstance(err, rex.RayTaskError):
        cause = err.cause if getattr(err, "cause", None) is not None else err
        if isinstance(cause, StepMemoryExceeded):
            return {"kind": "oom", "type": "StepMemoryExceeded", "message": str(cause)[:4000]}
        refused = (TaskRefRefused, StepOutputRejected, MemoryGuardUnavailable)
        kind = "rejected" if isinstance(cause, refused) else "application"
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

    async def submit(self, key: str, run: str, attempt: int, call: dict, plan: Optional[dict] = None) -> dict:
        """Attaches to the key's task, or starts its next generation.

        `plan["basedOn"]` is the generation the caller planned its options from
        (None: it saw no task); if the key has moved on since, nothing is
        started and the answer says `conflict`, so the caller plans again.
        """
        self._sweep()
        entry = self._entries.get(key)
        if entry is not None and entry.force_stop_at is not None and not entry.done.is_set():
            # Attaching would hand this attempt the "cancelled" outcome of the attempt that timed out.
            await self._stopped(entry)
        if entry is not None and self._attaches(entry, run, attempt):
            stale = run == entry.claimed[0] and attempt < entry.claimed[1]
            if not stale:
                entry.claimed = (run, attempt)
            return self._describe(entry, attached=True)
        if plan is not None and (entry.generation if entry else None) != plan.get("basedOn"):
            described = self._describe(entry) if entry else {"key": key, "generation": 0}
            return {**described, "conflict": True}
        options = {k: v for k, v in call.get("options", {}).items() if k in ALLOWED_OPTION_KEYS and v is not None}
        generation = entry.generation + 1 if entry else 1
        nodes = list(entry.nodes) if entry else []
        history = list(entry.history) if entry else []
        limits = dict(call["limits"])
        if options.get("memory"):
            limits["memory_limit_bytes"] = int(options["memory"])
        # The task is named after its key so that Ray's own state API can find it.
        ref = run_step_task.options(name=key, max_retries=0, retry_exceptions=False, **options).remote(
            key, generation, call["task"], call.get("args", []), call.get("kwargs", {}), limits
        )
        entry = Entry(
            key=key, run=run, attempt=attempt, generation=generation, ref=ref, submitted_at=time.time(),
            nodes=nodes, memory=options.get("memory"), history=history, claimed=(run, attempt),
        )
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
            if failure["kind"] == "worker_crashed":
                failure = await self._memory_post_mortem(entry, failure)
            entry.outcome = {"ok": False, "error": failure, "node": entry.node}
            entry.state = "cancelled" if failure["kind"] == "cancelled" else "failed"
        entry.finished_at = time.time()
        entry.history.append(
            {
                "generation": entry.generation,
                "attempt": entry.attempt,
                "outcome": "succeeded" if entry.outcome["ok"] else entry.outcome["error"]["kind"],
                "node": entry.node,
                "memoryBytes": entry.memory,
                "reason": None if entry.outcome["ok"] else entry.outcome["error"]["message"][:300],
            }
        )
        del entry.history[:-HISTORY_LIMIT]
        entry.outcome.update(self._timing(entry))
        entry.outcome["nodes"] = list(entry.nodes)
        entry.outcome["generation"] = entry.generation
        entry.outcome["memoryBytes"] = entry.memory
        entry.outcome["history"] = list(entry.history)
        entry.done.set()

    async def _memory_post_mortem(self, entry: Entry, failure: dict) -> dict:
        """A worker that died under a cgroup memory guard: ask its node whether the kernel killed it for memory."""
        guard = entry.guard or {}
        if not guard.get("cgroup") or not entry.node:
            return failure
        try:
            found = await asyncio.wait_for(
                inspect_cgroup_task.options(
                    num_cpus=0,
                    max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=entry.node, soft=False),
                ).remote(guard["cgroup"]),
                timeout=60,
            )
        except BaseException:  # noqa: BLE001 — the node may be gone too; then it stays a crash
            return failure
        if found.get("oomKills", 0) > 0:
            limit_mb = guard.get("limitBytes", 0) // (1024 * 1024)
            return {
                "kind": "oom",
                "type": "StepMemoryExceeded",
                "message": f"the step was killed by the kernel for using more than its memory request of {limit_mb} MB "
                f"(memory cgroup limit; peak {found.get('maxUsageBytes', 0) // (1024 * 1024)} MB)",
            }
        return failure

    def started(self, key: str, generation: int, node_id: str, pid: int, at: float, guard: Optional[dict] = None) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.generation != generation:
            return
        if entry.state != "pending":
            # A notice that arrives after the task ended still says where it ran.
            if entry.node is None:
                entry.node = node_id
                if node_id not in entry.nodes:
                    entry.nodes.append(node_id)
                for item in entry.history:
                    if item["generation"] == generation and item["node"] is None:
                        item["node"] = node_id
            return
        entry.state = "running"
        entry.node = node_id
        entry.started_at = at
        entry.guard = guard
        if node_id not in entry.nodes:
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

    async def cancel(
        self,
        key: str,
        force: bool = False,
        run: Optional[str] = None,
        attempt: Optional[int] = None,
        grace_s: float = DEFAULT_CANCEL_GRACE_S,
        wait: bool = False,
    ) -> dict:
        """Interrupts the key's task; with `wait`, answers once it has stopped (see `_stopped`)."""
        entry = self._entries.get(key)
        if entry is None or entry.state not in ("pending", "running"):
            return {"cancelled": False}
        if run is not None and attempt is not None and entry.claimed != (run, attempt):
            return {"cancelled": False, "superseded": True, "claimedBy": entry.claimed[1]}
        if entry.force_stop_at is None:
            entry.force_stop_at = time.time() + (0 if force else grace_s)
        ray.cancel(entry.ref, force=force, recursive=True)
        if wait:
            try:
                await self._stopped(entry)
            except asyncio.TimeoutError:
                return {"cancelled": True, "stopped": False}
        return {"cancelled": True, "stopped": entry.done.is_set()}

    async def _stopped(self, entry: Entry) -> None:
        """Waits for a task being cancelled to end, force-killing it once its grace is over.

        Both the attempt that asked for the cancel (`cancel(wait=True)`) and a later attempt that
        finds the task stopping wait here: the asking attempt may be gone (its worker died, or
        Temporal timed it out before it finished), and the stop must not depend on it.
        """
        grace_left = (entry.force_stop_at or 0) - time.time()
        if grace_left > 0:
            try:
                await asyncio.wait_for(entry.done.wait(), grace_left)
                return
            except asyncio.TimeoutError:
                pass
        if not entry.done.is_set():
            ray.cancel(entry.ref, force=True, recursive=True)
            await asyncio.wait_for(entry.done.wait(), FORCED_STOP_WAIT_S)

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
            "memoryBytes": entry.memory,
            "history": list(entry.history),
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
