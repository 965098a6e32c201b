"""ResourceClaim controller: claims from templates per pod, and claims freed when their pods end.

As kube-controller-manager's `pkg/controller/resourceclaim/controller.go` (research notes §4):

- For every `spec.resourceClaims` entry of a pod that names a ResourceClaimTemplate, one ResourceClaim is
  created in the pod's namespace: `generateName: <pod>-<pod claim>-`, the template's labels, annotations and
  spec, the annotation `resource.kubernetes.io/pod-claim-name: <pod claim>` and a controller owner reference
  to the pod (so the garbage collector deletes it with the pod). Its name goes into the pod's
  `status.resourceClaimStatuses`, which is also what keeps a second claim from being created while the cache
  has not yet seen the first.
- For every claim: `status.reservedFor` entries of pods that are gone, replaced (another uid) or done are
  removed; a claim reserved for nobody any more is deallocated (`status.allocation` cleared) and loses the
  scheduler's delete-protection finalizer, so a claim shared by several pods stays allocated while any of them
  is still there; a generated claim whose pod is done or gone is deleted.

`plan_pod` and `plan_claim` are the pure halves; the controllers only read caches and write their plans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.resources.resource_v1 import DeviceClass, ResourceClaim, ResourceClaimTemplate
from lightkube.types import PatchType

from kplane.controllers import kube
from kplane.runtime import Controller, Result, SharedInformers, make_key
from kplane.runtime.lkutil import model
from kplane.runtime.objects import is_mapping_type
from kplane.runtime.store import Store

log = logging.getLogger(__name__)

POD_CLAIM_NAME = "resource.kubernetes.io/pod-claim-name"
FINALIZER = "resource.kubernetes.io/delete-protection"
GENERATE_NAME_MAX = 57  # 63 minus the hyphen and five random characters the API server appends
DONE_PHASES = ("Succeeded", "Failed")
# Each reconcile is a couple of API round trips (create the claim, record it in the pod's status), so the
# workers are what bounds how fast claims appear; kube-controller-manager runs this controller with 50
# (cmd/kube-controller-manager/app/core.go defaultResourceClaimControllerWorkers: 10 at first, then 50).
WORKERS = 50

Obj = Mapping[str, Any]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def is_pod_done(pod: Obj) -> bool:
    """A pod that will never run (again): terminal, or deleted before it was bound."""
    phase = (pod.get("status") or {}).get("phase")
    unbound_deleted = bool(_meta(pod).get("deletionTimestamp")) and not (pod.get("spec") or {}).get("nodeName")
    return phase in DONE_PHASES or unbound_deleted


def owning_pod_uid(claim: Obj) -> str | None:
    for ref in _meta(claim).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "Pod" and ref.get("apiVersion") == "v1":
            return str(ref.get("uid"))
    return None


def generated_claim(pod: Obj, pod_claim_name: str, template: Obj) -> dict[str, Any]:
    meta = _meta(pod)
    tmpl = template.get("spec") or {}
    tmpl_meta = tmpl.get("metadata") or {}
    base = f"{meta.get('name')}-{pod_claim_name}"[: GENERATE_NAME_MAX - 1]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "generateName": base + "-",
            "namespace": meta.get("namespace"),
            "labels": dict(tmpl_meta.get("labels") or {}),
            "annotations": {**(tmpl_meta.get("annotations") or {}), POD_CLAIM_NAME: pod_claim_name},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                                 "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": dict(tmpl.get("spec") or {}),
    }


@dataclass
class PodPlan:
    create: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(pod claim name, claim to create)."""
    statuses: list[dict[str, Any]] | None = None
    """The new `status.resourceClaimStatuses` (without the names of claims still to create), or None."""
    missing_templates: list[str] = field(default_factory=list)


