"""Comparing two objects field by field against their schema (structured-merge-diff ``typed/compare.go``):
which paths one adds, changes or drops relative to the other. Server-side apply and managedFields use it to
find what a write changed and so who owns what afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kplane.api.fieldset import (
    ATOMIC,
    LIST,
    MAP,
    SCALAR,
    Builder,
    FieldSet,
    Path,
    PathElement,
    child_schema,
    freeze,
    item_element,
    item_schema,
    shape,
)
from kplane.api.schema import Schema


@dataclass(frozen=True)
class Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def exclude(self, ignored: FieldSet) -> Comparison:
        return Comparison(self.added.recursive_difference(ignored),
                          self.modified.recursive_difference(ignored),
                          self.removed.recursive_difference(ignored))


_ABSENT = object()


def compare(old: Any, new: Any, schema: Schema | None) -> Comparison:
    """Which paths ``new`` adds, changes or drops relative to ``old`` (upstream ``TypedValue.Compare``)."""
    added, modified, removed = Builder(), Builder(), Builder()
    _compare(old, new, schema, (), (added, modified, removed))
    return Comparison(added.freeze(), modified.freeze(), removed.freeze())


def _compare(lhs: Any, rhs: Any, schema: Schema | None, path: Path,
             out: tuple[Builder, Builder, Builder]) -> None:
    if type(lhs) is type(rhs) and lhs == rhs:
        return  # nothing differs below here; dict and list equality run in C, far quicker than the walk
    added, modified, removed = out
    present = rhs if rhs is not _ABSENT else lhs
    kind = shape(schema, present)
    if lhs is not _ABSENT and rhs is not _ABSENT and shape(schema, lhs) != kind:
        kind = ATOMIC
    if kind in (MAP, LIST) and _blank(lhs) and _blank(rhs):
        kind = ATOMIC  # two empty containers compare as one leaf, as upstream's emptyPromoteToLeaf
    if kind in (SCALAR, ATOMIC):
        if not path:
            return
        if lhs is _ABSENT:
            added.insert(path)
        elif rhs is _ABSENT:
            removed.insert(path)
        elif freeze(lhs) != freeze(rhs):
            modified.insert(path)
        return
    if kind == MAP:
        left = lhs if isinstance(lhs, Mapping) else {}
        right = rhs if isinstance(rhs, Mapping) else {}
        for name in {**left, **right}:
            _compare(left.get(name, _ABSENT), right.get(name, _ABSENT), child_schema(schema, name),
                     (*path, ("f", name)), out)
    else:
        assert schema is not None
        _compare_items(lhs, rhs, schema, path, out)
    if path and lhs is _ABSENT:
        added.insert(path)
    elif path and rhs is _ABSENT:
        removed.insert(path)


def added_fields(obj: Mapping[str, Any], schema: Schema | None) -> FieldSet:
    """``compare({}, obj, schema).added`` without the comparing: what a create adds, for its managedFields.

    With nothing on the left every path of ``obj`` is an addition, so the walk only has to mirror
    :func:`_compare`'s rules for the right-hand side (empty containers are leaves, a key named twice in an
    associative list is one leaf, containers are members too), building the set's tree as it goes."""
    out = Builder()
    for name, sub in obj.items():
        _added(sub, child_schema(schema, name), (("f", name),), out)
    return out.freeze()


def _added(v: Any, schema: Schema | None, path: Path, parent: Builder) -> None:
    parent.members.add(path[-1])
    kind = shape(schema, v)
    if kind == MAP and v:
        node = parent.children[path[-1]] = Builder()
        for name, sub in v.items():
            _added(sub, child_schema(schema, name), (*path, ("f", name)), node)
    elif kind == LIST and v:
        assert schema is not None
        node = parent.children[path[-1]] = Builder()
        items = item_schema(schema)
        for pe, same in _index_items(v, schema, path).items():
            if len(same) == 1:
                _added(same[0], items, (*path, pe), node)
            else:
                node.members.add(pe)


def _blank(v: Any) -> bool:
    return v is _ABSENT or not v


def _index_items(items: Any, schema: Schema, path: Path) -> dict[PathElement, list[Any]]:
    grouped: dict[PathElement, list[Any]] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        grouped.setdefault(item_element(schema, item, (*path, ("i", i))), []).append(item)
    return grouped


def _compare_items(lhs: Any, rhs: Any, schema: Schema, path: Path,
                   out: tuple[Builder, Builder, Builder]) -> None:
    left = _index_items(lhs, schema, path)
    right = _index_items(rhs, schema, path)
    for pe in {**left, **right}:
        ls, rs = left.get(pe, []), right.get(pe, [])
        p = (*path, pe)
        if len(ls) <= 1 and len(rs) <= 1:
            _compare(ls[0] if ls else _ABSENT, rs[0] if rs else _ABSENT, item_schema(schema), p, out)
        elif len(ls) >= 2 and len(rs) >= 2:
            if [freeze(x) for x in ls] != [freeze(x) for x in rs]:
                out[1].insert(p)
        elif len(ls) >= 2:
            out[2].insert(p)
        else:
            out[0].insert(p)
