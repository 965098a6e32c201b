"""Strategic merge patch, driven by the OpenAPI schema's ``x-kubernetes-patch-*`` hints.

kubectl sends strategic merge patches for built-in kinds (``apply``, ``edit``, ``patch``), so this follows the
semantics of k8s.io/apimachinery pkg/util/strategicpatch (``StrategicMergeMapPatch`` with
``MergeParallelList`` and ``IgnoreUnmatchedNulls``), read for behaviour, not translated:

- maps merge recursively and ``null`` deletes a key;
- lists whose field says ``merge`` merge (maps by the merge key, primitives as a set); others are replaced;
- merged lists are ordered as upstream orders them: patch items by patch order, server-only items by server
  order, and when the two disagree the patch item goes first (so a new container lands at the front);
- directives: ``$patch: replace|delete`` on maps and list items, ``$retainKeys``,
  ``$setElementOrder/<field>`` and ``$deleteFromPrimitiveList/<field>``.

Deliberate differences, all in favour of clean results: values copied whole from the patch go through the
same merge (so directives and nulls never leak into the stored object, where Go would drop them while decoding
into a typed struct), and deleting from an absent or non-merging primitive list is a no-op.

Errors carry upstream's code (``interpretStrategicMergePatchError`` in the apiserver's patch.go): malformed
directives → 400, lists of lists → 422, anything else (a missing merge key …) → 500 with upstream's text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from kplane.api.schema import Schema
from kplane.api.status import StatusError, bad_request

__all__ = ["strategic_merge", "unprocessable"]

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

_LIST_DIRECTIVES = (f"{SET_ELEMENT_ORDER}/", f"{DELETE_FROM_PRIMITIVE_LIST}/")

# k8s.io/apimachinery pkg/util/mergepatch/errors.go
_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"


def unprocessable() -> StatusError:
    """422 as ``NewGenericServerResponse`` builds it: reason Invalid, a fixed message and no causes."""
    return StatusError(422, "Invalid", "the server rejected our request due to an error in our request")


def _plain(message: str) -> StatusError:
    """An error upstream returns unwrapped, which the apiserver answers as 500 with an empty reason."""
    return StatusError(500, "", message)


def strategic_merge(
    original: Mapping[str, Any], patch: Mapping[str, Any], schema: Schema | None
) -> dict[str, Any]:
    """Merge decoded ``patch`` into ``original`` and return a new object that shares nothing with either."""
    return _merge_map(orjson.loads(orjson.dumps(original)), orjson.loads(orjson.dumps(patch)), schema)


def _merge_map(
    original: Mapping[str, Any] | None, patch: Mapping[str, Any], schema: Schema | None
) -> dict[str, Any]:
    if PATCH in patch:
        directive = patch[PATCH]
        if directive == "replace":
            return _merge_map(None, {k: v for k, v in patch.items() if k != PATCH}, schema)
        if directive == "delete":
            return {}
        raise _plain(f"unknown patch type: {_go(directive)} in map: {_go(patch)}")
    result = dict(original) if original is not None else {}
    pending = dict(patch)
    _apply_retain_keys(result, pending)
    _apply_element_orders(result, pending, schema)
    for key, value in pending.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            _delete_from_primitive_list(result, _directive_field(key, DELETE_FROM_PRIMITIVE_LIST), value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_value(result.get(key), value, _field(schema, key))
    return result


def _merge_value(current: Any, value: Any, schema: Schema | None) -> Any:
    strategy = _strategy(schema)
    if isinstance(value, dict):
        if strategy == "replace":
            return _merge_map(None, value, schema)
        return _merge_map(current if isinstance(current, dict) else None, value, schema)
    if isinstance(value, list):
        if strategy == "merge":
            return _merge_list(current if isinstance(current, list) else [], value, schema)
        return _clean(value)
    return value


def _field(schema: Schema | None, name: str) -> Schema | None:
    return schema.field(name) if schema is not None else None


def _strategy(schema: Schema | None) -> str:
    """The field's strategy besides ``retainKeys`` (which only enables the ``$retainKeys`` directive)."""
    if schema is None:
        return ""
    parts = [p.strip() for p in schema.patch_strategy.split(",") if p.strip() and p.strip() != "retainKeys"]
    return parts[0] if parts else ""


def _merge_key(schema: Schema | None) -> str:
    return schema.patch_merge_key if schema is not None else ""


