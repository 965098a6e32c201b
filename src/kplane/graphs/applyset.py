"""ApplySet metadata as kro writes it, and the small pure helpers its apply and prune steps need.

kro manages an instance's children as a KEP-3659 ApplySet (``pkg/controller/instance/applyset``,
``pkg/metadata/labels.go``): the instance is the parent, labelled ``applyset.kubernetes.io/id`` and annotated
with the group-kinds and namespaces it has touched; every child carries ``applyset.kubernetes.io/part-of``
plus kro's ownership labels and the ``internal.kro.run/apply-order`` wave it is deleted in. No ownerReferences
are set: that keeps deletion ordered (dependents first) and works across scopes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from kplane.graphs.crd import KRO_VERSION
from kplane.graphs.graph import Graph

APPLY_MANAGER = "kro.run/applyset"
LABELLER_MANAGER = "kro.run/labeller"
PARENT_MANAGER = "kro.run/applyset-parent"
FINALIZER = "kro.run/finalizer"

PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_ID = "applyset.kubernetes.io/id"
TOOLING = "applyset.kubernetes.io/tooling"
GROUP_KINDS = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
APPLY_ORDER = "internal.kro.run/apply-order"

OWNED = "kro.run/owned"
KRO_VERSION_LABEL = "kro.run/kro-version"
MANAGED_BY = "app.kubernetes.io/managed-by"
NODE_ID = "kro.run/node-id"
INSTANCE_ID = "kro.run/instance-id"
INSTANCE_NAME = "kro.run/instance-name"
INSTANCE_NAMESPACE = "kro.run/instance-namespace"
INSTANCE_GROUP = "kro.run/instance-group"
INSTANCE_VERSION = "kro.run/instance-version"
INSTANCE_KIND = "kro.run/instance-kind"
RGD_ID = "kro.run/resource-graph-definition-id"
RGD_NAME = "kro.run/resource-graph-definition-name"
COLLECTION_INDEX = "kro.run/collection-index"
COLLECTION_SIZE = "kro.run/collection-size"
RECONCILE = "kro.run/reconcile"


def applyset_id(name: str, namespace: str, kind: str, group: str) -> str:
    """KEP-3659's parent id: ``applyset-<base64url(sha256(name.namespace.kind.group)), unpadded>-v1``."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def instance_applyset_id(graph: Graph, instance: Mapping[str, Any]) -> str:
    meta = instance.get("metadata") or {}
    return applyset_id(str(meta.get("name", "")), str(meta.get("namespace") or ""), graph.kind, graph.group)


def is_suspended(instance: Mapping[str, Any]) -> bool:
    """``kro.run/reconcile: suspended`` (or the legacy ``disabled``), case-insensitively."""
    value = ((instance.get("metadata") or {}).get("annotations") or {}).get(RECONCILE, "")
    return str(value).lower() in ("suspended", "disabled")


def instance_labels(graph: Graph, rgd_uid: str, instance: Mapping[str, Any]) -> dict[str, str]:
    """What kro's labeller puts on the instance itself."""
    labels = {OWNED: "true", KRO_VERSION_LABEL: KRO_VERSION, RGD_NAME: graph.name,
              APPLYSET_ID: instance_applyset_id(graph, instance)}
    if rgd_uid:
        labels[RGD_ID] = rgd_uid
    return labels


def needs_management(graph: Graph, rgd_uid: str, instance: Mapping[str, Any]) -> bool:
    meta = instance.get("metadata") or {}
    labels = meta.get("labels") or {}
    wanted = instance_labels(graph, rgd_uid, instance)
    return FINALIZER not in (meta.get("finalizers") or []) or any(labels.get(k) != v for k, v in wanted.items())


def apply_orders(graph: Graph) -> dict[str, int]:
    """Deletion waves (kro's ``applyOrdersForDAG``): layer i of the dependents-first layers gets
    ``len(layers) - i``, so the highest number is deleted first."""
    layers = graph.deletion_layers()
    return {rid: len(layers) - i for i, layer in enumerate(layers) for rid in layer}


