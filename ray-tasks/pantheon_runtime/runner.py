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
from typing import Any

import ray

from . import blob_store, strict_json
from .memory_guard import StepMemoryExceeded, start_guard
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


def run_step(key: str, generation: int, task_ref: str, args: list, kwargs: dict, limits: dict) -> dict:
    node_id = ray.get_runtime_context().get_node_id()
    store = blob_store.configured_store()
    limit_bytes = limits.get("memory_limit_bytes")
    guard = start_guard(limits.get("memory_guard", "off"), limit_bytes, f"{key}/g{generation}")
    try:
        _notify_started(key, generation, node_id, guard.describe())
        function = resolve_task(task_ref, limits["allowed_packages"])
        if store is not None:
            args, kwargs = store.resolve(args), store.resolve(kwargs)
        output: Any = function(*args, **kwargs)
        if inspect.isawaitable(output):
            output = asyncio.run(output)
    except MemoryError as err:
        if guard.mode == "off":
            raise
        raise StepMemoryExceeded(
            f"{task_ref} needed more than its memory request of {limit_bytes // (1024 * 1024)} MB "
            f"(allocation refused by the {guard.mode} memory guard)"
        ) from err
    finally:
        guard.stop()
    try:
        encoded = strict_json.encode(output, "output")
    except strict_json.NotStrictJson as err:
        raise StepOutputRejected(f"output of {task_ref} is not strict JSON: {err}") from None
    max_bytes = limits["max_result_bytes"]
    size = len(encoded.encode("utf-8"))
    threshold = limits.get("blob_threshold_bytes") or 0
    if store is not None and 0 < threshold < size:
        try:
            reference = store.put(encoded)
        except blob_store.BlobTooLarge as err:
            raise StepOutputRejected(f"output of {task_ref} is {err}") from None
        return {"outputJson": json.dumps(reference), "node": node_id}
    if size > max_bytes:
        raise StepOutputRejected(
            f"output of {task_ref} is {size} bytes, above the {max_bytes}-byte result limit"
        )
    return {"outputJson": encoded, "node": node_id}
