"""Dynamic Resource Allocation in the scheduler: kube-scheduler's DynamicResources plugin, for kplane.

Upstream (pkg/scheduler/framework/plugins/dynamicresources/dynamicresources.go, 1.35; research notes §4) the
plugin resolves a pod's claims before anything else (PreEnqueue/PreFilter), allocates the unallocated ones per
candidate node (Filter, with one allocator per pod), remembers the chosen node's allocation as in flight so
that pods placed meanwhile see those devices as used (Reserve), and writes the delete-protection finalizer,
`status.allocation` and `status.reservedFor` before the pod is bound (PreBind). Here:

- :meth:`DraPlugin.prepare` is PreFilter: a pod without claims costs nothing; a pod whose claims do not exist
  yet waits quietly (`Wait`); a missing class makes it unschedulable; otherwise a :class:`PodClaims`.
- :meth:`PodClaims.filter` is the Filter, a plain `placement.Filter`; it calls the pure allocator
  (:func:`kplane.dra.allocator.allocate`) and caches each node's result.
- :meth:`DraPlugin.reserve` (synchronous, so no other pod runs in between) and :meth:`DraPlugin.prebind`.

Reasons are upstream's texts: "cannot allocate all claims", "resourceclaim not available on the node".
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.resource_v1 import DeviceClass, ResourceClaim, ResourceSlice
from lightkube.types import PatchType

from kplane.dra.allocator import AllocatedState, AllocationOutcome, Slice, SliceIndex, allocate
from kplane.dra.features import Features, features_for
from kplane.dra.tracking import AllocationTracker, OutcomeMemo, claims_fingerprint
from kplane.runtime import EventHandler, SharedInformers, key_of
from kplane.runtime.objects import resource_version_of
from kplane.scheduler.placement import FilterStatus, NodeInfo, PodInfo, term_matches

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
AllocateFn = Callable[..., AllocationOutcome]

FINALIZER = "resource.kubernetes.io/delete-protection"  # resource/v1 Finalizer
REASON_CANNOT_ALLOCATE = "cannot allocate all claims"
REASON_NOT_ON_NODE = "resourceclaim not available on the node"
CLAIM_NOT_CREATED = "ResourceClaim not created yet"  # resourceclaim.ErrClaimNotFound
RESERVED_FOR_MAX = 256
# Statuses are immutable; the filter returns these rather than building one per rejected node.
NOT_ON_NODE = FilterStatus((REASON_NOT_ON_NODE,), unresolvable=True)
CANNOT_ALLOCATE = FilterStatus((REASON_CANNOT_ALLOCATE,), unresolvable=True)


class ReserveError(Exception):
    """The claims could not be written for this placement (changed or allocated elsewhere meanwhile)."""


@dataclass(frozen=True)
class Wait:
    """The pod cannot be tried yet (upstream's PreEnqueue / UnschedulableAndUnresolvable in PreFilter).
    `event` says whether a FailedScheduling event is due (PreFilter) or the pod just waits (PreEnqueue)."""

    message: str
    event: bool = False


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def claim_name_for(pod: Obj, pod_claim: Obj) -> tuple[str | None, bool, str]:
    """`resourceclaim.Name`: (claim name, whether it must be owned by the pod, error). A template claim
    without an entry in `status.resourceClaimStatuses` is not created yet; an entry without a name means
    the pod needs no claim."""
    if pod_claim.get("resourceClaimName"):
        return str(pod_claim["resourceClaimName"]), False, ""
    if pod_claim.get("resourceClaimTemplateName"):
        for status in (pod.get("status") or {}).get("resourceClaimStatuses") or ():
            if status.get("name") == pod_claim.get("name"):
                name = status.get("resourceClaimName")
                return (str(name) if name else None), True, ""
        meta = _meta(pod)
        return None, True, f'pod "{meta.get("namespace")}/{meta.get("name")}": {CLAIM_NOT_CREATED}'
    return None, False, f'pod claim "{pod_claim.get("name")}": neither resourceClaimName nor template set'


def is_for_pod(pod: Obj, claim: Obj) -> bool:
    uid = _meta(pod).get("uid")
    return any(ref.get("uid") == uid and ref.get("controller") for ref in _meta(claim).get("ownerReferences") or ())


def pod_reference(pod: Obj) -> dict[str, Any]:
    meta = _meta(pod)
    return {"resource": "pods", "name": meta.get("name"), "uid": meta.get("uid")}


def is_reserved_for(claim: Obj, pod: Obj) -> bool:
    uid = _meta(pod).get("uid")
    return any(r.get("uid") == uid for r in (claim.get("status") or {}).get("reservedFor") or ())


def resolve_claims(pod: Obj, lookup: Callable[[str], Obj | None]) -> list[Obj] | Wait:
    """The pod's claims in `spec.resourceClaims` order, or why it must wait (`foreachPodResourceClaim`)."""
    claims: list[Obj] = []
    for pod_claim in (pod.get("spec") or {}).get("resourceClaims") or ():
        name, must_own, error = claim_name_for(pod, pod_claim)
        if error:
            return Wait(error)
        if name is None:
            continue
        claim = lookup(name)
        if claim is None:
            return Wait(f'resourceclaim.resource.k8s.io "{name}" not found')
        if _meta(claim).get("deletionTimestamp"):
            return Wait(f'resourceclaim "{name}" is being deleted')
        if must_own and not is_for_pod(pod, claim):
            return Wait(f'ResourceClaim {_meta(claim).get("namespace")}/{name} was not created for pod '
                        f'{_meta(pod).get("namespace")}/{_meta(pod).get("name")} (pod is not owner)')
        claims.append(claim)
    return claims


def missing_class(claim: Obj, classes: Mapping[str, Obj]) -> str:
    """Upstream checks every class of an unallocated claim in PreFilter; the first missing one, or ''."""
    for request in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or ():
        selections = [request.get("exactly")] if request.get("exactly") else list(request.get("firstAvailable") or ())
        for selection in selections:
            name = (selection or {}).get("deviceClassName") or ""
            if name and name not in classes:
                return f"request {request.get('name')}: device class {name} does not exist"
    return ""


def allocation_node_terms(claim: Obj) -> Sequence[Obj] | None:
    """Where an allocated claim is usable: its `nodeSelector` terms (any one must match; an empty list matches
    no node), or None for everywhere (no allocation, or no `nodeSelector`)."""
    selector = ((claim.get("status") or {}).get("allocation") or {}).get("nodeSelector")
    if not selector:
        return None
    return tuple(selector.get("nodeSelectorTerms") or ())


@dataclass
class PodClaims:
    """One pod's claims for one scheduling attempt (upstream's cycle state). With a `memo` and `tracker`
    (and `slices` a :class:`SliceIndex`), a node's answer is reused while nothing it depends on changed."""

    pod: Obj
    claims: Sequence[Obj]
    to_allocate: Sequence[Obj]
    slices: Sequence[Slice] | SliceIndex
    classes: Mapping[str, Obj]
    allocated: AllocatedState
    features: Features
    allocate: AllocateFn = allocate
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    memo: OutcomeMemo | None = None
    tracker: AllocationTracker | None = None

    @cached_property
    def _fingerprint(self) -> bytes:
        return claims_fingerprint(self.to_allocate)

    @cached_property
    def _remembered(self) -> tuple[OutcomeMemo, AllocationTracker, SliceIndex] | None:
        if self.memo is None or self.tracker is None or not isinstance(self.slices, SliceIndex):
            return None
        return self.memo, self.tracker, self.slices

    @cached_property
    def _node_terms(self) -> tuple[Sequence[Obj], ...]:
        """The selector terms of each allocated claim bound to some nodes, worked out once per pod rather than
        once per node."""
        return tuple(terms for terms in map(allocation_node_terms, self.claims) if terms is not None)

    def filter(self, _pod: PodInfo, node: NodeInfo) -> FilterStatus | None:
        for terms in self._node_terms:
            if not any(term_matches(term, node) for term in terms):
                return NOT_ON_NODE
        if not self.to_allocate:
            return None
        remembered = self._remembered
        known, results = False, None
        if remembered is not None:
            memo, tracker, index = remembered
            known, results = memo.get(node.name, self._fingerprint, node.node, index, self.classes, self.features,
                                      tracker)
        if not known:
            outcome = self.allocate(node.node, self.to_allocate, self.slices, self.classes, self.allocated,
                                    self.features)
            if outcome.error and not outcome.node_failure:
                # Upstream turns this into a scheduling error for the whole pod; kplane reports it per node so
                # the event shows the allocator's text instead of retrying silently.
                self.errors[node.name] = outcome.error
                return FilterStatus((outcome.error,), unresolvable=True)
            complete = outcome.results is not None and len(outcome.results) == len(self.to_allocate)
            results = outcome.results if complete else None
            if remembered is not None and not outcome.error:
                memo, tracker, index = remembered
                memo.put(node.name, self._fingerprint, node.node, index, self.classes, self.features, tracker,
                         results)
        if results is not None:
            self.results[node.name] = results
            return None
        return CANNOT_ALLOCATE


def claim_key(claim: Obj) -> str:
    meta = _meta(claim)
    return f"{meta.get('namespace')}/{meta.get('name')}"


def owner_pod_key(claim: Obj) -> str | None:
    """The pod a generated claim belongs to (its controlling owner), as a queue key."""
    for ref in _meta(claim).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "Pod" and ref.get("apiVersion") == "v1":
            return f"{_meta(claim).get('namespace')}/{ref.get('name')}"
    return None


def _allocation(claim: Obj | None) -> Any:
    return ((claim or {}).get("status") or {}).get("allocation")


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj) if isinstance(obj, Mapping) else obj.to_dict()


