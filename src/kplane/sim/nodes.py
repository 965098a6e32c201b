"""Simulated nodes: what they look like, and the heartbeats that keep them Ready.

A node is registered the way a kubelet registers itself (pkg/kubelet/kubelet_node_status.go): labels
`kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch` (and their `beta.` twins), an instance
type; capacity and allocatable; conditions MemoryPressure, DiskPressure, PIDPressure (False) and Ready
(True); addresses; nodeInfo with the server's version as kubelet version. Liveness follows the kubelet's
node-lease heartbeat (KEP-589): a Lease per node in `kube-node-lease`, renewed every 10 s with a 40 s
duration, while the Ready condition's `lastHeartbeatTime` is refreshed far less often.

Node config file (`<data-dir>/nodes.yaml`): one or more YAML documents, each a Node-like object or a `List`
of them (`items:`). Only these fields are read; everything else gets the defaults above:

    apiVersion: v1
    kind: Node
    metadata:
      name: gpu-0                                 # required, a DNS subdomain
      labels: {nvidia.com/gpu.present: "true"}    # merged over the default labels
      annotations: {}
    spec:
      taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
      unschedulable: false
      podCIDR: 10.244.7.0/24                      # default: 10.244.<index>.0/24
    status:
      capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "8"}
      allocatable: {cpu: "63", memory: 500Gi}     # default: capacity; missing names come from capacity
      addresses: [{type: InternalIP, address: 172.18.0.10}]
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NODE_FILE = "nodes.yaml"
NODE_LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40  # kubelet's nodeLeaseDurationSeconds default
LEASE_RENEW_S = 10.0  # a quarter of the duration, as the kubelet renews
STATUS_REFRESH_S = 60.0
DEFAULT_NAME_PREFIX = "kplane-node-"
DEFAULT_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
DEFAULT_INSTANCE_TYPE = "kplane.sim-32"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class NodeConfig:
    name: str
    index: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, Any], ...] = ()
    unschedulable: bool = False
    capacity: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    allocatable: Mapping[str, str] = field(default_factory=dict)
    pod_cidr: str = ""
    address: str = ""

    @property
    def cidr(self) -> str:
        return self.pod_cidr or f"10.244.{self.index % 256}.0/24"

    @property
    def internal_ip(self) -> str:
        return self.address or str(ipaddress.ip_address("172.18.0.2") + self.index)


def default_node_configs(count: int, prefix: str = DEFAULT_NAME_PREFIX) -> list[NodeConfig]:
    if count < 0:
        raise ValueError(f"node count must not be negative, got {count}")
    return [NodeConfig(name=f"{prefix}{i}", index=i) for i in range(count)]


def _strings(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise ValueError(f"{where} must be a map")
    return {k: str(v) for k, v in raw.items()}


def _taints(raw: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be a list")
    taints = []
    for i, taint in enumerate(raw):
        if not isinstance(taint, Mapping) or not isinstance(taint.get("key"), str) or not taint.get("key"):
            raise ValueError(f"{where}[{i}].key is required")
        if taint.get("effect") not in TAINT_EFFECTS:
            raise ValueError(f"{where}[{i}].effect must be one of {', '.join(TAINT_EFFECTS)}")
        taints.append({k: taint[k] for k in ("key", "value", "effect") if taint.get(k) is not None})
    return tuple(taints)


def node_config_from_object(raw: Any, index: int) -> NodeConfig:
    """One Node-like object; ValueError names the document and field at fault."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"node #{index}: expected an object")
    kind = raw.get("kind", "Node")
    if kind != "Node":
        raise ValueError(f"node #{index}: kind must be Node, got {kind!r}")
    meta, spec, status = (raw.get(k) or {} for k in ("metadata", "spec", "status"))
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise ValueError(f"node #{index}: metadata.name must be a DNS subdomain, got {name!r}")
    where = f"node {name}"
    cidr = spec.get("podCIDR") or ""
    if cidr:
        try:
            ipaddress.ip_network(cidr)
        except ValueError as exc:
            raise ValueError(f"{where}: spec.podCIDR: {exc}") from None
    addresses = status.get("addresses") or []
    internal = [a.get("address") for a in addresses if isinstance(a, Mapping) and a.get("type") == "InternalIP"]
    capacity = _strings(status.get("capacity"), f"{where}: status.capacity") or dict(DEFAULT_CAPACITY)
    return NodeConfig(
        name=name,
        index=index,
        labels=_strings(meta.get("labels"), f"{where}: metadata.labels"),
        annotations=_strings(meta.get("annotations"), f"{where}: metadata.annotations"),
        taints=_taints(spec.get("taints"), f"{where}: spec.taints"),
        unschedulable=bool(spec.get("unschedulable")),
        capacity=capacity,
        allocatable=_strings(status.get("allocatable"), f"{where}: status.allocatable"),
        pod_cidr=cidr,
        address=str(internal[0]) if internal else "",
    )


