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

Before anything is submitted, the task reference is checked against the
dispatcher's own allowlist (its environment's PANTHEON_ALLOWED_TASK_PACKAGES,
read when it starts; task_refs.py), down to the function's definition in the
module's source, and the work is compared with what the key holds (its
fingerprint; step_store.py). Either refusal is an answer (`refused`), never a
task. Finished entries are kept while their workflow run is open and their
outputs within a byte budget (step_store.py).

Ray never retries underneath: tasks are submitted with max_retries=0 and the
stack sets RAY_task_oom_retries=0, so every retry is Temporal's, and is seen,
planned and recorded.

If the dispatcher itself dies, the tasks it owns die with it, and the next
attempt resubmits: that edge is at-least-once.

Admission is the dispatcher's too (admission.py): every worker reserves a
unit of its group before it polls Temporal, and a step submitted with the
reservation is placed on a node by its exact request and pinned there, or
waits here, by priority, until it fits; its allocation is freed when its task
ends.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import tempfile
import time
import traceback
from typing import Any, Optional

import ray
from ray import exceptions as rex

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from . import admission, blob_store, cluster_ops
from .blob_store import BlobNotFound
from .map_runner import (
    DEFAULT_MAX_FAILED_ITEMS,
    DEFAULT_MAX_ITEM_ATTEMPTS,
    LOOKAHEAD_S,
    MAX_MAP_ITEMS,
    MapItemsFailed,
    MapRun,
)
from .memory_guard import MemoryGuardUnavailable, StepMemoryExceeded, inspect_cgroup
from .runner import StepOutputRejected, map_item_runner, run_step
from .step_store import Entry, OutputStore, StepTable, decide, fingerprint, workflow_of
from .task_refs import AGENT_HOST_TASK, TaskRefRefused, check_definition, configured_allowlist

