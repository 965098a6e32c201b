"""Object metadata rules the server enforces on every kind: identity, timestamps, generation.

These are the parts of ``rest.BeforeCreate``/``BeforeUpdate`` that do not depend on the kind: a server
owns ``uid``, ``creationTimestamp``, ``generation`` and ``resourceVersion``; clients cannot forge or
change them.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

SERVER_OWNED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphabet: no vowels, no 0/1/3


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


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


def deep_copy(obj: Any) -> Any:
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
