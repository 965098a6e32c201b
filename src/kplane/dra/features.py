"""DRA feature gates and the allocator features they switch on.

Defaults per Kubernetes version come from ``pkg/features/kube_features.go`` (the 1.35-era and 1.37-era copies,
summarised in the project's DRA research notes §1.1); the gate → allocator feature mapping is
``structured/internal/types.go`` in k8s.io/dynamic-resource-allocation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

GATES = (
    "DRAAdminAccess",
    "DRAPrioritizedList",
    "DRAPartitionableDevices",
    "DRADeviceTaints",
    "DRAConsumableCapacity",
    "DRADeviceBindingConditions",
    "DRAResourceClaimDeviceStatus",
)

_ON_134 = {"DRAAdminAccess", "DRAPrioritizedList", "DRAResourceClaimDeviceStatus"}
DEFAULTS: Mapping[str, frozenset[str]] = {
    "1.34": frozenset(_ON_134),
    "1.35": frozenset(_ON_134),
    "1.36": frozenset(GATES),
}
"""Gates that are on by default in each version (the rest of :data:`GATES` are off)."""

DEFAULT_VERSION = "1.35"


@dataclass(frozen=True)
class Features:
    """What the allocator may do; each flag mirrors one field of upstream's ``internal.Features``."""

    admin_access: bool = False
    prioritized_list: bool = False
    partitionable_devices: bool = False
    device_taints: bool = False
    consumable_capacity: bool = False
    device_binding_and_status: bool = False

    @classmethod
    def all(cls) -> Features:
        return cls(**{f.name: True for f in fields(cls)})


def parse_gates(text: str) -> dict[str, bool]:
    """``G=true,H=false`` as kube components accept it; ValueError names the bad part."""
    gates: dict[str, bool] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or value.lower() not in ("true", "false"):
            raise ValueError(f"invalid feature gate {part!r}: expected NAME=true|false")
        if name not in GATES:
            raise ValueError(f"unrecognized feature gate: {name}")
        gates[name] = value.lower() == "true"
    return gates


def features_for(gates: Mapping[str, bool] | None = None, version: str = DEFAULT_VERSION) -> Features:
    """The allocator features for a version's defaults overridden by explicit gates."""
    if version not in DEFAULTS:
        raise ValueError(f"unknown Kubernetes version {version!r}; expected one of {', '.join(DEFAULTS)}")
    on = {g: g in DEFAULTS[version] for g in GATES}
    for name, value in (gates or {}).items():
        if name not in GATES:
            raise ValueError(f"unrecognized feature gate: {name}")
        on[name] = value
    return Features(
        admin_access=on["DRAAdminAccess"],
        prioritized_list=on["DRAPrioritizedList"],
        partitionable_devices=on["DRAPartitionableDevices"],
        device_taints=on["DRADeviceTaints"],
        consumable_capacity=on["DRAConsumableCapacity"],
        device_binding_and_status=on["DRADeviceBindingConditions"] and on["DRAResourceClaimDeviceStatus"],
    )
