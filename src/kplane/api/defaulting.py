"""Structural defaulting, pruning of unknown fields, and the unknown-field list for strict field validation.

Follows ``apiextensions-apiserver/pkg/apiserver/schema/defaulting`` (algorithm.go: a default applies to an
absent field, or to a null one that is not nullable; defaults are then defaulted inside; nulls of non-nullable
fields without a default are dropped, as ``PruneNonNullableNullsWithoutDefaults`` does) and ``schema/pruning``
(algorithm.go: unknown fields go unless ``x-kubernetes-preserve-unknown-fields``; the resource root and
embedded resources keep ``apiVersion``, ``kind`` and ``metadata``). Paths are written as upstream writes them
in ``unknown field "spec.items[0].x"``: ``.name`` for properties, ``[i]`` for list items, ``[key]`` for map
entries."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from kplane.api.meta import deep_copy
from kplane.api.schema import Schema
from kplane.api.validation import CleanValues

ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def apply_defaults(obj: Any, schema: Schema) -> Any:
    """A copy of ``obj`` with the schema's defaults filled in, recursively."""
    return _default(deep_copy(obj), schema)


def apply_defaults_in_place(obj: Any, schema: Schema) -> Any:
    """:func:`apply_defaults` on an object the caller owns (admission's own copy), saving a copy."""
    return _default(obj, schema)


def _default(obj: Any, schema: Schema) -> Any:
    if isinstance(obj, dict):
        for name in schema.properties:
            sub = schema.field(name)
            if sub is None:
                continue
            if "default" in sub.raw and (name not in obj or (obj[name] is None and not sub.get("nullable"))):
                obj[name] = copy.deepcopy(sub.raw["default"])
            elif name in obj and obj[name] is None and not sub.get("nullable"):
                del obj[name]
        for key, value in list(obj.items()):
            sub = schema.field(key)
            if sub is not None:
                obj[key] = _default(value, sub)
    elif isinstance(obj, list) and schema.items is not None:
        items = schema.items
        for i, item in enumerate(obj):
            if item is None and "default" in items.raw and not items.get("nullable"):
                obj[i] = copy.deepcopy(items.raw["default"])
            obj[i] = _default(obj[i], items)
    return obj


def prune(obj: Any, schema: Schema) -> tuple[Any, list[str]]:
    """A copy of ``obj`` without the fields the schema does not know, and the paths of those fields."""
    out = deep_copy(obj)
    pruned: list[str] = []
    _walk(out, schema, "", pruned, root=True, drop=True, into_metadata=False)
    return out, pruned


def unknown_fields(obj: Any, schema: Schema, old: Mapping[str, Any] | None = None) -> list[str]:
    """The paths ``fieldValidation=Strict`` reports, in document order (``metadata`` too when typed).

    ``old``: the stored object an update replaces; top-level fields left as they were, whose value this
    schema already found clean, are not walked again (see :class:`CleanValues`)."""
    found: list[str] = []
    if old is None or type(obj) is not dict:
        _walk(obj, schema, "", found, root=True, drop=False, into_metadata=True)
        return found
    clean = schema.derived("defaulting.clean", CleanValues.for_schema)

    def walk(value: Any, sub: Schema, key: str) -> list[str]:
        below: list[str] = []
        _walk(value, sub, key, below, root=False, drop=False, into_metadata=True)
        return below

    def child(value: Any, sub: Schema, key: str) -> None:
        found.extend(clean.check(key, value, old, lambda: walk(value, sub, key)))

    _walk(obj, schema, "", found, root=True, drop=False, into_metadata=True, child=child)
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(
    obj: Any, schema: Schema, path: str, found: list[str], *, root: bool, drop: bool, into_metadata: bool,
    child: Callable[[Any, Schema, str], None] | None = None,
) -> None:
    """``child``: visits the declared fields of this node in place of walking them."""
    if isinstance(obj, list):
        items = schema.items
        if items is not None:
            for i, item in enumerate(obj):
                _walk(item, items, f"{path}[{i}]", found, root=False, drop=drop, into_metadata=into_metadata)
        return
    if not isinstance(obj, dict):
        return
    keeps_envelope = root or schema.embedded_resource
    extra = schema.additional_properties
    properties = schema.properties
    for key in list(obj):
        value = obj[key]
        if keeps_envelope and key in ROOT_FIELDS and key not in properties:
            continue
        if keeps_envelope and key == "metadata" and not into_metadata:
            continue
        if key in properties:
            if not isinstance(value, list | dict):  # a scalar holds nothing to report or drop
                continue
            sub = schema.field(key)
            if sub is None:
                continue
            if child is not None:
                child(value, sub, _join(path, key))
            else:
                _walk(value, sub, _join(path, key), found, root=False, drop=drop, into_metadata=into_metadata)
        elif extra is not None:
            if isinstance(value, list | dict):
                _walk(value, extra, f"{path}[{key}]", found, root=False, drop=drop, into_metadata=into_metadata)
        elif not _allows_any(schema):
            found.append(_join(path, key))
            if drop:
                del obj[key]


def _allows_any(schema: Schema) -> bool:
    """Whether an object schema keeps fields it does not list."""
    if schema.preserves_unknown_fields:
        return True
    # Untyped nodes occur only in built-in schemas (CRD schemas must be structural); they mean "anything".
    return schema.raw.get("additionalProperties") is True or not schema.type
