"""The garbage collector: watches every deletable resource and applies ownerReference semantics.

As kube-controller-manager's garbage collector (pkg/controller/garbagecollector): one monitor (informer)
per resource that supports list, watch and delete, events excepted; monitors are re-synced from discovery
periodically and whenever a CRD changes, so custom resources added later are collected without a restart.
Monitor events feed an ownership graph (`ownergraph`), which names the objects to look at; a work queue
keyed by uid runs the decisions, verifying owners the graph does not know with a GET (an informer for
the owner's kind may simply lag behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.core import resource as lkres
from lightkube.core.exceptions import ApiError
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType
from prometheus_client import CollectorRegistry

from kplane.controllers.discovery import ApiResource, by_kind, discover, resource_class
from kplane.controllers.ownergraph import (
    FOREGROUND,
    ORPHAN,
    Node,
    ObjectId,
    OwnerGraph,
    OwnerRef,
    OwnerState,
    blocking_dependents,
    json_patch_without_finalizer,
    json_patch_without_owners,
    node_from,
    owner_state,
    plan_dependent,
)
from kplane.runtime import EventHandler, ExponentialBackoff, Informer, SharedInformers, WorkQueue
from kplane.runtime.lkutil import as_dict, is_status
from kplane.runtime.metrics import RESULT_ERROR, RESULT_SUCCESS, metrics_for
from kplane.runtime.objects import metadata_field
from kplane.runtime.workqueue import run_workers

log = logging.getLogger(__name__)

NAME = "garbagecollector"
# garbagecollector.go: events are never owners worth tracking and would dominate the graph.
IGNORED_RESOURCES = frozenset({"events", "events.events.k8s.io"})
DEFAULT_RESYNC_S = 30.0
ABSENT_CACHE_SIZE = 4096
SYNC_TIMEOUT_S = 60.0


class UnknownKind(Exception):
    """An ownerReference names a kind the server does not serve (yet): retry after the next discovery."""


def monitorable(api: ApiResource) -> bool:
    return api.supports("list", "watch", "delete") and api.group_resource not in IGNORED_RESOURCES


@dataclass
class Monitor:
    api: ApiResource
    resource: type
    informer: Informer
    handler: EventHandler


def collection_state(obj: Any) -> tuple[Any, Any, Any]:
    """All an update can change of an object's graph node: owner references, deletion and finalizers (name,
    namespace, kind and uid never change). Updates that leave it alone — nearly all are status writes — need
    no graph work, as in upstream's processGraphChanges."""
    return (metadata_field(obj, "ownerReferences"), metadata_field(obj, "deletionTimestamp"),
            metadata_field(obj, "finalizers"))


