"""Services: ClusterIP and NodePort allocation, the `kubernetes` Service, and Endpoints.

Upstream allocates ClusterIPs and NodePorts inside the API server when a Service is written
(pkg/registry/core/service/storage); kplane's API server is a plain store, so a controller fills them
in right after creation, using the ranges and bands of `ipalloc`. It runs one worker, and remembers what
it handed out until its cache shows it, so two Services never get the same address.

The `kubernetes` Service in `default` (first address of the range, port 443 to the API server's port)
is created by upstream's API server (pkg/controlplane/controller/kubernetesservice); here by
`ensure_kubernetes_service`, which leaves an existing one alone (as on a real cluster).

Endpoints follow the endpoints controller (see `endpoints`): one Endpoints object per Service with a
selector, named like it; Services without a selector are left to whoever manages their Endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Endpoints, Pod, Service
from lightkube.types import PatchType

from kplane.controllers.endpoints import (
    desired_endpoints,
    endpoints_differ,
    pod_terms,
    selector_of,
    selector_term,
    selector_terms,
    selects,
)
from kplane.controllers.ipalloc import (
    DEFAULT_NODE_PORT_RANGE,
    DEFAULT_SERVICE_CIDR,
    IpRange,
    PortRange,
    RangeFull,
    allocate_ip,
    allocate_port,
)
from kplane.runtime import Controller, Result, SharedInformers, key_of, split_key
from kplane.runtime.informer import EventHandler
from kplane.runtime.lkutil import as_dict, is_status, model
from kplane.runtime.objects import labels_of, namespace_of
from kplane.runtime.store import IndexFunc, Store

log = logging.getLogger(__name__)

RANGE_FULL_RETRY_S = 30.0
BOOTSTRAP_RETRY_S = 2.0
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SELECTOR_INDEX = "endpoints-selector"
LABELS_INDEX = "endpoints-labels"


@dataclass(frozen=True)
class ServiceRanges:
    ips: IpRange = field(default_factory=lambda: IpRange.parse(DEFAULT_SERVICE_CIDR))
    ports: PortRange = field(default_factory=lambda: PortRange.parse(DEFAULT_NODE_PORT_RANGE))


def wants_node_ports(spec: Mapping[str, Any]) -> bool:
    kind = spec.get("type") or "ClusterIP"
    if kind == "LoadBalancer":
        return spec.get("allocateLoadBalancerNodePorts") is not False
    return kind == "NodePort"


def wants_health_check_port(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def held_by(service: Mapping[str, Any]) -> tuple[set[str], set[int]]:
    """The ClusterIPs and node ports a Service holds."""
    spec = service.get("spec") or {}
    ips = {str(ip) for ip in [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])] if ip and ip != "None"}
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return ips, ports


@dataclass(frozen=True)
class Allocation:
    """A JSON patch filling in what the Service lacks, and the values it hands out."""

    patch: list[dict[str, Any]]
    ips: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()


def plan_allocation(service: Mapping[str, Any], used_ips: set[str], used_ports: set[int],
                    ranges: ServiceRanges, seed: str) -> Allocation | None:
    """What to allocate for a Service (None when it has everything); raises RangeFull."""
    spec = service.get("spec") or {}
    if (spec.get("type") or "ClusterIP") == "ExternalName":
        return None
    ops: list[dict[str, Any]] = []
    ips: set[str] = set()
    ports: set[int] = set()
    cluster_ip = spec.get("clusterIP")
    if not cluster_ip:
        cluster_ip = allocate_ip(ranges.ips, used_ips, seed)
        ips.add(cluster_ip)
        ops.append({"op": "add", "path": "/spec/clusterIP", "value": cluster_ip})
        ops.append({"op": "add", "path": "/spec/clusterIPs", "value": [cluster_ip]})
    elif not spec.get("clusterIPs"):
        ops.append({"op": "add", "path": "/spec/clusterIPs", "value": [cluster_ip]})
    taken = set(used_ports)
    if wants_node_ports(spec):
        for i, port in enumerate(spec.get("ports") or []):
            if port.get("nodePort"):
                continue
            node_port = allocate_port(ranges.ports, taken, f"{seed}/{i}")
            taken.add(node_port)
            ports.add(node_port)
            ops.append({"op": "add", "path": f"/spec/ports/{i}/nodePort", "value": node_port})
    if wants_health_check_port(spec) and not spec.get("healthCheckNodePort"):
        node_port = allocate_port(ranges.ports, taken, f"{seed}/health")
        ports.add(node_port)
        ops.append({"op": "add", "path": "/spec/healthCheckNodePort", "value": node_port})
    if not ops:
        return None
    guard = {"op": "test", "path": "/metadata/resourceVersion",
             "value": (service.get("metadata") or {}).get("resourceVersion")}
    return Allocation([guard, *ops], frozenset(ips), frozenset(ports))


class ServiceIPController:
    def __init__(self, client: AsyncClient, *, informers: SharedInformers | None = None,
                 ranges: ServiceRanges | None = None) -> None:
        self.client = client
        self.ranges = ranges or ServiceRanges()
        self.controller = Controller("service-ip", client, Service, self.reconcile, workers=1, informers=informers)
        self._handed_out: dict[str, tuple[frozenset[str], frozenset[int]]] = {}
        # key -> (cached object, what it holds); the informer replaces an object on every change, so identity
        # tells whether it changed. Converting every Service on every reconcile was quadratic.
        self._held: dict[str, tuple[Any, tuple[set[str], set[int]]]] = {}

    def in_use(self, exclude: str) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        held: dict[str, tuple[Any, tuple[set[str], set[int]]]] = {}
        store = self.controller.informer.store
        for key in store:
            obj = store.get(key)
            entry = self._held.get(key)
            if entry is None or entry[0] is not obj:
                entry = (obj, held_by(as_dict(obj)))
            held[key] = entry
            if key != exclude:
                ips |= entry[1][0]
                ports |= entry[1][1]
        self._held = held
        for key, (handed_ips, handed_ports) in self._handed_out.items():
            if key != exclude:
                ips |= handed_ips
                ports |= handed_ports
        return ips, ports

    async def reconcile(self, key: str) -> Result | None:
        cached = self.controller.get(key)
        if cached is None:
            self._handed_out.pop(key, None)
            return None
        used_ips, used_ports = self.in_use(exclude=key)
        try:
            plan = plan_allocation(as_dict(cached), used_ips, used_ports, self.ranges, key)
        except RangeFull as exc:
            log.warning("service %s: cannot allocate: %s", key, exc)
            return Result(requeue_after=RANGE_FULL_RETRY_S)
        if plan is None:
            self._handed_out.pop(key, None)
            return None
        namespace, name = split_key(key)
        try:
            await self.client.patch(Service, name, plan.patch, namespace=namespace, patch_type=PatchType.JSON)
        except ApiError as exc:
            if is_status(exc, 409, 422):  # the resourceVersion test failed: the cache was behind
                return Result(requeue=True)
            if is_status(exc, 404):
                return None
            raise
        self._handed_out[key] = (plan.ips, plan.ports)
        log.info("service %s: allocated %s", key, ", ".join([*sorted(plan.ips), *map(str, sorted(plan.ports))]))
        return None


def kubernetes_service(ranges: ServiceRanges, api_port: int) -> dict[str, Any]:
    ip = ranges.ips.first
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]},
    }


def kubernetes_endpoints(api_ip: str, api_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": api_ip}],
                     "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}],
    }


def api_address(server: str) -> tuple[str | None, int]:
    """The API server's IP (None for a host name) and port, from the client's server URL."""
    parts = urlsplit(server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        return str(ipaddress.ip_address(parts.hostname or "")), port
    except ValueError:
        return None, port


async def ensure_kubernetes_service(client: AsyncClient, ranges: ServiceRanges | None = None) -> None:
    """Create `default/kubernetes` and its Endpoints if missing; retried until the API answers."""
    ranges = ranges or ServiceRanges()
    ip, port = api_address(str(client.config.cluster.server))
    wanted: list[tuple[type, dict[str, Any]]] = [(Service, kubernetes_service(ranges, port))]
    if ip is not None:
        wanted.append((Endpoints, kubernetes_endpoints(ip, port)))
    while wanted:
        resource, obj = wanted[0]
        try:
            await client.create(model(resource, obj))
        except ApiError as exc:
            if not is_status(exc, 409):
                log.warning("creating default/kubernetes %s failed, retrying: %s", obj["kind"], exc)
                await asyncio.sleep(BOOTSTRAP_RETRY_S)
                continue
        except Exception as exc:
            log.warning("creating default/kubernetes %s failed, retrying: %s", obj["kind"], exc)
            await asyncio.sleep(BOOTSTRAP_RETRY_S)
            continue
        wanted.pop(0)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def spec_selector(obj: Any) -> dict[str, str] | None:
    """`selector_of` read straight off a cached model, so matching converts nothing to a dict."""
    return selector_of({"spec": {"selector": _field(_field(obj, "spec") or {}, "selector")}})


def index_service_selector(obj: Any) -> list[str]:
    return selector_term(namespace_of(obj), spec_selector(obj))


def index_pod_labels(obj: Any) -> list[str]:
    return pod_terms(namespace_of(obj), labels_of(obj))


def ensure_indexer(store: Store, name: str, func: IndexFunc) -> None:
    """Add an index unless a controller sharing the informer already did (it is the same function)."""
    with contextlib.suppress(ValueError):
        store.add_indexer(name, func)


class EndpointsController:
    """Pod events reach the Services selecting them through a label index, and reconcile reads only the
    Pods its selector matches (each converted once per version), so the cost of an event does not grow
    with the number of Services and Pods sharing the namespace."""

    def __init__(self, client: AsyncClient, *, informers: SharedInformers | None = None, workers: int = 4) -> None:
        self.client = client
        self.controller = Controller("endpoints", client, Service, self.reconcile, workers=workers,
                                     informers=informers)
        self.pods = self.controller.watches(Pod, self.services_selecting)
        self.endpoints = self.controller.watches(Endpoints, lambda obj: [key_of(obj)])
        ensure_indexer(self.controller.informer.store, SELECTOR_INDEX, index_service_selector)
        ensure_indexer(self.pods.store, LABELS_INDEX, index_pod_labels)
        self._pod_dicts: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.pods.add_handler(EventHandler(on_delete=self._forget_pod))

    def services_selecting(self, pod: Any) -> list[str]:
        labels = labels_of(pod)
        services = self.controller.informer.store
        candidates: set[str] = set()
        for term in pod_terms(namespace_of(pod), labels):
            candidates |= services.index_keys(SELECTOR_INDEX, term)
        keys = []
        for key in sorted(candidates):
            selector = spec_selector(services.get(key))
            if selector is not None and selects(selector, labels):
                keys.append(key)
        return keys

    def pods_selected(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """The namespace's Pods carrying every label of a (non-empty) selector, as dicts."""
        matches = sorted((self.pods.store.index_keys(LABELS_INDEX, term)
                          for term in selector_terms(namespace, selector)), key=len)
        keys = set.intersection(*matches) if matches else set()
        pods = []
        for key in sorted(keys):
            obj = self.pods.store.get(key)
            if obj is not None:
                pods.append(self._pod_dict(key, obj))
        return pods

    def _forget_pod(self, pod: Any) -> None:
        self._pod_dicts.pop(key_of(pod), None)

    def _pod_dict(self, key: str, obj: Any) -> dict[str, Any]:
        """A Pod converted once per version: the informer replaces the object on every change, so identity
        is a stricter test than the resourceVersion (and works for objects that lack one)."""
        cached = self._pod_dicts.get(key)
        if cached is not None and cached[0] is obj:
            return cached[1]
        data = as_dict(obj)
        self._pod_dicts[key] = (obj, data)
        return data

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        cached = self.controller.get(key)
        current = self.endpoints.store.get(key)
        if cached is None:
            if current is not None:
                await self._delete(namespace, name)
            return None
        service = as_dict(cached)
        selector = selector_of(service)
        if selector is None:
            return None
        desired = desired_endpoints(service, self.pods_selected(namespace, selector))
        try:
            if current is None:
                await self.client.create(model(Endpoints, desired))
                return None
            existing = as_dict(current)
            if not endpoints_differ(existing, desired):
                return None
            meta = existing.get("metadata") or {}
            desired["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            if meta.get("annotations"):
                desired["metadata"]["annotations"] = meta["annotations"]
            await self.client.replace(model(Endpoints, desired))
        except ApiError as exc:
            if is_status(exc, 409):
                return Result(requeue=True)  # the cache was behind; try again once it has caught up
            if not is_status(exc, 403, 404):  # the namespace is terminating or gone
                raise
        return None

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(Endpoints, name, namespace=namespace)
        except ApiError as exc:
            if not is_status(exc, 404):
                raise


def service_controllers(client: AsyncClient, informers: SharedInformers | None = None,
                        ranges: ServiceRanges | None = None) -> list[Controller]:
    return [ServiceIPController(client, informers=informers, ranges=ranges).controller,
            EndpointsController(client, informers=informers).controller]
