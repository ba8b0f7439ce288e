"""Strict JSON for everything that leaves the Ray side: a step's output, a bridge answer.

Python's `json.dumps` writes `NaN` and `Infinity` (which no JSON parser on the
Node side accepts), turns non-string keys into strings, and fails on a cycle
or deep nesting with a message that says neither where nor what. A value that
is not strict JSON must fail at once, with the place and the problem named:
`encode` raises NotStrictJson with a JSONPath-like location (`$.scores[2]`).
"""

from __future__ import annotations

import json
import math
from typing import Any

# Nesting deeper than this is refused by name; Python's encoder would hit its recursion limit
# near 1000 with an anonymous RecursionError.
MAX_DEPTH = 256


class NotStrictJson(ValueError):
    """The value is not strict JSON; the message names where and why."""


def _child(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if str(key).isidentifier() else f"{path}[{json.dumps(str(key))}]"


def check(value: Any, root: str = "$") -> None:
    """Raises NotStrictJson at the first place in `value` that strict JSON cannot carry."""
    # Depth-first without recursion, so that depth is reported, not a RecursionError. `ancestors`
    # holds the containers on the current path: meeting one again is a cycle (a shared, acyclic
    # sub-value is fine and is simply written twice).
    ancestors: set[int] = set()
    stack: list[tuple[Any, str, int, bool]] = [(value, root, 0, False)]
    while stack:
        item, path, depth, leaving = stack.pop()
        if leaving:
            ancestors.discard(id(item))
            continue
        if item is None or isinstance(item, (bool, str)):
            continue
        if isinstance(item, int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise NotStrictJson(f"{path} is {item!r}, which JSON cannot represent")
            continue
        if isinstance(item, (list, tuple, dict)):
            if id(item) in ancestors:
                raise NotStrictJson(f"{path} refers back to a value that contains it (a cycle)")
            if depth >= MAX_DEPTH:
                raise NotStrictJson(f"{path} is nested more than {MAX_DEPTH} levels deep")
            ancestors.add(id(item))
            stack.append((item, path, depth, True))
            if isinstance(item, dict):
                for key, child in reversed(list(item.items())):  # popped in order: the first problem is reported
                    if not isinstance(key, str):
                        raise NotStrictJson(
                            f"{path} has a key of type {type(key).__name__} ({key!r}); JSON object keys are strings"
                        )
                    stack.append((child, _child(path, key), depth + 1, False))
            else:
                for index, child in reversed(list(enumerate(item))):
                    stack.append((child, _child(path, index), depth + 1, False))
            continue
        raise NotStrictJson(f"{path} is a {type(item).__module__}.{type(item).__qualname__}, which is not JSON")


def encode(value: Any, root: str = "$") -> str:
    """`value` as compact strict JSON text, or NotStrictJson naming the problem."""
    check(value, root)
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
