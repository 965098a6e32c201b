"""Uniform metadata access for lightkube objects.

lightkube hands back two shapes: msgspec model instances for built-in kinds (`obj.metadata.name`) and
`Generic` dicts for custom resources (`obj["metadata"]["name"]`). The runtime only needs a few metadata
fields, so it reads them through these functions instead of caring which shape it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


_MAPPING_TYPES: dict[type, bool] = {}


def is_mapping_type(kind: type) -> bool:
    """`isinstance(x, Mapping)` by type, remembered: the ABC check is slow, and these helpers run for every
    object of every informer event."""
    known = _MAPPING_TYPES.get(kind)
    if known is None:
        known = _MAPPING_TYPES[kind] = issubclass(kind, Mapping)
    return known


def _meta(obj: Any) -> Any:
    if is_mapping_type(type(obj)):
        return obj.get("metadata") or {}
    return getattr(obj, "metadata", None) or {}


def _field(meta: Any, name: str) -> Any:
    if is_mapping_type(type(meta)):
        return meta.get(name)
    return getattr(meta, name, None)


def metadata_field(obj: Any, name: str) -> Any:
    """`metadata.<name>` of a lightkube model or a plain dict, without converting the object."""
    return _field(_meta(obj), name)


def name_of(obj: Any) -> str:
    return _field(_meta(obj), "name") or ""


def namespace_of(obj: Any) -> str:
    return _field(_meta(obj), "namespace") or ""


def uid_of(obj: Any) -> str:
    return _field(_meta(obj), "uid") or ""


def resource_version_of(obj: Any) -> str:
    return _field(_meta(obj), "resourceVersion") or ""


def labels_of(obj: Any) -> dict[str, str]:
    return dict(_field(_meta(obj), "labels") or {})


def owner_references_of(obj: Any) -> list[OwnerRef]:
    refs = _field(_meta(obj), "ownerReferences") or []
    return [
        OwnerRef(
            api_version=_field(ref, "apiVersion") or "",
            kind=_field(ref, "kind") or "",
            name=_field(ref, "name") or "",
            uid=_field(ref, "uid") or "",
            controller=bool(_field(ref, "controller")),
            block_owner_deletion=bool(_field(ref, "blockOwnerDeletion")),
        )
        for ref in refs
    ]


def make_key(namespace: str, name: str) -> str:
    """client-go's MetaNamespaceKeyFunc: "namespace/name", or just "name" for cluster-scoped objects."""
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str, str]:
    """Inverse of `make_key`: ("", name) for a cluster-scoped key."""
    if not key:
        raise ValueError("empty object key")
    parts = key.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise ValueError(f"unexpected key format: {key!r}")


def key_of(obj: Any) -> str:
    return make_key(namespace_of(obj), name_of(obj))


def is_newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion `candidate` is later than `current`.

    Kubernetes calls resourceVersions opaque, but both etcd and kplane's store use increasing integers,
    which lets the cache drop a stale or repeated event. Anything non-numeric counts as newer when it
    differs, which is the behaviour of a cache that does not compare at all.
    """
    if candidate == current:
        return False
    if candidate.isdigit() and current.isdigit():
        return int(candidate) > int(current)
    return True
