"""Endpoints for a Service, computed from its pods: pure functions over API-shaped dicts.

Facts from kube-controller-manager's endpoints controller (pkg/controller/endpoint/endpoints_controller.go
`syncService`), `pkg/api/v1/endpoints` (`RepackSubsets`, sorting), `pkg/api/v1/pod` (`FindPort`,
`IsPodReady`) and `pkg/controller/util/endpoint` (`ShouldPodBeInEndpoints`):
- a pod takes part once it has an IP; a terminating pod only when the Service publishes not-ready
  addresses; a finished pod never (Never: Succeeded or Failed; OnFailure: Succeeded);
- a ready pod (condition Ready=True, or any pod when publishNotReadyAddresses) is in `addresses`, others
  in `notReadyAddresses`;
- a named targetPort is looked up among the pod's container ports with the Service port's protocol; a pod
  without it is left out for that port;
- addresses that serve the same set of ports share a subset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Obj = dict[str, Any]

HEADLESS_LABEL = "service.kubernetes.io/headless"


def selector_of(service: Mapping[str, Any]) -> dict[str, str] | None:
    """The Service's selector, or None when it has none (its Endpoints are someone else's)."""
    selector = (service.get("spec") or {}).get("selector")
    return {str(k): str(v) for k, v in selector.items()} if selector else None


def selects(selector: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


def label_term(namespace: str, key: str, value: str) -> str:
    """One `key=value` label scoped to a namespace: the value under which the controller's caches index
    Pods (one per label) and Services (one per selector), so matching needs no scan of the namespace."""
    return f"{namespace}\x00{key}\x00{value}"


def pod_terms(namespace: str, labels: Mapping[str, str] | None) -> list[str]:
    return [label_term(namespace, str(k), str(v)) for k, v in (labels or {}).items()]


def selector_term(namespace: str, selector: Mapping[str, str] | None) -> list[str]:
    """A Service is indexed under one of its selector's terms: every Pod it selects carries that label,
    so looking up each of a Pod's labels finds every candidate Service."""
    if not selector:
        return []
    key = min(selector)
    return [label_term(namespace, key, selector[key])]


def selector_terms(namespace: str, selector: Mapping[str, str]) -> list[str]:
    return [label_term(namespace, k, v) for k, v in selector.items()]


def is_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    ips = status.get("podIPs") or []
    return str(ips[0].get("ip")) if ips and ips[0].get("ip") else None


def should_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    if pod_ip(pod) is None:
        return False
    if not include_terminating and (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    phase = (pod.get("status") or {}).get("phase")
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod port a Service port sends to; None when a named targetPort is not declared by the pod."""
    target = service_port.get("targetPort")
    if target in (None, "", 0):
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def endpoint_address(pod: Mapping[str, Any], service: Mapping[str, Any]) -> Obj:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    service_meta = service.get("metadata") or {}
    address: Obj = {"ip": pod_ip(pod)}
    if (spec.get("hostname") and spec.get("subdomain") == service_meta.get("name")
            and meta.get("namespace") == service_meta.get("namespace")):
        address["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                            "uid": meta.get("uid")}
    return address


def endpoint_port(service_port: Mapping[str, Any], port: int) -> Obj:
    out: Obj = {}
    if service_port.get("name"):
        out["name"] = service_port["name"]
    out["port"] = port
    out["protocol"] = service_port.get("protocol") or "TCP"
    if service_port.get("appProtocol"):
        out["appProtocol"] = service_port["appProtocol"]
    return out


def _address_key(address: Mapping[str, Any]) -> tuple[Any, ...]:
    ip = str(address.get("ip") or "")
    numeric = tuple(int(p) for p in ip.split(".")) if ip.count(".") == 3 and ip.replace(".", "").isdigit() else ()
    return (numeric, ip, (address.get("targetRef") or {}).get("uid") or "")


def _port_key(port: Mapping[str, Any]) -> tuple[Any, ...]:
    return (port.get("name") or "", port.get("port") or 0, port.get("protocol") or "")


def build_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The Endpoints subsets for `service` given the pods its selector matches (same namespace)."""
    spec = service.get("spec") or {}
    tolerate_unready = bool(spec.get("publishNotReadyAddresses"))
    service_ports: Sequence[Mapping[str, Any]] = spec.get("ports") or []
    headless_portless = not service_ports and spec.get("clusterIP") == "None"
    # address identity -> (address, ready, ports)
    members: dict[tuple[Any, ...], tuple[Obj, bool, list[Obj]]] = {}
    for pod in pods:
        if not should_be_in_endpoints(pod, tolerate_unready):
            continue
        address = endpoint_address(pod, service)
        ports = [endpoint_port(sp, found) for sp in service_ports if (found := find_port(pod, sp)) is not None]
        if not ports and not headless_portless:
            continue
        members[_address_key(address)] = (address, tolerate_unready or is_ready(pod), ports)
    groups: dict[tuple[tuple[Any, ...], ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for address, ready, ports in members.values():
        ports = sorted(ports, key=_port_key)
        key = tuple(_port_key(p) for p in ports)
        ready_list, not_ready_list, _ = groups.setdefault(key, ([], [], ports))
        (ready_list if ready else not_ready_list).append(address)
    subsets = []
    for key in sorted(groups):
        ready_list, not_ready_list, ports = groups[key]
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = sorted(ready_list, key=_address_key)
        if not_ready_list:
            subset["notReadyAddresses"] = sorted(not_ready_list, key=_address_key)
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


def endpoints_labels(service: Mapping[str, Any]) -> dict[str, str]:
    """The Service's labels, plus the headless marker upstream adds for `clusterIP: None`."""
    labels = {str(k): str(v) for k, v in ((service.get("metadata") or {}).get("labels") or {}).items()}
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def desired_endpoints(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> Obj:
    meta = service.get("metadata") or {}
    endpoints: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                      "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}}
    labels = endpoints_labels(service)
    if labels:
        endpoints["metadata"]["labels"] = labels
    subsets = build_subsets(service, pods)
    if subsets:
        endpoints["subsets"] = subsets
    return endpoints


def endpoints_differ(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether an update is needed: the subsets or the labels changed."""
    current_labels = (current.get("metadata") or {}).get("labels") or {}
    desired_labels = (desired.get("metadata") or {}).get("labels") or {}
    return bool((current.get("subsets") or []) != (desired.get("subsets") or []) or current_labels != desired_labels)

