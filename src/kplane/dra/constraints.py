"""Claim constraints: ``matchAttribute`` and ``distinctAttribute``.

Semantics of ``matchAttributeConstraint`` (allocator_incubating.go) and ``distinctAttributeConstraint``
(constraint.go) in k8s.io/dynamic-resource-allocation structured/internal/incubating, v0.36.2: a constraint
with no ``requests`` covers every request, ``<req>`` covers all its subrequests, ``<req>/<sub>`` one
subrequest; a device without the attribute never satisfies it. Upstream keys distinct values by request name,
so two devices of one request may repeat a value (kubernetes/kubernetes#140438); kept for parity."""

from __future__ import annotations

from typing import Any

from kplane.dra.model import Device, DeviceID

_KINDS = ("string", "int", "bool", "version")


def lookup_attribute(device: Device, device_id: DeviceID, name: str) -> tuple[str, Any] | None:
    """(kind, value) of a fully qualified attribute; an unqualified one counts under the driver's domain."""
    raw = device.attributes.get(name)
    if raw is None:
        domain, sep, ident = name.partition("/")
        if not sep or domain != device_id.driver:
            return None
        raw = device.attributes.get(ident)
        if raw is None:
            return None
    for kind in _KINDS:
        if kind in raw:
            return kind, raw[kind]
    return "", None


class Constraint:
    def __init__(self, requests: list[str], attribute: str) -> None:
        self.requests = set(requests)
        self.attribute = attribute

    def applies(self, request: str, subrequest: str) -> bool:
        if not self.requests:
            return True
        return request in self.requests or (bool(subrequest) and f"{request}/{subrequest}" in self.requests)

    def add(self, request: str, subrequest: str, device: Device, device_id: DeviceID) -> bool:
        raise NotImplementedError

    def remove(self, request: str, subrequest: str) -> None:
        raise NotImplementedError


class MatchAttribute(Constraint):
    def __init__(self, requests: list[str], attribute: str) -> None:
        super().__init__(requests, attribute)
        self.value: tuple[str, Any] | None = None
        self.count = 0

    def add(self, request: str, subrequest: str, device: Device, device_id: DeviceID) -> bool:
        if not self.applies(request, subrequest):
            return True
        value = lookup_attribute(device, device_id, self.attribute)
        if value is None:
            return False
        if self.count == 0:
            self.value, self.count = value, 1
            return True
        if not value[0] or value != self.value:
            return False
        self.count += 1
        return True

    def remove(self, request: str, subrequest: str) -> None:
        if self.applies(request, subrequest):
            self.count -= 1


class DistinctAttribute(Constraint):
    def __init__(self, requests: list[str], attribute: str) -> None:
        super().__init__(requests, attribute)
        self.values: dict[str, tuple[str, Any]] = {}
        self.count = 0

    def add(self, request: str, subrequest: str, device: Device, device_id: DeviceID) -> bool:
        if not self.applies(request, subrequest):
            return True
        value = lookup_attribute(device, device_id, self.attribute)
        if value is None:
            return False
        if self.count and (not value[0] or any(value == seen for seen in self.values.values())):
            return False
        self.values[request] = value
        self.count += 1
        return True

    def remove(self, request: str, subrequest: str) -> None:
        if self.applies(request, subrequest):
            self.values.pop(request, None)
            self.count -= 1
