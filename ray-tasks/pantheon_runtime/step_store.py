"""The dispatcher's table of step keys, without Ray: attach rules, fingerprints, retention, the output budget.

Kept apart from the actor (dispatcher.py) so that its rules are tested as
plain Python with a clock the test controls (test/python/).

**Same work only.** Each key remembers the fingerprint of the work it holds:
a hash of the task reference, the arguments and the resources the step
declared (not the options an attempt planned from its history: those change
between attempts by design). An attempt that would attach to the key, or
start the next generation of it in the same workflow run, but asks for
different work is refused (`conflict`), never handed another step's result.

**Retention follows the workflow.** A finished entry is kept until its
workflow run is known to be closed: the worker asks the table for the runs it
holds finished entries of (`finished_runs`), asks Temporal about each, and
releases the closed ones (`release`, activities/ray/dispatcher-retention.ts).
No age alone ever removes an entry, so a retry hours later still attaches.

**Memory is bounded by a byte budget.** Outputs are kept as their JSON text.
Once the texts held in memory pass the budget, the oldest are written to files
in the spill folder and read back when asked for. Besides the outputs, an
entry holds at most ~25 KB (a failure's message and traceback, 4 KB each, and
at most HISTORY_LIMIT history items of a few hundred bytes).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# Entries of a key's history kept for planning; older generations add nothing the policy uses.
HISTORY_LIMIT = 50
ACTIVE_STATES = ("pending", "running")


def fingerprint(task: str, args: Any, kwargs: Any, resources: Any, map_spec: Any = None) -> str:
    """The identity of a step's work: task, arguments, declared resources (and a map's list), as canonical JSON."""
    work = {"task": task, "args": args, "kwargs": kwargs, "resources": resources or {}}
    if map_spec is not None:
        work["map"] = map_spec
    canonical = json.dumps(
        work,
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def workflow_of(key: str) -> str:
    """The workflow id of a key `<workflowId>/<stepId>` (step ids never contain '/')."""
    return key.rsplit("/", 1)[0]


@dataclass
class Entry:
    key: str
    run: str
    attempt: int
    generation: int
    ref: Any
    submitted_at: float
    workflow: str = ""
    fingerprint: Optional[str] = None
    task: str = ""
    state: str = "pending"  # pending | running | succeeded | failed | cancelled
    node: Optional[str] = None
    nodes: list = field(default_factory=list)
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    # The finished outcome without its output; the output's JSON text is in the OutputStore.
    outcome: Optional[dict] = None
    memory: Optional[int] = None  # the memory request (bytes) this generation ran with
    guard: Optional[dict] = None  # the runner's memory guard, reported at start
    map: Any = None  # a map step's MapRun (map_runner.py): its items' progress and finished outputs
    history: list = field(default_factory=list)  # finished generations of this key, oldest first
    # The (run, attempt) that last submitted or attached: only it may cancel the task, so a stale
    # attempt (its worker stalled past the heartbeat timeout) cannot cancel work a newer one took over.
    claimed: tuple = ("", 0)
    # When a cancel was asked for: the time after which the task is force-killed if still running.
    force_stop_at: Optional[float] = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # The Ray task once started (`ref` is the coroutine that waits for admission, then for it).
    task_ref: Any = None


def attaches(entry: Entry, run: str, attempt: int) -> bool:
    """Whether an attempt is answered by the key's current generation (the dispatcher's rules)."""
    if entry.state in ACTIVE_STATES:
        return True
    if entry.run != run:
        return False
    if entry.state == "succeeded":
        return True
    return attempt <= entry.attempt


def decide(entry: Optional[Entry], run: str, attempt: int, work: str) -> str:
    """`attach`, `new` (the next generation) or `conflict` (the key holds different work)."""
    if entry is None:
        return "new"
    same_work = entry.fingerprint is None or entry.fingerprint == work
    if attaches(entry, run, attempt):
        return "attach" if same_work else "conflict"
    # A new run of the workflow may ask for other work under the key; the same run may not.
    return "new" if same_work or entry.run != run else "conflict"


class OutputStore:
    """Step outputs as JSON text: in memory up to `budget_bytes`, the oldest spilled to files beyond it."""

    def __init__(self, budget_bytes: int, spill_dir: str) -> None:
        self.budget_bytes = budget_bytes
        self.spill_dir = spill_dir
        self._memory: OrderedDict[str, str] = OrderedDict()  # oldest first
        self._spilled: dict[str, int] = {}  # key -> bytes on disk
        self.memory_bytes = 0
        # Spilled files belong to a table that no longer exists (this dispatcher restarted).
        shutil.rmtree(spill_dir, ignore_errors=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.spill_dir, hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json")

    def put(self, key: str, text: str) -> None:
        self.drop(key)
        self._memory[key] = text
        self.memory_bytes += len(text)
        while self.memory_bytes > self.budget_bytes and self._memory:
            self._spill(next(iter(self._memory)))

    def _spill(self, key: str) -> None:
        text = self._memory.pop(key)
        self.memory_bytes -= len(text)
        os.makedirs(self.spill_dir, mode=0o700, exist_ok=True)
        with open(self._path(key), "w", encoding="utf-8") as out:
            out.write(text)
        self._spilled[key] = len(text)

    def get(self, key: str) -> Optional[str]:
        text = self._memory.get(key)
        if text is not None:
            return text
        if key not in self._spilled:
            return None
        with open(self._path(key), encoding="utf-8") as spilled:
            return spilled.read()

    def drop(self, key: str) -> None:
        text = self._memory.pop(key, None)
        if text is not None:
            self.memory_bytes -= len(text)
        if self._spilled.pop(key, None) is not None:
            try:
                os.remove(self._path(key))
            except FileNotFoundError:
                pass

    def stats(self) -> dict:
        return {
            "budgetBytes": self.budget_bytes,
            "inMemory": len(self._memory),
            "inMemoryBytes": self.memory_bytes,
            "spilled": len(self._spilled),
            "spilledBytes": sum(self._spilled.values()),
            "spillDir": self.spill_dir,
        }


class StepTable:
    """Every key the dispatcher knows, with the finished outputs in a budgeted OutputStore."""

    def __init__(self, outputs: OutputStore, clock: Callable[[], float] = time.time) -> None:
        self.entries: dict[str, Entry] = {}
        self.outputs = outputs
        self.clock = clock

    def get(self, key: str) -> Optional[Entry]:
        return self.entries.get(key)

    def put(self, entry: Entry) -> None:
        self.outputs.drop(entry.key)  # a new generation's output replaces the last one's
        self.entries[entry.key] = entry

    def finish(self, entry: Entry, outcome: dict, output_json: Optional[str]) -> None:
        """Records a generation's end; `output_json` is a success's output as JSON text."""
        entry.finished_at = self.clock()
        ok = outcome["ok"]
        entry.history.append(
            {
                "generation": entry.generation,
                "attempt": entry.attempt,
                "outcome": "succeeded" if ok else outcome["error"]["kind"],
                "node": entry.node,
                "memoryBytes": entry.memory,
                "reason": None if ok else outcome["error"]["message"][:300],
            }
        )
        del entry.history[:-HISTORY_LIMIT]
        entry.outcome = outcome
        if output_json is not None and self.entries.get(entry.key) is entry:
            self.outputs.put(entry.key, output_json)

    def outcome(self, entry: Entry) -> dict:
        """The finished outcome with its output decoded (read back from disk if it was spilled)."""
        assert entry.outcome is not None
        if not entry.outcome["ok"]:
            return entry.outcome
        text = self.outputs.get(entry.key)
        if text is None:
            return {
                "ok": False,
                "error": {"kind": "lost", "type": "StepOutputLost", "message": f"the output of {entry.key} is gone"},
                "node": entry.node,
                "nodes": list(entry.nodes),
                "history": list(entry.history),
            }
        return {**entry.outcome, "output": json.loads(text)}

    def finished_runs(self, min_age_s: float) -> list[dict]:
        """The (workflow, run) pairs holding entries finished at least `min_age_s` ago."""
        now = self.clock()
        runs: dict[tuple[str, str], int] = {}
        for entry in self.entries.values():
            if entry.finished_at is not None and entry.state not in ACTIVE_STATES and now - entry.finished_at >= min_age_s:
                pair = (entry.workflow, entry.run)
                runs[pair] = runs.get(pair, 0) + 1
        return [{"workflowId": w, "runId": r, "keys": n} for (w, r), n in runs.items()]

    def release(self, workflow: str, run: str) -> int:
        """Forgets the finished entries of a closed workflow run; work still active is never released."""
        doomed = [
            key
            for key, entry in self.entries.items()
            if entry.workflow == workflow and entry.run == run and entry.state not in ACTIVE_STATES
        ]
        for key in doomed:
            del self.entries[key]
            self.outputs.drop(key)
        return len(doomed)

    def stats(self) -> dict:
        return {"entries": len(self.entries), "outputs": self.outputs.stats()}
