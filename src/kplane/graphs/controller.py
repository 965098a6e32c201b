"""The ResourceGraphDefinition controller (kro's ``pkg/controller/resourcegraphdefinition``, v0.9).

It installs the RGD and GraphRevision CRDs itself (what kro's Helm chart does), then for each RGD: when its
spec (by hash) differs from its latest GraphRevision, validates it with ``build_graph`` against the built-in
schemas and the cluster's CRDs and issues the next revision (``revisions``); server-side applies the generated
CRD (refusing a CRD kro does not own, another RGD owns, or a breaking schema change unless the RGD carries
``kro.run/allow-breaking-changes: "true"``: ``breaking``); and runs one :class:`InstanceController` for the
kind, in this process, without a restart. An update swaps the graph in and re-reconciles every instance; an
invalid update issues no revision, so the last good graph keeps serving (kro's test "should keep serving the
last good revision when a later RGD update is invalid"); a refused CRD update also keeps the old graph (kro
would serve the new revision against the old CRD). Old revisions past ``max_graph_revisions`` are deleted.
Deleting an RGD stops its instance controller and leaves the CRD (kro deletes it only with
``--allow-crd-deletion``); its revisions go with it by owner reference. A new or changed CRD re-reconciles
RGDs that are not Active, so a chained RGD is accepted once the kinds it composes exist.
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
from kplane.graphs import revisions as rev
from kplane.graphs.breaking import allows_breaking_changes, update_refusal
from kplane.graphs.graph import Graph, build_graph
from kplane.graphs.instance import InstanceController, now, plain, signature_of
from kplane.graphs.kinds import Kind, Kinds, served_minor
from kplane.graphs.rgdcrd import graph_revision_crd, rgd_crd
from kplane.graphs.validation import GraphError
from kplane.runtime import Controller, Result, SharedInformers
from kplane.runtime.objects import labels_of, name_of

log = logging.getLogger(__name__)

CRD_MANAGER = "kro.run/resourcegraphdefinition-controller"
RGD_KIND = Kind("kro.run", "v1alpha1", "ResourceGraphDefinition", "resourcegraphdefinitions", False)
GRAPH_REVISION = Kind(rev.GROUP, rev.VERSION, rev.KIND, rev.PLURAL, False)
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


def crd_problem(existing: Mapping[str, Any] | None, desired: Mapping[str, Any], rgd_name: str, *,
                allow_breaking: bool) -> str | None:
    """Why the generated CRD may not be applied over ``existing`` (kro's ``CRDWrapper.Ensure``), or None."""
    problem = ownership_error(existing, rgd_name)
    if problem is None and existing is not None:
        problem = update_refusal(existing, desired, allow_breaking=allow_breaking)
    return problem


def _api_message(exc: ApiError) -> str:
    return str(exc.status.message) if exc.status is not None and exc.status.message else str(exc)


def graph_crd(graph: Graph, rgd_uid: str) -> dict[str, Any]:
    crd = {**graph.crd, "metadata": dict(graph.crd["metadata"])}
    crd["metadata"]["labels"] = {**(crd["metadata"].get("labels") or {}), aps.RGD_ID: rgd_uid,
                                 aps.RGD_NAME: graph.name}
    return crd


def rgd_status(graph: Graph | None, conditions: list[cond.Condition], old: Any, *, generation: int | None = None,
               last_issued: int | None = None) -> dict[str, Any]:
    """Status as kro writes it; ``resources`` lists only nodes that have dependencies. The root ``Ready`` stands
    on GraphRevisionsResolved, GraphAccepted, KindReady and ControllerReady; ``state`` on the last three."""
    old_status = old if isinstance(old, Mapping) else {}
    rooted = rev.with_ready(conditions)
    status: dict[str, Any] = {
        "conditions": cond.render_conditions(rooted, old_status.get("conditions"), generation, now()),
        "state": cond.rgd_state(conditions)}
    if last_issued is not None:
        status["lastIssuedRevision"] = last_issued
    elif "lastIssuedRevision" in old_status:
        status["lastIssuedRevision"] = old_status["lastIssuedRevision"]
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
                 instance_workers: int = 16, max_graph_revisions: int = rev.DEFAULT_MAX_REVISIONS) -> None:
        self.client = client
        self.max_graph_revisions = max_graph_revisions
        self.registry = rev.RevisionRegistry()
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
        """Install (or update) the ResourceGraphDefinition and GraphRevision CRDs and wait until both are served."""
        for crd in (rgd_crd(), graph_revision_crd()):
            while True:
                out = plain(await self.client.patch(CustomResourceDefinition, crd["metadata"]["name"], crd,
                                                    patch_type=PatchType.APPLY, field_manager=CRD_MANAGER,
                                                    force=True))
                if is_established(out):
                    break
                await asyncio.sleep(ESTABLISH_POLL_S)

    async def reconcile(self, key: str) -> Result | None:
        cached = self.controller.get(key)
        if cached is None:
            await self._stop(key)
            self.registry.retain(key, ())
            return None
        rgd = plain(cached)
        meta = rgd.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            await self._stop(key)
            self.registry.retain(key, ())
            await self._set_finalizer(rgd, present=False)
            return None
        if aps.FINALIZER not in (meta.get("finalizers") or []):
            await self._set_finalizer(rgd, present=True)
        uid = str(meta.get("uid", ""))
        live, terminating = rev.split_live(await self._list_revisions(key), key)
        await self._adopt(live, key, uid)
        if not live and not terminating:
            self.registry.retain(key, ())
        kept = [c for c in self._old_conditions(rgd) if c.type in (cond.KIND_READY, cond.CONTROLLER_READY)]
        if terminating:
            await self._write_status(rgd, None, [rev.settling(), *kept])
            return Result(requeue_after=ESTABLISH_POLL_S)
        issued = await self._resolve(rgd, live, kept)
        if issued is None:
            return None
        if isinstance(issued, Result):
            return issued
        graph, revisions_condition, last_issued = issued
        return await self._ensure_serving(rgd, graph, [revisions_condition, cond.accepted()], last_issued)

    async def _resolve(self, rgd: dict[str, Any], live: list[dict[str, Any]], kept: list[cond.Condition],
                       ) -> tuple[Graph, cond.Condition, int] | Result | None:
        """kro's revision resolution: serve the latest revision when it matches the spec; otherwise validate the
        spec and issue the next revision. An invalid spec issues nothing, so the latest good revision keeps
        serving while GraphAccepted says why the update was refused."""
        name = name_of(rgd)
        current = rev.spec_hash(rgd.get("spec") or {})
        last_issued = (rgd.get("status") or {}).get("lastIssuedRevision")
        latest = rev.revision_of(live[-1]) if live else 0
        entry = (self.registry.get(name, latest) or await self._compile(rgd, live[-1])) if live else None
        if entry is not None and entry.hash == current:
            if entry.graph is None:
                message = rev.compile_failed(latest)
                await self._write_status(rgd, None, [rev.unresolved(message), cond.invalid(message), *kept],
                                         last_issued=rev.issued(last_issued, latest))
                return None
            return entry.graph, rev.resolved(latest), rev.issued(last_issued, latest)
        revisions_condition = rev.resolved(latest) if entry is not None else next(
            (c for c in self._old_conditions(rgd) if c.type == rev.GRAPH_REVISIONS_RESOLVED),
            rev.awaiting(rev.GRAPH_REVISIONS_RESOLVED))
        try:
            graph = build_graph(rgd, schemas=self.kinds.schemas(), kube_minor=self.kube_minor)
        except GraphError as err:
            await self._write_status(rgd, None, [revisions_condition, cond.invalid(str(err)), *kept],
                                     last_issued=rev.issued(last_issued, latest) or None)
            return None
        number = rev.next_revision(last_issued, latest)
        try:
            await self._issue(rgd, number, current, graph)
        except ApiError as exc:
            message = f"creating graph revision {rev.revision_name(name, number)!r}: {_api_message(exc)}"
            await self._write_status(rgd, None, [revisions_condition, cond.invalid(message), *kept])
            return Result(requeue=True)
        return graph, rev.resolved(number), number

    async def _ensure_serving(self, rgd: dict[str, Any], graph: Graph, resolved: list[cond.Condition],
                              last_issued: int) -> Result | None:
        """Ensure the CRD (refusing a breaking change unless the RGD allows it), then serve the graph. While
        the CRD is refused the instance controller keeps the graph it had."""
        name = name_of(rgd)
        uid = str((rgd.get("metadata") or {}).get("uid", ""))
        crd = graph_crd(graph, uid)
        crd_name = crd["metadata"]["name"]
        existing = self.crds.store.get(crd_name)
        problem = crd_problem(plain(existing) if existing is not None else None, crd, graph.name,
                              allow_breaking=allows_breaking_changes(rgd))
        if problem is None:
            try:
                applied = plain(await self.client.patch(CustomResourceDefinition, crd_name, crd,
                                                        patch_type=PatchType.APPLY, field_manager=CRD_MANAGER,
                                                        force=True))
            except ApiError as exc:
                problem = f"failed to ensure CRD {crd_name}: {_api_message(exc)}"
        if problem is not None:
            await self._write_status(rgd, graph, [*resolved, cond.kind_unready(problem), *self._kept_controller(rgd)],
                                     last_issued=last_issued)
            return Result(requeue=True)
        if not is_established(applied):
            await self._write_status(rgd, graph, [*resolved, cond.kind_unready(
                f"CRD {crd_name} is not established yet"), *self._kept_controller(rgd)], last_issued=last_issued)
            return Result(requeue_after=ESTABLISH_POLL_S)
        try:
            self._serve(name, graph, uid)
        except Exception as exc:
            await self._write_status(rgd, graph, [*resolved, cond.kind_ready(graph.kind),
                                                  cond.controller_failed(str(exc))], last_issued=last_issued)
            return Result(requeue=True)
        await self._write_status(rgd, graph, [*resolved, cond.kind_ready(graph.kind), cond.controller_running()],
                                 last_issued=last_issued)
        await self._prune_revisions(name)
        return None

    def _kept_controller(self, rgd: Mapping[str, Any]) -> list[cond.Condition]:
        return [c for c in self._old_conditions(rgd) if c.type == cond.CONTROLLER_READY]

    async def _list_revisions(self, rgd_name: str) -> list[dict[str, Any]]:
        """Straight from the API server, not a cache: a stale list would issue a revision twice (as kro's
        direct reader avoids)."""
        listed: Any = self.client.list(GRAPH_REVISION.resource, fields={rev.SNAPSHOT_NAME_FIELD: rgd_name})
        return [plain(o) async for o in listed]

    async def _adopt(self, live: list[dict[str, Any]], rgd_name: str, uid: str) -> None:
        """Own revisions left without this RGD as controller (an orphan delete, or the RGD recreated), so
        garbage collection removes them with it."""
        for gr in live:
            if rev.is_owned_by(gr, uid):
                continue
            owners = rev.adopted_owners(gr, rgd_name, uid)
            meta = gr.get("metadata") or {}
            with contextlib.suppress(ApiError):
                await self.client.patch(GRAPH_REVISION.resource, str(meta.get("name")),
                                        {"metadata": {"ownerReferences": owners,
                                                      "resourceVersion": meta.get("resourceVersion")}},
                                        patch_type=PatchType.MERGE)
            meta["ownerReferences"] = owners

    async def _compile(self, rgd: dict[str, Any], gr: Mapping[str, Any]) -> rev.Entry:
        """Compile a revision found in the API but not in the registry (after a restart): kro's GraphRevision
        controller, which also records the outcome on the revision's status."""
        number = rev.revision_of(gr)
        snapshot = rev.snapshot_rgd(gr, rgd)
        hash_ = rev.spec_hash(snapshot.get("spec") or {})
        try:
            entry = rev.Entry(number, hash_, build_graph(snapshot, schemas=self.kinds.schemas(),
                                                         kube_minor=self.kube_minor))
        except GraphError as err:
            entry = rev.Entry(number, hash_, None, str(err))
        await self._write_revision_status(gr, entry)
        self.registry.put(name_of(rgd), entry)
        return entry

    async def _issue(self, rgd: dict[str, Any], number: int, hash_: str, graph: Graph) -> None:
        created = plain(await self.client.create(GRAPH_REVISION.resource(rev.graph_revision(rgd, number, hash_))))
        entry = rev.Entry(number, hash_, graph)
        self.registry.put(name_of(rgd), entry)
        log.info("issued graph revision %s", name_of(created))
        await self._write_revision_status(created, entry)

    async def _write_revision_status(self, gr: Mapping[str, Any], entry: rev.Entry) -> None:
        old = gr.get("status") or {}
        status = rev.revision_status(entry, old, (gr.get("metadata") or {}).get("generation"), now())
        if cond.same_status(old, status):
            return
        with contextlib.suppress(ApiError):
            await self.client.patch(GRAPH_REVISION.resource.Status, name_of(gr),  # type: ignore[attr-defined]
                                    {"status": aps.merge_patch(old, status)}, patch_type=PatchType.MERGE)

    async def _prune_revisions(self, rgd_name: str) -> None:
        """Keep the newest ``max_graph_revisions`` revisions (best effort, as kro's retention GC)."""
        live, _ = rev.split_live(await self._list_revisions(rgd_name), rgd_name)
        doomed = set(rev.to_prune(live, self.max_graph_revisions))
        for name in sorted(doomed):
            try:
                await self.client.delete(GRAPH_REVISION.resource, name)
            except ApiError as exc:
                if exc.status is None or exc.status.code != 404:
                    log.warning("could not delete graph revision %s: %s", name, _api_message(exc))
        self.registry.retain(rgd_name, [rev.revision_of(gr) for gr in live if name_of(gr) not in doomed])

    def _serve(self, name: str, graph: Graph, uid: str) -> None:
        current = self.running.get(name)
        if current is not None and current[0].graph is graph and current[0].rgd_uid == uid:
            return
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

    async def _write_status(self, rgd: Mapping[str, Any], graph: Graph | None, conditions: list[cond.Condition],
                            *, last_issued: int | None = None) -> None:
        old = rgd.get("status") or {}
        generation = (rgd.get("metadata") or {}).get("generation")
        status = rgd_status(graph, rev.complete(conditions), old,
                            generation=generation if isinstance(generation, int) else None, last_issued=last_issued)
        if cond.same_status(old, status):
            return
        try:
            await self.client.patch(RGD_KIND.resource.Status, name_of(rgd),  # type: ignore[attr-defined]
                                    {"status": aps.merge_patch(old, status)}, patch_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status is None or exc.status.code != 404:
                raise
