"""kro's CEL environment: the Kubernetes libraries, cel-go's list extensions and kro's own functions.

kro v0.9 (``pkg/cel/environment.go``, ``pkg/cel/library/*.go``) adds ``random.seededString/seededInt``,
``hash.fnv64a/sha256/md5``, ``json.marshal/unmarshal``, ``map.merge``, ``lists.setAtIndex/insertAtIndex/
removeAtIndex`` and ``omit()``. They are registered as the engine library ``"kro"``; expressions compile with
every graph variable declared ``dyn`` because the static checks live in :mod:`kplane.graphs.typecheck`.

``runtime.newCondition`` and ``runtime.condition`` (kro ``pkg/cel/library/runtime.go``) exist only in the
library ``"kro.conditions"``, which compiles an instance's ``status.conditions`` entries. The engine cannot
return opaque values, so a condition travels as a ``map(string, string)`` of its four fields plus the mark
``"@kro": "condition"`` that tells it from a map the author wrote.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from kplane.cel import extlists
from kplane.cel.engine import (
    BYTES,
    DYN,
    INT,
    STRING,
    CelError,
    Overload,
    Program,
    list_of,
    map_of,
    register_library,
)
from kplane.cel.engine import compile as cel_compile

LIBRARY = "kro"
CONDITIONS_LIBRARY = "kro.conditions"
OMIT = {"@kro": "omit"}
"""What ``omit()`` evaluates to; the renderer drops the field that holds it (kro's omit sentinel)."""
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def seeded_string(length: int, seed: str) -> str:
    """kro's deterministic string: 4 bytes of SHA-256(seed) per character, cycling over the 32 bytes."""
    if length <= 0:
        raise CelError("random.seededString length must be positive")
    digest = hashlib.sha256(seed.encode()).digest()
    chars = []
    for i in range(length):
        start = (i * 4) % len(digest)
        chars.append(_ALPHABET[int.from_bytes(digest[start:start + 4], "big") % len(_ALPHABET)])
    return "".join(chars)


def seeded_int(low: int, high: int, seed: str) -> int:
    """kro's deterministic integer in ``[low, high)``: the first 8 bytes of SHA-256(seed), big-endian."""
    if low >= high:
        raise CelError("random.seededInt min must be less than max")
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return low + value % (high - low)


def fnv64a(text: str) -> bytes:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h.to_bytes(8, "big")


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def json_marshal(value: Any) -> str:
    """Compact JSON with sorted keys, as Go's encoding/json writes maps."""
    return json.dumps(_json_value(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def json_unmarshal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise CelError(f"json.unmarshal: {err}") from None


def merge(first: Mapping[Any, Any], second: Mapping[Any, Any]) -> dict[Any, Any]:
    """Keys of the first map win (kro ``maps.go``)."""
    return {**second, **first}


def _index(items: list[Any], index: int, size: int, name: str, closed: bool = False) -> None:
    if index < 0 or index > size or (index == size and not closed):
        bound = f"[0, {size}]" if closed else f"[0, {size})"
        raise CelError(f"lists.{name}: index {index} out of bounds {bound}")


def set_at(items: list[Any], index: int, value: Any) -> list[Any]:
    _index(items, index, len(items), "setAtIndex")
    return [value if i == index else v for i, v in enumerate(items)]


def insert_at(items: list[Any], index: int, value: Any) -> list[Any]:
    _index(items, index, len(items), "insertAtIndex", closed=True)
    return [*items[:index], value, *items[index:]]


def remove_at(items: list[Any], index: int) -> list[Any]:
    _index(items, index, len(items), "removeAtIndex")
    return [*items[:index], *items[index + 1:]]


CONDITION_KEYS = ("type", "status", "reason", "message")
CONDITION_STATUSES = ("True", "False", "Unknown")
CONDITION_MARK = ("@kro", "condition")


def _cel_type(value: Any) -> str:
    """A run-time value's CEL type name, for messages."""
    names = ((bool, "bool"), (int, "int"), (float, "double"), (str, "string"), (bytes, "bytes"),
             (Mapping, "map"), (list, "list"), (tuple, "list"), (type(None), "null_type"))
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def is_condition(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(CONDITION_MARK[0]) == CONDITION_MARK[1]


def _condition(fields: Mapping[str, str]) -> dict[str, str]:
    return {**{key: fields.get(key, "") for key in CONDITION_KEYS}, CONDITION_MARK[0]: CONDITION_MARK[1]}


def new_condition(fields: Mapping[Any, Any]) -> dict[str, str]:
    """``runtime.newCondition``: the values as computed; key rules were applied when the entry was parsed."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise CelError(f"runtime.newCondition: {key} must be a string, got {_cel_type(value)}")
        if key == "type" and not value:
            raise CelError("runtime.newCondition: type must not be empty")
        if key == "status" and value not in CONDITION_STATUSES:
            raise CelError("runtime.newCondition: status must be one of True, False, Unknown "
                           f"(got {json.dumps(value)})")
        out[str(key)] = value
    return _condition(out)


def _text(entry: Mapping[Any, Any], key: str) -> str:
    value = entry.get(key)
    return value if isinstance(value, str) else ""


def condition_of(obj: Any, wanted: str) -> dict[str, str]:
    """``runtime.condition``: the first of ``obj.status.conditions`` with type ``wanted``, else an empty one."""
    if not isinstance(obj, Mapping):
        raise CelError(f"runtime.condition: obj must be an object, got {_cel_type(obj)}")
    if "status" not in obj:
        return _condition({})
    status = obj["status"]
    if not isinstance(status, Mapping):
        raise CelError("runtime.condition: obj.status must be an object")
    if "conditions" not in status:
        return _condition({})
    conditions = status["conditions"]
    if not isinstance(conditions, list | tuple):
        raise CelError("runtime.condition: obj.status.conditions must be a list")
    for entry in conditions:
        if not isinstance(entry, Mapping):
            raise CelError(f"runtime.condition: unexpected condition element type {_cel_type(entry)}")
        if _text(entry, "type") == wanted:
            return _condition({key: _text(entry, key) for key in CONDITION_KEYS})
    return _condition({})


_LIST = list_of(DYN)
_MAP = map_of(DYN, DYN)
OVERLOADS: tuple[Overload, ...] = (
    *extlists.OVERLOADS,
    Overload("random_seeded_string", "random.seededString", (INT, STRING), STRING, seeded_string),
    Overload("random_seeded_int", "random.seededInt", (INT, INT, STRING), INT, seeded_int),
    Overload("hash_fnv64a", "hash.fnv64a", (STRING,), BYTES, fnv64a),
    Overload("hash_sha256", "hash.sha256", (STRING,), BYTES, lambda s: hashlib.sha256(s.encode()).digest()),
    Overload("hash_md5", "hash.md5", (STRING,), BYTES, lambda s: hashlib.md5(s.encode()).digest()),
    Overload("json_marshal", "json.marshal", (DYN,), STRING, json_marshal),
    Overload("json_unmarshal", "json.unmarshal", (STRING,), DYN, json_unmarshal),
    Overload("map_merge", "merge", (_MAP, _MAP), _MAP, merge, member=True),
    Overload("lists_set_at_index", "lists.setAtIndex", (_LIST, INT, DYN), _LIST, set_at),
    Overload("lists_insert_at_index", "lists.insertAtIndex", (_LIST, INT, DYN), _LIST, insert_at),
    Overload("lists_remove_at_index", "lists.removeAtIndex", (_LIST, INT), _LIST, remove_at),
    Overload("omit", "omit", (), DYN, lambda: dict(OMIT)),
)
FUNCTIONS = frozenset(ov.name for ov in OVERLOADS)
_CONDITION = map_of(STRING, STRING)
RUNTIME_OVERLOADS: tuple[Overload, ...] = (
    Overload("runtime_newCondition_map", "runtime.newCondition", (map_of(STRING, DYN),), _CONDITION, new_condition),
    Overload("runtime_condition_dyn_string", "runtime.condition", (DYN, STRING), _CONDITION, condition_of),
)

register_library(LIBRARY, OVERLOADS)
register_library(CONDITIONS_LIBRARY, (*OVERLOADS, *RUNTIME_OVERLOADS))


def compile_expression(source: str, variables: Iterable[str]) -> Program:
    """Compile with every variable ``dyn``; :class:`CelError` for syntax errors and unknown functions."""
    return cel_compile(source, dict.fromkeys(variables, DYN), library=LIBRARY)


def compile_condition(source: str, variables: Iterable[str]) -> Program:
    """Compile a ``status.conditions`` entry (after its ``newCondition`` keys were quoted): ``runtime`` too."""
    return cel_compile(source, dict.fromkeys(variables, DYN), library=CONDITIONS_LIBRARY)


def is_omit(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and value.get("@kro") == "omit"
