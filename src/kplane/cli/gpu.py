"""`kplane gpu`: discover this machine's GPUs, and plan where GPU pods would go.

`gpu plan` is a what-if for any cluster (kplane's or a real one): it reads nodes, ResourceSlices,
DeviceClasses, ResourceClaims (their allocations count as taken), templates and bound pods, then places the
pods of a file one after another with the scheduler's own placement (`kplane.scheduler.placement`) and the
DRA allocator, exactly as the scheduler would, without writing anything. It prints where each pod fits or
why not, then per node the GPUs in use, and the fragmentation: the share of free GPUs stranded on nodes that
are partly taken (a pod that needs a whole node cannot use them).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from kplane.controllers.resourceclaim import generated_claim
from kplane.dra.allocator import AllocatedState, allocate, parse_slices
from kplane.dra.discovery import DiscoveryError, discover
from kplane.dra.features import Features, features_for
from kplane.scheduler.dra import PodClaims, claim_name_for, missing_class
from kplane.scheduler.placement import DEFAULT_FILTERS, NodeInfo, PodInfo, choose_node
from kplane.scheduler.resources import NodeUsage
from kplane.sim.gpudriver import DRIVER

app = typer.Typer(add_completion=False, no_args_is_help=True, help="GPUs and Dynamic Resource Allocation.")

Obj = Mapping[str, Any]
TERMINAL = ("Succeeded", "Failed")


@dataclass
class Cluster:
    """What a plan reads from a cluster, as plain dicts."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    classes: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    pod: str
    node: str | None
    devices: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class NodeGpus:
    node: str
    total: int
    used: int


@dataclass(frozen=True)
class Plan:
    placements: list[Placement]
    gpus: list[NodeGpus]

    @property
    def utilisation(self) -> float:
        total = sum(n.total for n in self.gpus)
        return sum(n.used for n in self.gpus) / total if total else 0.0

    @property
    def fragmentation(self) -> float:
        free = sum(n.total - n.used for n in self.gpus)
        stranded = sum(n.total - n.used for n in self.gpus if 0 < n.used < n.total)
        return stranded / free if free else 0.0


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _key(obj: Obj) -> str:
    meta = _meta(obj)
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def gpu_of(device: Obj) -> str:
    """The physical GPU a device lives on: its counter set for partitions, else itself."""
    consumes = device.get("consumesCounters") or ()
    return str(consumes[0].get("counterSet")) if consumes else str(device.get("name"))


def gpu_inventory(slices: Sequence[Obj]) -> dict[str, dict[str, str]]:
    """node → (device name → physical GPU) for the gpu.nvidia.com slices published for one node."""
    out: dict[str, dict[str, str]] = {}
    for s in slices:
        spec = s.get("spec") or {}
        if spec.get("driver") != DRIVER or not spec.get("nodeName"):
            continue
        devices = out.setdefault(str(spec["pool"]["name"]), {})
        for device in spec.get("devices") or ():
            devices[str(device.get("name"))] = gpu_of(device)
    return out


