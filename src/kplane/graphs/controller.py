"""The ResourceGraphDefinition controller (kro's ``pkg/controller/resourcegraphdefinition``, v0.9).

It installs the RGD CRD itself (what kro's Helm chart does), then for each RGD: validates it with
``build_graph`` against the built-in schemas and the cluster's CRDs, server-side applies the generated CRD
(refusing a CRD kro does not own or another RGD owns), and runs one :class:`InstanceController` for the kind,
in this process, without a restart. An update swaps the graph in and re-reconciles every instance; an invalid
update keeps the last good graph serving (kro's GraphRevision behaviour). Deleting an RGD stops its instance
controller and leaves the CRD (kro deletes it only with ``--allow-crd-deletion``). A new or changed CRD
re-reconciles RGDs that are not Active, so a chained RGD is accepted once the kinds it composes exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.core.generic_client import BasicRequest
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType

from kplane.graphs import applyset as aps
from kplane.graphs import conditions as cond
from kplane.graphs.graph import Graph, build_graph
from kplane.graphs.instance import InstanceController, now, plain, signature_of
from kplane.graphs.kinds import Kind, Kinds, served_minor
from kplane.graphs.rgdcrd import RGD_CRD_NAME, rgd_crd
from kplane.graphs.validation import GraphError
from kplane.runtime import Controller, Result, SharedInformers
from kplane.runtime.objects import labels_of, name_of

log = logging.getLogger(__name__)

CRD_MANAGER = "kro.run/resourcegraphdefinition-controller"
RGD_KIND = Kind("kro.run", "v1alpha1", "ResourceGraphDefinition", "resourcegraphdefinitions", False)
ESTABLISH_POLL_S = 0.5
RESTART_DELAY_S = 1.0


async def get_json(client: AsyncClient, path: str) -> Any:
    """A GET that lightkube has no method for, through its own request builder (so with its auth and TLS)."""
    generic = client._client
    response = await generic.send(generic.build_adapter_request(BasicRequest(method="GET", url=path.lstrip("/"))))
    generic.raise_for_status(response)
    return orjson.loads(response.content)


def is_established(crd: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def ownership_error(existing: Mapping[str, Any] | None, rgd_name: str) -> str | None:
    """kro's CRD ensure refuses a name taken by a CRD it does not own or that another RGD owns."""
    if existing is None:
        return None
    labels = (existing.get("metadata") or {}).get("labels") or {}
    name = (existing.get("metadata") or {}).get("name")
    if labels.get(aps.OWNED) != "true":
        return f"failed to ensure CRD {name}: CRD exists and is not owned by KRO"
    owner = labels.get(aps.RGD_NAME)
    if owner and owner != rgd_name:
        return f"failed to ensure CRD {name}: CRD is owned by another ResourceGraphDefinition {owner}"
    return None


def graph_crd(graph: Graph, rgd_uid: str) -> dict[str, Any]:
    crd = {**graph.crd, "metadata": dict(graph.crd["metadata"])}
    crd["metadata"]["labels"] = {**(crd["metadata"].get("labels") or {}), aps.RGD_ID: rgd_uid,
                                 aps.RGD_NAME: graph.name}
    return crd


def rgd_status(graph: Graph | None, conditions: list[cond.Condition], old: Any) -> dict[str, Any]:
    """Status as kro writes it; ``resources`` lists only nodes that have dependencies."""
    old_status = old if isinstance(old, Mapping) else {}
    rooted = cond.with_root(conditions, cond.RGD_CONDITIONS)
    status: dict[str, Any] = {"conditions": cond.render_conditions(rooted, old_status.get("conditions"), None, now()),
                              "state": cond.rgd_state(conditions)}
    if graph is not None:
        status["topologicalOrder"] = list(graph.order)
        resources = [{"id": r.id, "dependencies": [{"id": d} for d in r.dependencies]}
                     for r in graph.ordered() if r.dependencies]
        if resources:
            status["resources"] = resources
    else:
        for key in ("topologicalOrder", "resources"):
            if key in old_status:
                status[key] = old_status[key]
    return status


