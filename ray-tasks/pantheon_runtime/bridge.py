"""The bridge between a Node worker and Ray: JSON lines over stdio.

Each request line is `{"id": n, "method": "...", "params": {...}}`; each answer
is `{"id": n, "result": ...}` or `{"id": n, "error": {"type", "message"}}`.
Requests are served concurrently. The first line written is
`{"event": "ready", ...}` once the bridge is connected to Ray and the
dispatcher exists. Anything else that writes to stdout (Ray's own logging) is
sent to stderr, so the protocol stream stays clean.

Every line written is strict JSON (strict_json.py): an answer that cannot be
written as such (NaN, a cycle, an object JSON cannot carry) becomes an error
answer for the same request id, so the caller's call fails at once, naming the
problem, instead of waiting for a line its parser would have to drop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any, Awaitable, Callable

import ray

from . import cluster_ops, strict_json
from .dispatcher import DEFAULT_CANCEL_GRACE_S
from .dispatcher_host import create_dispatcher
from .runner import NAMESPACE


class Bridge:
    def __init__(self, out) -> None:
        self._out = out
        self._dispatcher = None

    def dispatcher(self):
        if self._dispatcher is None:
            # Found if the dispatcher host (or another bridge) created it; created here otherwise.
            self._dispatcher = create_dispatcher()
        return self._dispatcher

    async def call_dispatcher(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self.dispatcher(), method).remote(*args)
        except ray.exceptions.ActorDiedError:
            self._dispatcher = None  # it will be created again on the next call
            raise

    async def ping(self, _params: dict) -> dict:
        info = await self.call_dispatcher("ping")
        return {"rayVersion": ray.__version__, "dispatcher": info}

    async def submit(self, p: dict) -> dict:
        call = {
            "task": p["task"],
            "args": p.get("args", []),
            "kwargs": p.get("kwargs", {}),
            "options": p.get("options", {}),
            "limits": p["limits"],
            # The step's declared resources (part of its fingerprint) and its workflow (for retention).
            "resources": p.get("resources"),
            "workflow": p.get("workflowId"),
        }
        if p.get("admission") is not None:
            call["admission"] = p["admission"]  # the worker's lease whose unit this step takes (admission.py)
        if p.get("map") is not None:
            call["map"] = p["map"]  # a map step: its list (or a reference to it) and how to run the items
        return await self.call_dispatcher("submit", p["key"], p["run"], p["attempt"], call, p.get("plan"))

    async def admission_reserve(self, p: dict) -> dict:
        return await self.call_dispatcher(
            "admission_reserve", p["group"], p["holder"], float(p.get("timeoutS", 10))
        )

    async def admission_give_back(self, p: dict) -> dict:
        return await self.call_dispatcher("admission_give_back", p["group"], p["holder"])

    async def admission_renew(self, p: dict) -> dict:
        return await self.call_dispatcher("admission_renew", p["holder"], p.get("units") or {})

    async def admission_release_holder(self, p: dict) -> dict:
        return await self.call_dispatcher("admission_release_holder", p["holder"])

    async def admission_state(self, _p: dict) -> dict:
        return await self.call_dispatcher("admission_state")

    async def node_states(self, p: dict) -> dict:
        """Ray's view of the nodes and its pending demand, plus the steps admission holds back.

        Steps that were polled but wait in the dispatcher for room are demand the autoscaler must see,
        exactly as if they waited inside Ray (they left Temporal's backlog when they were polled).
        """
        states = await cluster_ops.node_states(p)
        waiting = (await self.call_dispatcher("admission_state"))["demand"]
        return {**states, "pending": states["pending"] + waiting}

    async def finished_runs(self, p: dict) -> list:
        return await self.call_dispatcher("finished_runs", float(p.get("minAgeS", 60)))

    async def release(self, p: dict) -> dict:
        return await self.call_dispatcher("release", p["workflowId"], p["runId"])

    async def wait(self, p: dict) -> dict:
        return await self.call_dispatcher("wait", p["key"], p["generation"])

    async def status(self, p: dict) -> Any:
        return await self.call_dispatcher("status", p["key"])

    async def cancel(self, p: dict) -> dict:
        grace_s = float(p.get("graceMs", DEFAULT_CANCEL_GRACE_S * 1000)) / 1000
        return await self.call_dispatcher(
            "cancel",
            p["key"],
            bool(p.get("force", False)),
            p.get("run"),
            p.get("attempt"),
            grace_s,
            bool(p.get("wait", False)),
        )

    def write(self, message: dict) -> None:
        try:
            line = strict_json.encode(message, "answer")
        except strict_json.NotStrictJson as err:
            request_id = message.get("id")
            line = strict_json.encode(
                {
                    "id": request_id if isinstance(request_id, int) else None,
                    "error": {"type": "UnserialisableAnswer", "message": str(err)[:4000]},
                }
            )
        self._out.write(line + "\n")
        self._out.flush()

    async def handle(self, line: str) -> None:
        try:
            request = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as err:
            self.write({"id": None, "error": {"type": "BadRequest", "message": str(err)}})
            return
        request_id = request.get("id")
        method = request.get("method", "")
        handler: Callable[[dict], Awaitable[Any]] | None = (
            getattr(self, method, None) if method in DISPATCHER_METHODS else cluster_ops.METHODS.get(method)
        )
        if handler is None:
            self.write({"id": request_id, "error": {"type": "BadRequest", "message": f"unknown method {request.get('method')!r}"}})
            return
        try:
            result = await handler(request.get("params") or {})
            self.write({"id": request_id, "result": result})
        except Exception as err:  # noqa: BLE001 — every failure is answered
            self.write({"id": request_id, "error": {"type": type(err).__name__, "message": str(err)[:4000]}})


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


DISPATCHER_METHODS = {
    "ping",
    "submit",
    "wait",
    "status",
    "cancel",
    "finished_runs",
    "release",
    "admission_reserve",
    "admission_give_back",
    "admission_renew",
    "admission_release_holder",
    "admission_state",
    "node_states",
}


async def serve() -> None:
    protocol_out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from Ray go to stderr
    ray.init(
        address=os.environ.get("RAY_ADDRESS", "auto"),
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level="WARNING",
    )
    # Ray's driver exits on SIGTERM. A signal sent to the worker's whole process group (systemd's
    # default KillMode, `kill -TERM -<pgid>`, Ctrl-C in a terminal) would then take the bridge away
    # while the worker shuts down gracefully and still needs it: to give back its admission lease at
    # once rather than at the lease's end. The bridge's lifetime is its worker's: it leaves when the
    # worker closes its stdin, or dies with it (end of file).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    bridge = Bridge(protocol_out)
    await bridge.call_dispatcher("ping")
    bridge.write({"event": "ready", "rayVersion": ray.__version__, "pid": os.getpid()})

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pending: set[asyncio.Task] = set()
    while True:
        line = await reader.readline()
        if not line:
            break  # the worker closed stdin: it is gone or shutting down
        task = loop.create_task(bridge.handle(line.decode()))
        pending.add(task)
        task.add_done_callback(pending.discard)
    ray.shutdown()


if __name__ == "__main__":
    asyncio.run(serve())
