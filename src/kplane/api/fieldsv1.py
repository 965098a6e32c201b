"""The ``fieldsV1`` wire form of field sets (upstream structured-merge-diff ``fieldpath/serialize.go``).

Every write decodes the managedFields of the object it changes and encodes them again, and most entries are
the same from one write to the next; both directions are cached, keyed by the JSON text of the entry and by
the (immutable) set, so an unchanged entry costs a lookup instead of a walk.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from kplane.api.fieldset import FieldSet, PathElement, element_from_string, element_key, element_to_string

CACHE_SIZE = 8192



def to_fields_v1(fs: FieldSet) -> dict[str, Any]:
    """The ``fieldsV1`` object, keys in upstream order, ``"."`` for a member that also has children."""
    return _emit(fs, include_self=False)


def _emit(fs: FieldSet, include_self: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if include_self and not fs.empty:
        out["."] = {}
    for pe in sorted(fs.members | fs.children.keys(), key=element_key):
        child = fs.children.get(pe)
        out[element_to_string(pe)] = {} if child is None else _emit(child, pe in fs.members)
    return out


def from_fields_v1(d: Mapping[str, Any]) -> FieldSet:
    """Parse ``fieldsV1``; raises ``ValueError`` on malformed input as upstream's decoder errors."""
    if not isinstance(d, Mapping):
        raise ValueError("fieldsV1 must be a JSON object")
    children, _ = _parse(d)
    return children


def _parse(d: Mapping[str, Any]) -> tuple[FieldSet, bool]:
    members: set[PathElement] = set()
    children: dict[PathElement, FieldSet] = {}
    is_member = False
    for text, sub in d.items():
        if not isinstance(sub, Mapping):
            raise ValueError(f"value of {text!r} must be a JSON object")
        if text == ".":
            is_member = True
            continue
        pe = element_from_string(text)
        if pe is None:
            continue
        grand, child_member = _parse(sub)
        if child_member:
            members.add(pe)
        if not grand.empty:
            children[pe] = grand
    fs = FieldSet(members, children)
    return fs, is_member or fs.empty


class _Cache:
    """Both directions of the wire form for recently seen sets. A decoded set is shared between objects,
    which is safe because sets never change; encoded ones are kept as JSON text and handed out as fresh
    dicts, since callers store them in objects that may be changed later."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._decoded: OrderedDict[bytes, FieldSet] = OrderedDict()
        self._encoded: OrderedDict[int, tuple[FieldSet, bytes]] = OrderedDict()

    def decode(self, d: Mapping[str, Any]) -> FieldSet:
        if not isinstance(d, dict):
            return from_fields_v1(d)
        raw = orjson.dumps(d)
        found = self._decoded.get(raw)
        if found is None:
            found = self._remember(self._decoded, raw, from_fields_v1(d))
        else:
            self._decoded.move_to_end(raw)
        return found

    def encode(self, fs: FieldSet) -> dict[str, Any]:
        # Keyed by identity, holding the set itself so its id cannot be reused while the entry lives.
        entry = self._encoded.get(id(fs))
        if entry is None or entry[0] is not fs:
            raw = orjson.dumps(to_fields_v1(fs))
            self._remember(self._encoded, id(fs), (fs, raw))
        else:
            self._encoded.move_to_end(id(fs))
            raw = entry[1]
        decoded: dict[str, Any] = orjson.loads(raw)
        return decoded

    def _remember(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> Any:
        table[key] = value
        if len(table) > self._size:
            table.popitem(last=False)
        return value


_CACHE = _Cache(CACHE_SIZE)


def decode_cached(d: Mapping[str, Any]) -> FieldSet:
    """:func:`from_fields_v1` through the cache; raises the same ``ValueError`` for malformed input."""
    return _CACHE.decode(d)


def encode_cached(fs: FieldSet) -> dict[str, Any]:
    """:func:`to_fields_v1` through the cache; always a new dict."""
    return _CACHE.encode(fs)
