"""A map step inside the dispatcher: one Ray task per item, a bounded window of them in flight.

A map step is one Temporal activity (one step key) whose items run as plain Ray
tasks submitted by the dispatcher, so an item costs what a Ray task costs, not
a Temporal activity. The dispatcher owns the whole map like it owns a step's
task: a worker that dies mid-map leaves it running, and the next attempt of the
activity attaches to it; no item runs twice for it.

Per item (index i of the list, Ray task named after the step key):

- **Retries are owned here, and only here.** An item that fails is tried again
  up to `maxItemAttempts` times in all, unless its failure can never succeed
  on a retry (a refused task reference, an output that is not strict JSON or
  too large, a missing blob) or its exception type is one of the step's
  `nonRetryableErrors`. The map's own activity is not retried for item
  failures: its failure (`MapItemsFailed`) is final and names the items.
- **Finished items are kept.** Their outputs (JSON texts) stay with the map
  until it ends; a later generation of the same key in the same workflow run
  (after a timeout or a cancel) starts from them and runs only the rest.
- **Failures stop new items.** Once more than `maxFailedItems` items have
  failed for good, no new item is started (those in flight finish), and the
  map fails listing the failed indices and how many never ran.

The output is the list of item outputs in item order, as one JSON text; the
dispatcher stores it by reference when it is large (blob_store.py).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

# Failures a retry cannot mend (dispatcher.classify_failure's kinds).
FINAL_KINDS = ("rejected", "cancelled")
# A failure record lists at most this many items; the count says how many failed in all.
MAX_LISTED_FAILURES = 100
DEFAULT_MAX_ITEM_ATTEMPTS = 3
# A map that names no concurrency keeps this much work queued in Ray beyond what its CPUs hold: one
# scheduling round's worth at the rate items finish, so short items are pipelined (Ray starts the
# next while the last one's result travels back) and long ones never wait in Ray behind each other.
LOOKAHEAD_S = 0.1
MAX_ADAPTIVE_WINDOW = 1024
RATE_WINDOW_S = 2.0
DEFAULT_MAX_FAILED_ITEMS = 0
MAX_MAP_ITEMS = 1_000_000


class MapItemsFailed(Exception):
    """Items failed for good: carries the failure record the activity turns into MapItemsFailed."""

    def __init__(self, record: dict) -> None:
        super().__init__(record["message"])
        self.record = record


def retries_item(failure: dict, attempts: int, max_attempts: int, non_retryable: frozenset) -> bool:
    """Whether an item that failed with `failure` on its `attempts`-th try is tried again."""
    if attempts >= max_attempts or failure.get("kind") in FINAL_KINDS:
        return False
    type_name = failure.get("type") or ""
    # "ValueError" in the step's list matches builtins' ValueError and a module's mypkg.ValueError alike.
    return type_name not in non_retryable and type_name.rsplit(".", 1)[-1] not in non_retryable


def failure_record(failures: dict, total: int, not_started: int) -> dict:
    """The map's failure: which items failed (by index, in order), why, and how many never ran."""
    indices = sorted(failures)
    listed = [{"index": i, **failures[i]} for i in indices[:MAX_LISTED_FAILURES]]
    first = listed[0]
    message = (
        f"{len(indices)} of {total} items failed (indices {', '.join(str(i) for i in indices[:20])}"
        f"{', …' if len(indices) > 20 else ''}); item {first['index']}: {first['type']}: {first['message'][:500]}"
    )
    if not_started:
        message += f"; {not_started} items were not started after the failures"
    return {
        "kind": "rejected",
        "type": "MapItemsFailed",
        "message": message,
        "failedItems": listed,
        "failedCount": len(indices),
        "notStarted": not_started,
    }