def plan_pod(pod: Obj, owned_claims: Sequence[Obj], templates: Callable[[str], Obj | None]) -> PodPlan:
    """Which template claims to create for `pod`, given the claims it already owns."""
    plan = PodPlan()
    if is_pod_done(pod) or _meta(pod).get("deletionTimestamp"):
        return plan
    recorded = {s.get("name"): s for s in (pod.get("status") or {}).get("resourceClaimStatuses") or ()}
    by_pod_claim = {(_meta(c).get("annotations") or {}).get(POD_CLAIM_NAME): c for c in owned_claims}
    statuses: list[dict[str, Any]] = []
    for pod_claim in (pod.get("spec") or {}).get("resourceClaims") or ():
        name = str(pod_claim.get("name") or "")
        template_name = pod_claim.get("resourceClaimTemplateName")
        if not template_name:
            continue
        if name in recorded:
            statuses.append(dict(recorded[name]))
            continue
        existing = by_pod_claim.get(name)
        if existing is not None:
            statuses.append({"name": name, "resourceClaimName": _meta(existing).get("name")})
            continue
        template = templates(str(template_name))
        if template is None:
            plan.missing_templates.append(str(template_name))
            continue
        plan.create.append((name, generated_claim(pod, name, template)))
    if statuses != list(recorded.values()):
        plan.statuses = statuses
    return plan


@dataclass
class ClaimPlan:
    reserved_for: list[dict[str, Any]] | None = None
    """The new `status.reservedFor` when entries go, else None."""
    deallocate: bool = False
    remove_finalizer: bool = False
    delete: bool = False


def plan_claim(claim: Obj, pod_of: Callable[[str], Obj | None]) -> ClaimPlan:
    """`pod_of(name)` is the pod of that name in the claim's namespace (None when there is none)."""
    plan = ClaimPlan()
    status = claim.get("status") or {}
    reserved = list(status.get("reservedFor") or ())

    def valid(ref: Obj) -> bool:
        if ref.get("resource") != "pods" or ref.get("apiGroup"):
            return True  # not ours to judge
        pod = pod_of(str(ref.get("name")))
        return pod is not None and _meta(pod).get("uid") == ref.get("uid") and not is_pod_done(pod)

    kept = [r for r in reserved if valid(r)]
    if len(kept) != len(reserved):
        plan.reserved_for = kept
    finalizers = _meta(claim).get("finalizers") or ()
    deleting = bool(_meta(claim).get("deletionTimestamp"))
    owner = owning_pod_uid(claim)
    pod = None if owner is None else next(
        (p for p in (pod_of(str(r.get("name"))) for r in _meta(claim).get("ownerReferences") or ()
                     if r.get("uid") == owner) if p is not None), None)
    if not kept:
        plan.deallocate = bool(status.get("allocation"))
        plan.remove_finalizer = FINALIZER in finalizers and not (
            not deleting and not reserved and not status.get("allocation") and pod is not None
            and awaiting_node(pod, owner))
    if owner is not None and not deleting:
        gone = pod is None or _meta(pod).get("uid") != owner
        plan.delete = not kept and (gone or is_pod_done(pod or {}))
    return plan


def awaiting_node(pod: Obj, uid: str | None) -> bool:
    """Whether the scheduler may be allocating this pod's claim right now. It writes the delete-protection
    finalizer before the allocation (PreBind), so an unallocated, unreserved claim of such a pod may be between
    those two writes; taking the finalizer away then only makes the scheduler's allocation write conflict and
    retry. Upstream's controller removes the finalizer only when the last reservation goes or the claim is
    being deleted (pkg/controller/resourceclaim/controller.go syncClaim)."""
    return (_meta(pod).get("uid") == uid and not is_pod_done(pod) and not (pod.get("spec") or {}).get("nodeName")
            and not _meta(pod).get("deletionTimestamp"))


def _dicts(objs: Any) -> list[dict[str, Any]]:
    return [kube.as_dict(o) for o in objs]


