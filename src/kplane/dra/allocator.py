"""The structured-parameters DRA allocator: a pure function from (node, claims, slices, classes, what is
already allocated, features) to one allocation per claim, no fit, or an error.

It follows the algorithm of k8s.io/dynamic-resource-allocation ``structured/internal/incubating`` as of
v0.36.2 (Kubernetes 1.36; the 1.35 allocator's feature set with 1.36's deterministic order and its
combinations-not-permutations search, PR kubernetes/kubernetes#133678): claims in order, requests in order,
each device slot of an ExactCount request picked after the previous slot's position so every set of devices
is tried once; the first complete solution wins. Error texts are upstream's."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from kplane.api.tolerations import tolerates
from kplane.cel import CelError
from kplane.dra.capacity import (
    Counters,
    available_counters,
    capacity_fits,
    consume,
    consumption,
    counters_fit,
    format_quantity,
)
from kplane.dra.constraints import Constraint, DistinctAttribute, MatchAttribute
from kplane.dra.features import Features
from kplane.dra.model import (
    ALLOCATION_RESULTS_MAX_SIZE,
    AllocatedState,
    Device,
    DeviceID,
    InvalidInput,
    Obj,
    Request,
    Slice,
    claim_key,
    claim_requests,
)
from kplane.dra.pools import NodeSelectorError, Pool, SliceIndex, gather_pools, merge_requirements, node_matches
from kplane.dra.selectors import compile_selector, device_variable, matches

__all__ = ["AllocatedState", "AllocationOutcome", "DeviceID", "Features", "Slice", "SliceIndex", "allocate",
           "parse_slices"]


@dataclass
class AllocationOutcome:
    """Upstream's three results, kept apart: ``results`` (one ``status.allocation`` per claim, in claim
    order), no fit (``reason``), or ``error`` (upstream's text). ``node_failure`` marks the error that
    upstream wraps in ErrFailedAllocationOnNode (invalid pools): unschedulable on this node, not fatal."""

    results: list[dict[str, Any]] | None = None
    reason: str = ""
    error: str = ""
    node_failure: bool = False
    steps: int = 0
    """allocateOne invocations, comparable to upstream's NumAllocateOneInvocations."""

    @property
    def kind(self) -> str:
        return "allocated" if self.results is not None else "error" if self.error else "unsatisfiable"


class AllocationError(Exception):
    """Stops the search with upstream's error text."""


class _MaxSizeExceeded(Exception):
    """Upstream's errAllocationResultMaxSizeExceeded: backtrack harder, try a smaller subrequest."""


def parse_slices(slices: Sequence[Obj | Slice]) -> list[Slice]:
    """Slice views, parsed once; the scheduler can keep them across allocations."""
    return [s if isinstance(s, Slice) else Slice.parse(s) for s in slices]


@dataclass(eq=False)
class _Candidate:
    device: Device
    id: DeviceID
    slice: Slice
    pool: Pool


@dataclass(eq=False)
class _RequestData:
    request: Request
    klass: Obj
    num_devices: int = 0
    all_devices: list[_Candidate] = field(default_factory=list)
    selected_sub: int = 0

    @property
    def is_sub(self) -> bool:
        return bool(self.request.parent)


@dataclass(eq=False)
class _Picked:
    cand: _Candidate
    request: Request
    share_id: str | None
    consumed: dict[str, Fraction] | None
    counted: bool
    """Whether its shared counters were added (and so must be given back on rollback)."""


class _Search:
    def __init__(self, node: Obj | None, claims: Sequence[Obj], pools: list[Pool], classes: Mapping[str, Obj],
                 allocated: AllocatedState, features: Features, deadline: float | None) -> None:
        self.node, self.claims, self.pools, self.classes = node, claims, pools, classes
        self.allocated, self.features, self.deadline = allocated, features, deadline
        self.steps = 0
        self.requests: dict[tuple[int, int, int], _RequestData] = {}
        self.constraints: list[list[Constraint]] = []
        self.results: list[list[_Picked]] = [[] for _ in claims]
        self.matches: dict[tuple[int, int, int, DeviceID], bool] = {}
        self.variables: dict[int, dict[str, Any]] = {}
        self.allocating: dict[DeviceID, set[int]] = {}
        self.allocating_capacity: dict[DeviceID, dict[str, Fraction]] = {}
        self.available: dict[int, Counters] = {}
        self.consumed: dict[int, Counters] = {}

    # --- validation -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        for ci, claim in enumerate(self.claims):
            key = claim_key(claim)
            min_devices = 0
            for ri, raw in enumerate(claim_requests(claim)):
                name = str(raw.get("name") or "")
                subs = raw.get("firstAvailable") or ()
                if subs and not self.features.prioritized_list:
                    raise AllocationError(
                        f"claim {key}, request {name}: has subrequests, but the DRAPrioritizedList feature is disabled")
                if not self.features.consumable_capacity:
                    exactly = raw.get("exactly") or {}
                    if exactly.get("capacity") is not None:
                        raise AllocationError(f"claim {key}, request {name}: has capacity requests, "
                                              "but the DRAConsumableCapacity feature is disabled")
                    for sub in subs:
                        if sub.get("capacity") is not None:
                            raise AllocationError(f"claim {key}, subrequest {sub.get('name')}: has capacity "
                                                  "requests, but the DRAConsumableCapacity feature is disabled")
                where = f"claim {key}: spec.devices.requests[{ri}]"
                if subs:
                    least = None
                    for si, sub in enumerate(subs):
                        data = self._validate(ci, ri, si, Request.parse(sub, name, where))
                        least = data.num_devices if least is None else min(least, data.num_devices)
                    min_devices += least or 0
                else:
                    exact = Request.parse({**(raw.get("exactly") or {}), "name": name}, "", where)
                    data = self._validate(ci, ri, 0, exact)
                    min_devices += data.num_devices
            if min_devices > ALLOCATION_RESULTS_MAX_SIZE:
                raise AllocationError(f"claim {key}: number of requested devices {min_devices} exceeds the claim "
                                      f"limit of {ALLOCATION_RESULTS_MAX_SIZE}")
            self.constraints.append(self._constraints(claim, key))

    def _constraints(self, claim: Obj, key: str) -> list[Constraint]:
        out: list[Constraint] = []
        raw = ((claim.get("spec") or {}).get("devices") or {}).get("constraints") or ()
        for i, c in enumerate(raw):
            requests = [str(r) for r in c.get("requests") or ()]
            if c.get("matchAttribute"):
                out.append(MatchAttribute(requests, str(c["matchAttribute"])))
            elif c.get("distinctAttribute"):
                out.append(DistinctAttribute(requests, str(c["distinctAttribute"])))
            else:
                raise AllocationError(f"claim {key}, constraint #{i}: empty constraint (unsupported constraint type?)")
        return out

    def _validate(self, ci: int, ri: int, si: int, request: Request) -> _RequestData:
        key = claim_key(self.claims[ci])
        for i, selector in enumerate(request.selectors):
            if not (selector.get("cel") or {}).get("expression"):
                raise AllocationError(f"claim {key}, request {request.name}, selector #{i}: CEL expression empty "
                                      "(unsupported selector type?)")
        if not self.features.admin_access and request.admin_access is not None:
            raise AllocationError(f"claim {key}, request {request.name}: admin access is requested, but the feature "
                                  "is disabled")
        if not request.class_name:
            raise AllocationError(f"claim {key}, request {request.name}: missing device class name "
                                  "(unsupported request type?)")
        klass = self.classes.get(request.class_name)
        if klass is None:
            missing = f'deviceclass.resource.k8s.io "{request.class_name}" not found'
            raise AllocationError(f"claim {key}, request {request.name}: could not retrieve device class "
                                  f"{request.class_name}: {missing}")
        data = _RequestData(request, klass)
        self.requests[(ci, ri, si)] = data
        if request.mode == "ExactCount":
            data.num_devices = request.count
        elif request.mode == "All":
            self._all_devices(ci, ri, si, data)
        else:
            raise AllocationError(f"claim {key}, request {request.name}: unsupported count mode {request.mode}")
        return data

    def _all_devices(self, ci: int, ri: int, si: int, data: _RequestData) -> None:
        key = claim_key(self.claims[ci])
        for pool in self.pools:
            state = "currently being updated" if pool.incomplete else "currently invalid" if pool.invalid else ""
            if state:
                raise AllocationError(f"claim {key}, request {data.request.name}: asks for all devices, but resource "
                                      f"pool {pool.id} is {state}")
            for s in pool.slices:
                for device in s.devices:
                    cand = _Candidate(device, DeviceID(s.driver, s.pool, device.name), s, pool)
                    if not self._selectable(ci, ri, si, data, cand):
                        continue
                    if self.features.consumable_capacity and not self._capacity_ok(data.request, cand):
                        continue
                    data.all_devices.append(cand)
        data.num_devices = len(data.all_devices)

    # --- device checks ----------------------------------------------------------------------------------

    def _selectable(self, ci: int, ri: int, si: int, data: _RequestData, cand: _Candidate) -> bool:
        if not self.features.device_binding_and_status and cand.device.binding_conditions:
            return False
        memo = (ci, ri, si, cand.id)
        known = self.matches.get(memo)
        if known is not None:
            return known
        ok = self._selectors_match(ci, cand, data.klass, (data.klass.get("spec") or {}).get("selectors") or ())
        ok = ok and self._selectors_match(ci, cand, None, data.request.selectors)
        if ok and cand.slice.per_device:
            d = cand.device
            try:
                ok = node_matches(self.node, d.node_name, d.all_nodes, d.node_selector)
            except NodeSelectorError as err:
                raise AllocationError(str(err)) from None
        self.matches[memo] = ok
        return ok

    def _selectors_match(self, ci: int, cand: _Candidate, klass: Obj | None, selectors: Sequence[Obj]) -> bool:
        if klass is not None:
            owner = f"class {(klass.get('metadata') or {}).get('name')}"
        else:
            owner = f"claim {claim_key(self.claims[ci])}"
        consumable = self.features.consumable_capacity
        for i, selector in enumerate(selectors):
            compiled = compile_selector(str((selector.get("cel") or {}).get("expression") or ""), consumable)
            if compiled.program is None:
                raise AllocationError(f"{owner}: selector #{i}: CEL compile error: {compiled.error}")
            try:
                variable = self.variables.get(id(cand.device))
                if variable is None:
                    variable = device_variable(cand.device, cand.id.driver, consumable)
                    self.variables[id(cand.device)] = variable
                if not matches(compiled, variable):
                    return False
            except CelError as err:
                raise AllocationError(f"{owner}: selector #{i}: CEL runtime error: {err}") from None
        return True

    def _capacity_ok(self, request: Request, cand: _Candidate) -> bool:
        already = self.allocated.capacity.get(cand.id, {})
        try:
            return capacity_fits(request.capacity_requests, cand.device, already,
                                 self.allocating_capacity.get(cand.id, {}))
        except InvalidInput:
            return False

    def _in_use(self, device: DeviceID) -> bool:
        return device in self.allocated.devices or bool(self.allocating.get(device))

    def _counters_ok(self, cand: _Candidate) -> bool:
        pool_key = id(cand.pool)
        available = self.available.get(pool_key)
        if available is None:
            available = self.available[pool_key] = available_counters(cand.pool, self.allocated)
        consumed = self.consumed.setdefault(pool_key, {})
        consume(consumed, cand.device, 1)
        if counters_fit(available, consumed):
            return True
        consume(consumed, cand.device, -1)
        return False

    def _tainted(self, device: Device, request: Request) -> bool:
        for taint in device.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(
                tolerates(t, taint) for t in request.tolerations
            ):
                return True
        return False

    def _take(self, ci: int, data: _RequestData, cand: _Candidate, must: bool) -> _Picked | None:
        """allocateDevice: mark ``cand`` as used for claim ``ci`` if everything allows it."""
        request = data.request
        multi = self.features.consumable_capacity and cand.device.allow_multiple
        admin = bool(request.admin_access)
        if not multi and admin and ci in self.allocating.get(cand.id, ()):
            return None
        if not admin and self._in_use(cand.id):
            return None
        if not self.features.partitionable_devices and cand.device.consumes:
            return None
        skip_counters = multi and (cand.id in self.allocated.capacity or cand.id in self.allocating_capacity)
        counted = False
        if not skip_counters and cand.device.consumes:
            if not self._counters_ok(cand):
                return None
            counted = True
        if self.features.device_taints and self._tainted(cand.device, request):
            self._uncount(cand, counted)
            return None
        base, sub = (request.parent, request.name) if request.parent else (request.name, "")
        constraints = self.constraints[ci]
        for i, constraint in enumerate(constraints):
            if constraint.add(base, sub, cand.device, cand.id):
                continue
            if must:
                raise AllocationError(f"claim {claim_key(self.claims[ci])}, request {request.name}: cannot add device "
                                      f"{cand.id} because a claim constraint would not be satisfied")
            for earlier in constraints[:i]:
                earlier.remove(base, sub)
            self._uncount(cand, counted)
            return None
        share_id: str | None = None
        consumed: dict[str, Fraction] | None = None
        if self.features.consumable_capacity:
            if not self._capacity_ok(request, cand):
                for constraint in constraints:
                    constraint.remove(base, sub)
                self._uncount(cand, counted)
                return None
            if multi:
                consumed = consumption(request.capacity_requests, cand.device)
                share_id = str(uuid.uuid4())
                total = self.allocating_capacity.setdefault(cand.id, {})
                for name, value in consumed.items():
                    total[name] = total.get(name, Fraction(0)) + value
        if not multi:
            self.allocating.setdefault(cand.id, set()).add(ci)
        picked = _Picked(cand, request, share_id, consumed, counted)
        self.results[ci].append(picked)
        return picked

    def _uncount(self, cand: _Candidate, counted: bool) -> None:
        if counted:
            consume(self.consumed[id(cand.pool)], cand.device, -1)

    def _release(self, ci: int, picked: _Picked) -> None:
        request, cand = picked.request, picked.cand
        base, sub = (request.parent, request.name) if request.parent else (request.name, "")
        for constraint in self.constraints[ci]:
            constraint.remove(base, sub)
        self.allocating.get(cand.id, set()).discard(ci)
        if picked.consumed is not None:
            total = self.allocating_capacity[cand.id]
            for name, value in picked.consumed.items():
                total[name] -= value
            if not any(total.values()):
                del self.allocating_capacity[cand.id]
        self._uncount(cand, picked.counted)
        self.results[ci].remove(picked)

    # --- the search -------------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.steps += 1
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise AllocationError("filter operation aborted: context deadline exceeded")

    def solve(self, ci: int = 0, ri: int = 0, si: int = 0, di: int = 0, in_sub: bool = False,
              start: tuple[int, int, int] = (0, 0, 0)) -> bool:
        self._tick()
        if ci >= len(self.claims):
            return True
        if ri >= len(claim_requests(self.claims[ci])):
            try:
                return self.solve(ci + 1)
            except _MaxSizeExceeded:
                return False
        data = self.requests[(ci, ri, si)]
        if not in_sub and data.is_sub:
            return self._solve_subrequests(ci, ri, data)
        request = data.request
        all_mode = request.mode == "All"
        if all_mode and not data.all_devices:
            return False
        if di >= data.num_devices:
            return self.solve(ci, ri + 1)
        if len(self.results[ci]) + data.num_devices - di > ALLOCATION_RESULTS_MAX_SIZE:
            raise _MaxSizeExceeded
        if all_mode:
            picked = self._take(ci, data, data.all_devices[di], must=True)
            if picked is None:
                return False
            try:
                if self.solve(ci, ri, si, di + 1, in_sub):
                    return True
            except BaseException:
                self._release(ci, picked)
                raise
            self._release(ci, picked)
            return False
        return self._solve_slot(ci, ri, si, di, in_sub, start, data)

    def _solve_subrequests(self, ci: int, ri: int, data: _RequestData) -> bool:
        all_exceeded = True
        si = 0
        while (ci, ri, si) in self.requests:
            try:
                ok = self.solve(ci, ri, si, 0, True)
            except _MaxSizeExceeded:
                si += 1
                continue
            all_exceeded = False
            if ok:
                data.selected_sub = si
                return True
            si += 1
        if all_exceeded:
            raise _MaxSizeExceeded
        return False

    def _solve_slot(self, ci: int, ri: int, si: int, di: int, in_sub: bool, start: tuple[int, int, int],
                    data: _RequestData) -> bool:
        request = data.request
        admin = bool(request.admin_access)
        for pi in range(start[0], len(self.pools)):
            pool = self.pools[pi]
            if pool.incomplete or pool.invalid:
                continue
            first_slice = start[1] if pi == start[0] else 0
            for sli in range(first_slice, len(pool.slices)):
                s = pool.slices[sli]
                first_device = start[2] if (pi, sli) == start[:2] else 0
                for dvi in range(first_device, len(s.devices)):
                    device = s.devices[dvi]
                    did = DeviceID(s.driver, s.pool, device.name)
                    if admin:
                        if ci in self.allocating.get(did, ()):
                            continue
                    elif self._in_use(did):
                        continue
                    cand = _Candidate(device, did, s, pool)
                    if not self._selectable(ci, ri, si, data, cand):
                        continue
                    if self.features.consumable_capacity and not self._capacity_ok(request, cand):
                        continue
                    picked = self._take(ci, data, cand, must=False)
                    if picked is None:
                        continue
                    try:
                        done = self.solve(ci, ri, si, di + 1, in_sub, (pi, sli, dvi + 1))
                    except BaseException:
                        self._release(ci, picked)
                        raise
                    if done:
                        return True
                    self._release(ci, picked)
        return False

    # --- results ----------------------------------------------------------------------------------------

    def outcome(self) -> list[dict[str, Any]]:
        return [self._claim_result(ci, claim) for ci, claim in enumerate(self.claims)]

    def _claim_result(self, ci: int, claim: Obj) -> dict[str, Any]:
        results = [self._device_result(p) for p in self.results[ci]]
        devices: dict[str, Any] = {"results": results}
        config = self._config(ci, claim)
        if config:
            devices["config"] = config
        allocation: dict[str, Any] = {"devices": devices}
        selector = self._node_selector(self.results[ci], claim)
        if selector is not None:
            allocation["nodeSelector"] = selector
        return allocation

    def _device_result(self, picked: _Picked) -> dict[str, Any]:
        cand, request = picked.cand, picked.request
        out: dict[str, Any] = {"request": request.full_name, "driver": cand.id.driver, "pool": cand.id.pool,
                               "device": cand.id.device}
        if request.admin_access:
            out["adminAccess"] = True
        if request.tolerations:
            out["tolerations"] = [dict(t) for t in request.tolerations]
        if self.features.device_binding_and_status:
            if cand.device.binding_conditions:
                out["bindingConditions"] = list(cand.device.binding_conditions)
            if cand.device.binding_failure_conditions:
                out["bindingFailureConditions"] = list(cand.device.binding_failure_conditions)
        if picked.share_id is not None:
            out["shareID"] = picked.share_id
        if picked.consumed:
            out["consumedCapacity"] = {k: format_quantity(v) for k, v in picked.consumed.items()}
        return out

    def _config(self, ci: int, claim: Obj) -> list[dict[str, Any]]:
        config: list[dict[str, Any]] = []
        class_ranges: dict[str, tuple[int, int]] = {}
        requests = claim_requests(claim)
        chosen: list[_RequestData] = []
        for ri in range(len(requests)):
            data = self.requests[(ci, ri, 0)]
            if data.is_sub:
                data = self.requests[(ci, ri, data.selected_sub)]
            chosen.append(data)
            class_name = (data.klass.get("metadata") or {}).get("name") or ""
            if class_name in class_ranges:
                lo, hi = class_ranges[class_name]
                for entry in config[lo:hi]:
                    entry["requests"].append(data.request.full_name)
                continue
            lo = len(config)
            for c in (data.klass.get("spec") or {}).get("config") or ():
                config.append({"source": "FromClass", "requests": [data.request.full_name],
                               **{k: v for k, v in c.items() if k != "requests"}})
            class_ranges[class_name] = (lo, len(config))
        for c in ((claim.get("spec") or {}).get("devices") or {}).get("config") or ():
            wanted = list(c.get("requests") or ())
            body = {k: v for k, v in c.items() if k != "requests"}
            if not wanted:
                config.append({"source": "FromClaim", **body})
                continue
            for raw, data in zip(requests, chosen, strict=True):
                if raw.get("name") in wanted or (data.is_sub and data.request.full_name in wanted):
                    config.append({"source": "FromClaim", "requests": wanted, **body})
        return config

    def _node_selector(self, picked: list[_Picked], claim: Obj) -> dict[str, Any] | None:
        fields: list[Obj] = []
        expressions: list[Obj] = []
        node_name = (self.node or {}).get("metadata", {}).get("name", "")
        for p in picked:
            s, d = p.cand.slice, p.cand.device
            name, selector = (d.node_name, d.node_selector) if s.per_device else (s.node_name, s.node_selector)
            if name or d.binds_to_node:
                return {"nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
            if selector is None:
                continue
            terms = selector.get("nodeSelectorTerms") or ()
            if len(terms) > 1:
                claim_name = (claim.get("metadata") or {}).get("name")
                raise AllocationError(f"create NodeSelector for claim {claim_name}: unsupported "
                                      f"ResourceSlice.NodeSelector with {len(terms)} terms")
            for term in terms:
                merge_requirements(term.get("matchFields") or (), fields)
                merge_requirements(term.get("matchExpressions") or (), expressions)
        if not fields and not expressions:
            return None
        merged: dict[str, Any] = {}
        if expressions:
            merged["matchExpressions"] = expressions
        if fields:
            merged["matchFields"] = fields
        return {"nodeSelectorTerms": [merged]}


def allocate(node: Obj | None, claims: Sequence[Obj], slices: Sequence[Obj | Slice] | SliceIndex,
             classes: Sequence[Obj] | Mapping[str, Obj], allocated: AllocatedState | None = None,
             features: Features | None = None, *, timeout_s: float | None = None) -> AllocationOutcome:
    """Allocate devices for all ``claims`` on ``node`` together, or explain why not.

    ``slices`` are all slices of the cluster (dicts, :func:`parse_slices` views, or a :class:`SliceIndex` of
    them, which also remembers each node's pools); ``classes`` DeviceClass dicts (a list, or a mapping by
    name); ``allocated`` what other claims hold; ``features`` default to all off, as upstream's test table.
    Never raises for bad input: that is an ``error`` outcome."""
    features = features or Features()
    by_name = classes if isinstance(classes, Mapping) else {
        (c.get("metadata") or {}).get("name") or "": c for c in classes}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        if isinstance(slices, SliceIndex):
            pools = slices.pools(node, features)
        else:
            pools = gather_pools(node, parse_slices(slices), features)
    except (InvalidInput, NodeSelectorError) as err:
        return AllocationOutcome(error=f"gather pool information: {err}")
    search = _Search(node, claims, pools, by_name, allocated or AllocatedState(), features, deadline)
    try:
        search.prepare()
        done = search.solve()
        if done:
            return AllocationOutcome(results=search.outcome(), steps=search.steps)
    except _MaxSizeExceeded:
        return AllocationOutcome(reason=_reason(claims), steps=search.steps)
    except (AllocationError, InvalidInput) as err:
        return AllocationOutcome(error=str(err), steps=search.steps)
    if any(p.invalid for p in pools):
        return AllocationOutcome(error="invalid resource pools were encountered", node_failure=True,
                                 steps=search.steps)
    return AllocationOutcome(reason=_reason(claims), steps=search.steps)


def _reason(claims: Sequence[Obj]) -> str:
    names = ", ".join(claim_key(c) for c in claims)
    return f"cannot allocate all claims ({names})"