@dataclass
class MapRun:
    items: list
    # Items in flight at most: fixed when `adaptive` is false; the floor of the window otherwise.
    concurrency: int
    adaptive: bool = False
    max_attempts: int = DEFAULT_MAX_ITEM_ATTEMPTS
    max_failed: int = DEFAULT_MAX_FAILED_ITEMS
    non_retryable: frozenset = frozenset()
    # Outputs of items finished by an earlier generation of the same key, by index.
    carried: dict = field(default_factory=dict)
    outputs: list = field(init=False)
    failures: dict = field(init=False, default_factory=dict)
    in_flight: dict = field(init=False, default_factory=dict)  # Ray ObjectRef -> (index, attempt)
    item_attempts: int = field(init=False, default=0)
    succeeded: int = field(init=False, default=0)
    # Set once the map is being cancelled (the dispatcher then waits for its items to stop).
    stopping: bool = field(init=False, default=False)
    _finished_at: collections.deque = field(init=False, default_factory=collections.deque)

    def __post_init__(self) -> None:
        self.outputs = [None] * len(self.items)
        for index, text in self.carried.items():
            if 0 <= index < len(self.outputs):
                self.outputs[index] = text
                self.succeeded += 1
        self.carried = {}

    def progress(self) -> dict:
        return {
            "total": len(self.items),
            "succeeded": self.succeeded,
            "failed": len(self.failures),
            "running": len(self.in_flight),
            "itemAttempts": self.item_attempts,
        }

    def window(self, now: float) -> int:
        """How many items may be in flight now: the concurrency, plus a lookahead when adaptive."""
        if not self.adaptive:
            return self.concurrency
        while self._finished_at and now - self._finished_at[0] > RATE_WINDOW_S:
            self._finished_at.popleft()
        rate = len(self._finished_at) / RATE_WINDOW_S
        return min(MAX_ADAPTIVE_WINDOW, self.concurrency + math.ceil(rate * LOOKAHEAD_S))

    def batch(self, in_flight: int) -> int:
        """How many items to wait for before starting more: half the lookahead queued in Ray, at least one.

        Waking once per finished item costs the dispatcher a wait over every item in flight each time,
        CPU that the items' own workers need on a small host. Half the queue still leaves the other half
        for the CPUs to work on while the finished half is collected and replaced.
        """
        if not self.adaptive:
            return 1
        return max(1, (in_flight - self.concurrency) // 2)

    def finished_outputs(self) -> dict:
        """Index -> output text of every finished item: what a later generation carries over."""
        return {i: text for i, text in enumerate(self.outputs or []) if text is not None}

    async def run(
        self,
        submit: Callable[[int, Any], Any],
        wait_some: Callable[[list, int], Awaitable[list]],
        classify: Callable[[BaseException], dict],
    ) -> str:
        """Runs every item not yet finished; returns the outputs as one JSON list, or raises MapItemsFailed.

        `submit(index, item)` starts an item and returns its handle (a Ray ObjectRef); `wait_some(handles,
        batch)` waits until `batch` of them have finished (or, after a short while, at least one) and
        returns the finished ones as `(handle, ok, output text or exception)`. Waiting for many at once, rather than one coroutine per item, keeps the
        dispatcher's cost per item near what a Ray driver's own `ray.get` of a list costs.
        """
        todo = collections.deque(i for i, text in enumerate(self.outputs) if text is None)
        while todo or self.in_flight:
            stopped = len(self.failures) > self.max_failed
            limit = self.window(time.monotonic())
            while todo and not stopped and len(self.in_flight) < limit:
                self._start(todo.popleft(), 1, submit)
            if not self.in_flight:
                break
            for handle, ok, value in await wait_some(list(self.in_flight), self.batch(len(self.in_flight))):
                index, attempts = self.in_flight.pop(handle)
                if ok:
                    self.outputs[index] = value
                    self.succeeded += 1
                    self._finished_at.append(time.monotonic())
                    continue
                failure = classify(value)
                if retries_item(failure, attempts, self.max_attempts, self.non_retryable):
                    self._start(index, attempts + 1, submit)
                else:
                    self.failures[index] = {
                        "type": failure.get("type", "Error"),
                        "message": str(failure.get("message", ""))[:1000],
                        "kind": failure.get("kind"),
                        "attempts": attempts,
                    }
        if self.failures:
            not_started = len(self.items) - self.succeeded - len(self.failures)
            raise MapItemsFailed(failure_record(self.failures, len(self.items), not_started))
        return "[" + ",".join(self.outputs) + "]"

    def _start(self, index: int, attempt: int, submit: Callable[[int, Any], Any]) -> None:
        self.item_attempts += 1
        self.in_flight[submit(index, self.items[index])] = (index, attempt)

    def interrupt(self, cancel_ref: Callable[[Any], None]) -> None:
        """Cancels the Ray tasks of the items in flight (the coroutine itself is cancelled by the caller)."""
        for ref in list(self.in_flight):
            cancel_ref(ref)
