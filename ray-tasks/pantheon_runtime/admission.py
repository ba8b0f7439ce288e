"""Cluster-wide, resource-exact admission: the dispatcher's ledger, without Ray.

Every worker process asks this one ledger (held by the dispatcher actor on
the Ray head) before it polls its group's Temporal task queue, so N workers
together never admit more than the group's alive Ray nodes can run (DESIGN.md,
principle 8). Kept apart from the actor so that its rules are tested as plain
Python with a clock the test controls (test/python/test_admission.py).

The ledger knows, per node of each group, its total resources and what is
allocated on it. Allocations are of two kinds:

- **Units.** Before a worker polls, it reserves a unit (one CPU) on some node
  of the group, under its lease (`holder`). Temporal tells a worker nothing
  about a task before it is polled, so a unit is the smallest step shape: a
  poll never brings in a task when not even that is free.
- **Steps.** When the polled task is submitted, one of the holder's units is
  exchanged for the step's exact request (CPUs, GPUs, memory, custom
  resources; a map: that many times one item's), placed on a node whose labels
  match the step's selector, best fit first. The dispatcher pins the task to
  that node, so Ray's placement and this ledger agree: nothing waits inside
  Ray for resources. A step that does not fit now waits here, ordered by
  priority then arrival, and no unit is granted in its group while it waits
  (a big step is never starved by a stream of small ones). A step no node of
  the group could ever hold waits aside: it is demand for the autoscaler,
  not a block on the group. Steps are placed against other steps only, not
  against units: a unit is an outstanding poll, which cannot be called back
  (Temporal's long poll lasts up to a minute), and a big step must not wait
  for idle polls to time out. A task such a poll still brings in while its
  group is full waits here too; at most as many as there were polls.

A step's allocation is freed when its Ray task ends, not when its activity's
completion reaches Temporal: the next poll starts while that completion is
still travelling (the latency it hides, issue #14).

A unit goes back when the step it was reserved for binds, when the polled
activity ends without binding (a job-mode step, a refusal) or when the poll
found nothing. A worker renews its lease with its own count of units; a lease
not renewed within `lease_s` loses its units (a killed worker's share comes
back within that bound); its steps keep their allocations until their tasks
end, because those tasks really run. After a dispatcher restart (or a lease
that ran out during a long pause), the renewals rebuild the units from the
workers' counts; a known lease keeps the ledger's own count.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Optional

GROUP_LABEL = "pantheon.io/group"
NODE_ID_LABEL = "ray.io/node-id"
UNIT = {"CPU": 1.0}
EPSILON = 1e-6
DEFAULT_LEASE_S = 10.0
# Released holders remembered (each one worker process that shut down); older ones are long gone.
RELEASED_HOLDERS_KEPT = 4096


def label_matches(selector: dict, node_id: str, labels: dict) -> bool:
    """Whether a node satisfies a Ray label selector ({key: "v" | "!v" | "in(a,b)" | "!in(a,b)"})."""
    for key, expression in (selector or {}).items():
        value = node_id if key == NODE_ID_LABEL else labels.get(key)
        negated = expression.startswith("!")
        body = expression[1:] if negated else expression
        if body.startswith("in(") and body.endswith(")"):
            allowed = {v.strip() for v in body[3:-1].split(",") if v.strip()}
        else:
            allowed = {body}
        if (value in allowed) == negated:
            return False
    return True


def request_of(options: dict) -> dict:
    """The Ray resources a task's options ask for: {"CPU", "GPU", "memory", custom…} (CPU defaults to 1)."""
    request = {"CPU": float(options.get("num_cpus", 1) if options.get("num_cpus") is not None else 1)}
    if options.get("num_gpus"):
        request["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        request["memory"] = float(options["memory"])
    for name, amount in (options.get("resources") or {}).items():
        request[name] = request.get(name, 0.0) + float(amount)
    return {k: v for k, v in request.items() if v > 0}


def scaled(request: dict, times: int) -> dict:
    return {k: v * times for k, v in request.items()}


@dataclass
class Node:
    id: str
    group: str
    total: dict
    labels: dict = field(default_factory=dict)


@dataclass
class Step:
    """A step's claim: `request` per item, `count` items (1 for a step), placed per node once admitted."""

    key: str
    group: str
    request: dict
    selector: dict
    priority: int
    seq: int
    generation: int = 0
    count: int = 1
    # A map is admitted once this many items fit (then gets what fits, up to `count`).
    min_count: int = 1
    # node id -> items placed there; empty while the step waits.
    placed: dict = field(default_factory=dict)


@dataclass
class Lease:
    holder: str
    expires_at: float
    # group -> node ids of this holder's units (one entry per unit).
    units: dict = field(default_factory=dict)


class Ledger:
    def __init__(self, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.lease_s = lease_s
        self.nodes: dict[str, Node] = {}
        self.leases: dict[str, Lease] = {}
        self.steps: dict[str, Step] = {}
        # Holders that released their lease (a worker shutting down), newest last. A holder names one
        # worker process for its life, so a reservation or renewal that arrives after the release (one
        # that was travelling, or a poll the worker's shutdown had not cancelled yet) is that worker's
        # last and must not bring the lease back: the process exits right after and would leave its
        # units held for a whole lease.
        self.released: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._seq = itertools.count()

    # -- what is there -------------------------------------------------------------------------

    def set_nodes(self, nodes: list[Node]) -> None:
        """The alive, schedulable nodes (draining ones left out), as last read from Ray."""
        self.nodes = {n.id: n for n in nodes}

    def _group_nodes(self, group: str) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.group == group), key=lambda n: n.id)

    def used(self, node_id: str, with_units: bool = True) -> dict:
        """What is allocated on a node: admitted steps, and (unless left out) units."""
        used: dict = {}
        if with_units:
            for lease in self.leases.values():
                for nodes in lease.units.values():
                    for unit_node in nodes:
                        if unit_node == node_id:
                            for k, v in UNIT.items():
                                used[k] = used.get(k, 0.0) + v
        for step in self.steps.values():
            items = step.placed.get(node_id, 0)
            for k, v in step.request.items():
                used[k] = used.get(k, 0.0) + v * items
        return used

    def free(self, node_id: str, with_units: bool = True) -> dict:
        node = self.nodes[node_id]
        used = self.used(node_id, with_units)
        return {k: node.total.get(k, 0.0) - used.get(k, 0.0) for k in set(node.total) | set(used)}

    @staticmethod
    def _fits(request: dict, free: dict, times: int = 1) -> bool:
        return all(free.get(k, 0.0) + EPSILON >= v * times for k, v in request.items())

    def _feasible(self, step: Step) -> bool:
        """Whether some node of the group could hold one item of the step when empty."""
        return any(
            label_matches(step.selector, n.id, n.labels) and self._fits(step.request, n.total)
            for n in self._group_nodes(step.group)
        )

    def _place(self, group: str, request: dict, selector: dict, times: int, with_units: bool) -> dict:
        """Up to `times` items of `request`, best fit (least CPU left) first: {node id: items}."""
        placed: dict = {}
        frees = {
            n.id: self.free(n.id, with_units)
            for n in self._group_nodes(group)
            if label_matches(selector, n.id, n.labels)
        }
        for _ in range(times):
            candidates = [nid for nid, free in frees.items() if self._fits(request, free)]
            if not candidates:
                break
            best = min(candidates, key=lambda nid: (frees[nid].get("CPU", 0.0) - request.get("CPU", 0.0), nid))
            placed[best] = placed.get(best, 0) + 1
            for k, v in request.items():
                frees[best][k] = frees[best].get(k, 0.0) - v
        return placed

    def waiting(self, group: Optional[str] = None) -> list[Step]:
        """Steps bound but not placed, in the order they will be admitted."""
        waiting = [s for s in self.steps.values() if not s.placed and (group is None or s.group == group)]
        return sorted(waiting, key=lambda s: (s.priority, s.seq))

    # -- leases and units ----------------------------------------------------------------------

    def _lease(self, holder: str, now: float) -> Lease:
        lease = self.leases.get(holder)
        if lease is None:
            lease = self.leases[holder] = Lease(holder, now + self.lease_s)
        return lease

    def reserve(self, group: str, holder: str, now: float) -> Optional[str]:
        """A unit for one poll of `group` under `holder`'s lease; the node it is on, or None (nothing free,
        or the holder released its lease)."""
        self.expire(now)
        if holder in self.released:
            return None
        if any(self._feasible(s) for s in self.waiting(group)):
            return None  # a step admitted first must be placed first
        # Room in the group as a whole, not only on some node: a step is placed on the node that fits it
        # best, which need not be the node its unit was counted on, so a node may hold more than its
        # share of units while another shows room that is not there.
        room: dict = {}
        for node in self._group_nodes(group):
            for k, v in self.free(node.id).items():
                room[k] = room.get(k, 0.0) + v
        if not self._fits(UNIT, room):
            return None
        placed = self._place(group, UNIT, {}, 1, with_units=True)
        if not placed:
            return None
        node_id = next(iter(placed))
        lease = self._lease(holder, now)
        lease.expires_at = now + self.lease_s
        lease.units.setdefault(group, []).append(node_id)
        return node_id

    def give_back(self, group: str, holder: str) -> bool:
        """Returns one of the holder's units of the group (its poll found nothing, or its activity never bound)."""
        lease = self.leases.get(holder)
        units = lease.units.get(group) if lease else None
        if not units:
            return False
        units.pop()
        return True

    def renew(self, holder: str, units: dict, now: float) -> dict:
        """Extends the lease. A lease the ledger does not know (a restarted dispatcher, or one that expired
        during a long pause) is rebuilt from the worker's own count of units per group; a known one keeps
        the ledger's count, because a count sent while a grant or an exchange is still travelling would be
        off by it (taking it would let one more poll in). Answers what was rebuilt."""
        if holder in self.released:
            return {}
        known = holder in self.leases
        lease = self._lease(holder, now)
        lease.expires_at = now + self.lease_s
        if known:
            return {}
        rebuilt = {}
        for group, count in units.items():
            want = max(0, int(count))
            if want == 0:
                continue
            have = lease.units.setdefault(group, [])
            while len(have) < want:
                # Real polls in flight: recorded even where nothing is free, so that the count holds.
                placed = self._place(group, UNIT, {}, 1, with_units=True)
                have.append(next(iter(placed)) if placed else "")
            rebuilt[group] = want
        return rebuilt

    def expire(self, now: float) -> list[str]:
        """Drops leases not renewed in time, with their units; returns their holders."""
        gone = [h for h, lease in self.leases.items() if lease.expires_at < now]
        for holder in gone:
            del self.leases[holder]
        return gone

    def drop_holder(self, holder: str) -> None:
        """The holder released its lease (its worker shuts down): its units are free, and it gets no more."""
        self.leases.pop(holder, None)
        self.released[holder] = None
        while len(self.released) > RELEASED_HOLDERS_KEPT:
            self.released.popitem(last=False)

    # -- steps ---------------------------------------------------------------------------------

    def bind(
        self,
        key: str,
        group: str,
        request: dict,
        selector: dict,
        priority: int,
        holder: Optional[str],
        generation: int = 0,
        count: int = 1,
        min_count: int = 1,
    ) -> Step:
        """Exchanges one of the holder's units for the step's exact request; placed now or waiting.

        A map asks for `count` items and is admitted once `min_count` fit (then it gets what fits, up
        to `count`). The caller admits waiting steps with `admit()` after every change.
        """
        if holder is not None:
            self.give_back(group, holder)
        self.steps.pop(key, None)  # a key has one allocation: its newest generation's
        step = Step(
            key, group, request, selector, priority, next(self._seq), generation, count, min(min_count, count)
        )
        self.steps[key] = step
        return step

    def admit(self) -> list[Step]:
        """Places waiting steps, in order per group, head of line first; returns those placed now."""
        admitted = []
        groups = {s.group for s in self.steps.values() if not s.placed}
        for group in sorted(groups):
            for step in self.waiting(group):
                if not self._feasible(step):
                    continue  # demand for the autoscaler; it blocks nobody
                need = step.min_count
                # Units do not hold a step back: a unit is a poll that may bring in a task, and a poll
                # cannot be called back (Temporal's long poll lasts up to a minute). Steps alone are
                # never placed beyond a node's resources; a task that an outstanding poll brings in
                # while its group is full waits here, never inside Ray.
                trial = self._place(group, step.request, step.selector, step.count, with_units=False)
                if sum(trial.values()) < need:
                    break  # head of line: nothing behind it goes first
                step.placed = trial
                admitted.append(step)
        return admitted

    def end(self, key: str, generation: int) -> Optional[Step]:
        """The generation's task ended (or was cancelled before it started): its allocation is free."""
        step = self.steps.get(key)
        if step is None or step.generation != generation:
            return None  # an older generation, whose allocation a newer one already replaced
        return self.steps.pop(key)

    # -- reading -------------------------------------------------------------------------------

    def demand(self) -> list[dict]:
        """Waiting steps as resource requests, in the shape of Ray's pending demand (for the autoscaler)."""
        out: dict = {}
        for step in self.waiting():
            labels = {GROUP_LABEL: f"in({step.group})"}
            resources = {k: v for k, v in step.request.items()}
            ident = (step.group, tuple(sorted(resources.items())))
            if ident in out:
                out[ident]["count"] += step.min_count
            else:
                out[ident] = {"resources": resources, "labels": labels, "count": step.min_count}
        return list(out.values())

    def snapshot(self) -> dict:
        groups: dict = {}
        for node in self.nodes.values():
            g = groups.setdefault(node.group, {"nodes": 0, "total": {}, "allocated": {}, "units": 0, "steps": 0, "waiting": 0})
            g["nodes"] += 1
            for k, v in node.total.items():
                g["total"][k] = g["total"].get(k, 0.0) + v
            for k, v in self.used(node.id).items():
                g["allocated"][k] = g["allocated"].get(k, 0.0) + v
        for lease in self.leases.values():
            for group, units in lease.units.items():
                groups.setdefault(group, {"nodes": 0, "total": {}, "allocated": {}, "units": 0, "steps": 0, "waiting": 0})
                groups[group]["units"] += len(units)
        for step in self.steps.values():
            g = groups.setdefault(step.group, {"nodes": 0, "total": {}, "allocated": {}, "units": 0, "steps": 0, "waiting": 0})
            g["steps" if step.placed else "waiting"] += 1
        return {
            "groups": groups,
            "holders": {h: {g: len(u) for g, u in lease.units.items()} for h, lease in self.leases.items()},
        }