class GarbageCollector:
    def __init__(
        self,
        client: AsyncClient,
        *,
        informers: SharedInformers | None = None,
        workers: int = 4,
        resync_s: float = DEFAULT_RESYNC_S,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.client = client
        self.informers = informers if informers is not None else SharedInformers(client)
        self.workers = workers
        self.resync_s = resync_s
        self.graph = OwnerGraph()
        self._metrics = metrics_for(registry)
        self._monitors: dict[str, Monitor] = {}
        self._kinds: dict[tuple[str, str], ApiResource] = {}
        self._absent: dict[str, None] = {}
        self._queue: WorkQueue[str] | None = None
        self._rediscover = asyncio.Event()

    def __repr__(self) -> str:
        return "GarbageCollector()"

    async def run(self) -> None:
        """Run until cancelled: workers start once every monitor has listed, so decisions see the graph."""
        queue: WorkQueue[str] = WorkQueue(ExponentialBackoff())
        self._queue = queue
        self._metrics.queue_depth.labels(NAME).set_function(lambda: len(queue))
        crds = self.informers.get(CustomResourceDefinition)
        wake = crds.add_handler(EventHandler(on_add=lambda _: self._rediscover.set(),
                                             on_update=lambda *_: self._rediscover.set(),
                                             on_delete=lambda _: self._rediscover.set()))
        crds.start()
        try:
            await self._resync_monitors()
            await self._wait_synced()
            log.info("%r: %d monitors synced, graph has %d objects", self, len(self._monitors), len(self.graph))
            async with asyncio.TaskGroup() as group:
                group.create_task(run_workers(queue, self.workers, self._process))
                group.create_task(self._resync_forever())
        finally:
            queue.shut_down()
            self._queue = None
            self._metrics.queue_depth.labels(NAME).set_function(lambda: 0)
            crds.remove_handler(wake)
            for name in list(self._monitors):
                await self._stop_monitor(name)
            with contextlib.suppress(Exception):
                await crds.stop()

    # --- monitors ---------------------------------------------------------------------------------

    async def _wait_synced(self) -> None:
        """Wait for the first lists; a monitor that cannot list (yet) must not hold up the others for long."""
        waits = [asyncio.ensure_future(m.informer.wait_synced()) for m in self._monitors.values()]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=SYNC_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            unsynced = [name for name, m in self._monitors.items() if not m.informer.has_synced()]
            log.warning("%r: starting before these monitors synced: %s", self, ", ".join(unsynced))

    async def _resync_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_s):
                    await self._rediscover.wait()
            self._rediscover.clear()
            try:
                await self._resync_monitors()
            except Exception as exc:
                log.warning("%r: discovery failed, keeping %d monitors: %s", self, len(self._monitors), exc)

    async def _resync_monitors(self) -> None:
        resources = await discover(self.client)
        self._kinds = by_kind(resources)
        wanted = {api.group_resource: api for api in resources if monitorable(api)}
        for name, monitor in list(self._monitors.items()):
            if wanted.get(name) != monitor.api:
                await self._stop_monitor(name)
        for name, api in wanted.items():
            if name not in self._monitors:
                self._start_monitor(api)

    def _start_monitor(self, api: ApiResource) -> None:
        try:
            resource = resource_class(api)
        except ValueError as exc:
            log.warning("%r: cannot monitor %s: %s", self, api.group_resource, exc)
            return
        informer = self.informers.get(resource)
        key = api.group_resource

        def upsert(obj: Any) -> None:
            node = node_from(key, as_dict(obj))
            if node is not None:
                self._enqueue(self.graph.upsert(node))

        def remove(obj: Any) -> None:
            node = node_from(key, as_dict(obj))
            if node is not None:
                self._remember_absent(node.uid)
                self._enqueue(self.graph.remove(node.uid))

        def update(old: Any, new: Any) -> None:
            if collection_state(old) != collection_state(new):
                upsert(new)

        handler = informer.add_handler(EventHandler(on_add=upsert, on_update=update, on_delete=remove))
        informer.start()
        self._monitors[key] = Monitor(api, resource, informer, handler)

    async def _stop_monitor(self, name: str) -> None:
        monitor = self._monitors.pop(name)
        monitor.informer.remove_handler(monitor.handler)
        with contextlib.suppress(Exception):
            await monitor.informer.stop()
        self._enqueue(self.graph.remove_resource(name))

    def _enqueue(self, uids: set[str]) -> None:
        if self._queue is not None:
            for uid in uids:
                self._queue.add(uid)

    # --- decisions --------------------------------------------------------------------------------

    async def _process(self, uid: str) -> None:
        assert self._queue is not None
        started = time.perf_counter()
        try:
            await self.reconcile(uid)
        except UnknownKind as exc:
            log.warning("%r: %s; retrying after the next discovery", self, exc)
            self._queue.add_after(uid, self.resync_s)
            self._count(RESULT_ERROR)
        except Exception as exc:
            if is_status(exc, 409, 422):
                log.info("%r: %s changed while being collected, retrying: %s", self, uid, exc)
            else:
                log.exception("%r: collecting %s failed", self, uid)
            self._metrics.reconcile_errors.labels(NAME).inc()
            self._queue.add_rate_limited(uid)
            self._count(RESULT_ERROR)
        else:
            self._queue.forget(uid)
            self._count(RESULT_SUCCESS)
        finally:
            self._metrics.reconcile_time.labels(NAME).observe(time.perf_counter() - started)

    def _count(self, result: str) -> None:
        self._metrics.reconcile_total.labels(NAME, result).inc()

    async def reconcile(self, uid: str) -> None:
        node = self.graph.get(uid)
        if node is None:
            return
        if node.deleting_dependents:
            await self._delete_dependents(node)
        elif node.orphaning:
            await self._orphan_dependents(node)
        elif not node.deleting:
            await self._collect(node)

    async def _delete_dependents(self, owner: Node) -> None:
        """Foreground: have every dependent looked at (they see this owner waiting), and drop the
        finalizer once no dependent blocks the owner any more."""
        dependents = self.graph.dependents(owner.uid)
        self._enqueue({dep.uid for dep in dependents if not dep.deleting})
        if not blocking_dependents(owner, dependents):
            await self._remove_finalizer(owner, FOREGROUND)

    async def _orphan_dependents(self, owner: Node) -> None:
        for dep in self.graph.dependents(owner.uid):
            await self._drop_owners(dep, (owner.uid,))
        await self._remove_finalizer(owner, ORPHAN)

    async def _collect(self, node: Node) -> None:
        states = {ref.uid: await self._owner_state(ref, node) for ref in node.owners}
        decision = plan_dependent(node, states, bool(self.graph.dependents(node.uid)))
        if decision.delete_policy is not None:
            log.info("%r: deleting %s (%s) with propagation %s", self, _describe(node.ident), node.uid,
                     decision.delete_policy)
            await self._delete(node, decision.delete_policy)
        elif decision.remove_uids:
            await self._drop_owners(node, decision.remove_uids)

    async def _owner_state(self, ref: OwnerRef, dependent: Node) -> OwnerState:
        if ref.uid in self._absent:
            return OwnerState.DANGLING
        api = self._kinds.get((ref.group, ref.kind))
        if api is None:
            raise UnknownKind(f"{_describe(dependent.ident)} names an owner of unknown kind "
                              f"{ref.kind} in {ref.api_version!r}")
        known = owner_state(self.graph.get(ref.uid), ref, dependent, api.namespaced)
        if known is not None:
            return known
        if api.namespaced and not dependent.ident.namespace:
            return OwnerState.DANGLING  # a cluster-scoped object cannot have a namespaced owner
        try:
            owner = await self._get(resource_class(api), dependent.ident.namespace if api.namespaced else "",
                                    ref.name, api.namespaced)
        except ApiError as exc:
            if not is_status(exc, 404):
                raise
            self._remember_absent(ref.uid)
            return OwnerState.DANGLING
        meta = owner.get("metadata") or {}
        if meta.get("uid") != ref.uid:
            self._remember_absent(ref.uid)
            return OwnerState.DANGLING
        waiting = bool(meta.get("deletionTimestamp")) and FOREGROUND in (meta.get("finalizers") or [])
        return OwnerState.WAITING if waiting else OwnerState.SOLID

    def _remember_absent(self, uid: str) -> None:
        if len(self._absent) >= ABSENT_CACHE_SIZE:
            self._absent.pop(next(iter(self._absent)))
        self._absent[uid] = None

    # --- writes -----------------------------------------------------------------------------------

    def _monitor_of(self, node: Node) -> Monitor | None:
        return self._monitors.get(node.ident.resource)

    async def _get(self, resource: type, namespace: str, name: str, namespaced: bool) -> dict[str, Any]:
        if namespaced:
            return as_dict(await self.client.get(resource, name, namespace=namespace))
        return as_dict(await self.client.get(resource, name))

    async def _patch(self, node: Node, ops: list[dict[str, Any]]) -> None:
        monitor = self._monitor_of(node)
        if monitor is None:
            return
        namespace = node.ident.namespace or None
        await self.client.patch(monitor.resource, node.ident.name, ops, namespace=namespace,
                                patch_type=PatchType.JSON)

    async def _fresh(self, node: Node) -> dict[str, Any] | None:
        monitor = self._monitor_of(node)
        if monitor is None:
            return None
        try:
            obj = await self._get(monitor.resource, node.ident.namespace, node.ident.name, monitor.api.namespaced)
        except ApiError as exc:
            if is_status(exc, 404):
                return None
            raise
        return obj if (obj.get("metadata") or {}).get("uid") == node.uid else None

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        obj = await self._fresh(node)
        ops = json_patch_without_finalizer(obj, finalizer) if obj is not None else None
        if ops is not None:
            log.info("%r: removing finalizer %s from %s", self, finalizer, _describe(node.ident))
            await self._patch(node, ops)

    async def _drop_owners(self, node: Node, uids: tuple[str, ...]) -> None:
        obj = await self._fresh(node)
        ops = json_patch_without_owners(obj, uids) if obj is not None else None
        if ops is not None:
            log.info("%r: removing owner references %s from %s", self, ",".join(uids), _describe(node.ident))
            await self._patch(node, ops)

    async def _delete(self, node: Node, policy: str) -> None:
        """DELETE with a uid precondition (never a newer object of the same name) and a propagation policy.

        lightkube's `delete` takes no DeleteOptions body, so the request is built with its own builder and
        given the body, as its `request` method does.
        """
        monitor = self._monitor_of(node)
        if monitor is None:
            return
        generic = self.client._client
        namespaced = issubclass(monitor.resource, lkres.NamespacedResource)
        request = generic.prepare_request("delete", res=monitor.resource, name=node.ident.name,
                                          namespace=node.ident.namespace if namespaced else None)
        request.data = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": policy,
                        "preconditions": {"uid": node.uid}}
        response = await generic.send(generic.build_adapter_request(request))
        try:
            generic.handle_response("delete", response, request)
        except ApiError as exc:
            if not is_status(exc, 404, 409):
                raise


def _describe(ident: ObjectId) -> str:
    return f"{ident.resource} {ident.namespace}/{ident.name}" if ident.namespace else f"{ident.resource} {ident.name}"
