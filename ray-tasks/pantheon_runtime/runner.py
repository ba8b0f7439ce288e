"""The Ray task that runs one pipeline step.

It tells the dispatcher where it started (so heartbeats and reassignment know
the node), holds the step to its memory request (memory_guard.py), runs the
step's function, and checks that the output is strict JSON of an acceptable
size (strict_json.py): an output with NaN, Infinity, a cycle or a value JSON
cannot carry fails the step at once, naming where; a result is never silently
truncated. The output travels on as its JSON text, so what the dispatcher keeps
and counts against its budget is exactly what the worker will receive.

An output larger than `limits["blob_threshold_bytes"]` (0: never) goes to the
host's blob store when the Ray side has one (blob_store.py) and the step returns
its reference; references among a step's arguments are resolved before the
function is called, so a step is given the values, never the references.

The task reference is resolved against `limits["allowed_packages"]`, which
the dispatcher fills from its own configuration, never from the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from typing import Any, Callable, Optional

import ray

from . import blob_store, strict_json
from .memory_guard import StepMemoryExceeded, start_guard
from .step_store import workflow_of
from .task_refs import resolve_task

DISPATCHER_NAME = "pantheon-dispatcher"
NAMESPACE = "pantheon"


class StepOutputRejected(Exception):
    """The step's output is not strict JSON, or is larger than the result limit."""


_dispatcher = None


def _notify_started(key: str, generation: int, node_id: str, guard: dict | None) -> None:
    global _dispatcher
    try:
        if _dispatcher is None:
            _dispatcher = ray.get_actor(DISPATCHER_NAME, namespace=NAMESPACE)
        notice = _dispatcher.started.remote(key, generation, node_id, os.getpid(), time.time(), guard)
        # The step's work waits until the dispatcher knows where it runs (and which memory cgroup
        # to inspect if the kernel kills it): a node lost or a worker killed right after the start
        # must still be traced to its node.
        ray.get(notice, timeout=10)
    except Exception:  # noqa: BLE001 — visibility only; the step must run regardless
        _dispatcher = None


def _guarded(task_ref: str, guard: Any, limit_bytes: Optional[int], work: Callable[[], Any]) -> Any:
    """Runs `work` (resolving the inputs, calling the task) under the memory guard, stopped after.

    A refused allocation becomes StepMemoryExceeded; an awaitable the task returned is run to its end.
    """
    try:
        output: Any = work()
        if inspect.isawaitable(output):
            output = asyncio.run(output)
        return output
    except MemoryError as err:
        if guard.mode == "off":
            raise
        raise StepMemoryExceeded(
            f"{task_ref} needed more than its memory request of {(limit_bytes or 0) // (1024 * 1024)} MB "
            f"(allocation refused by the {guard.mode} memory guard)"
        ) from err
    finally:
        guard.stop()


def _encoded(task_ref: str, output: Any) -> tuple[str, int]:
    """The output as strict JSON text, and its size in bytes."""
    try:
        encoded = strict_json.encode(output, "output")
    except strict_json.NotStrictJson as err:
        raise StepOutputRejected(f"output of {task_ref} is not strict JSON: {err}") from None
    return encoded, len(encoded.encode("utf-8"))


def run_step(key: str, generation: int, task_ref: str, args: list, kwargs: dict, limits: dict) -> dict:
    node_id = ray.get_runtime_context().get_node_id()
    store = blob_store.configured_store(limits.get("blob_store"))
    limit_bytes = limits.get("memory_limit_bytes")
    guard = start_guard(limits.get("memory_guard", "off"), limit_bytes, f"{key}/g{generation}")

    def work() -> Any:
        _notify_started(key, generation, node_id, guard.describe())
        function = resolve_task(task_ref, limits["allowed_packages"])
        if store is None:
            return function(*args, **kwargs)
        return function(*store.resolve(args), **store.resolve(kwargs))

    encoded, size = _encoded(task_ref, _guarded(task_ref, guard, limit_bytes, work))
    max_bytes = limits["max_result_bytes"]
    threshold = limits.get("blob_threshold_bytes") or 0
    if store is not None and 0 < threshold < size:
        try:
            reference = store.put(encoded, workflow_of(key))
        except blob_store.BlobTooLarge as err:
            raise StepOutputRejected(f"output of {task_ref} is {err}") from None
        return {"outputJson": json.dumps(reference), "node": node_id}
    if size > max_bytes:
        raise StepOutputRejected(
            f"output of {task_ref} is {size} bytes, above the {max_bytes}-byte result limit"
        )
    return {"outputJson": encoded, "node": node_id}


_functions: dict[tuple[str, tuple], Any] = {}


def _map_function(task_ref: str, allowed: list) -> Any:
    # One resolution per worker process: a map calls the same function for every item, and importing
    # and checking it each time would cost more than a no-op item itself.
    cache_key = (task_ref, tuple(allowed))
    function = _functions.get(cache_key)
    if function is None:
        function = _functions[cache_key] = resolve_task(task_ref, allowed)
    return function


def map_item_runner(task_ref: str, args: list, kwargs: dict, limits: dict) -> Callable[[Any], str]:
    """What each item of one map runs: `run_map_item` with the map's constant part bound once.

    Ray serializes every argument of every task it submits; bound here, the task reference, the map's
    own args and kwargs and the limits travel once, inside the function Ray exports, and an item's task
    carries only the item (about half the dispatcher's cost of submitting one).
    """

    def run_item(item: Any) -> str:
        return run_map_item(task_ref, item, args, kwargs, limits)

    return run_item


def run_map_item(task_ref: str, item: Any, args: list, kwargs: dict, limits: dict) -> str:
    """One item of a map step: `function(item, *args, **kwargs)`, its output returned as strict JSON text.

    Lighter than run_step: the dispatcher, which submitted the item, learns where it ran from Ray when
    it needs to, and items are never stored one by one as blobs (the map's whole output is, when large).
    Items are held to the step's memory request like steps.
    """
    store = blob_store.configured_store(limits.get("blob_store"))
    limit_bytes = limits.get("memory_limit_bytes")
    guard = start_guard(limits.get("memory_guard", "off"), limit_bytes, task_ref)

    def work() -> Any:
        function = _map_function(task_ref, limits["allowed_packages"])
        if store is None:
            return function(item, *args, **kwargs)
        return function(store.resolve(item), *store.resolve(args), **store.resolve(kwargs))

    encoded, size = _encoded(task_ref, _guarded(task_ref, guard, limit_bytes, work))
    if size > limits["max_result_bytes"]:
        raise StepOutputRejected(
            f"output of {task_ref} is {size} bytes, above the {limits['max_result_bytes']}-byte limit of one item"
        )
    return encoded
