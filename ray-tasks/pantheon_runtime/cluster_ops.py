"""Cluster-level bridge methods: what the worker and the autoscaler read of
Ray's nodes, and the operations they ask of it. Each public coroutine here
takes the request's params dict and returns JSON-ready data; the bridge serves
every name in METHODS.
"""

from __future__ import annotations

import asyncio
import time

import ray
from ray.autoscaler.v2.sdk import get_cluster_resource_state
from ray.core.generated import autoscaler_pb2, common_pb2

# Ray's per-node bookkeeping resources (`node:<ip>`, `node:__internal_head__`):
# no step asks for them, so they say nothing about capacity.
_BOOKKEEPING_PREFIX = "node:"

_DRAIN_REASONS = {
    "idle": autoscaler_pb2.DRAIN_NODE_REASON_IDLE_TERMINATION,
    "preemption": autoscaler_pb2.DRAIN_NODE_REASON_PREEMPTION,
}


async def cluster(_params: dict) -> dict:
    """Every node with its total resources and labels, and what is available cluster-wide."""
    nodes = [
        {"nodeId": n["NodeID"], "alive": n["Alive"], "resources": n["Resources"], "labels": n.get("Labels", {})}
        for n in ray.nodes()
    ]
    return {"nodes": nodes, "available": ray.available_resources()}


def _gcs_client():
    # The bridge's own driver connection: no second GCS client to open or close.
    return ray._private.worker.global_worker.gcs_client  # noqa: SLF001 — Ray's autoscaler v2 uses the same client


def _resources(entries) -> dict:
    return {k: float(v) for k, v in entries.items() if not k.startswith(_BOOKKEEPING_PREFIX)}


def _label_selector(request) -> dict:
    """A request's label selectors as {key: "in(a,b)" | "!in(a,b)"}; the first selector only (Ray tasks carry one)."""
    selectors = list(request.label_selectors)
    if not selectors:
        return {}
    out = {}
    for constraint in selectors[0].label_constraints:
        values = ",".join(constraint.label_values)
        negated = constraint.operator == common_pb2.LABEL_OPERATOR_NOT_IN
        out[constraint.label_key] = f"{'!' if negated else ''}in({values})"
    return out


def _read_node_states() -> dict:
    state = get_cluster_resource_state(_gcs_client())
    nodes = [
        {
            "nodeId": n.node_id.hex(),
            "instanceId": n.instance_id,
            "address": n.node_ip_address,
            "status": autoscaler_pb2.NodeStatus.Name(n.status),
            "idleDurationMs": int(n.idle_duration_ms),
            "total": _resources(n.total_resources),
            "available": _resources(n.available_resources),
            "labels": dict(n.labels),
            "activity": list(n.node_activity),
        }
        for n in state.node_states
        # Dead nodes stay in the GCS's list, stripped of their labels: nothing to scale on.
        if n.status != autoscaler_pb2.DEAD
    ]
    pending = [
        {
            "resources": _resources(r.request.resources_bundle),
            "labels": _label_selector(r.request),
            "count": int(r.count),
        }
        for r in state.pending_resource_requests
    ]
    return {"readAtMs": int(time.time() * 1000), "nodes": nodes, "pending": pending}


# Nodes that take new work: Ray's autoscaler v2 statuses other than DRAINING and DEAD.
_SCHEDULABLE = ("RUNNING", "IDLE")


def schedulable_nodes() -> list:
    """The live nodes that take new work, with their total resources and labels (for admission.py)."""
    return [n for n in _read_node_states()["nodes"] if n["status"] in _SCHEDULABLE]


async def node_states(_params: dict) -> dict:
    """What the GCS knows of every live node (status, idle time, total and available
    resources, labels) and of the resource requests no node has taken yet: the
    same view Ray's own autoscaler v2 decides from."""
    # The GCS client blocks; keep the bridge's event loop free for step traffic.
    return await asyncio.to_thread(_read_node_states)


def _drain(node_id: str, reason: str, message: str, deadline_ms: int) -> dict:
    accepted, rejection = _gcs_client().drain_node(node_id, _DRAIN_REASONS[reason], message, deadline_ms)
    return {"accepted": bool(accepted), "rejection": rejection or None}


async def drain_node(params: dict) -> dict:
    """Asks Ray to drain one node. With reason "idle" (idle termination) Ray refuses
    a node that runs anything, and a node it accepts takes no new work and stops
    its raylet: the node can then be removed without losing a step."""
    node_id = params.get("nodeId")
    if not isinstance(node_id, str) or len(node_id) != 56:
        raise ValueError(f"nodeId: expected a 56-character hex Ray node id, got {node_id!r}")
    reason = params.get("reason", "idle")
    if reason not in _DRAIN_REASONS:
        raise ValueError(f"reason: expected one of {sorted(_DRAIN_REASONS)}, got {reason!r}")
    message = str(params.get("message", "drained by the Pantheon autoscaler"))
    deadline_ms = int(params.get("deadlineMs", 0))
    return await asyncio.to_thread(_drain, node_id, reason, message, deadline_ms)


METHODS = {"cluster": cluster, "node_states": node_states, "drain_node": drain_node}
