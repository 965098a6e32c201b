"""Namespace lifecycle: a deleted namespace is emptied, then finalized, then removed by the API server.

As kube-controller-manager's namespace controller (pkg/controller/namespace, deletion/
namespaced_resources_deleter.go): while a Terminating namespace still carries the `kubernetes` spec
finalizer, every namespaced resource found through discovery (custom resources too) is deleted with
`deletecollection` where served, else object by object; the namespace's deletion conditions report what
is left; once nothing remains the finalizer is removed through `PUT .../finalize`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace
from lightkube.types import CascadeType, PatchType

from kplane.controllers.discovery import ApiResource, discover, resource_class
from kplane.runtime import Controller, Result, SharedInformers, split_key
from kplane.runtime.lkutil import as_dict, is_status, model

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
REQUEUE_S = 1.0

# The five deletion conditions and their "all is well" reason and message
# (pkg/controller/namespace/deletion/status_condition_utils.go okReasons/okMessages).
DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
OK = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    PARSING_FAILURE: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


def deletable(resources: Iterable[ApiResource]) -> list[ApiResource]:
    """The namespaced resources whose objects the controller can list and delete."""
    return [r for r in resources if r.namespaced and r.supports("list") and
            (r.supports("delete") or r.supports("deletecollection"))]


def needs_finalizing(namespace: Mapping[str, Any]) -> bool:
    meta = namespace.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and FINALIZER in ((namespace.get("spec") or {}).get("finalizers") or [])


def finalized(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The body for `PUT /api/v1/namespaces/<name>/finalize`: the namespace without our spec finalizer."""
    spec = dict(namespace.get("spec") or {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": dict(namespace.get("metadata") or {}), "spec": spec}


@dataclass
class Leftovers:
    """What one deletion pass left: object counts by `plural.group`, finalizer counts, and failures."""

    counts: dict[str, int] = field(default_factory=dict)
    finalizers: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    discovery_error: str | None = None

    @property
    def done(self) -> bool:
        return not self.counts and not self.errors and self.discovery_error is None

    def add(self, api: ApiResource, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        # Upstream prints GroupResource as "resource.group", which leaves a trailing dot for the core group.
        self.counts[f"{api.plural}.{api.group}"] = len(items)
        for item in items:
            for finalizer in (item.get("metadata") or {}).get("finalizers") or []:
                self.finalizers[str(finalizer)] = self.finalizers.get(str(finalizer), 0) + 1


def deletion_conditions(left: Leftovers) -> dict[str, tuple[str, str, str]]:
    """Each condition type -> (status, reason, message), with upstream's texts."""
    conditions = {kind: ("False", *ok) for kind, ok in OK.items()}
    if left.discovery_error is not None:
        conditions[DISCOVERY_FAILURE] = ("True", "DiscoveryFailed", left.discovery_error)
    if left.errors:
        conditions[CONTENT_FAILURE] = ("True", "ContentDeletionFailed",
                                       f"Failed to delete all resource types, {len(left.errors)} remaining: "
                                       + ", ".join(sorted(left.errors)))
    if left.counts:
        remaining = ", ".join(f"{name} has {count} resource instances" for name, count in sorted(left.counts.items()))
        conditions[CONTENT_REMAINING] = ("True", "SomeResourcesRemain", f"Some resources are remaining: {remaining}")
    if left.finalizers:
        held = ", ".join(f"{name} in {count} resource instances" for name, count in sorted(left.finalizers.items()))
        conditions[FINALIZERS_REMAINING] = ("True", "SomeFinalizersRemain",
                                            f"Some content in the namespace has finalizers remaining: {held}")
    return conditions


def merge_conditions(current: Sequence[Mapping[str, Any]], wanted: Mapping[str, tuple[str, str, str]],
                     now: str) -> list[dict[str, Any]]:
    """The namespace's new condition list: a condition whose status is unchanged keeps its transition time."""
    previous = {str(c.get("type")): c for c in current}
    merged = [dict(c) for c in current if c.get("type") not in wanted]
    for kind, (status, reason, message) in wanted.items():
        old = previous.get(kind)
        since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
        merged.append({"type": kind, "status": status, "lastTransitionTime": since or now,
                       "reason": reason, "message": message})
    return merged


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NamespaceController:
    def __init__(self, client: AsyncClient, *, informers: SharedInformers | None = None, workers: int = 2) -> None:
        self.client = client
        self.controller = Controller("namespace", client, Namespace, self.reconcile, workers=workers,
                                     informers=informers)

    async def reconcile(self, key: str) -> Result | None:
        cached = self.controller.get(key)
        if cached is None or not needs_finalizing(as_dict(cached)):
            return None
        _, name = split_key(key)
        left = await self.delete_content(name)
        await self._report(name, left)
        if not left.done:
            return Result(requeue_after=REQUEUE_S)
        await self._finalize(name)
        return None

    async def delete_content(self, namespace: str) -> Leftovers:
        left = Leftovers()
        try:
            resources = deletable(await discover(self.client))
        except Exception as exc:
            left.discovery_error = f"Discovery failed for some groups: {exc}"
            return left
        for api in resources:
            try:
                left.add(api, await self._delete_all(api, namespace))
            except ApiError as exc:
                if is_status(exc, 404, 405):
                    continue  # no longer served, or not deletable after all
                left.errors.append(f"{api.group_resource}: {exc}")
            except Exception as exc:
                left.errors.append(f"{api.group_resource}: {exc}")
        return left

    async def _delete_all(self, api: ApiResource, namespace: str) -> list[dict[str, Any]]:
        """Delete every object of `api` in `namespace`; the objects still there afterwards."""
        resource: Any = resource_class(api)
        if api.supports("deletecollection"):
            await self.client.deletecollection(resource, namespace=namespace, cascade=CascadeType.BACKGROUND)
        else:
            async for obj in self.client.list(resource, namespace=namespace):
                item = as_dict(obj)
                if (item.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(resource, item["metadata"]["name"], namespace=namespace,
                                             cascade=CascadeType.BACKGROUND)
                except ApiError as exc:
                    if not is_status(exc, 404):
                        raise
        return [as_dict(obj) async for obj in self.client.list(resource, namespace=namespace)]

    async def _report(self, name: str, left: Leftovers) -> None:
        try:
            current = as_dict(await self.client.get(Namespace, name))
        except ApiError:
            return
        existing = (current.get("status") or {}).get("conditions") or []
        merged = merge_conditions(existing, deletion_conditions(left), _now())
        if _without_times(merged) == _without_times(existing):
            return
        await self.client.patch(Namespace.Status, name, {"status": {"conditions": merged}},
                                patch_type=PatchType.MERGE)

    async def _finalize(self, name: str) -> None:
        try:
            current = as_dict(await self.client.get(Namespace, name))
        except ApiError as exc:
            if is_status(exc, 404):
                return
            raise
        if not needs_finalizing(current):
            return
        log.info("namespace %s is empty; finalizing", name)
        await self.client.replace(model(Namespace.Finalize, finalized(current)))


def _without_times(conditions: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conditions)


def namespace_controller(client: AsyncClient, informers: SharedInformers | None = None) -> Controller:
    return NamespaceController(client, informers=informers).controller
