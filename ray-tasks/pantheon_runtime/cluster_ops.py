"""Cluster-level bridge methods: what the worker and the autoscaler read of
Ray's nodes, and the operations they ask of it. Each public coroutine here
takes the request's params dict and returns JSON-ready data; the bridge serves
every name in METHODS.
"""

from __future__ import annotations

import ray


async def cluster(_params: dict) -> dict:
    """Every node with its total resources and labels, and what is available cluster-wide."""
    nodes = [
        {"nodeId": n["NodeID"], "alive": n["Alive"], "resources": n["Resources"], "labels": n.get("Labels", {})}
        for n in ray.nodes()
    ]
    return {"nodes": nodes, "available": ray.available_resources()}


METHODS = {"cluster": cluster}
