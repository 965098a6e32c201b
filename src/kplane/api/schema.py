"""Navigating OpenAPI v3 schemas the way the server needs to: by field, by list item, with merge hints.

Built-in kinds' schemas come with ``$ref`` links into a definitions table; CRD schemas are inline. Patch
(strategic merge), server-side apply, validation, defaulting and pruning all walk an object and its schema in
step, so they share this one view: a :class:`Schema` wraps a schema dict and resolves ``$ref`` lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

EMPTY: Mapping[str, Any] = {}
T = TypeVar("T")
_UNSET: Any = object()


class Schema:
    """A schema node plus the definitions table its ``$ref`` links point into.

    Schemas are read-only once built, and every request walks the same few in step with an object, so a
    node remembers its children and derived facts: resolving ``$ref`` and reading keywords happens once per
    node, not once per request. Only declared properties are remembered by name (free-form map keys all
    share the ``additionalProperties`` node), so the memory a node holds is bounded by its schema."""

    __slots__ = ("_additional", "_derived", "_fields", "_items", "_type", "definitions", "raw")

    def __init__(self, raw: Mapping[str, Any], definitions: Mapping[str, Any] = EMPTY) -> None:
        self.definitions = definitions
        self.raw = self._resolve(raw)
        self._fields: dict[str, Schema] = {}
        self._items: Schema | None = _UNSET
        self._additional: Schema | None = _UNSET
        self._type: str | None = None
        self._derived: dict[str, Any] = {}

    def _resolve(self, raw: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while True:
            ref = raw.get("$ref")
            if ref is None:
                all_of = raw.get("allOf")
                if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
                    ref = all_of[0]["$ref"]
                else:
                    return raw
            target = self.definitions.get(ref.rsplit("/", 1)[-1])
            if target is None:
                return raw
            extra = {k: v for k, v in raw.items() if k not in ("$ref", "allOf")}
            raw = {**target, **extra} if extra else target
            seen += 1
            if seen > 64:
                return raw

    def _child(self, raw: Mapping[str, Any] | None) -> Schema | None:
        if raw is None:
            return None
        return Schema(raw, self.definitions)

    @property
    def type(self) -> str:
        """The JSON type, normalised (``["string", "null"]`` from JSON-Schema exports reads as ``string``)."""
        if self._type is None:
            self._type = self._read_type()
        return self._type

    def _read_type(self) -> str:
        t = self.raw.get("type", "")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "")
        if not t:
            if "properties" in self.raw or "additionalProperties" in self.raw:
                return "object"
            if "items" in self.raw:
                return "array"
        return str(t)

    @property
    def properties(self) -> Mapping[str, Any]:
        return self.raw.get("properties") or EMPTY

    def field(self, name: str) -> Schema | None:
        """The schema of field ``name``: a declared property or the ``additionalProperties`` schema."""
        known = self._fields.get(name)
        if known is not None:
            return known
        props = self.properties
        if name in props:
            child = self._child(props[name])
            if child is not None:
                self._fields[name] = child
            return child
        return self.additional_properties

    @property
    def items(self) -> Schema | None:
        if self._items is _UNSET:
            items = self.raw.get("items")
            self._items = self._child(items) if isinstance(items, Mapping) else None
        return self._items

    @property
    def additional_properties(self) -> Schema | None:
        if self._additional is _UNSET:
            extra = self.raw.get("additionalProperties")
            self._additional = self._child(extra) if isinstance(extra, Mapping) else None
        return self._additional

    @property
    def preserves_unknown_fields(self) -> bool:
        return bool(self.raw.get("x-kubernetes-preserve-unknown-fields"))

    @property
    def int_or_string(self) -> bool:
        return bool(self.raw.get("x-kubernetes-int-or-string")) or self.raw.get("format") == "int-or-string"

    @property
    def embedded_resource(self) -> bool:
        return bool(self.raw.get("x-kubernetes-embedded-resource"))

    @property
    def list_type(self) -> str:
        """``atomic`` (default), ``set`` or ``map``; strategic-merge hints imply ``map`` or ``set``."""
        lt = self.raw.get("x-kubernetes-list-type")
        if lt:
            return str(lt)
        if self.raw.get("x-kubernetes-patch-merge-key"):
            return "map"
        if "merge" in str(self.raw.get("x-kubernetes-patch-strategy", "")):
            return "set"
        return "atomic"

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        keys = self.raw.get("x-kubernetes-list-map-keys")
        if keys:
            return tuple(keys)
        merge_key = self.raw.get("x-kubernetes-patch-merge-key")
        return (str(merge_key),) if merge_key else ()

    @property
    def map_type(self) -> str:
        """``granular`` (default) or ``atomic`` for ``x-kubernetes-map-type``."""
        return str(self.raw.get("x-kubernetes-map-type", "granular"))

    @property
    def patch_strategy(self) -> str:
        return str(self.raw.get("x-kubernetes-patch-strategy", ""))

    @property
    def patch_merge_key(self) -> str:
        return str(self.raw.get("x-kubernetes-patch-merge-key", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def derived(self, key: str, compute: Callable[[Schema], T]) -> T:
        """A fact about this node that a walker computes once and keeps (``key`` names the fact and must
        be unique to the computing module): shapes for field sets, compiled checks for validation."""
        try:
            value: T = self._derived[key]
        except KeyError:
            value = self._derived[key] = compute(self)
        return value

    def __repr__(self) -> str:
        return f"Schema({dict(self.raw)!r:.80})"


ANY = Schema({"x-kubernetes-preserve-unknown-fields": True})
