"""Starts local Ray worker nodes without paying the `ray` CLI's start-up each time.

`ray start` spends over a second importing Ray's command-line module before it
starts the first process of the node, and a node start is on the autoscaler's
reaction path. This process imports that module once, then serves each request
by forking: the child is exactly `ray start <args>`, the CLI's own command, in a
session (process group) of its own with its output in the node's log file. Only
public CLI arguments cross the boundary, so nothing here depends on Ray's
internals.

Protocol, JSON lines over stdio (as the bridge's): the first line written is
`{"event": "ready"}` once the CLI is imported; each request
`{"id": n, "method": "launch", "params": {"args": [...], "logFile": "...", "cwd": "..."}}` is
answered `{"id": n, "result": {"pid": ...}}` or
`{"id": n, "error": {"type", "message"}}`. The process exits when its stdin
closes; nodes it started keep running, as nodes started by the CLI do.

It forks before anything connects anywhere: no Ray driver, no gRPC channel and
no thread exists in this process, which is what makes forking it safe.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import ray.scripts.scripts as ray_cli

from .loopback_ray import keep_loopback_nodes

# Nodes given 127.0.0.1 stay on loopback, as the stack's own `ray start` keeps them (loopback_ray.py).
keep_loopback_nodes()


def _reap_children(_signum, _frame) -> None:
    # A node's `ray start --block` that ended must not linger as a zombie: the
    # Node side tells a live node by whether its pid (and process group) exists.
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _show_as(title: str) -> None:
    # Cosmetic: `ps` shows the node as the `ray start` it is, not as this launcher.
    # Ray's own setproctitle is private API, so a change in it only costs the title.
    try:
        from ray._raylet import setproctitle

        setproctitle(title)
    except Exception:  # noqa: BLE001
        pass


def _run_ray_start(args: list[str], log_file: str, cwd: str) -> None:
    """In the forked child: become `ray start <args>` and never return."""
    code = 1
    try:
        # `ray start` waits on the processes it spawns itself; the parent's reaper would steal their exits.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        os.chdir(cwd)
        log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        sys.argv = ["ray", "start", *args]
        _show_as(" ".join(sys.argv))
        ray_cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child reports everything to its log, then exits
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def launch(params: dict) -> dict:
    args = params.get("args")
    log_file = params.get("logFile")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("params.args must be a list of strings (the arguments after `ray start`)")
    if not isinstance(log_file, str) or not log_file:
        raise ValueError("params.logFile must be a file path")
    cwd = params.get("cwd", os.getcwd())
    if not isinstance(cwd, str) or not os.path.isdir(cwd):
        raise ValueError(f"params.cwd must be an existing directory, not {cwd!r}")
    os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        _run_ray_start(args, log_file, cwd)
    return {"pid": pid}


def main() -> None:
    out = sys.stdout
    signal.signal(signal.SIGCHLD, _reap_children)

    def send(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            if request.get("method") != "launch":
                raise ValueError(f"unknown method {request.get('method')!r}: the node launcher only has 'launch'")
            send({"id": request_id, "result": launch(request.get("params") or {})})
        except Exception as err:  # noqa: BLE001 - every failure is an answer to its request
            send({"id": request_id, "error": {"type": type(err).__name__, "message": str(err)}})


if __name__ == "__main__":
    main()