def node_configs_from_yaml(text: str) -> list[NodeConfig]:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    objects: list[Any] = []
    for document in documents:
        if isinstance(document, Mapping) and document.get("kind") in ("List", "NodeList"):
            objects.extend(document.get("items") or [])
        else:
            objects.append(document)
    configs = [node_config_from_object(raw, i) for i, raw in enumerate(objects)]
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"node names defined twice: {', '.join(duplicates)}")
    return configs


def load_node_configs(data_dir: Path, count: int) -> list[NodeConfig]:
    """`<data_dir>/nodes.yaml` when it exists, else `count` default nodes."""
    path = data_dir / NODE_FILE
    if not path.is_file():
        return default_node_configs(count)
    try:
        return node_configs_from_yaml(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def node_labels(config: NodeConfig) -> dict[str, str]:
    defaults = {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": DEFAULT_INSTANCE_TYPE,
        "kplane.io/simulated": "true",
    }
    return {**defaults, **config.labels}


def node_conditions(now: str) -> list[dict[str, Any]]:
    """The kubelet's condition set for a healthy node (pkg/kubelet/nodestatus/setters.go texts)."""
    rows = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for kind, status, reason, message in rows
    ]


def node_status(config: NodeConfig, kubelet_version: str, now: str) -> dict[str, Any]:
    ident = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{config.name}.kplane.sim"))
    return {
        "capacity": dict(config.capacity),
        "allocatable": {**config.capacity, **config.allocatable},
        "conditions": node_conditions(now),
        "addresses": [
            {"type": "InternalIP", "address": config.internal_ip},
            {"type": "Hostname", "address": config.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": ident.replace("-", ""),
            "systemUUID": ident,
            "bootID": ident,
            "kernelVersion": "6.8.0-kplane",
            "osImage": "kplane simulated node",
            "containerRuntimeVersion": "kplane://0.1.0",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_object(config: NodeConfig, kubelet_version: str, now: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"podCIDR": config.cidr, "podCIDRs": [config.cidr], "providerID": f"kplane://{config.name}"}
    if config.taints:
        spec["taints"] = [dict(t) for t in config.taints]
    if config.unschedulable:
        spec["unschedulable"] = True
    metadata: dict[str, Any] = {"name": config.name, "labels": node_labels(config)}
    if config.annotations:
        metadata["annotations"] = dict(config.annotations)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": spec,
        "status": node_status(config, kubelet_version, now),
    }


def lease_object(config: NodeConfig, node_uid: str, renew_time: str) -> dict[str, Any]:
    """The node's heartbeat Lease, owned by its Node so it goes when the Node goes (as the kubelet sets it)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": config.name,
            "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": config.name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": config.name, "leaseDurationSeconds": LEASE_DURATION_S, "renewTime": renew_time},
    }


def heartbeat_conditions(conditions: Iterable[Mapping[str, Any]], now: str) -> list[dict[str, Any]]:
    """The same conditions with `lastHeartbeatTime` refreshed; transitions keep their time."""
    return [{**c, "lastHeartbeatTime": now} for c in conditions]