class CreatedClaims:
    """Claims this controller created that its informer may not show yet, by pod key and uid.

    A pod is reconciled again as soon as anything about it changes, often before the watch delivers the
    claim just created for it; planning from the informer alone would then create a second claim for the same
    pod claim. Upstream's controller keeps a mutation cache for the same reason
    (pkg/controller/resourceclaim/controller.go, `claimCache.Mutation`). An entry goes once the informer has
    the claim, or with the pod."""

    def __init__(self) -> None:
        self._by_pod: dict[str, tuple[str, list[Obj]]] = {}

    def add(self, pod_key: str, pod_uid: str, claim: Obj) -> None:
        uid, claims = self._by_pod.get(pod_key, (pod_uid, []))
        self._by_pod[pod_key] = (pod_uid, [*claims, claim] if uid == pod_uid else [claim])

    def forget(self, pod_key: str) -> None:
        self._by_pod.pop(pod_key, None)

    def merged(self, pod_key: str, pod_uid: str, owned: list[dict[str, Any]], store: Store) -> list[Obj]:
        """`owned` (from the informer) plus the claims created for the pod that the informer lacks."""
        uid, recent = self._by_pod.get(pod_key, (pod_uid, []))
        missing = [c for c in recent if uid == pod_uid
                   and make_key(str(_meta(c).get("namespace")), str(_meta(c).get("name"))) not in store]
        if missing:
            self._by_pod[pod_key] = (uid, missing)
        else:
            self._by_pod.pop(pod_key, None)
        return [*owned, *missing]


def template_claims_recorded(pod: Any) -> bool:
    """Whether every template claim of the pod already has its claim recorded in the pod's status, read off
    the cached object as it is: then a pod event (the pod is bound, runs, changes status) needs no work, and
    most pod events are such."""
    spec, status = _attr(pod, "spec"), _attr(pod, "status")
    wanted = {_attr(c, "name") for c in _attr(spec, "resourceClaims") or () if _attr(c, "resourceClaimTemplateName")}
    recorded = {_attr(s, "name") for s in _attr(status, "resourceClaimStatuses") or ()}
    return wanted <= recorded


