"""The instance controller: one per RGD, reconciling every instance of its generated kind (kro's dynamic
controller and ``pkg/controller/instance``, v0.9).

A pass: GET the instance (from the cache); while it is being deleted, delete its children wave by wave,
dependents first, from the ApplySet inventory alone (no CEL), then drop the finalizer. Otherwise make sure it
carries kro's finalizer and labels, stop at ``kro.run/reconcile: suspended``, and render the graph. Every node
whose dependencies are observed and ready and whose expressions all resolve is server-side applied (field
manager ``kro.run/applyset``, forced) with ApplySet labels; the apply responses are what is observed, so the
pass renders again and applies the nodes they unblock, until nothing more can go. A node whose cached child
still carries the very body this controller last applied is observed from the cache instead, during the
render, and not applied again (:mod:`kplane.graphs.drift`): most passes are caused by children's status.
When no node is pending or failed, children of this ApplySet that were not applied (includeWhen turned
false, a collection shrank, a resource left the RGD) are pruned dependents first. Status is rebuilt from
scratch and written only when it changed; an instance that is not ACTIVE is looked at again after kro's
requeue interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from kplane.api.selectors import label_selector_from_dict
from kplane.graphs import applyset as aps
from kplane.graphs import conditions as cond
from kplane.graphs import drift
from kplane.graphs.graph import Graph, Resource
from kplane.graphs.kinds import Kind, Kinds, crd_kinds
from kplane.graphs.render import RenderedResource, RenderResult, render
from kplane.runtime import Controller, Informer, Result, SharedInformers, make_key
from kplane.runtime.objects import labels_of

log = logging.getLogger(__name__)

REQUEUE_S = 3.0
"""kro's ``--instance-requeue-interval`` default."""
DELETE_POLL_S = 1.0
PART_OF_INDEX = "kro-part-of"
DEFAULT_WORKERS = 16

ChildRef = tuple[str, str, str, str]
"""A child by group, kind, namespace and name."""


def plain(obj: Any) -> dict[str, Any]:
    return dict(obj) if isinstance(obj, Mapping) else obj.to_dict()


def _part_of(obj: Any) -> list[str]:
    value = labels_of(obj).get(aps.PART_OF)
    return [value] if value else []


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(exc: BaseException) -> str:
    if isinstance(exc, ApiError) and exc.status is not None and exc.status.message:
        return str(exc.status.message)
    return str(exc) or type(exc).__name__


def applicable(res: RenderedResource) -> bool:
    """kro applies a node only when it is included, resolved, and every dependency is observed and ready."""
    return bool(res.included) and not res.external and not res.pending and not res.waiting_for and not res.error


def clean_pass(result: RenderResult, applied: Mapping[str, str | None]) -> bool:
    """Prune only after a pass where no node was pending and no apply failed (kro's prune-safety rule)."""
    for res in result.resources.values():
        if res.included is False:
            continue
        if res.included is None or res.error or res.pending or res.waiting_for:
            return False
        if not res.external and (res.id not in applied or applied[res.id]):
            return False
    return True


