"""Resolves `package.module:function` task references, per function, from the Ray side's own allowlist.

A reference is allowed when it names a public function defined in an allowed
module: every segment of the module path and the function name start with a
letter (no dunders, no `_private` helpers), the module is an allowlist entry
or lies inside one, and the name is a function whose `__module__` is that
module (not a name the module merely imported, not a class, not a builtin).

The allowlist is the Ray side's own configuration, read from the environment
of the Ray processes (`PANTHEON_ALLOWED_TASK_PACKAGES`, set by the local stack
or by the operator on a cluster's nodes), never a value a caller sends. The
TypeScript worker checks the syntactic part of the same rule against its own
list before anything reaches Ray (core/schemas/task-ref.ts); the dispatcher
checks the definition in the module's source before it submits anything
(`check_definition`, no code of the module runs in the dispatcher), and the
runner checks the imported object itself before calling it (`resolve_task`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import sys
from typing import Callable, Iterable, Mapping, Optional

ALLOWLIST_ENV = "PANTHEON_ALLOWED_TASK_PACKAGES"
# What a Ray cluster allows when its operator set nothing: the example agents only. The local
# stack adds the test kit (stack/config.ts); the TypeScript default lives in core/schemas/task-ref.ts
# and test/unit/task-ref-parity.test.ts keeps the two equal.
DEFAULT_ALLOWLIST = ("pantheon_tasks.examples",)
# The orchestrator's own entry point for agent steps: always allowed, because it resolves the
# agent's task through this same fence (pantheon_tasks/agent_host.py).
AGENT_HOST_TASK = "pantheon_tasks.agent_host:run_agent"

# ASCII and whole-string matches (fullmatch), exactly as the worker's JavaScript patterns: Python's
# `\w` would also take non-ASCII letters, and its `$` a trailing newline.
_SEGMENT = r"[A-Za-z]\w*"
TASK_REF = re.compile(rf"{_SEGMENT}(\.{_SEGMENT})*:{_SEGMENT}", re.ASCII)
MODULE_NAME = re.compile(rf"{_SEGMENT}(\.{_SEGMENT})*", re.ASCII)


class TaskRefRefused(Exception):
    """The task reference is malformed or names something other than an allowed public function.

    `field` names the request field that carried the reference (e.g. `task`, `kwargs.task`).
    """

    def __init__(self, ref: object, reason: str, field: str = "task") -> None:
        shown = ref if isinstance(ref, str) else f"<{type(ref).__name__}>"
        super().__init__(f"{field}: {shown!r} {reason}")
        self.ref, self.reason, self.field = ref, reason, field

    def __reduce__(self):
        # Ray pickles the exception from the Ray worker to the dispatcher: rebuild it from its parts.
        return (type(self), (self.ref, self.reason, self.field))


def parse_allowlist(raw: Optional[str]) -> tuple[str, ...]:
    """The allowlist from its comma-separated form; unset or empty means the default."""
    entries = tuple(p.strip() for p in (raw or "").split(",") if p.strip())
    for entry in entries:
        if not MODULE_NAME.fullmatch(entry):
            raise ValueError(
                f"{ALLOWLIST_ENV}: {entry!r} is not a public package or module name "
                "(dotted identifiers, no segment starting with '_')"
            )
    return entries or DEFAULT_ALLOWLIST


def configured_allowlist(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The Ray side's allowlist, from the environment of this Ray process."""
    return parse_allowlist(env.get(ALLOWLIST_ENV))


def check_task_ref(ref: object, allowlist: Iterable[str], field: str = "task") -> tuple[str, str]:
    """The syntactic rule: returns (module, function) or raises TaskRefRefused."""
    if not isinstance(ref, str) or not TASK_REF.fullmatch(ref):
        raise TaskRefRefused(
            ref, "is not of the form package.module:function with public names (no segment may start with '_')", field
        )
    if ref == AGENT_HOST_TASK:
        return tuple(ref.split(":"))  # type: ignore[return-value]
    module, function = ref.split(":")
    allowed = list(allowlist)
    if not any(module == entry or module.startswith(entry + ".") for entry in allowed):
        raise TaskRefRefused(ref, f"is outside the allowed modules ({', '.join(allowed)})", field)
    return module, function


def _find_spec(module_name: str):
    """The module's import spec, found without importing it or its parent packages.

    `importlib.util.find_spec("a.b")` would import (run) package `a`; this asks
    every finder on sys.meta_path directly, segment by segment, as the import
    system does, so editable installs and namespace packages are found too.
    """
    spec = None
    path = None
    parts = module_name.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(name, path)
            if spec is not None:
                break
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if path is None and i < len(parts) - 1:
            return None  # a module, not a package, cannot contain the next segment
    return spec


_definitions_cache: dict[tuple[str, float], frozenset[str]] = {}


def _top_level_functions(module_name: str) -> frozenset[str]:
    spec = _find_spec(module_name)
    if spec is None or spec.loader is None:
        raise LookupError(f"module {module_name} is not installed here")
    origin = spec.origin or ""
    try:
        mtime = os.path.getmtime(origin)
    except OSError:
        mtime = -1.0
    cached = _definitions_cache.get((origin, mtime))
    if cached is not None:
        return cached
    get_source = getattr(spec.loader, "get_source", None)
    source = get_source(module_name) if get_source else None
    if source is None:
        raise LookupError(f"module {module_name} has no Python source to check")
    tree = ast.parse(source, filename=origin or module_name)
    names = frozenset(
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    )
    _definitions_cache[(origin, mtime)] = names
    return names


def check_definition(ref: str, allowlist: Iterable[str], field: str = "task") -> None:
    """The whole rule, checked before anything runs, without running any of the module's code.

    The function must be defined by a top-level `def` (or `async def`) in the
    module's own source. The runner checks the imported object again
    (`resolve_task`), which also catches a `def` that is later rebound.
    """
    module_name, function_name = check_task_ref(ref, allowlist, field)
    try:
        defined = _top_level_functions(module_name)
    except (LookupError, ImportError, SyntaxError, OSError, ValueError) as err:
        raise TaskRefRefused(ref, f"cannot be checked: {err}", field) from err
    if function_name not in defined:
        raise TaskRefRefused(
            ref,
            f"is not a function defined in {module_name} (only functions the module itself defines "
            "are tasks, not names it imports, classes or other objects)",
            field,
        )


def resolve_task(ref: str, allowlist: Iterable[str], field: str = "task") -> Callable:
    """Imports the referenced function and checks that it is a public function defined in its module."""
    module_name, function_name = check_task_ref(ref, allowlist, field)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TaskRefRefused(ref, f"cannot be imported: {err}", field) from err
    function = getattr(module, function_name, None)
    if not inspect.isfunction(function):
        what = "nothing" if function is None else f"a {type(function).__name__}"
        raise TaskRefRefused(ref, f"names {what}, not a function", field)
    if function.__module__ != module.__name__:
        raise TaskRefRefused(
            ref,
            f"names a function defined in {function.__module__}, not in {module_name} "
            "(a name the module imported is not one of its tasks)",
            field,
        )
    return function
