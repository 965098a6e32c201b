"""Typed, read-only views of the ``resource.k8s.io/v1`` dicts the allocator works on.

Views are built once per object and never mutate the dicts they wrap (upstream's harness checks that
allocation leaves its inputs untouched). Field names follow ``k8s.io/api/resource/v1/types.go``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from kplane.cel import CelError
from kplane.cel.k8slib import parse_quantity

Obj = Mapping[str, Any]

ALLOCATION_RESULTS_MAX_SIZE = 32
"""``resourceapi.AllocationResultsMaxSize``."""
CEL_SELECTOR_EXPRESSION_MAX_LENGTH = 10 * 1024


class InvalidInput(ValueError):
    """An object the allocator cannot read (a malformed quantity, a missing name)."""


class DeviceID(NamedTuple):
    driver: str
    pool: str
    device: str

    def __str__(self) -> str:
        return f"{self.driver}/{self.pool}/{self.device}"


def quantity(value: Any, where: str) -> Fraction:
    try:
        return parse_quantity(str(value))
    except CelError as err:
        raise InvalidInput(f"{where}: {err}") from None


def _quantities(values: Obj | None, where: str) -> dict[str, Fraction]:
    return {name: quantity((v or {}).get("value"), f"{where}[{name}]") for name, v in (values or {}).items()}


@dataclass(frozen=True, eq=False)
class Capacity:
    value: Fraction
    policy: Obj | None


@dataclass(eq=False)
class Device:
    name: str
    raw: Obj
    attributes: dict[str, Obj]
    capacity: dict[str, Capacity]
    consumes: list[tuple[str, dict[str, Fraction]]]
    taints: list[Obj]
    allow_multiple: bool
    binding_conditions: list[str]
    binding_failure_conditions: list[str]
    binds_to_node: bool
    node_name: str
    node_selector: Obj | None
    all_nodes: bool

    @classmethod
    def parse(cls, raw: Obj, where: str) -> Device:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}.name: Required value")
        capacity = {
            cname: Capacity(quantity((c or {}).get("value"), f"{where}.capacity[{cname}]"),
                            (c or {}).get("requestPolicy"))
            for cname, c in (raw.get("capacity") or {}).items()
        }
        consumes = [
            (str(c.get("counterSet") or ""), _quantities(c.get("counters"), f"{where}.consumesCounters"))
            for c in raw.get("consumesCounters") or ()
        ]
        return cls(
            name=name,
            raw=raw,
            attributes=dict(raw.get("attributes") or {}),
            capacity=capacity,
            consumes=consumes,
            taints=list(raw.get("taints") or ()),
            allow_multiple=bool(raw.get("allowMultipleAllocations")),
            binding_conditions=list(raw.get("bindingConditions") or ()),
            binding_failure_conditions=list(raw.get("bindingFailureConditions") or ()),
            binds_to_node=bool(raw.get("bindsToNode")),
            node_name=raw.get("nodeName") or "",
            node_selector=raw.get("nodeSelector"),
            all_nodes=bool(raw.get("allNodes")),
        )


@dataclass(eq=False)
class Slice:
    name: str
    raw: Obj
    driver: str
    pool: str
    generation: int
    slice_count: int
    node_name: str
    node_selector: Obj | None
    all_nodes: bool
    per_device: bool
    devices: list[Device]
    counter_sets: list[tuple[str, dict[str, Fraction]]]

    @property
    def uses_partitionable_fields(self) -> bool:
        return self.per_device or bool(self.counter_sets)

    @classmethod
    def parse(cls, raw: Obj) -> Slice:
        meta, spec = raw.get("metadata") or {}, raw.get("spec") or {}
        name = meta.get("name") or ""
        where = f"ResourceSlice {name!r}"
        if not spec.get("driver"):
            raise InvalidInput(f"{where}: spec.driver: Required value")
        pool = spec.get("pool") or {}
        if not pool.get("name"):
            raise InvalidInput(f"{where}: spec.pool.name: Required value")
        devices = [Device.parse(d, f"{where}: spec.devices[{i}]") for i, d in enumerate(spec.get("devices") or ())]
        counter_sets = [
            (str(cs.get("name") or ""), _quantities(cs.get("counters"), f"{where}: spec.sharedCounters"))
            for cs in spec.get("sharedCounters") or ()
        ]
        return cls(
            name=name,
            raw=raw,
            driver=spec["driver"],
            pool=pool["name"],
            generation=int(pool.get("generation") or 0),
            slice_count=int(pool.get("resourceSliceCount") or 0),
            node_name=spec.get("nodeName") or "",
            node_selector=spec.get("nodeSelector"),
            all_nodes=bool(spec.get("allNodes")),
            per_device=bool(spec.get("perDeviceNodeSelection")),
            devices=devices,
            counter_sets=counter_sets,
        )


@dataclass(eq=False)
class Request:
    """A request with ``exactly`` or one subrequest of ``firstAvailable`` (upstream's requestAccessor)."""

    name: str
    parent: str
    raw: Obj
    class_name: str
    mode: str
    count: int
    admin_access: bool | None
    selectors: list[Obj]
    tolerations: list[Obj]
    capacity_requests: dict[str, Fraction] | None
    capacity_text: dict[str, str] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.parent}/{self.name}" if self.parent else self.name

    @classmethod
    def parse(cls, raw: Obj, parent: str, where: str) -> Request:
        capacity = raw.get("capacity")
        requests = (capacity or {}).get("requests") if capacity is not None else None
        texts = {k: str(v) for k, v in (requests or {}).items()}
        admin = raw.get("adminAccess")
        return cls(
            name=str(raw.get("name") or ""),
            parent=parent,
            raw=raw,
            class_name=str(raw.get("deviceClassName") or ""),
            mode=str(raw.get("allocationMode") or "ExactCount"),
            count=1 if raw.get("count") is None else int(raw["count"]),
            admin_access=None if admin is None else bool(admin),
            selectors=list(raw.get("selectors") or ()),
            tolerations=list(raw.get("tolerations") or ()),
            capacity_requests=None if capacity is None else {
                k: quantity(v, f"{where}.capacity.requests[{k}]") for k, v in (requests or {}).items()},
            capacity_text=texts,
        )