def _attr(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if is_mapping_type(type(obj)) else getattr(obj, name, None)


def pod_claim_keys(pod: Any) -> list[str]:
    """Claims a pod names: by `resourceClaimName`, or generated and recorded in its status. Read off the
    cached object as it is (every pod event asks, twice for an update)."""
    namespace = str(_attr(_attr(pod, "metadata"), "namespace") or "")
    names = [_attr(c, "resourceClaimName") for c in _attr(_attr(pod, "spec"), "resourceClaims") or ()]
    names += [_attr(s, "resourceClaimName") for s in _attr(_attr(pod, "status"), "resourceClaimStatuses") or ()]
    return [make_key(namespace, str(n)) for n in names if n]


def pod_controller(client: AsyncClient, informers: SharedInformers) -> Controller:
    created = CreatedClaims()

    async def reconcile(key: str) -> Result | None:
        cached = controller.get(key)
        if cached is None:
            created.forget(key)
            return None
        if template_claims_recorded(cached):
            return None
        pod = kube.as_dict(cached)
        namespace = str(_meta(pod).get("namespace"))
        if not (pod.get("spec") or {}).get("resourceClaims"):
            return None

        def template(name: str) -> Obj | None:
            found = templates.store.get(make_key(namespace, name))
            return None if found is None else kube.as_dict(found)

        uid = str(_meta(pod).get("uid") or "")
        owned = created.merged(key, uid, kube.owned(claims.store, pod), claims.store)
        plan = plan_pod(pod, owned, template)
        statuses = list(plan.statuses if plan.statuses is not None else
                        (pod.get("status") or {}).get("resourceClaimStatuses") or ())
        for pod_claim, body in plan.create:
            claim = kube.as_dict(await client.create(model(ResourceClaim, body)))
            created.add(key, uid, claim)
            statuses.append({"name": pod_claim, "resourceClaimName": _meta(claim).get("name")})
        if plan.create or plan.statuses is not None:
            await kube.patch(client, Pod.Status, str(_meta(pod).get("name")), namespace,
                             {"status": {"resourceClaimStatuses": statuses}})
        if plan.missing_templates:
            log.info("pod %s waits for ResourceClaimTemplate(s) %s", key, ", ".join(plan.missing_templates))
        return None

    controller = Controller("resourceclaim-pods", client, Pod, kube.skip_terminating_namespace(reconcile),
                            informers=informers, workers=WORKERS)
    claims = kube.ensure_owner_index(controller.owns(ResourceClaim))

    def pods_using(template: Any) -> list[str]:
        data = kube.as_dict(template)
        namespace, name = _meta(data).get("namespace"), _meta(data).get("name")
        return [make_key(str(namespace), str(_meta(p).get("name"))) for p in _dicts(controller.informer.store.list())
                if _meta(p).get("namespace") == namespace and any(
                    c.get("resourceClaimTemplateName") == name for c in (p.get("spec") or {}).get("resourceClaims")
                    or ())]

    templates = controller.watches(ResourceClaimTemplate, pods_using)
    return controller


def claim_controller(client: AsyncClient, informers: SharedInformers) -> Controller:
    async def reconcile(key: str) -> Result | None:
        cached = controller.get(key)
        if cached is None:
            return None
        claim = kube.as_dict(cached)
        meta = _meta(claim)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))

        def pod_of(pod_name: str) -> Obj | None:
            found = pods.store.get(make_key(namespace, pod_name))
            return None if found is None else kube.as_dict(found)

        plan = plan_claim(claim, pod_of)
        version = meta.get("resourceVersion")
        status: dict[str, Any] = {}
        if plan.reserved_for is not None:
            status["reservedFor"] = plan.reserved_for or None
        if plan.deallocate:
            status["allocation"] = None
            status["devices"] = None
        try:
            if status:
                updated = await client.patch(ResourceClaim.Status, name, {"metadata": {"resourceVersion": version},
                                                                          "status": status},
                                             namespace=namespace, patch_type=PatchType.MERGE)
                version = updated.metadata.resourceVersion if updated.metadata else version
            if plan.remove_finalizer:
                finalizers = [f for f in meta.get("finalizers") or () if f != FINALIZER]
                await client.patch(ResourceClaim, name,
                                   {"metadata": {"resourceVersion": version, "finalizers": finalizers or None}},
                                   namespace=namespace, patch_type=PatchType.MERGE)
            if plan.delete:
                await kube.delete(client, ResourceClaim, name, namespace)
        except ApiError as exc:
            if kube.is_status(exc, 404):
                return None
            if kube.is_status(exc, 409):
                return Result(requeue=True)  # changed meanwhile: plan again from the newer object
            raise
        return None

    controller = Controller("resourceclaim", client, ResourceClaim, reconcile, informers=informers,
                            workers=WORKERS)
    pods = controller.watches(Pod, pod_claim_keys)
    return controller


async def dra_api_served(client: AsyncClient) -> bool:
    """Whether the cluster serves resource.k8s.io/v1 (Kubernetes 1.34 on); asked once at start."""
    try:
        async for _ in client.list(DeviceClass, chunk_size=1):
            break
    except ApiError as exc:
        if kube.is_status(exc, 404):
            return False
        raise
    return True


def resourceclaim_controllers(client: AsyncClient, informers: SharedInformers) -> list[Controller]:
    return [pod_controller(client, informers), claim_controller(client, informers)]


async def run_dra_components(client: AsyncClient, informers: SharedInformers,
                             extra: Sequence[Callable[[], Any]] = ()) -> None:
    """The claim controllers (and `extra` DRA components, e.g. the simulated GPU driver), only where the API
    serves resource.k8s.io/v1: on older levels they would wait for caches that never fill."""
    if not await dra_api_served(client):
        log.info("resource.k8s.io/v1 is not served; DRA controllers stay off")
        return
    await asyncio.gather(*(c.run() for c in resourceclaim_controllers(client, informers)),
                         *(component() for component in extra))
