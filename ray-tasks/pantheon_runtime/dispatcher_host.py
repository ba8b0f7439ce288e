"""The dispatcher's host: a long-lived Ray driver that creates the dispatcher and stays.

Every Ray task belongs to the job of the process that submitted it, and the
dispatcher submits every step's task, so the steps run under the job of the
driver that created the dispatcher. Ray keeps idle worker processes for reuse
only while their job is alive: once that driver has exited, each finished
step's worker process is force-exited and the next step waits for a new one
(a Python start and `import ray`: about a second on a quiet machine, several
on a loaded one) instead of reusing a warm worker (milliseconds).

If the first worker's bridge created the dispatcher (as it does when nothing
else has), the steps pay that start as soon as that worker restarts. This
process is the driver that lives as long as the cluster does: the local stack
runs it beside the Ray head (stack/local-stack.ts); on a fleet, run it on the head
node (for example as a command of the head pod):

    python -m pantheon_runtime.dispatcher_host [--address HOST:PORT]

It creates the dispatcher (or finds it) with the same options the bridge
uses, prints `dispatcher host ready`, and blocks until SIGTERM or SIGINT.
Stopping it does not stop the dispatcher (a detached actor); only worker
reuse for new steps is lost until the dispatcher is created afresh.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import ray

from .dispatcher import Dispatcher
from .runner import DISPATCHER_NAME, NAMESPACE


def create_dispatcher():
    """The dispatcher actor: created if it does not exist yet, otherwise found. The one place its options live."""
    # The dispatcher lives on the head when the cluster offers the marker resource,
    # so losing a worker node never loses the owner of the steps.
    on_head = ray.cluster_resources().get("pantheon_head", 0) > 0
    return Dispatcher.options(
        name=DISPATCHER_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_concurrency=100_000,
        resources={"pantheon_head": 0.001} if on_head else None,
    ).remote()


def _owner_job(actor_name: str) -> str | None:
    """The job that created the named live actor (best effort, from Ray's state API)."""
    try:
        from ray.util.state import list_actors

        for actor in list_actors(filters=[("name", "=", actor_name), ("state", "=", "ALIVE")]):
            return actor.get("job_id") if isinstance(actor, dict) else getattr(actor, "job_id", None)
    except Exception:  # noqa: BLE001 — only a diagnostic
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "auto"))
    args = parser.parse_args()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    ray.init(address=args.address, namespace=NAMESPACE, log_to_driver=False, logging_level="WARNING")
    dispatcher = create_dispatcher()
    info = ray.get(dispatcher.ping.remote())
    own_job = ray.get_runtime_context().get_job_id()
    owner = _owner_job(DISPATCHER_NAME)
    if owner is not None and owner != own_job:
        print(
            f"warning: the dispatcher already existed, created by job {owner} (this host is job {own_job}); "
            "once that job's driver has exited, every step starts a new Ray worker process. "
            "Restart the dispatcher while no step runs to move it under this host.",
            file=sys.stderr,
            flush=True,
        )
    print(f"dispatcher host ready (job {own_job}, dispatcher {info})", flush=True)
    stop.wait()
    ray.shutdown()


if __name__ == "__main__":
    main()
