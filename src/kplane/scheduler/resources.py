"""Resource arithmetic for placement: what a pod requests and what a node has left.

Amounts are integers in the units kube-scheduler compares: millicores for cpu, whole units (bytes, pods,
devices) for everything else, both rounded up as `resource.Quantity.MilliValue()`/`Value()` round.
Pod requests follow `k8s.io/component-helpers/resource/helpers.go` (`PodRequests`): the sum of the app
containers and restartable (sidecar) init containers, at least the largest init container (plus the
sidecars started before it), pod-level `spec.resources.requests` overriding cpu/memory, plus `overhead`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lightkube.utils.quantity import parse_quantity

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"

# Requests assumed for scoring when a container sets none (pkg/scheduler/util/pod_resources.go:
# DefaultMilliCPURequest, DefaultMemoryRequest), so empty pods still spread instead of piling on one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Resources = dict[str, int]


def amount(name: str, quantity: Any) -> int:
    """One quantity in scheduler units; raises ValueError on anything that is not a Kubernetes quantity."""
    if isinstance(quantity, bool) or not isinstance(quantity, str | int | float):
        raise ValueError(f"invalid quantity for {name}: {quantity!r}")
    try:
        value: Decimal | None = parse_quantity(str(quantity))
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(f"invalid quantity for {name}: {quantity!r} ({exc})") from None
    if value is None:
        raise ValueError(f"invalid quantity for {name}: {quantity!r}")
    if name == CPU:
        value *= 1000
    return math.ceil(value)


def resource_list(raw: Any, where: str = "resources") -> Resources:
    """A `ResourceList` (name → quantity) in scheduler units."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a map of resource quantities, got {type(raw).__name__}")
    return {str(name): amount(str(name), quantity) for name, quantity in raw.items()}


def _add(total: Resources, more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def _max(total: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value


def _container_requests(container: Any, where: str) -> Resources:
    if not isinstance(container, Mapping):
        raise ValueError(f"{where}: expected a container object")
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise ValueError(f"{where}.resources: expected an object")
    return resource_list(resources.get("requests"), f"{where}.resources.requests")


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    spec = pod.get("spec") or {}
    total: Resources = {}
    for i, container in enumerate(spec.get("containers") or []):
        _add(total, _container_requests(container, f"spec.containers[{i}]"))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for i, container in enumerate(spec.get("initContainers") or []):
        requests = _container_requests(container, f"spec.initContainers[{i}]")
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            _max(init_peak, sidecars)
        else:
            running = dict(requests)
            _add(running, sidecars)
            _max(init_peak, running)
    _max(total, init_peak)
    pod_level = resource_list((spec.get("resources") or {}).get("requests"), "spec.resources.requests")
    for name in (CPU, MEMORY):
        if name in pod_level:
            total[name] = pod_level[name]
    _add(total, resource_list(spec.get("overhead"), "spec.overhead"))
    return {name: value for name, value in total.items() if value}


def nonzero_requests(requests: Mapping[str, int]) -> tuple[int, int]:
    """cpu and memory for scoring, with upstream's defaults standing in for unset requests.

    Upstream applies the default per container; applying it to the pod total differs only for pods that
    mix containers with and without requests, which matters to scores, never to fit.
    """
    return requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST, requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """`status.allocatable`, or `status.capacity` where allocatable is unset (core/v1 defaulting does the same)."""
    status = node.get("status") or {}
    raw = status.get("allocatable")
    if raw is None:
        raw = status.get("capacity")
    return resource_list(raw, "status.allocatable")


@dataclass
class NodeUsage:
    """What the pods bound or assumed on one node request in total."""

    requested: Resources = field(default_factory=dict)
    nonzero_cpu: int = 0
    nonzero_memory: int = 0
    pods: int = 0

    def add(self, requests: Mapping[str, int], sign: int = 1) -> None:
        for name, value in requests.items():
            left = self.requested.get(name, 0) + sign * value
            if left:
                self.requested[name] = left
            else:
                self.requested.pop(name, None)
        cpu, memory = nonzero_requests(requests)
        self.nonzero_cpu += sign * cpu
        self.nonzero_memory += sign * memory
        self.pods += sign

    def remove(self, requests: Mapping[str, int]) -> None:
        self.add(requests, -1)

    @classmethod
    def of(cls, pods: Iterable[Mapping[str, Any]]) -> NodeUsage:
        usage = cls()
        for pod in pods:
            usage.add(pod_requests(pod))
        return usage