class InstanceController:
    """Reconciles instances of one RGD's kind; ``update`` swaps in a new graph and re-reconciles them all."""

    def __init__(self, client: AsyncClient, informers: SharedInformers, kinds: Kinds, graph: Graph, rgd_uid: str,
                 *, workers: int = DEFAULT_WORKERS) -> None:
        # The instance kind comes from the generated CRD itself: the CRD cache may not have caught up with it yet.
        instance_kind = crd_kinds(graph.crd)[0]
        self.client = client
        self.kinds = kinds
        self.graph = graph
        self.rgd_uid = rgd_uid
        self.instance_kind = instance_kind
        self.controller = Controller(f"kro:{graph.kind.lower()}.{graph.group}", client, instance_kind.resource,
                                     self.reconcile, workers=workers, informers=informers)
        self.child_kinds: dict[tuple[str, str], Kind] = {}
        self.caches: dict[Kind, Informer] = {}
        self._external: dict[Kind, Informer] = {}
        for res in graph.ordered():
            found = kinds.lookup(res.api_version, res.kind)
            if found is None:
                continue
            self.child_kinds[(res.api_version, res.kind)] = found
            if res.is_external:
                if found not in self._external:
                    self._external[found] = self.controller.watches(found.resource, lambda _: [])
            elif found not in self.caches:
                informer = self.controller.watches(found.resource, self._owner_keys, labels={aps.OWNED: "true"})
                with contextlib.suppress(ValueError):
                    informer.store.add_indexer(PART_OF_INDEX, _part_of)
                self.caches[found] = informer
        self._orders = aps.apply_orders(graph)
        self._applied: dict[str, dict[ChildRef, drift.Applied]] = {}
        """Per instance key, the last apply of each child (see :mod:`kplane.graphs.drift`)."""

    @property
    def signature(self) -> frozenset[tuple[str, str, bool]]:
        """What the watches depend on; a graph with another signature needs a new controller."""
        return signature_of(self.graph)

    def update(self, graph: Graph, rgd_uid: str) -> None:
        self.graph = graph
        self.rgd_uid = rgd_uid
        self._orders = aps.apply_orders(graph)
        for key in self.controller.informer.store:
            self.controller.enqueue(key)

    async def run(self) -> None:
        await self.controller.run()

    def _owner_keys(self, obj: Any) -> list[str]:
        labels = labels_of(obj)
        if labels.get(aps.INSTANCE_KIND) != self.graph.kind or labels.get(aps.INSTANCE_GROUP) != self.graph.group:
            return []
        return [make_key(labels.get(aps.INSTANCE_NAMESPACE, ""), labels.get(aps.INSTANCE_NAME, ""))]

    async def reconcile(self, key: str) -> Result | None:
        cached = self.controller.get(key)
        if cached is None:
            self._applied.pop(key, None)
            return None
        inst = plain(cached)
        graph = self.graph
        if (inst.get("metadata") or {}).get("deletionTimestamp"):
            return await self._finalize(graph, inst)
        if aps.needs_management(graph, self.rgd_uid, inst):
            inst = await self._manage(graph, inst)
        if aps.is_suspended(inst):
            await self._write_status(graph, inst, None, [cond.managed(), cond.resolved(), cond.suspended()],
                                     cond.IN_PROGRESS)
            return None
        return await self._sync(graph, inst)

    # -- management -------------------------------------------------------------------------------------------

    def _instance_ref(self, inst: Mapping[str, Any]) -> dict[str, Any]:
        meta = inst.get("metadata") or {}
        ref: dict[str, Any] = {"name": meta.get("name")}
        if self.instance_kind.namespaced:
            ref["namespace"] = meta.get("namespace")
        return {"apiVersion": self.graph.api_version, "kind": self.graph.kind, "metadata": ref}

    async def _ssa_instance(self, inst: Mapping[str, Any], metadata: Mapping[str, Any], manager: str
                            ) -> dict[str, Any]:
        body = self._instance_ref(inst)
        body["metadata"].update(metadata)
        meta = inst.get("metadata") or {}
        out: Any = await self.client.patch(self.instance_kind.resource, str(meta.get("name")), body,
                                      namespace=meta.get("namespace") or None, patch_type=PatchType.APPLY,
                                      field_manager=manager, force=True)
        return plain(out)

    async def _manage(self, graph: Graph, inst: dict[str, Any]) -> dict[str, Any]:
        """kro's labeller: finalizer and ownership labels in one forced apply."""
        return await self._ssa_instance(inst, {"labels": aps.instance_labels(graph, self.rgd_uid, inst),
                                               "finalizers": [aps.FINALIZER]}, aps.LABELLER_MANAGER)

    async def _record_inventory(self, inst: dict[str, Any], group_kinds: Iterable[str], namespaces: Iterable[str],
                                *, keep_existing: bool) -> dict[str, Any]:
        wanted = aps.parent_annotations(inst, group_kinds, namespaces, keep_existing=keep_existing)
        if not aps.annotations_differ(inst, wanted):
            return inst
        return await self._ssa_instance(inst, {"annotations": wanted}, aps.PARENT_MANAGER)

    # -- sync -------------------------------------------------------------------------------------------------

    async def _sync(self, graph: Graph, inst: dict[str, Any]) -> Result | None:
        set_id = aps.instance_applyset_id(graph, inst)
        observed: dict[str, Any] = {}
        applied: dict[str, str | None] = {}
        uids: set[str] = set()
        memory = self._applied.setdefault(self._key(inst), {})

        def unchanged(res: RenderedResource) -> Any:
            """A child whose last apply still stands is observed as it is, without applying it again."""
            objects = self._unchanged(graph, inst, res, memory)
            if objects is None:
                return None
            applied[res.id] = None
            uids.update(str((o.get("metadata") or {}).get("uid")) for o in objects)
            observed[res.id] = objects if graph.resources[res.id].is_collection else objects[0]
            return observed[res.id]

        result = render(graph, inst, observed, unchanged)
        for _ in range(len(graph.order) + 1):
            found = self._observe_external(graph, result, observed)
            batch = [r for r in result.resources.values() if applicable(r) and r.id not in applied]
            if not batch and not found:
                break
            if batch:
                # The inventory grows before any apply, with every kind the graph may still create, so one write
                # usually covers the whole pass.
                inst = await self._record_inventory(
                    inst, [aps.group_kind(graph.resources[rid].api_version, graph.resources[rid].kind)
                           for rid, r in result.resources.items() if r.included is not False and not r.external],
                    [str((o.get("metadata") or {}).get("namespace") or "") for r in batch for o in r.objects],
                    keep_existing=True)
                outcomes = await asyncio.gather(*(self._apply(graph, inst, r, set_id) for r in batch))
                for r, (objects, error) in zip(batch, outcomes, strict=True):
                    applied[r.id] = error
                    uids.update(str((o.get("metadata") or {}).get("uid")) for o in objects)
                    if not error:
                        observed[r.id] = objects if graph.resources[r.id].is_collection else objects[0]
            result = render(graph, inst, observed, unchanged)
        if clean_pass(result, applied):
            await self._prune(graph, inst, set_id, uids)
            inst = await self._record_inventory(
                inst, {aps.group_kind(graph.resources[rid].api_version, graph.resources[rid].kind)
                       for rid, r in result.resources.items() if r.included and not r.external},
                [str((o.get("metadata") or {}).get("namespace") or "")
                 for r in result.resources.values() if r.included and not r.external for o in r.objects],
                keep_existing=False)
        states = cond.node_states(result, applied)
        state = cond.instance_state(states)
        conditions = [cond.managed(), cond.resolved(), cond.resources_condition(result, states, applied)]
        await self._write_status(graph, inst, result, conditions, state)
        if state == cond.ERROR:
            return Result(requeue=True)
        return None if state == cond.INSTANCE_ACTIVE else Result(requeue_after=REQUEUE_S)

    def _kind(self, res: Resource) -> Kind | None:
        found = self.child_kinds.get((res.api_version, res.kind))
        if found is None:
            found = self.kinds.lookup(res.api_version, res.kind)
        return found

    def _observe_external(self, graph: Graph, result: RenderResult, observed: dict[str, Any]) -> bool:
        """Read external references (never written) from the cache once their identity resolves."""
        found = False
        for rid, res in result.resources.items():
            spec = graph.resources[rid]
            if not spec.is_external or rid in observed or not res.included or res.pending or not res.objects:
                continue
            kind = self._kind(spec)
            informer = self._external.get(kind) if kind is not None else None
            if informer is None:
                continue
            meta = res.objects[0].get("metadata") or {}
            if spec.is_external_collection:
                selector = label_selector_from_dict(meta.get("selector") or {})
                namespace = meta.get("namespace")
                observed[rid] = [plain(o) for o in informer.store.list()
                                 if selector.matches(labels_of(o))
                                 and (not namespace or (plain(o).get("metadata") or {}).get("namespace") == namespace)]
                found = True
            else:
                live = informer.store.get(make_key(str(meta.get("namespace") or "") if kind and kind.namespaced
                                                   else "", str(meta.get("name", ""))))
                if live is not None:
                    observed[rid] = plain(live)
                    found = True
        return found

    def _key(self, inst: Mapping[str, Any]) -> str:
        meta = inst.get("metadata") or {}
        return make_key(str(meta.get("namespace") or ""), str(meta.get("name", "")))

    def _bodies(self, graph: Graph, inst: dict[str, Any], res: RenderedResource) -> list[dict[str, Any]]:
        collection = graph.resources[res.id].is_collection
        return [aps.child_object(graph, inst, res.id, obj, self._orders.get(res.id, 0),
                                 i if collection else None, len(res.objects) if collection else None)
                for i, obj in enumerate(res.objects)]

    def _live(self, kind: Kind, body: Mapping[str, Any]) -> tuple[ChildRef, dict[str, Any] | None]:
        meta = body["metadata"]
        namespace = str(meta.get("namespace") or "") if kind.namespaced else ""
        informer = self.caches.get(kind)
        cached = informer.store.get(make_key(namespace, str(meta.get("name", "")))) if informer is not None else None
        return (kind.group, kind.kind, namespace, str(meta.get("name", ""))), \
            (plain(cached) if cached is not None else None)

    def _still_applied(self, kind: Kind, body: Mapping[str, Any], memory: dict[ChildRef, drift.Applied]
                       ) -> Mapping[str, Any] | None:
        ref, live = self._live(kind, body)
        last = memory.get(ref)
        informer = self.caches.get(kind)
        seen = drift.still_applied(last, body, live, informer.resource_version if informer else None)
        if seen is not None and last is not None and seen is not last.obj:
            memory[ref] = replace(last, obj=seen)
        return seen

    def _unchanged(self, graph: Graph, inst: dict[str, Any], res: RenderedResource,
                   memory: dict[ChildRef, drift.Applied]) -> list[dict[str, Any]] | None:
        spec = graph.resources[res.id]
        kind = None if spec.is_external else self._kind(spec)
        if kind is None:
            return None
        found = []
        for body in self._bodies(graph, inst, res):
            seen = self._still_applied(kind, body, memory)
            if seen is None:
                return None
            found.append(dict(seen))
        return found

    async def _apply(self, graph: Graph, inst: dict[str, Any], res: RenderedResource, set_id: str
                     ) -> tuple[list[dict[str, Any]], str | None]:
        spec = graph.resources[res.id]
        kind = self._kind(spec)
        if kind is None:
            return [], f"kind {spec.kind} ({spec.api_version}) is not served"
        bodies = self._bodies(graph, inst, res)
        memory = self._applied.setdefault(self._key(inst), {})
        refs = []
        for body in bodies:
            ref, live = self._live(kind, body)
            if live is not None and aps.belongs_elsewhere(live, set_id):
                return [], (f"{spec.kind} {body['metadata'].get('name')}: resource belongs to a different "
                            f"ApplySet ({labels_of(live).get(aps.PART_OF)})")
            refs.append(ref)
        try:
            out = await asyncio.gather(*(self._apply_one(kind, body) for body in bodies))
        except ApiError as exc:
            for ref in refs:
                memory.pop(ref, None)
            return [], _message(exc)
        for ref, body, response in zip(refs, bodies, out, strict=True):
            memory[ref] = drift.Applied.of(body, response)
        return out, None

    async def _apply_one(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        out: Any = await self.client.patch(kind.resource, str(meta.get("name")), body,
                                      namespace=meta.get("namespace") if kind.namespaced else None,
                                      patch_type=PatchType.APPLY, field_manager=aps.APPLY_MANAGER, force=True)
        return plain(out)

    # -- prune and delete -------------------------------------------------------------------------------------

    async def _members(self, graph: Graph, inst: Mapping[str, Any], set_id: str) -> list[tuple[Kind, dict[str, Any]]]:
        """Every live child of the ApplySet, found through the inventory's group-kinds (and the graph's)."""
        annotations = (inst.get("metadata") or {}).get("annotations") or {}
        group_kinds = set(aps.parse_list(annotations.get(aps.GROUP_KINDS)))
        group_kinds |= {aps.group_kind(r.api_version, r.kind) for r in graph.resources.values() if not r.is_external}
        members: list[tuple[Kind, dict[str, Any]]] = []
        for gk in sorted(group_kinds):
            kind = self.kinds.preferred(*aps.split_group_kind(gk))
            if kind is None:
                continue
            informer = self.caches.get(kind)
            if informer is not None:
                members.extend((kind, plain(o)) for o in informer.store.by_index(PART_OF_INDEX, set_id))
                continue
            listed: Any = self.client.list(kind.resource, namespace="*" if kind.namespaced else None,
                                      labels={aps.PART_OF: set_id})
            members.extend([(kind, plain(o)) async for o in listed])
        return members

    async def _delete(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        try:
            await self.client.delete(kind.resource, str(meta.get("name")),
                                     namespace=meta.get("namespace") if kind.namespaced else None)
        except ApiError as exc:
            if exc.status is None or exc.status.code != 404:
                raise

    async def _delete_waves(self, doomed: list[tuple[Kind, dict[str, Any]]]) -> None:
        for order in sorted({aps.apply_order_of(o) for _, o in doomed}, reverse=True):
            await asyncio.gather(*(self._delete(k, o) for k, o in doomed if aps.apply_order_of(o) == order))

    async def _prune(self, graph: Graph, inst: Mapping[str, Any], set_id: str, keep: set[str]) -> None:
        doomed = [(k, o) for k, o in await self._members(graph, inst, set_id)
                  if (o.get("metadata") or {}).get("uid") not in keep
                  and not (o.get("metadata") or {}).get("deletionTimestamp")]
        if doomed:
            log.info("pruning %d children of %s", len(doomed), set_id)
            await self._delete_waves(doomed)

    async def _finalize(self, graph: Graph, inst: dict[str, Any]) -> Result | None:
        """kro's ordered deletion: only the highest remaining wave is deleted; the next waits until it is gone."""
        meta = inst.get("metadata") or {}
        if aps.FINALIZER not in (meta.get("finalizers") or []):
            return None
        self._applied.pop(self._key(inst), None)
        members = await self._members(graph, inst, aps.instance_applyset_id(graph, inst))
        if not members:
            finalizers = [f for f in meta.get("finalizers") or [] if f != aps.FINALIZER]
            try:
                await self.client.patch(self.instance_kind.resource, str(meta.get("name")),
                                        {"metadata": {"finalizers": finalizers,
                                                      "resourceVersion": meta.get("resourceVersion")}},
                                        namespace=meta.get("namespace") or None, patch_type=PatchType.MERGE)
            except ApiError as exc:
                if exc.status is not None and exc.status.code == 404:
                    return None
                return Result(requeue=True)
            return None
        await self._write_status(graph, inst, None,
                                 [cond.managed(), cond.resolved(), cond.under_deletion(len(members))],
                                 cond.DELETING)
        top = max(aps.apply_order_of(o) for _, o in members)
        wave = [(k, o) for k, o in members
                if aps.apply_order_of(o) == top and not (o.get("metadata") or {}).get("deletionTimestamp")]
        await asyncio.gather(*(self._delete(k, o) for k, o in wave))
        return Result(requeue_after=DELETE_POLL_S)

    # -- status -----------------------------------------------------------------------------------------------

    async def _write_status(self, graph: Graph, inst: Mapping[str, Any], result: RenderResult | None,
                            conditions: list[cond.Condition], state: str) -> None:
        """Status from kro's built-in conditions, or from the author's when the RGD declares them."""
        meta = inst.get("metadata") or {}
        old = inst.get("status") or {}
        authored = cond.authored(graph, inst, result, conditions, state)
        if authored is not None and authored.errors:
            log.warning("author conditions of %s degraded: %s", self._key(inst), "; ".join(authored.errors))
        status = cond.instance_status(result, conditions, state, old, meta.get("generation"), now(), authored)
        if cond.same_status(old, status):
            return
        try:
            await self.client.patch(self.instance_kind.resource.Status,  # type: ignore[attr-defined]
                                    str(meta.get("name")), {"status": aps.merge_patch(old, status)},
                                    namespace=meta.get("namespace") or None, patch_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status is None or exc.status.code != 404:
                raise


def signature_of(graph: Graph) -> frozenset[tuple[str, str, bool]]:
    return frozenset((r.api_version, r.kind, r.is_external) for r in graph.resources.values())