class DraPlugin:
    """The informers, in-flight allocations and writes behind :class:`PodClaims`.

    Everything a pod's attempt needs is kept current from informer events instead of being rebuilt per pod:
    claims as plain dicts, the allocated state (:class:`AllocationTracker`), slices parsed once per
    resourceVersion into a :class:`SliceIndex`, the class mapping, and the allocator's answers per node
    (:class:`OutcomeMemo`). A claim change wakes only the pod it belongs to (`on_claim`, a queue key), unless
    it gives devices back or belongs to no pod, which wakes every waiting pod (`on_change`), as upstream's
    queueing hints for claim events do."""

    def __init__(self, client: AsyncClient, informers: SharedInformers, on_change: Callable[[], None], *,
                 features: Features | None = None, allocate_fn: AllocateFn = allocate,
                 on_claim: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.claims = informers.get(ResourceClaim)
        self.slices = informers.get(ResourceSlice)
        self.classes = informers.get(DeviceClass)
        self.features = features or features_for(version="1.36")
        self.allocate_fn = allocate_fn
        self._on_change = on_change
        self._on_claim = on_claim
        self._in_flight: dict[str, dict[str, Any]] = {}
        self._cached_claims: dict[str, dict[str, Any]] = {}
        self._tracker = AllocationTracker()
        self._memo = OutcomeMemo()
        self._parsed: dict[str, tuple[str, Slice]] = {}
        self._index: SliceIndex | None = None
        self._class_map: dict[str, Obj] | None = None
        self._started = False

    async def _start(self) -> None:
        """Watch claims, slices and classes from the first pod with claims on, so a cluster without DRA (or
        an API level before 1.34) pays nothing until such a pod appears."""
        if self._started:
            return
        self._started = True
        self.claims.add_handler(EventHandler(self._claim_added, self._claim_updated, self._claim_deleted))
        self.slices.add_handler(EventHandler(lambda _: self._slices_changed(),
                                             lambda _old, _new: self._slices_changed(),
                                             lambda _: self._slices_changed()))
        self.classes.add_handler(EventHandler(lambda _: self._classes_changed(),
                                              lambda _old, _new: self._classes_changed(),
                                              lambda _: self._classes_changed()))
        for informer in (self.claims, self.slices, self.classes):
            informer.start()
        for informer in (self.claims, self.slices, self.classes):
            await informer.wait_synced()

    # --- informer events ---------------------------------------------------------------------------------

    def _claim_added(self, obj: Any) -> None:
        claim = _plain(obj)
        key = claim_key(claim)
        self._cached_claims[key] = claim
        self._refresh(key)
        self._wake(None, claim)

    def _claim_updated(self, _old: Any, new: Any) -> None:
        claim = _plain(new)
        key = claim_key(claim)
        before = self._cached_claims.get(key)
        self._cached_claims[key] = claim
        if _allocation(claim):
            self._in_flight.pop(key, None)
        self._refresh(key)
        self._wake(before, claim)

    def _claim_deleted(self, obj: Any) -> None:
        key = key_of(obj)
        before = self._cached_claims.pop(key, None)
        self._refresh(key)
        self._wake(before, None)

    def _wake(self, before: Obj | None, after: Obj | None) -> None:
        pod = owner_pod_key(after or before or {})
        freed = bool(_allocation(before)) and not _allocation(after)
        if freed or pod is None or self._on_claim is None:
            self._on_change()
        else:
            self._on_claim(pod)

    def _slices_changed(self) -> None:
        self._index = None
        self._memo.clear()
        self._on_change()

    def _classes_changed(self) -> None:
        self._class_map = None
        self._memo.clear()
        self._on_change()

    def _refresh(self, key: str) -> None:
        self._tracker.set(key, self._in_flight.get(key) or self._cached_claims.get(key))

    # --- snapshots ---------------------------------------------------------------------------------------

    def _claim(self, namespace: str, name: str) -> Obj | None:
        key = f"{namespace}/{name}"
        return self._in_flight.get(key) or self._cached_claims.get(key)

    def _classes(self) -> dict[str, Obj]:
        if self._class_map is None:
            self._class_map = {str(_meta(c).get("name")): c for c in (_plain(x) for x in self.classes.store.list())}
        return self._class_map

    def _slice_index(self) -> SliceIndex:
        """All slices, each parsed once per resourceVersion. Raises InvalidInput for a slice that cannot be
        parsed (and tries again next time)."""
        if self._index is None:
            parsed: dict[str, tuple[str, Slice]] = {}
            for obj in self.slices.store.list():
                key, version = key_of(obj), resource_version_of(obj)
                known = self._parsed.get(key)
                parsed[key] = known if known is not None and version and known[0] == version else (
                    version, Slice.parse(_plain(obj)))
            self._parsed = parsed
            self._index = SliceIndex([s for _, s in parsed.values()])
        return self._index

    async def prepare(self, pod: Obj) -> PodClaims | Wait | None:
        """PreFilter. Everything after the first await is synchronous, so the snapshot it takes and the
        placement and reservation that follow see no other pod's changes in between (which is also why the
        live allocated state can be handed out rather than a copy)."""
        if not (pod.get("spec") or {}).get("resourceClaims"):
            return None
        await self._start()
        namespace = str(_meta(pod).get("namespace") or "")
        claims = resolve_claims(pod, lambda name: self._claim(namespace, name))
        if isinstance(claims, Wait):
            return claims
        classes = self._classes()
        to_allocate = [c for c in claims if not (c.get("status") or {}).get("allocation")]
        for claim in to_allocate:
            missing = missing_class(claim, classes)
            if missing:
                return Wait(missing, event=True)
        slices = self._slice_index() if to_allocate else SliceIndex(())
        return PodClaims(pod, claims, to_allocate, slices, classes, self._tracker.state, self.features,
                         self.allocate_fn, memo=self._memo, tracker=self._tracker)

    def reserve(self, state: PodClaims, node: str) -> list[dict[str, Any]]:
        """Reserve: the claims as they are to be written, each recorded as in flight. The allocations are
        copied, as the memo may hand the same answer to a later pod placed elsewhere."""
        allocations = iter(state.results.get(node, ()))
        planned = []
        for claim in state.claims:
            status = dict(claim.get("status") or {})
            if not status.get("allocation"):
                status["allocation"] = copy.deepcopy(next(allocations))
            if not is_reserved_for(claim, state.pod):
                status["reservedFor"] = [*(status.get("reservedFor") or ()), pod_reference(state.pod)]
            planned.append({**claim, "status": status})
            key = claim_key(claim)
            self._in_flight[key] = planned[-1]
            self._refresh(key)
        return planned

    def unreserve(self, planned: Sequence[Obj]) -> None:
        """The devices planned for a pod that is not bound go back; pods waiting for them may fit now (upstream
        moves all unschedulable pods after a failed binding)."""
        for claim in planned:
            key = claim_key(claim)
            self._in_flight.pop(key, None)
            self._refresh(key)
        if planned:
            self._on_change()

    async def prebind(self, state: PodClaims, planned: Sequence[Obj]) -> None:
        """PreBind: finalizer first (a claim being allocated must not vanish), then allocation and reservedFor,
        each guarded by the resourceVersion read, so a claim changed meanwhile fails the binding."""
        for before, claim in zip(state.claims, planned, strict=True):
            if before.get("status") == claim.get("status"):
                continue
            meta = _meta(claim)
            name, namespace = str(meta.get("name")), str(meta.get("namespace"))
            version = meta.get("resourceVersion")
            try:
                if not (before.get("status") or {}).get("allocation") and FINALIZER not in (meta.get("finalizers")
                                                                                            or ()):
                    body = {"metadata": {"resourceVersion": version,
                                         "finalizers": [*(meta.get("finalizers") or ()), FINALIZER]}}
                    updated = await self.client.patch(ResourceClaim, name, body, namespace=namespace,
                                                      patch_type=PatchType.MERGE)
                    version = updated.metadata.resourceVersion if updated.metadata else version
                status = claim.get("status") or {}
                body = {"metadata": {"resourceVersion": version},
                        "status": {"allocation": status.get("allocation"), "reservedFor": status.get("reservedFor")}}
                await self.client.patch(ResourceClaim.Status, name, body, namespace=namespace,
                                        patch_type=PatchType.MERGE)
            except ApiError as exc:
                raise ReserveError(f"claim {namespace}/{name}: {exc.status.message}") from exc
