"""cel-go's ``ext.Lists()`` functions the engine lacks: ``lists.range``, ``slice``, ``flatten``, ``sort``,
``distinct`` and ``reverse`` on lists.

Semantics follow ``github.com/google/cel-go/ext/lists.go`` (v0.31): ``slice`` takes ``[start, end)`` and
refuses negative or inverted bounds, ``flatten`` takes an optional depth, ``sort`` accepts lists of one
comparable type, ``distinct`` keeps the first occurrence. Other packages add these overloads to a library via
:func:`kplane.cel.engine.register_library`."""

from __future__ import annotations

from typing import Any

from kplane.cel.engine import DYN, INT, CelError, Overload, list_of

_LIST = list_of(DYN)


def _range(n: int) -> list[int]:
    return list(range(n))


def _slice(items: list[Any], start: int, end: int) -> list[Any]:
    if start < 0 or end < 0:
        raise CelError(f"cannot slice({start}, {end}), negative indexes not supported")
    if start > end:
        raise CelError(f"cannot slice({start}, {end}), start index must be less than or equal to end index")
    if end > len(items):
        raise CelError(f"cannot slice({start}, {end}), list is length {len(items)}")
    return list(items[start:end])


def _flatten(items: list[Any], depth: int = 1) -> list[Any]:
    if depth < 0:
        raise CelError("level must be non-negative")
    out: list[Any] = []
    for item in items:
        if isinstance(item, list | tuple) and depth > 0:
            out.extend(_flatten(list(item), depth - 1))
        else:
            out.append(item)
    return out


def _sort(items: list[Any]) -> list[Any]:
    kinds = {type(i) for i in items}
    if len(kinds) > 1 or (kinds and kinds.pop() not in (int, float, str, bytes, bool)):
        raise CelError("list elements must have the same type")
    return sorted(items)


def _distinct(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(item == seen and type(item) is type(seen) for seen in out):
            out.append(item)
    return out


OVERLOADS: tuple[Overload, ...] = (
    Overload("lists_range", "lists.range", (INT,), list_of(INT), _range),
    Overload("list_slice", "slice", (_LIST, INT, INT), _LIST, _slice, member=True),
    Overload("list_flatten", "flatten", (_LIST,), _LIST, _flatten, member=True),
    Overload("list_flatten_int", "flatten", (_LIST, INT), _LIST, _flatten, member=True),
    Overload("list_sort", "sort", (_LIST,), _LIST, _sort, member=True),
    Overload("list_distinct", "distinct", (_LIST,), _LIST, _distinct, member=True),
    Overload("list_reverse", "reverse", (_LIST,), _LIST, lambda items: list(reversed(items)), member=True),
)
