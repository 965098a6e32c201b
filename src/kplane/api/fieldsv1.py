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
    return _emit(fs, False, [])


def _emit(fs: FieldSet, include_self: bool, inexact: list[PathElement]) -> dict[str, Any]:
    """``inexact`` collects the elements whose text would not parse back to the very same element."""
    out: dict[str, Any] = {}
    if include_self and not fs.empty:
        out["."] = {}
    children, members = fs.children, fs.members
    for pe in sorted(members | children.keys(), key=_sort_key):
        _, text, holds_values = _element(pe)
        if holds_values and _has_float(pe[1]):
            inexact.append(pe)
        child = children.get(pe)
        out[text] = {} if child is None else _emit(child, pe in members, inexact)
    return out


_ELEMENTS: dict[PathElement, tuple[tuple[Any, ...], str, bool]] = {}


def _element(pe: PathElement) -> tuple[tuple[Any, ...], str, bool]:
    """The sort key and wire text of an element, and whether it holds values (a key or value element). The
    same few field names recur in every object, so all are kept (forgotten at once past ``CACHE_SIZE``)."""
    found = _ELEMENTS.get(pe)
    if found is None:
        if len(_ELEMENTS) >= CACHE_SIZE:
            _ELEMENTS.clear()
        found = _ELEMENTS[pe] = (element_key(pe), element_to_string(pe), pe[0] in ("k", "v"))
    return found


def _sort_key(pe: PathElement) -> tuple[Any, ...]:
    return _element(pe)[0]


def _has_float(payload: Any) -> bool:
    """Whether a key or value element holds a float: its text writes a whole one as an integer, so it would
    parse back as an element that is equal but not the same."""
    kind = type(payload)
    if kind is not tuple:
        return kind is float
    for part in payload:
        if type(part) is str:
            continue  # most parts are names and text values: no call for them
        if _has_float(part):
            return True
    return False


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
            inexact: list[PathElement] = []
            raw = orjson.dumps(_emit(fs, False, inexact))
            self._remember(self._encoded, id(fs), (fs, raw))
            # The next write of the object decodes this very text: it is ``fs`` again, unless an element
            # would parse back differently.
            if not inexact and raw not in self._decoded:
                self._remember(self._decoded, raw, fs)
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