run_step_task = ray.remote(run_step)
inspect_cgroup_task = ray.remote(inspect_cgroup)
ALLOWED_OPTION_KEYS = {"num_cpus", "num_gpus", "memory", "resources", "label_selector"}
# The node itself went away (or its raylet did): the next attempt must avoid it. An object lost
# after the task finished means the node holding the result is gone too.
NODE_LOST_ERRORS = tuple(
    e
    for e in (
        getattr(rex, name, None)
        # A task pinned to a node that died before it started is unschedulable.
        for name in ("NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "TaskUnschedulableError")
    )
    if e is not None
)
# A cancel that names no grace (an old caller) gets this long before a later attempt forces it.
DEFAULT_CANCEL_GRACE_S = 2.0
# How long a force-killed task may take to be reported finished before a later attempt gives up.
FORCED_STOP_WAIT_S = 30.0
# The dispatcher's own configuration, read from its environment when it starts.
OUTPUT_BUDGET_ENV = "PANTHEON_DISPATCHER_OUTPUT_BUDGET_MB"
DEFAULT_OUTPUT_BUDGET_MB = 256
SPILL_DIR_ENV = "PANTHEON_DISPATCHER_SPILL_DIR"
# Items of a zero-CPU map in flight at once when it names no concurrency.
MAX_DEFAULT_MAP_CONCURRENCY = 64
# How long a worker's admission lease lasts without a renewal (admission.py).
ADMISSION_LEASE_ENV = "PANTHEON_ADMISSION_LEASE_S"
# How often the admission ledger reads the nodes (a node joining is admitted onto within this).
NODE_REFRESH_S = 0.25
# How many admission events admission_state keeps (the newest), to read what led to a state.
ADMISSION_TRACE_EVENTS = 512
# The priority of a step that names none: Temporal's default (the middle of 1–5).
DEFAULT_PRIORITY = 3


class DispatcherConfigError(Exception):
    """The dispatcher's environment holds an invalid setting."""


def output_budget_bytes(env=os.environ) -> int:
    raw = env.get(OUTPUT_BUDGET_ENV) or str(DEFAULT_OUTPUT_BUDGET_MB)
    try:
        mb = int(raw)
    except ValueError:
        mb = -1
    if mb < 0:
        raise DispatcherConfigError(f"{OUTPUT_BUDGET_ENV}: {raw!r} is not a whole number of megabytes")
    return mb * 1024 * 1024


def admission_lease_s(env=os.environ) -> float:
    raw = env.get(ADMISSION_LEASE_ENV) or str(admission.DEFAULT_LEASE_S)
    try:
        lease_s = float(raw)
    except ValueError:
        lease_s = -1
    if not 1 <= lease_s <= 3600:
        raise DispatcherConfigError(f"{ADMISSION_LEASE_ENV}: {raw!r} is not a number of seconds between 1 and 3600")
    return lease_s


def group_of(options: dict) -> Optional[str]:
    """The node group a task's label selector pins it to (the workflow always sets one; see core/placement.ts)."""
    value = (options.get("label_selector") or {}).get(admission.GROUP_LABEL)
    if not isinstance(value, str) or value.startswith("!"):
        return None
    if value.startswith("in(") and value.endswith(")"):
        values = [v for v in value[3:-1].split(",") if v]
        return values[0] if len(values) == 1 else None
    return value


def pinned(options: dict, node_id: str) -> dict:
    """Ray options that run the task on the node admission placed it on (its selector was checked there)."""
    out = {k: v for k, v in options.items() if k != "label_selector"}
    out["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return out


def _finished_items_blocking(refs: list, batch: int = 1) -> list:
    if batch > 1:
        # A batch of them, or whatever has finished after half a lookahead (the queue in Ray then still
        # holds work for the CPUs).
        ready, _ = ray.wait(refs, num_returns=min(batch, len(refs)), timeout=LOOKAHEAD_S / 2, fetch_local=False)
    else:
        ready = []
    if not ready:
        # At least one (or none after a second, so that a thread of a cancelled map does not linger),
        # then every other one already finished, fetched in one call when none of them failed.
        ready, _ = ray.wait(refs, num_returns=1, timeout=1.0, fetch_local=False)
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
    try:
        return [(ref, True, value) for ref, value in zip(ready, ray.get(ready))]
    except Exception:  # noqa: BLE001 — one of them failed: take them one by one
        finished = []
        for ref in ready:
            try:
                finished.append((ref, True, ray.get(ref)))
            except Exception as err:  # noqa: BLE001 — the item's failure, classified by the map
                finished.append((ref, False, err))
        return finished


# Ray exports each remote function made here once (to the GCS, read by a worker the first time it runs
# it): maps with the same constant part share one, so a pipeline run again exports nothing new.
_item_functions: "collections.OrderedDict[str, Any]" = collections.OrderedDict()
MAX_ITEM_FUNCTIONS = 64


def item_function(task_ref: str, args: list, kwargs: dict, limits: dict) -> Any:
    """The Ray remote function the items of a map with this task, args, kwargs and limits run."""
    key = json.dumps([task_ref, args, kwargs, limits], sort_keys=True, default=str)
    function = _item_functions.pop(key, None)
    if function is None:
        function = ray.remote(map_item_runner(task_ref, args, kwargs, limits))
    _item_functions[key] = function
    while len(_item_functions) > MAX_ITEM_FUNCTIONS:
        _item_functions.popitem(last=False)
    return function


async def finished_items(refs: list, batch: int = 1) -> list:
    """A map's items that have finished, as (ref, ok, output text or exception), waited for off the event loop."""
    return await asyncio.to_thread(_finished_items_blocking, refs, batch)


def default_map_concurrency(options: dict) -> int:
    """Items of a map in flight when the step names no `concurrency`: as many as the cluster's CPUs hold."""
    cpus_per_item = float(options.get("num_cpus") or 0)
    total = float(ray.cluster_resources().get("CPU", 1))
    if cpus_per_item <= 0:
        return MAX_DEFAULT_MAP_CONCURRENCY
    return max(1, min(MAX_DEFAULT_MAP_CONCURRENCY, int(total // cpus_per_item)))


def refused(kind: str, field: str, message: str) -> dict:
    return {"refused": {"type": kind, "field": field, "message": message}}


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
        # A missing blob will not appear by retrying: the store is not shared, or the reference is made up.
        refused = (TaskRefRefused, StepOutputRejected, MemoryGuardUnavailable, BlobNotFound)
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
    def __init__(self) -> None:
        # Read once, at start (and at each restart by Ray): changing the allowlist or the budget
        # means restarting the dispatcher, which the documentation says.
        self._allowlist = configured_allowlist()
        spill_dir = os.environ.get(SPILL_DIR_ENV) or os.path.join(
            tempfile.gettempdir(), f"pantheon-dispatcher-spill-{ray.get_runtime_context().get_actor_id()}"
        )
        self._table = StepTable(OutputStore(output_budget_bytes(), spill_dir))
        self._ledger = admission.Ledger(admission_lease_s())
        # The last admission events (grants, give-backs, binds, ends, expiries), for admission_state.
        self._admission_trace: collections.deque = collections.deque(maxlen=ADMISSION_TRACE_EVENTS)
        # Per group, the workers waiting for a unit, first come first served: (holder, future).
        self._reserve_waiters: dict = collections.defaultdict(collections.deque)
        # Steps waiting to be placed: key -> future of their placement.
        self._placements: dict = {}
        self._node_reader: Optional[asyncio.Task] = None
        self._nodes_read_at: Optional[float] = None

    # -- admission (admission.py) ------------------------------------------------------------------

    def _start_admission(self) -> None:
        if self._node_reader is None:
            self._node_reader = asyncio.get_running_loop().create_task(self._read_nodes())

    async def _read_nodes(self) -> None:
        while True:
            try:
                found = await asyncio.to_thread(cluster_ops.schedulable_nodes)
                nodes = [
                    admission.Node(n["nodeId"], n["labels"][admission.GROUP_LABEL], n["total"], n["labels"])
                    for n in found
                    if n["labels"].get(admission.GROUP_LABEL)
                ]
                self._ledger.set_nodes(nodes)
                self._nodes_read_at = time.time()
            except Exception as err:  # noqa: BLE001 — the last known nodes stay until the GCS answers again
                print(f"admission: could not read Ray's nodes: {err}", flush=True)
            for holder in self._ledger.expire(time.time()):
                self._trace("expired", holder=holder)
            self._pump()
            await asyncio.sleep(NODE_REFRESH_S)

    def _pump(self) -> None:
        """After any change: places waiting steps first, then grants units to waiting workers, in order."""
        for step in self._ledger.admit():
            future = self._placements.pop(step.key, None)
            if future is not None and not future.done():
                future.set_result(dict(step.placed))
        now = time.time()
        for group, waiters in self._reserve_waiters.items():
            while waiters:
                holder, future = waiters[0]
                if future.done():  # its caller gave up waiting
                    waiters.popleft()
                    continue
                node = self._ledger.reserve(group, holder, now)
                if node is None:
                    break
                self._trace("granted", holder=holder, group=group, node=node)
                waiters.popleft()
                future.set_result(node)

    def _trace(self, event: str, **fields) -> None:
        self._admission_trace.append({"at": round(time.time(), 3), "event": event, **fields})

    def _give_back(self, group: str, holder: str, key: Optional[str] = None) -> bool:
        """One of the holder's units back to the ledger (`key`: the step whose submit returned it)."""
        returned = self._ledger.give_back(group, holder)
        self._trace("given back", holder=holder, group=group, returned=returned, key=key)
        return returned

    def _lease_answer(self, **extra) -> dict:
        return {"leaseS": self._ledger.lease_s, **extra}

    async def admission_reserve(self, group: str, holder: str, timeout_s: float = 10.0) -> dict:
        """A unit of `group` for one poll by `holder`, waited for up to `timeout_s` (behind earlier askers)."""
        self._start_admission()
        if holder in self._ledger.released:
            return self._lease_answer(granted=False)  # its worker is shutting down
        waiters = self._reserve_waiters[group]
        if not waiters:
            node = self._ledger.reserve(group, holder, time.time())
            if node is not None:
                self._trace("granted", holder=holder, group=group, node=node)
                return self._lease_answer(granted=True, node=node)
        future = asyncio.get_running_loop().create_future()
        waiters.append((holder, future))
        self._pump()  # behind earlier askers whose callers gave up: it may be granted at once
        await asyncio.wait({future}, timeout=timeout_s)
        if future.done() and future.result() is not None:
            return self._lease_answer(granted=True, node=future.result())
        future.cancel()
        return self._lease_answer(granted=False)

    async def admission_give_back(self, group: str, holder: str) -> dict:
        """One unit back: its poll found nothing, or its activity ended without submitting a step."""
        returned = self._give_back(group, holder)
        self._pump()
        return {"returned": returned}

    async def admission_renew(self, holder: str, units: dict) -> dict:
        """The holder is alive and holds `units` per group (its own count is the truth)."""
        self._start_admission()
        corrected = self._ledger.renew(holder, units, time.time())
        if corrected:
            self._trace("rebuilt", holder=holder, units=corrected)
        self._pump()
        return self._lease_answer(corrected=corrected)

    async def admission_release_holder(self, holder: str) -> dict:
        """A worker shutting down: its units are free at once, not at its lease's end."""
        self._ledger.drop_holder(holder)
        self._trace("released", holder=holder)
        # Its polls still waiting here get no unit (the ledger refuses the holder from now on too).
        for waiters in self._reserve_waiters.values():
            for waiter, future in waiters:
                if waiter == holder and not future.done():
                    future.set_result(None)
        self._pump()
        return {"released": True}

    async def admission_state(self) -> dict:
        """The ledger per group, the steps waiting to be placed, and their demand in Ray's pending shape."""
        return {
            **self._ledger.snapshot(),
            "waiting": [
                {"key": s.key, "group": s.group, "request": s.request, "priority": s.priority, "count": s.min_count}
                for s in self._ledger.waiting()
            ],
            "demand": self._ledger.demand(),
            "leaseS": self._ledger.lease_s,
            "nodesReadAt": self._nodes_read_at,
            "trace": list(self._admission_trace),
        }

    def _bind(self, key: str, generation: int, call: dict, options: dict, count: int = 1) -> Optional["admission.Step"]:
        """The step's claim in the ledger (None: no node group named, nothing to admit against)."""
        asked = call.get("admission") or {}
        group = group_of(options)
        if group is None:
            if asked.get("holder") and asked.get("group"):
                self._give_back(asked["group"], asked["holder"], key)
            return None
        self._start_admission()
        step = self._ledger.bind(
            key,
            group,
            admission.request_of(options),
            options.get("label_selector") or {},
            int(asked.get("priority") or DEFAULT_PRIORITY),
            asked.get("holder") if asked.get("group") == group else None,
            generation,
            count=count,
        )
        self._trace("bound", holder=asked.get("holder"), group=group, key=key)
        self._pump()
        return step

    async def _placement(self, step: "admission.Step") -> dict:
        """Where the step runs ({node id: items}), once admission has placed it."""
        if step.placed:
            return dict(step.placed)
        future = asyncio.get_running_loop().create_future()
        self._placements[step.key] = future
        return await future

    async def _start_when_placed(self, entry: Entry, step: "admission.Step", call: dict, options: dict, limits: dict):
        node = next(iter(await self._placement(step)))
        entry.task_ref = run_step_task.options(
            name=entry.key, max_retries=0, retry_exceptions=False, **pinned(options, node)
        ).remote(entry.key, entry.generation, call["task"], call.get("args", []), call.get("kwargs", {}), limits)
        return await entry.task_ref

    async def ping(self) -> dict:
        return {**self._table.stats(), "allowlist": list(self._allowlist)}

    def _check(self, call: dict) -> Optional[dict]:
        """Refuses a call whose task (or agent task) is not an allowed public function; None when allowed."""
        try:
            check_definition(call.get("task"), self._allowlist, "task")
            if call.get("task") == AGENT_HOST_TASK:
                inner = (call.get("kwargs") or {}).get("task")
                if inner == AGENT_HOST_TASK:
                    raise TaskRefRefused(inner, "is the agent host itself, which cannot be an agent's task", "kwargs.task")
                check_definition(inner, self._allowlist, "kwargs.task")
        except TaskRefRefused as err:
            return refused("TaskRefRefused", err.field, str(err))
        return None

    async def submit(self, key: str, run: str, attempt: int, call: dict, plan: Optional[dict] = None) -> dict:
        """Attaches to the key's task, or starts its next generation.

        `plan["basedOn"]` is the generation the caller planned its options from
        (None: it saw no task); if the key has moved on since, nothing is
        started and the answer says `conflict`, so the caller plans again. A
        task reference outside the allowlist, or work other than what the key
        holds, is answered `refused` (see the module's docstring).
        """
        rejection = self._check(call)
        if rejection is not None:
            return rejection
        try:
            work = fingerprint(
                call["task"], call.get("args", []), call.get("kwargs", {}), call.get("resources"), call.get("map")
            )
        except (TypeError, ValueError) as err:
            return refused("InvalidStepInput", "args", f"the step's arguments are not strict JSON: {err}")
        entry = self._table.get(key)
        if entry is not None and entry.force_stop_at is not None and not entry.done.is_set():
            # Attaching would hand this attempt the "cancelled" outcome of the attempt that timed out.
            await self._stopped(entry)
        decision = decide(entry, run, attempt, work)
        if decision == "conflict":
            assert entry is not None
            return refused(
                "StepKeyConflict",
                "key",
                f"step key {key} holds different work (task {entry.task}, fingerprint {entry.fingerprint}, "
                f"submitted by attempt {entry.attempt} of run {entry.run}); this attempt asks for task "
                f"{call['task']} with fingerprint {work}: same task, arguments and resources are required to attach",
            )
        if decision == "attach":
            assert entry is not None
            asked = call.get("admission") or {}
            if asked.get("holder") and asked.get("group"):
                # The work is already counted (its own allocation): the attempt's unit goes back.
                self._give_back(asked["group"], asked["holder"], key)
                self._pump()
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
        # The runner resolves the task against the dispatcher's allowlist, whatever the caller sent.
        limits["allowed_packages"] = list(self._allowlist)
        if options.get("memory"):
            limits["memory_limit_bytes"] = int(options["memory"])
        if limits.get("blob_store"):
            try:
                blob_store.parse_s3_url(limits["blob_store"])
            except ValueError as err:
                return refused("InvalidBlobStore", "limits.blob_store", str(err))
        map_run = None
        if call.get("map") is not None:
            earlier = entry if entry is not None and entry.run == run else None
            map_run = await self._plan_map(call, options, limits, earlier)
            if isinstance(map_run, dict):
                return map_run
            current = self._table.get(key)
            if current is not entry:  # another attempt submitted while this one read the list
                return {**self._describe(current), "conflict": True}
        entry = Entry(
            key=key, run=run, attempt=attempt, generation=generation, ref=None, submitted_at=self._table.clock(),
            workflow=call.get("workflow") or workflow_of(key), fingerprint=work, task=call["task"],
            nodes=nodes, memory=options.get("memory"), history=history, claimed=(run, attempt),
        )
        step = self._bind(key, generation, call, options, count=map_run.concurrency if map_run else 1)
        loop = asyncio.get_running_loop()
        if map_run is None and step is None:
            # The task is named after its key so that Ray's own state API can find it.
            entry.ref = entry.task_ref = run_step_task.options(
                name=key, max_retries=0, retry_exceptions=False, **options
            ).remote(key, generation, call["task"], call.get("args", []), call.get("kwargs", {}), limits)
        elif map_run is None:
            entry.ref = loop.create_task(self._start_when_placed(entry, step, call, options, limits))
        else:
            entry.map = map_run
            entry.state, entry.started_at = "running", entry.submitted_at
            entry.ref = loop.create_task(self._run_map(entry, call, options, limits, step))
        self._table.put(entry)
        asyncio.get_running_loop().create_task(self._watch(entry))
        return self._describe(entry, attached=False)

    async def _plan_map(self, call: dict, options: dict, limits: dict, earlier: Optional[Entry]):
        """The MapRun of a map call (its list resolved from the blob store if it is a reference), or a refusal."""
        spec = call["map"]
        over = spec.get("over")
        store = blob_store.configured_store(limits.get("blob_store"))
        if store is not None and blob_store.is_ref(over):
            try:
                over = await asyncio.to_thread(store.resolve, over)
            except BlobNotFound as err:
                return refused("BlobNotFound", "map.over", str(err))
        if not isinstance(over, list):
            return refused("InvalidStepInput", "map.over", f"a map runs over a list; it was given {type(over).__name__}")
        if len(over) > MAX_MAP_ITEMS:
            return refused("MapTooLarge", "map.over", f"{len(over)} items, more than the {MAX_MAP_ITEMS} a map takes")
        # Items an earlier generation of this key (same workflow run, same work) finished are not run again.
        carried = earlier.map.finished_outputs() if earlier is not None and earlier.map is not None else {}
        # Under admission (a node group named), the map gets as many items as fit when it is placed, up to this.
        default = MAX_DEFAULT_MAP_CONCURRENCY if group_of(options) else default_map_concurrency(options)
        return MapRun(
            items=over,
            concurrency=int(spec.get("concurrency") or default),
            adaptive=not spec.get("concurrency"),
            max_attempts=int(spec.get("maxItemAttempts") or DEFAULT_MAX_ITEM_ATTEMPTS),
            max_failed=int(spec.get("maxFailedItems") or DEFAULT_MAX_FAILED_ITEMS),
            non_retryable=frozenset(spec.get("nonRetryableErrors") or ()),
            carried=carried,
        )

    async def _run_map(
        self, entry: Entry, call: dict, options: dict, limits: dict, step: Optional["admission.Step"] = None
    ) -> dict:
        """Runs a map's items; its output (the list in item order) by reference when large, like a step's."""
        run_item = item_function(call["task"], call.get("args", []), call.get("kwargs", {}), limits)
        # Items are named after the step's key, so Ray's state API finds them all under it.
        if step is None:
            item_task = run_item.options(name=entry.key, max_retries=0, retry_exceptions=False, **options)
            submit = lambda _index, item: item_task.remote(item)  # noqa: E731
            wait_some = finished_items
        else:
            # Admitted: as many items in flight as were placed, each pinned to a node with room for it.
            placed = await self._placement(step)
            entry.map.concurrency = sum(placed.values())
            item_tasks = {
                node: run_item.options(name=entry.key, max_retries=0, retry_exceptions=False, **pinned(options, node))
                for node in placed
            }
            running = {node: 0 for node in placed}
            node_of: dict = {}

            def submit(_index, item):
                node = min(placed, key=lambda n: (running[n] / placed[n], n))
                ref = item_tasks[node].remote(item)
                running[node] += 1
                node_of[ref] = node
                return ref

            async def wait_some(refs, batch):
                finished = await finished_items(refs, batch)
                for ref, _ok, _value in finished:
                    node = node_of.pop(ref, None)
                    if node is not None:
                        running[node] -= 1
                return finished

        try:
            text = await entry.map.run(submit, wait_some, classify_failure)
        except asyncio.CancelledError:
            # The map ends only once its items have: a later attempt must not start an item again while
            # an interrupted one is still running (the same rule as a step's task, see `_stopped`).
            await self._items_stopped(entry)
            raise
        size = len(text.encode("utf-8"))
        threshold = limits.get("blob_threshold_bytes") or 0
        store = blob_store.configured_store(limits.get("blob_store"))
        if store is not None and 0 < threshold < size:
            try:
                reference = await asyncio.to_thread(store.put, text, entry.workflow)
            except blob_store.BlobTooLarge as err:
                raise StepOutputRejected(f"the outputs of map step {entry.key} are {err}") from None
            return {"outputJson": json.dumps(reference), "node": None}
        if size > limits["max_result_bytes"]:
            raise StepOutputRejected(
                f"the outputs of map step {entry.key} take {size} bytes, above the {limits['max_result_bytes']}-byte "
                "result limit (the Ray side has no blob store to keep them by reference)"
            )
        return {"outputJson": text, "node": None}

    def _interrupt(self, entry: Entry, force: bool) -> None:
        """Stops a step's Ray task (or its wait for admission), or a map's items and the map itself."""
        if entry.map is None:
            if entry.task_ref is not None:
                ray.cancel(entry.task_ref, force=force, recursive=True)
            else:
                entry.ref.cancel()  # still waiting to be placed: nothing runs yet
            return
        entry.map.interrupt(lambda ref: ray.cancel(ref, force=force, recursive=True))
        if not entry.map.stopping:  # a second cancel would break off the wait for the items to stop
            entry.map.stopping = True
            entry.ref.cancel()

    async def _items_stopped(self, entry: Entry) -> None:
        """Waits for a cancelled map's items in flight to end: the cancel's grace, then force-killed."""
        refs = list(entry.map.in_flight)
        if not refs:
            return
        grace_left = max(0.0, (entry.force_stop_at or 0) - time.time())
        _, running = await asyncio.to_thread(ray.wait, refs, num_returns=len(refs), timeout=grace_left, fetch_local=False)
        if running:
            for ref in running:
                ray.cancel(ref, force=True, recursive=True)
            await asyncio.to_thread(
                ray.wait, running, num_returns=len(running), timeout=FORCED_STOP_WAIT_S, fetch_local=False
            )

    async def _watch(self, entry: Entry) -> None:
        output_json = None
        try:
            result = await entry.ref
            entry.node = result.get("node") or entry.node
            if entry.node and entry.node not in entry.nodes:
                entry.nodes.append(entry.node)  # the start notice may arrive after the result
            output_json = result["outputJson"]
            outcome = {"ok": True, "node": entry.node}
            entry.state = "succeeded"
        except BaseException as err:  # noqa: BLE001 — every failure becomes a record
            if isinstance(err, MapItemsFailed):
                failure = err.record
            elif isinstance(err, asyncio.CancelledError):
                what = "the map step was cancelled" if entry.map is not None else "the step was cancelled before it started"
                failure = {"kind": "cancelled", "type": "TaskCancelledError", "message": what}
            elif entry.map is not None and isinstance(err, StepOutputRejected):
                # The map's own output (a step's arrives wrapped in a RayTaskError, classified below).
                failure = {
                    "kind": "rejected",
                    "type": f"{StepOutputRejected.__module__}.StepOutputRejected",
                    "message": str(err)[:4000],
                }
            else:
                failure = classify_failure(err)
            if failure["kind"] == "worker_crashed":
                failure = await self._memory_post_mortem(entry, failure)
            outcome = {"ok": False, "error": failure, "node": entry.node}
            entry.state = "cancelled" if failure["kind"] == "cancelled" else "failed"
        if entry.map is not None:
            outcome["items"] = entry.map.progress()
            if entry.state == "succeeded":
                entry.map.outputs = None  # the whole output is kept by the table now
        placement = self._placements.get(entry.key)
        if placement is not None and placement.done():
            del self._placements[entry.key]  # the step was cancelled while it waited to be placed
        if self._ledger.end(entry.key, entry.generation) is not None:
            self._trace("ended", key=entry.key)
            self._pump()
        self._table.finish(entry, outcome, output_json)
        outcome.update(self._timing(entry))
        outcome["nodes"] = list(entry.nodes)
        outcome["generation"] = entry.generation
        outcome["memoryBytes"] = entry.memory
        outcome["history"] = list(entry.history)
        entry.done.set()

    async def finished_runs(self, min_age_s: float = 60.0) -> list:
        """The workflow runs holding finished entries; the worker releases those whose run is closed."""
        return self._table.finished_runs(min_age_s)

    async def release(self, workflow_id: str, run_id: str) -> dict:
        """Forgets the finished entries of a workflow run that is closed (never active work)."""
        return {"released": self._table.release(workflow_id, run_id)}

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
        entry = self._table.get(key)
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
        entry = self._table.get(key)
        if entry is None or entry.generation != generation:
            return {"ok": False, "error": {"kind": "lost", "type": "StepLost", "message": f"no task for {key} generation {generation}"}}
        await entry.done.wait()
        return self._table.outcome(entry)

    async def status(self, key: str) -> Optional[dict]:
        entry = self._table.get(key)
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
        entry = self._table.get(key)
        if entry is None or entry.state not in ("pending", "running"):
            return {"cancelled": False}
        if run is not None and attempt is not None and entry.claimed != (run, attempt):
            return {"cancelled": False, "superseded": True, "claimedBy": entry.claimed[1]}
        if entry.force_stop_at is None:
            entry.force_stop_at = time.time() + (0 if force else grace_s)
        self._interrupt(entry, force)
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
            self._interrupt(entry, True)
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
        if entry.map is not None:
            described["items"] = entry.map.progress()
        if attached is not None:
            described["attached"] = attached
        return described