def _items(schema: Schema | None) -> Schema | None:
    return schema.items if schema is not None else None


def _directive_field(key: str, prefix: str) -> str:
    head, sep, field = key.partition("/")
    if head != prefix or not sep:
        bad = _BAD_PRIMITIVE_LIST if prefix == DELETE_FROM_PRIMITIVE_LIST else _BAD_SET_ELEMENT_ORDER
        raise bad_request(bad)
    return field


def _apply_retain_keys(result: dict[str, Any], patch: dict[str, Any]) -> None:
    """``$retainKeys`` drops every server key not listed; each key the patch sets must be listed."""
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise bad_request(_BAD_RETAIN_KEYS)
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise bad_request(_BAD_RETAIN_KEYS)
    for key in [k for k in result if k not in keep]:
        del result[key]


def _delete_from_primitive_list(result: dict[str, Any], field: str, doomed: Any) -> None:
    if not isinstance(doomed, list):
        raise bad_request(_BAD_PRIMITIVE_LIST)
    current = result.get(field)
    if isinstance(current, list):
        result[field] = [v for v in current if not any(_same(v, d) for d in doomed)]


def _apply_element_orders(result: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> None:
    """Merge each list named by a ``$setElementOrder/<field>`` and order it by that list.

    The precedence is the order list, then the patch list, then the server list (upstream's
    ``mergePatchIntoOriginal``); the merged field is taken out of ``patch`` so it is not merged twice.
    """
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise bad_request(_BAD_SET_ELEMENT_ORDER)
        field = _directive_field(key, SET_ELEMENT_ORDER)
        sub = _field(schema, field)
        merge_key = _merge_key(sub)
        current, changes = result.get(field), patch.pop(field, None)
        if current is not None and not isinstance(current, list):
            raise _plain(f"expected a slice, but received a {_go_kind(current)}")
        if changes is not None and not isinstance(changes, list):
            raise _plain(f"expected a slice, but received a {_go_kind(changes)}")
        if current is None and changes is None:
            continue
        _check_order(changes or [], order, merge_key)
        merged = _merge_value(current, changes, sub) if changes is not None else list(current or [])
        if not merged:
            result[field] = merged
            continue
        is_map = _element_kind(current or [], changes or []) == "map"
        key_name = merge_key if is_map else ""
        in_order, server_only = _partition(merged, order, key_name)
        result[field] = _normalize(in_order, server_only, order, current or [], key_name)


def _check_order(changes: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list's items must appear in the order list, in the same relative order."""
    items = [c for c in changes if not (merge_key and isinstance(c, dict) and c.get(PATCH) == "delete")]
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and PATCH in items[i]:
            i += 1
            continue
        if _same(_identity(items[i], merge_key), _identity(order[j], merge_key)):
            i += 1
        j += 1
    if i < len(items):
        raise _plain(
            f"The order in patch list:\n{_go(changes)}\n doesn't match "
            f"{SET_ELEMENT_ORDER} list:\n{_go(order)}\n"
        )


def _identity(item: Any, merge_key: str) -> Any:
    if not merge_key:
        return item
    if not isinstance(item, dict):
        raise _plain(f"expected a map, but received a {_go_kind(item)}")
    if merge_key not in item:
        raise _no_merge_key(item, merge_key)
    return item[merge_key]


def _merge_list(current: list[Any], changes: list[Any], schema: Schema | None) -> list[Any]:
    if not current and not changes:
        return []
    if _element_kind(current, changes) != "map":
        merged: list[Any] = []
        for value in [*current, *changes]:
            if not any(_same(value, m) for m in merged):
                merged.append(_clean(value))
        in_patch, server_only = _partition(merged, changes, "")
        return _normalize(in_patch, server_only, changes, current, "")
    merge_key = _merge_key(schema)
    if not merge_key:
        raise _plain("cannot merge lists without merge key for type map")
    base, plain = _apply_item_directives(current, changes, merge_key, _items(schema))
    merged = _merge_items(base, plain, merge_key, _items(schema))
    in_patch, server_only = _partition(merged, plain, merge_key)
    return _normalize(in_patch, server_only, plain, base, merge_key)


def _apply_item_directives(
    current: list[Any], changes: list[Any], merge_key: str, item_schema: Schema | None
) -> tuple[list[Any], list[Any]]:
    """Handle ``$patch`` list items: ``delete`` drops server items by key, ``replace`` drops them all."""
    base = list(current)
    plain: list[Any] = []
    replace = False
    for item in changes:
        if PATCH not in item:
            plain.append(item)
            continue
        directive = item[PATCH]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            base = [b for b in base if not _has_key_value(b, merge_key, item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _plain("merging lists cannot yet be specified in the patch")
        else:
            raise _plain(f"unknown patch type: {_go(directive)} in map: {_go(item)}")
    if replace:
        return [_merge_map(None, item, item_schema) for item in plain], []
    return base, plain


def _merge_items(base: list[Any], plain: list[Any], merge_key: str, item_schema: Schema | None) -> list[Any]:
    merged = list(base)
    for item in plain:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        index = _find(merged, merge_key, item[merge_key])
        if index is None:
            merged.append(_merge_map(None, item, item_schema))
        else:
            merged[index] = _merge_map(merged[index], item, item_schema)
    return merged


def _find(items: list[Any], merge_key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _plain(f"value for key {index} is not a map.")
        if _has_key_value(item, merge_key, value):
            return index
    return None


def _has_key_value(item: Any, merge_key: str, value: Any) -> bool:
    return isinstance(item, dict) and merge_key in item and _same(item[merge_key], value)


def _partition(merged: list[Any], reference: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into items that ``reference`` names and items only the server has."""
    named = _positions(reference, merge_key)
    inside: list[Any] = []
    outside: list[Any] = []
    for item in merged:
        (inside if _hashable(_identity(item, merge_key)) in named else outside).append(item)
    return inside, outside


def _normalize(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
) -> list[Any]:
    """Sort each side by its own order, then interleave them as upstream's ``mergeSortedSlice`` does."""
    server_at = _positions(server_order, merge_key)
    left = _sort_by(server_only, server_at, merge_key)
    right = _sort_by(in_patch, _positions(patch_order, merge_key), merge_key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li = server_at.get(_hashable(_identity(left[i], merge_key)))
            ri = server_at.get(_hashable(_identity(right[j], merge_key)))
            if li is not None and ri is not None and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _sort_by(items: list[Any], positions: dict[tuple[str, Any], int], merge_key: str) -> list[Any]:
    def position(item: Any) -> int:
        return positions.get(_hashable(_identity(item, merge_key)), len(positions))

    return sorted(items, key=position)


def _positions(order: list[Any], merge_key: str) -> dict[tuple[str, Any], int]:
    """First index of each identity (the item, or its merge-key value) in ``order``."""
    positions: dict[tuple[str, Any], int] = {}
    for index, item in enumerate(order):
        positions.setdefault(_hashable(_identity(item, merge_key)), index)
    return positions


def _hashable(value: Any) -> tuple[str, Any]:
    """A dict key that keeps JSON kinds apart, as Go's interface equality does (``true`` is not ``1``)."""
    if isinstance(value, dict | list):
        return ("composite", _go(value))
    return (type(value).__name__, value)


def _element_kind(*lists: Sequence[Any]) -> str:
    """All elements must share one JSON kind, and lists of lists are refused (422, as upstream)."""
    kinds = {_go_kind(v) for values in lists for v in values}
    if "slice" in kinds:
        raise unprocessable()
    if len(kinds) > 1:
        raise _plain(f"list element types are not identical: {_go(list(lists))}")
    return kinds.pop() if kinds else ""


def _clean(value: Any) -> Any:
    """A value taken whole from the patch: drop null members and directive keys."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and not _is_directive(k)}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _is_directive(key: str) -> bool:
    return key in (PATCH, RETAIN_KEYS) or key.startswith(_LIST_DIRECTIVES)


def _same(a: Any, b: Any) -> bool:
    """Go's interface equality: values of different JSON kinds are never equal (``true`` is not ``1``)."""
    return type(a) is type(b) and a == b


def _no_merge_key(item: Mapping[str, Any], merge_key: str) -> StatusError:
    return _plain(f"map: {_go(item)} does not contain declared merge key: {merge_key}")


def _go_kind(value: Any) -> str:
    """Go's reflect kind of a decoded JSON value, as its error messages name it."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if value is None:
        return "invalid"
    return "string"


def _go(value: Any) -> str:
    """Render a value as Go's ``%v`` does, so error texts read as upstream's (``map[name:a port:80]``)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)
