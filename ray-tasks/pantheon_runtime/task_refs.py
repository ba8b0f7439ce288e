"""Resolves `package.module:function` task references, only from allowed packages.

The TypeScript worker checks the same rule before anything reaches Ray; this
is the second fence, on the side that actually imports code.
"""

from __future__ import annotations

import importlib
import re
from typing import Callable, Iterable

TASK_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class TaskRefRefused(Exception):
    """The task reference is malformed or names code outside the allowed packages."""


def check_task_ref(ref: str, allowed_packages: Iterable[str]) -> tuple[str, str]:
    if not TASK_REF.match(ref):
        raise TaskRefRefused(f"task {ref!r} is not of the form package.module:function")
    module, function = ref.split(":")
    allowed = list(allowed_packages)
    if not any(module == p or module.startswith(p + ".") for p in allowed):
        raise TaskRefRefused(f"task {ref!r} is outside the allowed packages ({', '.join(allowed)})")
    return module, function


def resolve_task(ref: str, allowed_packages: Iterable[str]) -> Callable:
    module_name, function_name = check_task_ref(ref, allowed_packages)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TaskRefRefused(f"task {ref!r}: cannot import {module_name}: {err}") from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TaskRefRefused(f"task {ref!r}: {module_name} has no function {function_name}")
    return function
