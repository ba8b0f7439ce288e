"""Holds a step to the memory it asked for.

Ray's `memory` option is only a scheduling reservation: nothing stops a task
from using more, and Ray's memory monitor acts on the whole host's memory. On
a host much larger than the node sizes the node groups declare (the local
stack: 2 GiB "nodes" on one big machine), a step that needs more than its node
would simply succeed. The guard makes the request a limit for the time the
step runs, so a step that outgrows it fails *for memory* and Temporal retries
it with a larger request (activities/ray/attempt-policy.ts):

- `cgroup` (Linux, cgroup v1 memory controller writable, e.g. root on a VM):
  the Ray worker process moves into a child memory cgroup whose limit is the
  request, for the duration of the step. Memory the process already held stays
  charged where it was (v1 does not move charges), so the limit applies to
  what the step allocates. Past it, the kernel's OOM killer kills the worker,
  exactly as it would kill a container over its limit; the dispatcher reads the
  cgroup's `oom_kill` counter on that node afterwards (`inspect_cgroup`) and
  reports the failure as `oom`.
- `rlimit` (any Linux, no privileges): the soft RLIMIT_DATA of the process is
  set to its current data size plus the request, so an allocation past it
  fails with MemoryError, which the runner reports as `oom`. It limits
  address space rather than resident memory, and is per process.
- `auto`: cgroup when possible, else rlimit. `off`: no limit.

The process is put back as it was when the step ends, since Ray reuses worker
processes for later tasks.
"""

from __future__ import annotations

import hashlib
import os
import resource
import time
from typing import Optional

STEP_CGROUP_PREFIX = "pantheon-step-"
# Step cgroups left behind (a post-mortem that never ran) are removed once this old and empty.
STALE_CGROUP_SECONDS = 600


class StepMemoryExceeded(Exception):
    """The step allocated more than its memory request."""


class MemoryGuardUnavailable(Exception):
    """The memory guard the worker asked for cannot be set up on this node."""


def _v1_memory_mount() -> Optional[tuple[str, str]]:
    """(mount point, mount root) of the cgroup v1 memory hierarchy, from /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, super_fields = left.split(), right.split()
                if len(super_fields) >= 3 and super_fields[0] == "cgroup" and "memory" in super_fields[2].split(","):
                    return fields[4], fields[3]
    except OSError:
        return None
    return None


def _own_memory_cgroup() -> Optional[str]:
    """This process's cgroup v1 memory directory, or None."""
    mount = _v1_memory_mount()
    if mount is None:
        return None
    mount_point, mount_root = mount
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "memory" in controllers.split(","):
                    if mount_root != "/" and path.startswith(mount_root):
                        path = path[len(mount_root):] or "/"
                    return os.path.join(mount_point, path.lstrip("/"))
    except (OSError, ValueError):
        return None
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(value)


def _vm_data_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmData not found in /proc/self/status")


def _sweep_stale(home: str) -> None:
    now = time.time()
    try:
        names = [n for n in os.listdir(home) if n.startswith(STEP_CGROUP_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(home, name)
        try:
            if now - os.stat(path).st_mtime < STALE_CGROUP_SECONDS:
                continue
            with open(os.path.join(path, "cgroup.procs"), encoding="utf-8") as f:
                if f.read().strip():
                    continue
            os.rmdir(path)
        except OSError:
            continue


class MemoryGuard:
    def __init__(self, mode: str, limit_bytes: int, home: Optional[str] = None, path: Optional[str] = None,
                 saved_rlimit: Optional[tuple[int, int]] = None) -> None:
        self.mode = mode
        self.limit_bytes = limit_bytes
        self._home = home
        self.path = path
        self._saved_rlimit = saved_rlimit

    def describe(self) -> Optional[dict]:
        if self.mode == "off":
            return None
        return {"mode": self.mode, "limitBytes": self.limit_bytes, "cgroup": self.path}

    def stop(self) -> None:
        if self.mode == "cgroup" and self._home and self.path:
            try:
                _write(os.path.join(self._home, "cgroup.procs"), str(os.getpid()))
                os.rmdir(self.path)
            except OSError:
                pass  # swept later, once empty and old
        elif self.mode == "rlimit" and self._saved_rlimit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, self._saved_rlimit)
        self.mode = "off"


def _start_cgroup(limit_bytes: int, label: str) -> Optional[MemoryGuard]:
    current = _own_memory_cgroup()
    if current is None or not os.path.isdir(current):
        return None
    # A worker left inside a step cgroup (its step's stop() failed) goes back to the parent.
    home = os.path.dirname(current) if os.path.basename(current).startswith(STEP_CGROUP_PREFIX) else current
    name = STEP_CGROUP_PREFIX + hashlib.sha1(f"{label}/{os.getpid()}".encode()).hexdigest()[:16]
    path = os.path.join(home, name)
    try:
        _sweep_stale(home)
        os.makedirs(path, exist_ok=True)
        _write(os.path.join(path, "memory.limit_in_bytes"), str(limit_bytes))
        memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            _write(memsw, str(limit_bytes))  # with swap on, the step must not escape into it
        _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))
    except OSError:
        try:
            os.rmdir(path)
        except OSError:
            pass
        return None
    return MemoryGuard("cgroup", limit_bytes, home=home, path=path)


def _start_rlimit(limit_bytes: int) -> Optional[MemoryGuard]:
    try:
        saved = resource.getrlimit(resource.RLIMIT_DATA)
        wanted = _vm_data_bytes() + limit_bytes
        hard = saved[1]
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    except (OSError, ValueError):
        return None
    return MemoryGuard("rlimit", limit_bytes, saved_rlimit=saved)


def start_guard(mode: str, limit_bytes: Optional[int], label: str) -> MemoryGuard:
    """Starts limiting this process to `limit_bytes` more memory; a guard with mode "off" when it cannot."""
    if not limit_bytes or limit_bytes <= 0 or mode == "off":
        return MemoryGuard("off", 0)
    guard = None
    if mode in ("cgroup", "auto"):
        guard = _start_cgroup(limit_bytes, label)
    if guard is None and mode in ("rlimit", "auto"):
        guard = _start_rlimit(limit_bytes)
    if guard is None:
        if mode == "auto":
            return MemoryGuard("off", 0)
        raise MemoryGuardUnavailable(f"memory guard {mode!r} is not available on this node")
    return guard


def inspect_cgroup(path: str) -> dict:
    """After the worker died: did the kernel kill it for memory? Removes the cgroup."""
    found = {"oomKills": 0, "failcnt": 0, "maxUsageBytes": 0, "exists": os.path.isdir(path)}
    if not found["exists"]:
        return found
    try:
        with open(os.path.join(path, "memory.oom_control"), encoding="utf-8") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    found["oomKills"] = int(value)
        with open(os.path.join(path, "memory.failcnt"), encoding="utf-8") as f:
            found["failcnt"] = int(f.read().strip() or 0)
        with open(os.path.join(path, "memory.max_usage_in_bytes"), encoding="utf-8") as f:
            found["maxUsageBytes"] = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pass
    # The process is gone (it was killed); an empty cgroup can be removed. Retried briefly because
    # the kernel may still be tearing the process down.
    for _ in range(20):
        try:
            os.rmdir(path)
            break
        except OSError:
            time.sleep(0.1)
    return found