def _busy(claims: Sequence[Obj], inventory: Mapping[str, Mapping[str, str]]) -> dict[str, set[str]]:
    busy: dict[str, set[str]] = {}
    for claim in claims:
        for result in (((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get("results") or ():
            pool = inventory.get(str(result.get("pool")))
            if result.get("driver") == DRIVER and pool is not None and result.get("device") in pool:
                busy.setdefault(str(result["pool"]), set()).add(pool[str(result["device"])])
    return busy


def pod_claims(pod: Obj, claims: Mapping[str, Obj], templates: Mapping[str, Obj]) -> list[dict[str, Any]] | str:
    """The claims `pod` would use: existing ones by name, fresh ones from its templates; or why not."""
    namespace = _meta(pod).get("namespace") or "default"
    out: list[dict[str, Any]] = []
    for pod_claim in (pod.get("spec") or {}).get("resourceClaims") or ():
        template_name = pod_claim.get("resourceClaimTemplateName")
        if template_name:
            template = templates.get(f"{namespace}/{template_name}")
            if template is None:
                return f'resourceclaimtemplate.resource.k8s.io "{template_name}" not found'
            fresh = generated_claim({**pod, "metadata": {**_meta(pod), "namespace": namespace}},
                                   str(pod_claim.get("name")), template)
            fresh["metadata"]["name"] = fresh["metadata"].pop("generateName") + "planned"
            out.append(fresh)
            continue
        name, _, error = claim_name_for(pod, pod_claim)
        if error or name is None:
            return error or "no claim"
        claim = claims.get(f"{namespace}/{name}")
        if claim is None:
            return f'resourceclaim.resource.k8s.io "{name}" not found'
        out.append(dict(claim))
    return out


def plan(cluster: Cluster, pods: Sequence[Obj], features: Features | None = None) -> Plan:
    """Place `pods` in order on `cluster`, each seeing the ones placed before it."""
    features = features or features_for(version="1.36")
    usage: dict[str, NodeUsage] = {}
    for bound in cluster.pods:
        node = (bound.get("spec") or {}).get("nodeName")
        if node and (bound.get("status") or {}).get("phase") not in TERMINAL:
            usage.setdefault(node, NodeUsage()).add(PodInfo.of(bound).requests)
    claims = {_key(c): dict(c) for c in cluster.claims}
    templates = {_key(t): t for t in cluster.templates}
    classes = {str(_meta(c).get("name")): c for c in cluster.classes}
    views = parse_slices(cluster.slices)
    placements = []
    for pod in pods:
        name = _key(pod)
        wanted = pod_claims(pod, claims, templates)
        if isinstance(wanted, str):
            placements.append(Placement(name, None, reason=wanted))
            continue
        to_allocate = [c for c in wanted if not (c.get("status") or {}).get("allocation")]
        missing = next((m for m in (missing_class(c, classes) for c in to_allocate) if m), "")
        if missing:
            placements.append(Placement(name, None, reason=missing))
            continue
        state = PodClaims(pod, wanted, to_allocate, views, classes,
                          AllocatedState.from_claims(list(claims.values())), features, allocate)
        infos = [NodeInfo(n, usage.get(str(_meta(n).get("name"))) or NodeUsage()) for n in
                 sorted(cluster.nodes, key=lambda n: str(_meta(n).get("name")))]
        info = PodInfo.of(pod)
        result = choose_node(info, infos, filters=(*DEFAULT_FILTERS, state.filter))
        if result.node is None:
            placements.append(Placement(name, None, reason=result.message))
            continue
        usage.setdefault(result.node, NodeUsage()).add(info.requests)
        devices: list[str] = []
        for claim, allocation in zip(to_allocate, state.results.get(result.node, ()), strict=False):
            claim["status"] = {"allocation": allocation}
            claims[_key(claim)] = claim
            devices += [r["device"] for r in allocation["devices"]["results"]]
        placements.append(Placement(name, result.node, tuple(devices)))
    inventory = gpu_inventory(cluster.slices)
    busy = _busy(list(claims.values()), inventory)
    gpus = [NodeGpus(node, len(set(devices.values())), len(busy.get(node, ())))
            for node, devices in sorted(inventory.items())]
    return Plan(placements, gpus)


def render(result: Plan) -> str:
    rows = [("POD", "NODE", "DEVICES", "REASON")]
    for p in result.placements:
        rows.append((p.pod, p.node or "-", ",".join(p.devices) or "-", p.reason or "fits"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.append("")
    lines.append("NODE  GPUS-USED/TOTAL")
    lines += [f"{n.node}  {n.used}/{n.total}" for n in result.gpus]
    lines.append(f"GPU utilisation: {result.utilisation:.0%}  fragmentation: {result.fragmentation:.0%} "
                 "of free GPUs are on partly used nodes")
    return "\n".join(lines)


def read_pods(path: Path) -> tuple[list[dict[str, Any]], Cluster]:
    """Pods from a multi-document YAML file (a `List` too); templates and claims in it join the cluster's."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    objects: list[dict[str, Any]] = []
    for document in documents:
        if not isinstance(document, dict):
            raise ValueError(f"{path}: expected objects, got {type(document).__name__}")
        objects += document.get("items") or [] if document.get("kind", "").endswith("List") else [document]
    extra = Cluster(claims=[o for o in objects if o.get("kind") == "ResourceClaim"],
                    templates=[o for o in objects if o.get("kind") == "ResourceClaimTemplate"])
    pods = [o for o in objects if o.get("kind") == "Pod"]
    unknown = sorted({str(o.get("kind")) for o in objects} - {"Pod", "ResourceClaim", "ResourceClaimTemplate"})
    if unknown:
        raise ValueError(f"{path}: only Pod, ResourceClaim and ResourceClaimTemplate objects are read, got "
                         f"{', '.join(unknown)}")
    for pod in pods:
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"planned-{meta.get('name')}")
    return pods, extra


async def read_cluster(kubeconfig: Path) -> Cluster:
    from lightkube.resources.core_v1 import Node, Pod
    from lightkube.resources.resource_v1 import DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice

    from kplane.runtime import client_from_kubeconfig

    client = client_from_kubeconfig(kubeconfig)
    try:
        async def every(resource: Any, namespaced: bool) -> list[dict[str, Any]]:
            items = client.list(resource, namespace="*") if namespaced else client.list(resource)
            return [o.to_dict() async for o in items]

        return Cluster(nodes=await every(Node, False), slices=await every(ResourceSlice, False),
                       classes=await every(DeviceClass, False), claims=await every(ResourceClaim, True),
                       templates=await every(ResourceClaimTemplate, True), pods=await every(Pod, True))
    finally:
        await client.close()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command("discover")
def discover_command(
    node: Annotated[str | None, typer.Option("--node", help="Node name for the slice (default: host name).")]
    = None,
) -> None:
    """Print a ResourceSlice for the NVIDIA GPUs of this machine (NVML)."""
    try:
        found = discover(node or socket.gethostname().lower())
    except DiscoveryError as exc:
        raise _fail(str(exc)) from None
    typer.echo(yaml.safe_dump(found, sort_keys=False), nl=False)


@app.command("plan")
def plan_command(
    file: Annotated[Path, typer.Option("-f", "--filename", help="Pods (and claims, templates) to place.")],
    kubeconfig: Annotated[Path, typer.Option("--kubeconfig", envvar="KUBECONFIG",
                                             help="Cluster to plan against.")] = Path(".kplane/kubeconfig"),
) -> None:
    """What-if: where the pods of FILE would run, why others would not, and GPU use afterwards."""
    try:
        pods, extra = read_pods(file)
        cluster = asyncio.run(read_cluster(kubeconfig))
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # the cluster cannot be read: one line, not a traceback
        raise _fail(f"cannot read the cluster from {kubeconfig}: {exc}") from None
    cluster.claims += extra.claims
    cluster.templates += extra.templates
    typer.echo(render(plan(cluster, pods)))
