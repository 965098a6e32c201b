"""The built-in resource table: which Kubernetes kinds the server serves at each API level.

The facts live in ``data/builtin-resources.yaml`` (sources named there) so that adding a group-version for a
later level, such as ``resource.k8s.io/v1`` for DRA, is a data change with ``since``/``removedIn`` bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import yaml

from kplane.api.resources import ALL_VERBS, ResourceType

_DATA_FILE = "builtin-resources.yaml"
_KNOWN_KEYS = frozenset(
    {
        "group",
        "version",
        "plural",
        "kind",
        "namespaced",
        "singular",
        "shortNames",
        "categories",
        "verbs",
        "subresources",
        "selectableFields",
        "since",
        "removedIn",
    }
)


def parse_minor(kube_version: str) -> int:
    """``"1.36"`` → 36. Raises ``ValueError`` for anything but a ``1.<minor>`` level."""
    text = kube_version.strip().removeprefix("v")
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid kube version {kube_version!r}: expected MAJOR.MINOR, e.g. 1.36")
    if parts[0] != "1":
        raise ValueError(f"invalid kube version {kube_version!r}: only major version 1 exists")
    return int(parts[1])


def _entry_to_resource(entry: Mapping[str, Any]) -> ResourceType:
    unknown = set(entry) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"builtin resource {entry.get('plural')!r}: unknown keys {sorted(unknown)}")
    return ResourceType(
        group=str(entry["group"]),
        version=str(entry["version"]),
        plural=str(entry["plural"]),
        kind=str(entry["kind"]),
        namespaced=bool(entry["namespaced"]),
        singular=str(entry.get("singular", "")),
        short_names=tuple(entry.get("shortNames", ())),
        categories=tuple(entry.get("categories", ())),
        verbs=tuple(entry.get("verbs", ALL_VERBS)),
        subresources=tuple(entry.get("subresources", ())),
        selectable_fields=tuple(entry.get("selectableFields", ())),
    )


def _served_at(entry: Mapping[str, Any], minor: int) -> bool:
    since = parse_minor(str(entry.get("since", "1.0")))
    removed = entry.get("removedIn")
    return since <= minor and (removed is None or minor < parse_minor(str(removed)))


@cache
def _entries() -> tuple[Mapping[str, Any], ...]:
    text = importlib_resources.files("kplane.versions").joinpath("data", _DATA_FILE).read_text("utf-8")
    loaded = yaml.safe_load(text)
    return tuple(loaded["resources"])


@cache
def builtin_resources(minor: int) -> tuple[ResourceType, ...]:
    """Resources served at API level ``1.<minor>``, in the table's order (upstream group priority)."""
    return tuple(_entry_to_resource(e) for e in _entries() if _served_at(e, minor))
