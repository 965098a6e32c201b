"""Rolling-update arithmetic for Deployments, as pure functions over replica counts.

Semantics follow kube-controller-manager `pkg/controller/deployment/rolling.go` (reconcileNewReplicaSet,
reconcileOldReplicaSets, cleanupUnhealthyReplicas, scaleDownOldReplicaSetsForRollingUpdate) and
`pkg/controller/deployment/util/deployment_util.go` (ResolveFenceposts, NewRSNewReplicas, MaxUnavailable),
with k8s.io/apimachinery `intstr.GetScaledValueFromIntOrPercent` for int-or-percent values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"

_PERCENT = re.compile(r"^(-?\d+)%$")


@dataclass(frozen=True)
class RS:
    """What the rollout needs to know of one ReplicaSet: spec.replicas and status.availableReplicas."""

    name: str
    replicas: int
    available: int = 0


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An int-or-string as a count of `total`: ints as they are, "N%" scaled and rounded either way."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value)
    if match is None:
        if value.lstrip("-").isdigit():
            raise ValueError(f'invalid value for IntOrString: invalid type: string is not a percentage: "{value}"')
        raise ValueError(f'invalid value for IntOrString: invalid value "{value}": must be an integer or percentage')
    scaled = int(match.group(1)) * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None, desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; both zero would deadlock, so unavailable=1."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def rolling_params(deployment: Mapping[str, Any]) -> tuple[int, int]:
    spec = deployment.get("spec") or {}
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(
        rolling.get("maxSurge", DEFAULT_MAX_SURGE),
        rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
        int(spec.get("replicas", 1)),
    )


def max_unavailable(deployment: Mapping[str, Any]) -> int:
    """How many pods may be missing while the Deployment still counts as Available."""
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    if (spec.get("strategy") or {}).get("type", "RollingUpdate") != "RollingUpdate" or desired == 0:
        return 0
    return min(rolling_params(deployment)[1], desired)


def new_rs_replicas(desired: int, surge: int, new: RS, all_rs: Sequence[RS]) -> int:
    """The new ReplicaSet's next size: grow into the surge room, never past `desired`."""
    if new.replicas >= desired:
        return desired
    current = sum(rs.replicas for rs in all_rs)
    room = desired + surge - current
    if room <= 0:
        return new.replicas
    return new.replicas + min(room, desired - new.replicas)


def old_rs_scale_down(desired: int, unavailable: int, new: RS, old: Sequence[RS]) -> dict[str, int]:
    """New sizes for old ReplicaSets (oldest first in `old`), keeping desired-unavailable pods available.

    First unhealthy old replicas go (they cost no availability), then available ones down to the floor.
    """
    if sum(rs.replicas for rs in old) == 0:
        return {}
    all_count = new.replicas + sum(rs.replicas for rs in old)
    min_available = desired - unavailable
    new_unavailable = new.replicas - new.available
    budget = all_count - min_available - new_unavailable
    if budget <= 0:
        return {}
    sizes = {rs.name: rs.replicas for rs in old}
    for rs in old:
        if budget <= 0:
            break
        unhealthy = max(0, rs.replicas - rs.available)
        cut = min(unhealthy, budget)
        if cut:
            sizes[rs.name] -= cut
            budget -= cut
    available = new.available + sum(min(rs.available, sizes[rs.name]) for rs in old)
    removable = available - min_available
    for rs in old:
        if removable <= 0:
            break
        cut = min(sizes[rs.name], removable)
        sizes[rs.name] -= cut
        removable -= cut
    return {name: size for name, size in sizes.items() if size != next(r.replicas for r in old if r.name == name)}


def rolling_step(deployment: Mapping[str, Any], new: RS, old: Sequence[RS]) -> dict[str, int]:
    """One rolling-update step: the ReplicaSets to resize. Scaling up the new one ends the step, as upstream."""
    desired = int((deployment.get("spec") or {}).get("replicas", 1))
    surge, unavailable = rolling_params(deployment)
    target = new_rs_replicas(desired, surge, new, [new, *old])
    if target != new.replicas:
        return {new.name: target}
    return old_rs_scale_down(desired, unavailable, new, old)


def recreate_step(deployment: Mapping[str, Any], new: RS, old: Sequence[RS], old_pods_running: bool) -> dict[str, int]:
    """Recreate: scale every old ReplicaSet to zero, wait until their pods are gone, then scale up the new one."""
    downs = {rs.name: 0 for rs in old if rs.replicas}
    if downs:
        return downs
    if old_pods_running:
        return {}
    desired = int((deployment.get("spec") or {}).get("replicas", 1))
    return {new.name: desired} if new.replicas != desired else {}
