"""Shared counters (partitionable devices) and consumable capacity (multiple allocations of one device).

Counter semantics: ``checkAvailableCounters`` in structured/internal/incubating/allocator_incubating.go
(v0.36.2) — a pool's counter sets minus what its already-allocated devices consume, minus what devices picked
in this search consume. Capacity semantics: ``consumable_capacity.go`` in the same package — a request is
rounded up by the capacity's ``requestPolicy`` (validRange min/step, validValues), an absent request takes
the policy default or the whole capacity, and the total over existing and in-flight shares must fit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from kplane.dra.model import AllocatedState, Capacity, Device, DeviceID, InvalidInput, Obj, quantity
from kplane.dra.pools import Pool

Counters = dict[str, dict[str, Fraction]]


def available_counters(pool: Pool, allocated: AllocatedState) -> Counters:
    """The pool's counter sets minus what its completed allocations consume (may go negative)."""
    available = {name: dict(counters) for name, counters in pool.counter_sets.items()}
    for s in [*pool.slices, *pool.other_slices]:
        for d in s.devices:
            if not d.consumes or not allocated.is_allocated(DeviceID(s.driver, s.pool, d.name)):
                continue
            for set_name, counters in d.consumes:
                target = available.get(set_name, {})
                for name, value in counters.items():
                    if name in target:
                        target[name] -= value
    return available


def consume(consumed: Counters, device: Device, sign: int) -> None:
    for set_name, counters in device.consumes:
        target = consumed.setdefault(set_name, {})
        for name, value in counters.items():
            target[name] = target.get(name, Fraction(0)) + sign * value


def counters_fit(available: Counters, consumed: Counters) -> bool:
    return all(
        value >= consumed.get(set_name, {}).get(name, Fraction(0))
        for set_name, counters in available.items()
        for name, value in counters.items()
    )


def _q(value: Any, where: str) -> Fraction:
    return quantity(value, where)


def _policy_range(policy: Obj) -> Mapping[str, Any] | None:
    return policy.get("validRange")


def _round_up(requested: Fraction, cap: Capacity) -> Fraction:
    policy = cap.policy
    if policy is None:
        return requested
    valid_range = _policy_range(policy)
    if valid_range is not None and valid_range.get("min") is not None:
        low = _q(valid_range["min"], "requestPolicy.validRange.min")
        if requested < low:
            return low
        if valid_range.get("step") is None:
            return requested
        step = _q(valid_range["step"], "requestPolicy.validRange.step")
        return low + step * math.ceil((math.ceil(requested) - low) / step)
    if policy.get("validValues"):
        for valid in policy["validValues"]:
            value = _q(valid, "requestPolicy.validValues")
            if requested <= value:
                return value
    return requested


def consumed_amount(requested: Fraction | None, cap: Capacity) -> Fraction:
    if requested is None:
        default = (cap.policy or {}).get("default")
        return _q(default, "requestPolicy.default") if default is not None else cap.value
    return _round_up(requested, cap)


def _violates(value: Fraction, policy: Obj | None) -> bool:
    if policy is None:
        return False
    if policy.get("default") is not None and value == _q(policy["default"], "requestPolicy.default"):
        return False
    valid_range = _policy_range(policy)
    if valid_range is not None:
        if valid_range.get("max") is not None and value > _q(valid_range["max"], "requestPolicy.validRange.max"):
            return True
        if valid_range.get("step") is not None:
            low = _q(valid_range.get("min") or 0, "requestPolicy.validRange.min")
            step = _q(valid_range["step"], "requestPolicy.validRange.step")
            return (math.ceil(value) - low) % step != 0
        return False
    if policy.get("validValues"):
        return all(value != _q(v, "requestPolicy.validValues") for v in policy["validValues"])
    return False


def consumption(requests: Mapping[str, Fraction] | None, device: Device) -> dict[str, Fraction]:
    """Capacity a share of ``device`` consumes for the given request (every capacity of the device)."""
    return {name: consumed_amount((requests or {}).get(name), cap) for name, cap in device.capacity.items()}


def capacity_fits(requests: Mapping[str, Fraction] | None, device: Device, already: Mapping[str, Fraction],
                  in_flight: Mapping[str, Fraction]) -> bool:
    """Whether one more share fits; InvalidInput if the request names a capacity the device lacks."""
    if requests and any(name not in device.capacity for name in requests):
        raise InvalidInput("some requested capacity has not been defined")
    for name, cap in device.capacity.items():
        amount = consumed_amount((requests or {}).get(name), cap)
        if _violates(amount, cap.policy):
            return False
        total = already.get(name, Fraction(0)) + amount + in_flight.get(name, Fraction(0))
        if total > cap.value:
            return False
    return True


def format_quantity(value: Fraction) -> str:
    """A canonical quantity string: binary suffixes for multiples of 1024, else decimal/milli."""
    if value.denominator == 1:
        n = value.numerator
        if n == 0:
            return "0"
        for suffix, power in (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
            if n % (1 << power) == 0:
                return f"{n >> power}{suffix}"
        return str(n)
    milli = value * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    return f"{math.ceil(value * 10**9)}n"