class RgdController:
    """Runs the RGD controller and, under it, one instance controller per accepted RGD."""

    def __init__(self, client: AsyncClient, informers: SharedInformers, *, kube_minor: int = 36,
                 instance_workers: int = 16) -> None:
        self.client = client
        self.informers = informers
        self.kube_minor = kube_minor
        self.instance_workers = instance_workers
        self.crds = informers.get(CustomResourceDefinition)
        self.kinds = Kinds(kube_minor, self.crds.store.list)
        self.controller = Controller("kro:resourcegraphdefinitions", client, RGD_KIND.resource, self.reconcile,
                                     informers=informers)
        self.controller.watches(CustomResourceDefinition, self._rgds_for_crd)
        self.running: dict[str, tuple[InstanceController, asyncio.Task[None]]] = {}

    def _rgds_for_crd(self, crd: Any) -> list[str]:
        keys = {key for key in self.controller.informer.store
                if (plain(self.controller.informer.store.get(key) or {}).get("status") or {}).get("state")
                != cond.ACTIVE}
        owner = labels_of(crd).get(aps.RGD_NAME)
        if owner:
            keys.add(owner)
        return sorted(keys)

    async def run(self) -> None:
        await self.ensure_rgd_crd()
        await self.adopt_server_level()
        try:
            await self.controller.run()
        finally:
            for name in list(self.running):
                await self._stop(name)

    async def adopt_server_level(self) -> None:
        """Serve the built-in kinds and schemas of the API level the server emulates, not a fixed one (what an
        RGD may compose is what the server serves)."""
        try:
            info = await get_json(self.client, "/version")
        except Exception as exc:
            log.warning("could not read the server's /version, assuming 1.%d: %s", self.kube_minor, exc)
            return
        minor = served_minor(info) if isinstance(info, Mapping) else None
        if minor is not None and minor != self.kube_minor:
            log.info("the API server serves level 1.%d", minor)
            self.kube_minor = minor
            self.kinds = Kinds(minor, self.crds.store.list)

    async def ensure_rgd_crd(self) -> None:
        """Install (or update) the ResourceGraphDefinition CRD and wait until it is served."""
        while True:
            out = plain(await self.client.patch(CustomResourceDefinition, RGD_CRD_NAME, rgd_crd(),
                                                patch_type=PatchType.APPLY, field_manager=CRD_MANAGER, force=True))
            if is_established(out):
                return
            await asyncio.sleep(ESTABLISH_POLL_S)

    async def reconcile(self, key: str) -> Result | None:
        cached = self.controller.get(key)
        if cached is None:
            await self._stop(key)
            return None
        rgd = plain(cached)
        meta = rgd.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            await self._stop(key)
            await self._set_finalizer(rgd, present=False)
            return None
        if aps.FINALIZER not in (meta.get("finalizers") or []):
            await self._set_finalizer(rgd, present=True)
        try:
            graph = build_graph(rgd, schemas=self.kinds.schemas(), kube_minor=self.kube_minor)
        except GraphError as err:
            kept = [c for c in self._old_conditions(rgd) if c.type in (cond.KIND_READY, cond.CONTROLLER_READY)]
            await self._write_status(rgd, None, [cond.invalid(str(err)), *kept])
            return None
        uid = str(meta.get("uid", ""))
        crd = graph_crd(graph, uid)
        existing = self.crds.store.get(crd["metadata"]["name"])
        problem = ownership_error(plain(existing) if existing is not None else None, graph.name)
        if problem is None:
            try:
                applied = plain(await self.client.patch(CustomResourceDefinition, crd["metadata"]["name"], crd,
                                                        patch_type=PatchType.APPLY, field_manager=CRD_MANAGER,
                                                        force=True))
            except ApiError as exc:
                problem = f"failed to ensure CRD {crd['metadata']['name']}: {exc.status.message or exc}"
        if problem is not None:
            await self._write_status(rgd, graph, [cond.accepted(), cond.kind_unready(problem)])
            return Result(requeue=True)
        if not is_established(applied):
            await self._write_status(rgd, graph, [cond.accepted(), cond.kind_unready(
                f"CRD {crd['metadata']['name']} is not established yet")])
            return Result(requeue_after=ESTABLISH_POLL_S)
        try:
            self._serve(key, graph, uid)
        except Exception as exc:
            await self._write_status(rgd, graph, [cond.accepted(), cond.kind_ready(graph.kind),
                                                  cond.controller_failed(str(exc))])
            return Result(requeue=True)
        await self._write_status(rgd, graph, [cond.accepted(), cond.kind_ready(graph.kind), cond.controller_running()])
        return None

    def _serve(self, name: str, graph: Graph, uid: str) -> None:
        current = self.running.get(name)
        if current is not None and current[0].signature == signature_of(graph) \
                and (current[0].graph.api_version, current[0].graph.kind) == (graph.api_version, graph.kind):
            current[0].update(graph, uid)
            return
        if current is not None:
            self._cancel(name)
        instances = InstanceController(self.client, self.informers, self.kinds, graph, uid,
                                       workers=self.instance_workers)
        task = asyncio.ensure_future(self._supervise(instances))
        self.running[name] = (instances, task)
        log.info("serving %s.%s/%s for ResourceGraphDefinition %s", graph.kind, graph.group, graph.version, name)

    async def _supervise(self, instances: InstanceController) -> None:
        while True:
            try:
                await instances.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("instance controller for %s crashed; restarting", instances.graph.kind)
            await asyncio.sleep(RESTART_DELAY_S)

    def _cancel(self, name: str) -> asyncio.Task[None] | None:
        current = self.running.pop(name, None)
        if current is None:
            return None
        current[1].cancel()
        return current[1]

    async def _stop(self, name: str) -> None:
        task = self._cancel(name)
        if task is not None:
            log.info("stopped the instance controller of ResourceGraphDefinition %s", name)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _set_finalizer(self, rgd: Mapping[str, Any], *, present: bool) -> None:
        meta = rgd.get("metadata") or {}
        finalizers = [f for f in meta.get("finalizers") or [] if f != aps.FINALIZER]
        if present:
            finalizers.append(aps.FINALIZER)
        elif len(finalizers) == len(meta.get("finalizers") or []):
            return
        with contextlib.suppress(ApiError):
            await self.client.patch(RGD_KIND.resource, name_of(rgd),
                                    {"metadata": {"finalizers": finalizers,
                                                  "resourceVersion": meta.get("resourceVersion")}},
                                    patch_type=PatchType.MERGE)

    @staticmethod
    def _old_conditions(rgd: Mapping[str, Any]) -> list[cond.Condition]:
        return [cond.Condition(str(c.get("type")), str(c.get("status")), str(c.get("reason", "")),
                               str(c.get("message", "")))
                for c in (rgd.get("status") or {}).get("conditions") or [] if isinstance(c, Mapping)]

    async def _write_status(self, rgd: Mapping[str, Any], graph: Graph | None,
                            conditions: list[cond.Condition]) -> None:
        old = rgd.get("status") or {}
        status = rgd_status(graph, conditions, old)
        if cond.same_status(old, status):
            return
        try:
            await self.client.patch(RGD_KIND.resource.Status, name_of(rgd),  # type: ignore[attr-defined]
                                    {"status": aps.merge_patch(old, status)}, patch_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status is None or exc.status.code != 404:
                raise