def claim_key(claim: Obj) -> str:
    """How klog.KObj prints a claim: ``namespace/name`` or just ``name``."""
    meta = claim.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else name


def claim_requests(claim: Obj) -> Sequence[Obj]:
    return ((claim.get("spec") or {}).get("devices") or {}).get("requests") or ()


def class_by_name(classes: Sequence[Obj]) -> dict[str, Obj]:
    return {(c.get("metadata") or {}).get("name") or "": c for c in classes}


@dataclass
class AllocatedState:
    """Devices already in use (upstream's ``schedulerapi.AllocatedState``): exclusively allocated devices,
    devices shared through ``shareID`` and the capacity those shares consume."""

    devices: set[DeviceID] = field(default_factory=set)
    shared: set[tuple[DeviceID, str]] = field(default_factory=set)
    capacity: dict[DeviceID, dict[str, Fraction]] = field(default_factory=dict)

    def is_allocated(self, device: DeviceID) -> bool:
        return device in self.devices or device in self.capacity or any(d == device for d, _ in self.shared)

    @classmethod
    def from_claims(cls, claims: Sequence[Obj]) -> AllocatedState:
        """What claims with ``status.allocation`` hold (see :func:`held_by`)."""
        state = cls()
        for claim in claims:
            held = held_by(claim)
            state.devices.update(held.devices)
            for device, share, consumed in held.shared:
                state.shared.add((device, share))
                total = state.capacity.setdefault(device, {})
                for name, value in consumed:
                    total[name] = total.get(name, Fraction(0)) + value
        return state


PoolID = tuple[str, str]


@dataclass(frozen=True)
class Held:
    """One claim's share of the allocated state."""

    devices: tuple[DeviceID, ...] = ()
    shared: tuple[tuple[DeviceID, str, tuple[tuple[str, Fraction], ...]], ...] = ()

    @property
    def pools(self) -> set[PoolID]:
        return {(d.driver, d.pool) for d in self.devices} | {(d.driver, d.pool) for d, _, _ in self.shared}


def held_by(claim: Obj | None) -> Held:
    """What a claim's ``status.allocation`` holds; admin-access results hold nothing (GatherAllocatedState)."""
    if claim is None:
        return Held()
    allocation = (claim.get("status") or {}).get("allocation") or {}
    devices: list[DeviceID] = []
    shared: list[tuple[DeviceID, str, tuple[tuple[str, Fraction], ...]]] = []
    for result in (allocation.get("devices") or {}).get("results") or ():
        if result.get("adminAccess"):
            continue
        device = DeviceID(result.get("driver", ""), result.get("pool", ""), result.get("device", ""))
        share = result.get("shareID")
        if not share:
            devices.append(device)
            continue
        consumed = tuple((str(name), quantity(value, f"claim {claim_key(claim)}"))
                         for name, value in (result.get("consumedCapacity") or {}).items())
        shared.append((device, str(share), consumed))
    return Held(tuple(devices), tuple(shared))
