"""Test-kit tasks: small, predictable behaviours that tests and fault drills build on.

The module path (`pantheon_tasks.testkit`) and these signatures are a contract
that tests outside the project rely on: keep them stable.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ray


def echo(value: Any) -> Any:
    """Returns its argument."""
    return value


def text(length: int, fill: str = "x") -> str:
    """Returns `fill` repeated to `length` characters: a large output from a small input."""
    if length < 0 or not fill:
        raise ValueError("length must be at least 0 and fill must not be empty")
    return (fill * (length // len(fill) + 1))[:length]


def measure(value: Any) -> int:
    """Returns how many characters its argument takes as JSON: a small output from a large input."""
    return len(json.dumps(value))


def sleep(seconds: float, value: Any = None) -> Any:
    """Sleeps, then returns `value`."""
    time.sleep(seconds)
    return value


def fail(times: int, marker_path: str) -> dict:
    """Raises on the first `times` attempts, counting attempts as lines of `marker_path`."""
    with open(marker_path, "a", encoding="utf-8") as marker:
        marker.write("attempt\n")
    with open(marker_path, encoding="utf-8") as marker:
        attempt = sum(1 for _ in marker)
    if attempt <= times:
        raise RuntimeError(f"planned failure {attempt} of {times}")
    return {"attempt": attempt}


def append_line(path: str, line: str, delay_seconds: float = 0) -> str:
    """Sleeps, then appends one line to `path`: the side effect that fault tests count."""
    time.sleep(delay_seconds)
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    return line


def numbers(count: int) -> list:
    """Returns [0, 1, …, count - 1]: a list for a map step to run over."""
    return list(range(count))


def record_item(item: Any, path: str, fail_items: list | None = None, delay_seconds: float = 0) -> Any:
    """A map item's side effect: sleeps, appends the item as one line of `path` and returns it.

    Items listed in `fail_items` raise ValueError instead, every time (after the line is written, so a
    test counts their tries too).
    """
    time.sleep(delay_seconds)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(item) + "\n")
    if fail_items and item in fail_items:
        raise ValueError(f"item {item!r} fails as told")
    return item


def node() -> dict:
    """The Ray node this task ran on: its id and labels."""
    context = ray.get_runtime_context()
    return {"nodeId": context.get_node_id(), "labels": dict(context.get_node_labels()), "pid": os.getpid()}


def burn(seconds: float) -> int:
    """Keeps one CPU busy for `seconds`; returns how many loop turns it made."""
    deadline = time.monotonic() + seconds
    turns = 0
    while time.monotonic() < deadline:
        turns += 1
    return turns


def alloc(mb: int, seconds: float = 0) -> int:
    """Holds `mb` megabytes of touched memory for `seconds`; returns mb."""
    block = bytearray(mb * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    time.sleep(seconds)
    return mb


def stubborn_sleep(seconds: float) -> str:
    """Sleeps `seconds`, swallowing the interrupt that a polite Ray cancel sends: only a forced cancel stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:
            continue
    return "finished"


def bad_output(kind: str) -> Any:
    """Returns an output that is not strict JSON, to see the step refuse it: "nan", "inf", "cycle" or "set"."""
    if kind == "cycle":
        loop: list = []
        loop.append(loop)
        return {"loop": loop}
    if kind == "set":
        return {"tags": {"a", "b"}}
    return {"score": float(kind)}
