"""`ray start` that keeps a node on the address it was given when that address is loopback.

Ray's CLI replaces `--node-ip-address 127.0.0.1` with the host's routable
address (`services.resolve_ip_for_localhost`), and every Python-side listener
of the node then binds there or on all interfaces: the dashboard agent (its
HTTP API accepts job submissions), its gRPC and Prometheus ports, the runtime
env agent and the Ray Client server. Kept on 127.0.0.1, those bind to loopback
only. Ray's C++ servers (GCS, raylet, object manager, core workers) listen on
the node's address too: given 127.0.0.1 they listen on loopback only (seen
with `ss -ltn`; test/integration/listeners.test.ts checks it). The local stack
also turns Ray's token authentication on (stack/ray-auth.ts): loopback is
shared with every other user of the host.

Drivers (the bridge, the dispatcher host, job entrypoints) resolve the
cluster's address the same way in `ray.init`; the stack's environment sets
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` for them, which makes Ray's
`get_node_ip_address` answer 127.0.0.1 (the only use Ray makes of that
setting besides refusing `ray start --address`, which is why this CLI turns
it back on for itself).

    python -m pantheon_runtime.loopback_ray start --head --node-ip-address 127.0.0.1 ...

The node launcher (node_launcher.py) applies the same patch before it runs the
CLI in its forked children. A head started here serves Ray Client (`ray://`)
only when `--ray-client-server-port` is given (see
`serve_ray_client_only_when_asked`).
"""

from __future__ import annotations

import sys

from ray._private import ray_constants, services


def keep_loopback_nodes() -> None:
    """Leaves a loopback address as it is; any other goes through Ray's own resolution."""
    # `ray start --address` refuses to run when this is off (see above); the address is kept by the patch below.
    ray_constants.ENABLE_RAY_CLUSTER = True
    if getattr(services.resolve_ip_for_localhost, "_pantheon_keeps_loopback", False):
        return
    resolve = services.resolve_ip_for_localhost

    def resolve_ip(host: str) -> str:
        return host if host and services.is_localhost(host) else resolve(host)

    resolve_ip._pantheon_keeps_loopback = True  # type: ignore[attr-defined]
    services.resolve_ip_for_localhost = resolve_ip


def serve_ray_client_only_when_asked(argv: list[str]) -> None:
    """`ray start --head` without `--ray-client-server-port` starts no Ray Client server.

    Ray's CLI starts one on 10001 whenever `ray[client]` is installed (its proxy process is ~90 MB on
    the head); the stack never uses it, so it runs only for a port it is given. Ray's own check
    refuses port 0, hence telling its CLI the client is not available when no port is named.
    """
    if "--head" not in argv or any(a.startswith("--ray-client-server-port") for a in argv):
        return
    import ray.scripts.scripts as ray_cli

    ray_cli.get_ray_client_dependency_error = lambda: "Ray Client is served only when --ray-client-server-port is given"


def main() -> None:
    keep_loopback_nodes()
    serve_ray_client_only_when_asked(sys.argv[1:])
    import ray.scripts.scripts as ray_cli

    ray_cli.main()


if __name__ == "__main__":
    main()
