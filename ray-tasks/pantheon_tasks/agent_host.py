"""The agent host: runs one agent's task on Ray and measures what it used.

An agent step is submitted as this task, with the agent's own task reference
and inputs. The host resolves the task through the same package fence as the
step runner, runs it, and returns the output together with the CPU-seconds and
the peak memory of the Ray worker process during the call. Those measurements
are what the orchestrator learns an agent's resource needs from.

The fence here is the Ray side's own (`PANTHEON_ALLOWED_TASK_PACKAGES` in the
Ray worker's environment, pantheon_runtime/task_refs.py), never a value the
caller sends: naming the host directly must not widen what a step can import.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import time
from typing import Any, Optional

from pantheon_runtime.memory import ScopedMemory
from pantheon_runtime.task_refs import AGENT_HOST_TASK, TaskRefRefused, configured_allowlist, resolve_task

# Sampling is the fallback when the kernel's peak counter cannot be reset.
SAMPLE_INTERVAL_SECONDS = 0.02


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
        return int(match.group(1)) if match else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux: clear_refs 5). Ray reuses worker
    processes, so without a reset the peak would be that of an earlier task."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class _RssSampler:
    def __init__(self) -> None:
        self.peak_kb = _status_kb("VmRSS") or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_SECONDS):
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS") or 0)

    def __enter__(self) -> "_RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _status_kb("VmRSS") or 0)


def _accepts(function: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters and parameters[name].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _with_memory(function: Any, kwargs: dict, memory: Optional[dict]) -> dict:
    """Adds what the task asked for by name: `memories` (recalled before the
    step: vector memories, then the knowledge-graph context, each marked with
    its `source`) and `memory` (a read handle bound to this agent of this
    project by the step's grant). A task that names neither runs as if the
    agent kept no memory."""
    if memory is None:
        return kwargs
    kwargs = dict(kwargs)
    if _accepts(function, "memories"):
        recalled = [{**hit, "source": "vector"} for hit in memory.get("recalled", [])]
        graph = [{"text": g["context"], "scope": g["scope"], "source": "graph"} for g in memory.get("graph") or []]
        kwargs["memories"] = recalled + graph
    if _accepts(function, "memory"):
        if not memory.get("grant"):
            raise ValueError("the step carries no memory grant (a run started before grants); its task cannot read memory")
        kwargs["memory"] = ScopedMemory.from_context(memory)
    return kwargs


def run_agent(agent: str, task: str, args: list, kwargs: dict, memory: Optional[dict] = None) -> dict:
    """Runs `task(*args, **kwargs)` for `agent`; returns its output and usage.

    `memory` is the step's memory context from the orchestrator
    (`{project, agent, scopes, recalled, graph?, grant?}`), absent when the agent keeps none."""
    if task == AGENT_HOST_TASK:
        raise TaskRefRefused(task, "is the agent host itself, which cannot be an agent's task", "kwargs.task")
    function = resolve_task(task, configured_allowlist(), "kwargs.task")
    kwargs = _with_memory(function, kwargs, memory)
    try:
        return _run_measured(agent, function, args, kwargs)
    finally:
        handle = kwargs.get("memory")
        if isinstance(handle, ScopedMemory):
            handle.close()


def _run_measured(agent: str, function: Any, args: list, kwargs: dict) -> dict:
    counter_reset = _reset_peak_rss()
    cpu_start = time.process_time()
    wall_start = time.monotonic()
    with _RssSampler() as sampler:
        output: Any = function(*args, **kwargs)
        if inspect.isawaitable(output):
            output = asyncio.run(output)
    peak_kb = max(sampler.peak_kb, (_status_kb("VmHWM") or 0) if counter_reset else 0)
    return {
        "output": output,
        "usage": {
            "agent": agent,
            "cpuSeconds": round(time.process_time() - cpu_start, 3),
            "wallSeconds": round(time.monotonic() - wall_start, 3),
            "peakMemoryMb": round(peak_kb / 1024, 1),
            "peakMeasuredBy": "VmHWM" if counter_reset else "sampled VmRSS",
        },
    }