def child_object(graph: Graph, instance: Mapping[str, Any], rid: str, obj: Mapping[str, Any], order: int,
                 index: int | None = None, size: int | None = None) -> dict[str, Any]:
    """A rendered child with kro's labels and annotation added (template labels are kept)."""
    meta = instance.get("metadata") or {}
    out = dict(obj)
    child_meta = dict(out.get("metadata") or {})
    labels = dict(child_meta.get("labels") or {})
    labels.update({OWNED: "true", KRO_VERSION_LABEL: KRO_VERSION, MANAGED_BY: "kro", NODE_ID: rid,
                   INSTANCE_ID: str(meta.get("uid", "")), INSTANCE_NAME: str(meta.get("name", "")),
                   INSTANCE_GROUP: graph.group, INSTANCE_VERSION: graph.version, INSTANCE_KIND: graph.kind,
                   PART_OF: instance_applyset_id(graph, instance)})
    if meta.get("namespace"):
        labels[INSTANCE_NAMESPACE] = str(meta["namespace"])
    if index is not None and size is not None:
        labels[COLLECTION_INDEX] = str(index)
        labels[COLLECTION_SIZE] = str(size)
    child_meta["labels"] = labels
    child_meta["annotations"] = {**(child_meta.get("annotations") or {}), APPLY_ORDER: str(order)}
    out["metadata"] = child_meta
    return out


def group_kind(api_version: str, kind: str) -> str:
    """``Kind.group`` as ApplySet annotations spell it (``Deployment.apps``, ``ConfigMap`` for the core group)."""
    group = api_version.rpartition("/")[0]
    return f"{kind}.{group}" if group else kind


def split_group_kind(text: str) -> tuple[str, str]:
    """``Deployment.apps`` → ``("apps", "Deployment")``; ``ConfigMap`` → ``("", "ConfigMap")``."""
    kind, _, group = text.partition(".")
    return group, kind


def parse_list(value: Any) -> list[str]:
    return [part for part in str(value or "").split(",") if part]


def parent_annotations(instance: Mapping[str, Any], group_kinds: Iterable[str], namespaces: Iterable[str],
                       *, keep_existing: bool) -> dict[str, str]:
    """The parent's inventory: sorted comma lists. Growing keeps what is recorded (so a later prune still finds
    children of kinds no longer rendered); shrinking (after a clean prune) records only what is live."""
    current = (instance.get("metadata") or {}).get("annotations") or {}
    own_namespace = str((instance.get("metadata") or {}).get("namespace") or "")
    kinds = set(group_kinds)
    extra = {ns for ns in namespaces if ns and ns != own_namespace}
    if keep_existing:
        kinds |= set(parse_list(current.get(GROUP_KINDS)))
        extra |= set(parse_list(current.get(NAMESPACES)))
    return {TOOLING: f"kro/{KRO_VERSION}", GROUP_KINDS: ",".join(sorted(kinds)), NAMESPACES: ",".join(sorted(extra))}


def annotations_differ(instance: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    current = (instance.get("metadata") or {}).get("annotations") or {}
    return any(current.get(k, "") != v for k, v in wanted.items())


def apply_order_of(obj: Mapping[str, Any]) -> int:
    """A child's deletion wave; children without a valid one are deleted last (kro's rule)."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(APPLY_ORDER, "")
    return int(value) if str(value).isdigit() else -1


def belongs_elsewhere(live: Mapping[str, Any] | None, set_id: str) -> bool:
    """Whether a live object is part of another ApplySet (kro refuses to take it over)."""
    if live is None:
        return False
    owner = ((live.get("metadata") or {}).get("labels") or {}).get(PART_OF)
    return bool(owner) and owner != set_id


def merge_patch(old: Any, new: Any) -> Any:
    """An RFC 7386 merge patch turning ``old`` into ``new`` (removed keys become ``null``; lists are replaced)."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch
