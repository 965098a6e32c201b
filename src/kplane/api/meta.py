"""Object metadata rules the server enforces on every kind: identity, timestamps, generation.

These are the parts of ``rest.BeforeCreate``/``BeforeUpdate`` that do not depend on the kind: a server
owns ``uid``, ``creationTimestamp``, ``generation`` and ``resourceVersion``; clients cannot forge or
change them.
"""

from __future__ import annotations

import copy
import os
import secrets
import time
from typing import Any

import orjson

SERVER_OWNED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphabet: no vowels, no 0/1/3


_last_second: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current time to the second; every write stamps one, so the text is made once per second."""
    global _last_second
    second = int(time.time())
    if second != _last_second[0]:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last_second[1]


def new_uid() -> str:
    """A random (version 4) UUID as text, formatted directly rather than through ``uuid.UUID``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def generated_name(prefix: str) -> str:
    """``generateName`` plus five random characters, as upstream's ``SimpleNameGenerator``."""
    suffix = "".join(secrets.choice(GENERATE_NAME_ALPHABET) for _ in range(5))
    return prefix[: 63 - 5] + suffix


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


_IMMUTABLE = (str, int, float, bool, type(None))
_PLAIN_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS


def _not_plain(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def json_bytes(obj: Any) -> bytes | None:
    """``obj`` as JSON text when it is made of exact dicts (text keys), lists, text, 64-bit integers, floats,
    booleans and nulls; ``None`` when it holds anything else that orjson would otherwise convert (dates,
    subclasses, dataclasses) or refuse. Tuples, NaN and infinities still encode (as arrays and nulls): callers
    that must tell them apart compare with a value known to be plain."""
    try:
        return orjson.dumps(obj, default=_not_plain, option=_PLAIN_ONLY)
    except TypeError:
        return None


def deep_copy(obj: Any) -> Any:
    """A deep copy of a JSON tree. A plain tree (all stored objects are) goes through orjson, several times
    faster than walking it; the copy must compare equal to the original, which rules out what JSON text
    cannot carry (tuples, NaN). Anything else is walked, falling back to ``copy.deepcopy`` for odd values."""
    kind = type(obj)
    if kind is dict or kind is list:
        raw = json_bytes(obj)
        if raw is not None:
            copied = orjson.loads(raw)
            if copied == obj:
                return copied
    return _walk_copy(obj)


def _walk_copy(obj: Any) -> Any:
    kind = type(obj)
    if kind is dict:
        return {k: v if type(v) in _IMMUTABLE else _walk_copy(v) for k, v in obj.items()}
    if kind is list:
        return [v if type(v) in _IMMUTABLE else _walk_copy(v) for v in obj]
    if kind in _IMMUTABLE:
        return obj
    return copy.deepcopy(obj)


def spec_changed(old: dict[str, Any], new: dict[str, Any], *, status_is_subresource: bool) -> bool:
    """Whether ``generation`` must increase: anything but metadata (and status, when it has its own endpoint)."""
    skip = {"metadata", "status"} if status_is_subresource else {"metadata"}
    keys = (set(old) | set(new)) - skip - {"apiVersion", "kind"}
    return any(old.get(k) != new.get(k) for k in keys)


def prepare_create(obj: dict[str, Any]) -> dict[str, Any]:
    """Server-owned metadata for a new object; returns the same (mutated) dict."""
    meta = metadata(obj)
    for key in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
        meta.pop(key, None)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now_rfc3339()
    meta["generation"] = 1
    return obj


def carry_over_update(old: dict[str, Any], new: dict[str, Any], *, status_is_subresource: bool) -> dict[str, Any]:
    """Keep what an update may not change and bump ``generation`` when the spec changed."""
    old_meta = old.get("metadata", {})
    meta = metadata(new)
    for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta.pop("selfLink", None)
    generation = int(old_meta.get("generation", 1) or 1)
    if spec_changed(old, new, status_is_subresource=status_is_subresource):
        generation += 1
    meta["generation"] = generation
    return new


def strip_empty_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop empty maps and lists in metadata the way Go's ``omitempty`` does, so round trips are stable."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
            if key in meta and not meta[key]:
                del meta[key]
    return obj
