"""Serving CustomResourceDefinitions: the in-server part of apiextensions.

When a CRD is stored, its resources join the registry (and so discovery, OpenAPI and routing) and its
status gets ``NamesAccepted``/``Established``; when a CRD is deleted its objects are deleted first, held
by the ``customresourcecleanup.apiextensions.k8s.io`` finalizer, as upstream. This runs inside the API
server because it changes what the server serves, not what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kplane.api import meta
from kplane.api.crd import accepted_status, crd_resource_types, crd_schema
from kplane.apiserver.registry import Registry
from kplane.storage import CompactedError, Event, KeyNotFoundError, RevisionConflictError, Store

log = logging.getLogger("kplane.apiserver.crds")
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
CRD_PREFIX = "/registry/apiextensions.k8s.io/customresourcedefinitions/"

Obj = dict[str, Any]


class CrdServing:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._task: asyncio.Task[None] | None = None
        self.crds: dict[str, Obj] = {}

    def crd(self, name: str) -> Obj | None:
        return self.crds.get(name)

    def schemas(self) -> dict[tuple[str, str, str], Any]:
        """(group, version, kind) → ``openAPIV3Schema`` of every served CRD version, for OpenAPI."""
        out: dict[tuple[str, str, str], Any] = {}
        for crd in self.crds.values():
            for rtype in self.registry.crd_types(crd["metadata"]["name"]):
                schema = crd_schema(crd, rtype.version)
                if schema is not None:
                    out[(rtype.group, rtype.version, rtype.kind)] = schema
        return out

    async def start(self) -> None:
        snapshot = self.store.list(CRD_PREFIX)
        for crd in snapshot.items:
            await self._reconcile(crd)
        self._task = asyncio.create_task(self._run(snapshot.revision), name="crd-serving")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, since: int) -> None:
        while True:
            try:
                watcher = self.store.watch(CRD_PREFIX, since)
                async for event in watcher:
                    since = event.revision
                    await self._handle(event)
            except CompactedError:
                snapshot = self.store.list(CRD_PREFIX)
                live = {c["metadata"]["name"] for c in snapshot.items}
                for name in set(self.crds) - live:
                    self._forget(name)
                for crd in snapshot.items:
                    await self._reconcile(crd)
                since = snapshot.revision
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("CRD serving failed; resuming")
                await asyncio.sleep(0.5)

    async def _handle(self, event: Event) -> None:
        if event.type == "DELETED":
            self._forget(event.obj["metadata"]["name"])
            return
        current = self.store.get(event.key)
        if current is not None:
            await self._reconcile(current)

    def _forget(self, name: str) -> None:
        self.crds.pop(name, None)
        self.registry.remove_crd(name)

    async def _reconcile(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self.crds[name] = crd
        types = crd_resource_types(crd)
        if crd["metadata"].get("deletionTimestamp"):
            await self._cleanup(crd, types)
            return
        if self.registry.conflicts_with(name, types) is None:
            self.registry.set_crd(name, types)
        await self._write_status(crd)

    async def _write_status(self, crd: Obj) -> None:
        wanted = meta.deep_copy(crd)
        finalizers = wanted["metadata"].setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CLEANUP_FINALIZER)
        new_status = accepted_status(crd)
        old_conditions = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}
        for condition in new_status.get("conditions", []):
            previous = old_conditions.get(condition.get("type"))
            if previous and previous.get("status") == condition.get("status"):
                condition["lastTransitionTime"] = previous.get("lastTransitionTime")
        wanted["status"] = new_status
        if wanted == crd:
            return
        await self._update(crd, wanted)

    async def _update(self, crd: Obj, wanted: Obj) -> None:
        key = CRD_PREFIX + crd["metadata"]["name"]
        try:
            stored = await self.store.update(key, wanted, expected_revision=int(crd["metadata"]["resourceVersion"]))
            self.crds[crd["metadata"]["name"]] = stored
        except (RevisionConflictError, KeyNotFoundError):
            return  # a newer version is on its way through the watch

    async def _cleanup(self, crd: Obj, types: list[Any]) -> None:
        if types:
            prefix = types[0].key_prefix()
            for item in self.store.list(prefix).items:
                key = types[0].key(item["metadata"].get("namespace"), item["metadata"]["name"])
                try:
                    await self.store.delete(key)
                except KeyNotFoundError:
                    continue
        wanted = meta.deep_copy(crd)
        wanted["metadata"]["finalizers"] = [f for f in wanted["metadata"].get("finalizers") or []
                                            if f != CLEANUP_FINALIZER]
        key = CRD_PREFIX + crd["metadata"]["name"]
        try:
            if not wanted["metadata"]["finalizers"]:
                await self.store.delete(key, expected_revision=int(crd["metadata"]["resourceVersion"]))
            else:
                await self.store.update(key, wanted, expected_revision=int(crd["metadata"]["resourceVersion"]))
        except (RevisionConflictError, KeyNotFoundError):
            return
