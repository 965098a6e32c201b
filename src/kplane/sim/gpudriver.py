"""A simulated NVIDIA GPU DRA driver: ResourceSlices for simulated nodes, as NVIDIA's kubelet plugin
publishes them for real ones.

What a device looks like follows NVIDIA/k8s-dra-driver-gpu v25.12.0 (`cmd/gpu-kubelet-plugin/deviceinfo.go`,
`partitions.go`, `driver.go`; summarised in the DRA research notes §5.2): driver `gpu.nvidia.com`, one pool
per node named after the node, full GPUs named `gpu-<minor>` with attributes `type`, `uuid`, `productName`,
`brand`, `architecture`, `cudaComputeCapability`, `driverVersion`, `cudaDriverVersion` (versions as semver),
`index`/`minor` (as releases before v25.8 published them) and `resource.kubernetes.io/pciBusID`, and the
capacity `memory`. MIG partitions of an A100 are partitionable devices (KEP-4815): one counter set per GPU
(`gpu-<minor>-counter-set`, the GPU's memory and its eight memory slices) in a slice of its own (1.35 forbids
devices and counters in one slice), the full GPU consuming every counter and each MIG device
(`gpu-<minor>-mig-<profileId>-<start>-<size>`) the memory slices it occupies, so a MIG partition and its
parent GPU can never be allocated together.

A node chooses a profile with the label `gpu.kplane.io/profile` (label values have no spaces, so
`8x-H100-80GB`; the annotation of the same name also accepts `8x H100-80GB`), e.g. in `nodes.yaml`:

    metadata:
      name: gpu-0
      labels: {gpu.kplane.io/profile: 8x-H100-80GB}

Known models: H100-80GB, H200-141GB, A100-40GB (with MIG partitions). The driver also creates the DeviceClasses
NVIDIA's Helm chart installs: `gpu.nvidia.com` (full GPUs) and `mig.nvidia.com` (MIG devices).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Node
from lightkube.resources.resource_v1 import DeviceClass, ResourceSlice

from kplane.runtime import EventHandler, SharedInformers
from kplane.runtime.lkutil import model

log = logging.getLogger(__name__)

DRIVER = "gpu.nvidia.com"
PROFILE_LABEL = "gpu.kplane.io/profile"
DRIVER_VERSION = "550.127.8"  # NVIDIA publishes the kernel driver version coerced to semver
CUDA_DRIVER_VERSION = "12.4.0"
GPU_CLASS = "gpu.nvidia.com"
MIG_CLASS = "mig.nvidia.com"
MEMORY_SLICES = 8
MAX_GPUS = 16


@dataclass(frozen=True)
class MigProfile:
    name: str
    profile_id: int
    slices: int  # memory slices occupied
    placements: tuple[int, ...]
    multiprocessors: int
    memory: str


@dataclass(frozen=True)
class GpuModel:
    key: str
    product_name: str
    architecture: str
    compute_capability: str
    memory: str
    mig: tuple[MigProfile, ...] = ()


# MIG profiles of the A100-SXM4-40GB (NVIDIA MIG user guide, "A100 MIG profiles"): profile ids as
# `nvidia-smi mig -lgip` prints them, placements as `-lgipp`.
_A100_MIG = (
    MigProfile("1g.5gb", 19, 1, (0, 1, 2, 3, 4, 5, 6), 14, "5Gi"),
    MigProfile("2g.10gb", 14, 2, (0, 2, 4), 28, "10Gi"),
    MigProfile("3g.20gb", 9, 4, (0, 4), 42, "20Gi"),
    MigProfile("4g.20gb", 5, 4, (0,), 56, "20Gi"),
    MigProfile("7g.40gb", 0, 8, (0,), 98, "40Gi"),
)
MODELS: Mapping[str, GpuModel] = {
    m.key: m
    for m in (
        GpuModel("H100-80GB", "NVIDIA H100 80GB HBM3", "Hopper", "9.0.0", "81559Mi"),
        GpuModel("H200-141GB", "NVIDIA H200", "Hopper", "9.0.0", "143771Mi"),
        GpuModel("A100-40GB", "NVIDIA A100-SXM4-40GB", "Ampere", "8.0.0", "40Gi", _A100_MIG),
    )
}
_PROFILE = re.compile(r"\s*(\d+)\s*x[\s-]*([a-z0-9]+-\d+gb)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class GpuProfile:
    count: int
    model: GpuModel

    def __str__(self) -> str:
        return f"{self.count}x {self.model.key}"


def parse_profile(text: str) -> GpuProfile:
    """`8x H100-80GB` or `8x-H100-80GB`; ValueError says what is wrong."""
    match = _PROFILE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid GPU profile {text!r}: expected <count>x <model>, e.g. '8x H100-80GB'")
    count, key = int(match.group(1)), match.group(2).upper()
    model = MODELS.get(key)
    if model is None:
        raise ValueError(f"unknown GPU model {key!r} in profile {text!r}: known {', '.join(sorted(MODELS))}")
    if not 1 <= count <= MAX_GPUS:
        raise ValueError(f"invalid GPU profile {text!r}: count must be 1 to {MAX_GPUS}")
    return GpuProfile(count, model)


def node_profile(node: Mapping[str, Any]) -> GpuProfile | None:
    """The profile a node asks for (label first, then annotation); None for a node without GPUs."""
    meta = node.get("metadata") or {}
    text = (meta.get("labels") or {}).get(PROFILE_LABEL) or (meta.get("annotations") or {}).get(PROFILE_LABEL)
    return parse_profile(str(text)) if text else None


def gpu_uuid(node: str, minor: int) -> str:
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{node}.gpu{minor}.kplane.sim')}"


def _common_attributes(model: GpuModel) -> dict[str, Any]:
    return {
        "productName": {"string": model.product_name},
        "brand": {"string": "Nvidia"},
        "architecture": {"string": model.architecture},
        "cudaComputeCapability": {"version": model.compute_capability},
        "driverVersion": {"version": DRIVER_VERSION},
        "cudaDriverVersion": {"version": CUDA_DRIVER_VERSION},
    }


def _pci_bus_id(minor: int) -> str:
    return f"0000:{0x18 + 0x10 * minor:02x}:00.0"


def gpu_device(node: str, model: GpuModel, minor: int, partitionable: bool) -> dict[str, Any]:
    device: dict[str, Any] = {
        "name": f"gpu-{minor}",
        "attributes": {
            "type": {"string": "gpu"},
            "uuid": {"string": gpu_uuid(node, minor)},
            "index": {"int": minor},
            "minor": {"int": minor},
            **_common_attributes(model),
            "resource.kubernetes.io/pciBusID": {"string": _pci_bus_id(minor)},
        },
        "capacity": {"memory": {"value": model.memory}},
    }
    if partitionable:
        counters = {"memory": {"value": model.memory}}
        counters.update({f"memory-slice-{i}": {"value": "1"} for i in range(MEMORY_SLICES)})
        device["consumesCounters"] = [{"counterSet": counter_set_name(minor), "counters": counters}]
    return device


def counter_set_name(minor: int) -> str:
    return f"gpu-{minor}-counter-set"


def counter_set(model: GpuModel, minor: int) -> dict[str, Any]:
    counters = {"memory": {"value": model.memory}}
    counters.update({f"memory-slice-{i}": {"value": "1"} for i in range(MEMORY_SLICES)})
    return {"name": counter_set_name(minor), "counters": counters}


def mig_device(node: str, model: GpuModel, minor: int, profile: MigProfile, start: int) -> dict[str, Any]:
    occupied = range(start, start + profile.slices)
    capacity: dict[str, Any] = {
        "memory": {"value": profile.memory},
        "multiprocessors": {"value": str(profile.multiprocessors)},
        "copyEngines": {"value": str(max(1, profile.slices))},
        "decoders": {"value": str(profile.slices // 2)},
        "encoders": {"value": "0"},
        "jpegEngines": {"value": "1" if profile.slices == MEMORY_SLICES else "0"},
        "ofaEngines": {"value": "1" if profile.slices == MEMORY_SLICES else "0"},
    }
    capacity.update({f"memorySlice{i}": {"value": "1"} for i in occupied})
    counters = {"memory": {"value": profile.memory}}
    counters.update({f"memory-slice-{i}": {"value": "1"} for i in occupied})
    name = f"gpu-{minor}-mig-{profile.profile_id}-{start}-{profile.slices}"
    return {
        "name": name,
        "attributes": {
            "type": {"string": "mig"},
            "uuid": {"string": "MIG-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.{name}.kplane.sim"))},
            "parentUUID": {"string": gpu_uuid(node, minor)},
            "profile": {"string": profile.name},
            "index": {"int": minor},
            **_common_attributes(model),
            "resource.kubernetes.io/pciBusID": {"string": _pci_bus_id(minor)},
        },
        "capacity": capacity,
        "consumesCounters": [{"counterSet": counter_set_name(minor), "counters": counters}],
    }


def slice_name(node: str, suffix: str) -> str:
    return f"{node}-{DRIVER}-{suffix}"


def node_slices(node: str, profile: GpuProfile, *, generation: int = 0,
                node_uid: str = "") -> list[dict[str, Any]]:
    """Every ResourceSlice of one node's pool. A model without MIG gives one slice with all GPUs; a MIG model
    gives one counter slice plus one slice per GPU (a slice with counter consumers holds at most 64 devices)."""
    model = profile.model
    specs: list[tuple[str, dict[str, Any]]] = []
    if not model.mig:
        devices = [gpu_device(node, model, minor, False) for minor in range(profile.count)]
        specs.append(("gpus", {"devices": devices}))
    else:
        specs.append(("counters", {"sharedCounters": [counter_set(model, m) for m in range(profile.count)]}))
        for minor in range(profile.count):
            devices = [gpu_device(node, model, minor, True)]
            devices += [mig_device(node, model, minor, p, start) for p in model.mig for start in p.placements]
            specs.append((f"gpu-{minor}", {"devices": devices}))
    owner = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}]
    slices = []
    for suffix, body in specs:
        metadata: dict[str, Any] = {"name": slice_name(node, suffix)}
        if node_uid:
            metadata["ownerReferences"] = owner
        slices.append({
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": metadata,
            "spec": {
                "driver": DRIVER,
                "nodeName": node,
                "pool": {"name": node, "generation": generation, "resourceSliceCount": len(specs)},
                **body,
            },
        })
    return slices


def device_classes() -> list[dict[str, Any]]:
    """The chart's classes (deployments/helm/nvidia-dra-driver-gpu/templates/deviceclass-*.yaml)."""
    def klass(name: str, kind: str) -> dict[str, Any]:
        expression = f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{kind}'"
        return {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expression}}]},
        }

    return [klass(GPU_CLASS, "gpu"), klass(MIG_CLASS, "mig")]


@dataclass(frozen=True)
class SlicePlan:
    """What to write so that the published slices match the nodes' profiles."""

    create: tuple[dict[str, Any], ...] = ()
    update: tuple[dict[str, Any], ...] = ()
    delete: tuple[str, ...] = ()


def plan_slices(nodes: Sequence[Mapping[str, Any]], existing: Sequence[Mapping[str, Any]]) -> SlicePlan:
    """Desired slices of simulated nodes with a profile versus this driver's slices now published. A pool
    whose devices change gets a new generation, so consumers never mix old and new slices. A node with an
    unreadable profile publishes nothing (and is logged)."""
    published = {s["metadata"]["name"]: s for s in existing if (s.get("spec") or {}).get("driver") == DRIVER}
    wanted: dict[str, dict[str, Any]] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        if (meta.get("labels") or {}).get("kplane.io/simulated") != "true":
            continue
        try:
            profile = node_profile(node)
        except ValueError as exc:
            log.warning("node %s: %s", meta.get("name"), exc)
            continue
        if profile is None:
            continue
        fresh = node_slices(meta["name"], profile, node_uid=str(meta.get("uid") or ""))
        old = [published[s["metadata"]["name"]] for s in fresh if s["metadata"]["name"] in published]
        generation = max((int(s["spec"]["pool"].get("generation") or 0) for s in old), default=0)
        if len(old) != len(fresh) or any(_devices_of(o) != _devices_of(f) for o, f in zip(old, fresh, strict=False)):
            generation = generation + 1 if old else 0
        for s in fresh:
            s["spec"]["pool"]["generation"] = generation
            wanted[s["metadata"]["name"]] = s
    create, update = [], []
    for name, body in wanted.items():
        have = published.get(name)
        if have is None:
            create.append(body)
        elif have.get("spec") != body["spec"]:
            update.append({**body, "metadata": {**body["metadata"],
                                                "resourceVersion": have["metadata"].get("resourceVersion")}})
    delete = tuple(sorted(name for name in published if name not in wanted))
    return SlicePlan(tuple(create), tuple(update), delete)


def _devices_of(slice_obj: Mapping[str, Any]) -> Any:
    spec = slice_obj.get("spec") or {}
    return spec.get("devices"), spec.get("sharedCounters")


def _as_dict(obj: Any) -> dict[str, Any]:
    return dict(obj) if isinstance(obj, Mapping) else obj.to_dict()


class GpuDriver:
    """Keeps the slices of the `gpu.nvidia.com` driver in line with the simulated nodes' profiles."""

    def __init__(self, client: AsyncClient, informers: SharedInformers) -> None:
        self.client = client
        self.nodes = informers.get(Node)
        self.slices = informers.get(ResourceSlice)
        self._wake = asyncio.Event()

    async def run(self) -> None:
        await self._ensure_classes()
        handler = EventHandler(lambda _: self._wake.set(), lambda _o, _n: self._wake.set(),
                               lambda _: self._wake.set())
        for informer in (self.nodes, self.slices):
            informer.start()
            informer.add_handler(handler)
        try:
            await asyncio.gather(self.nodes.wait_synced(), self.slices.wait_synced())
            while True:
                self._wake.clear()
                await self.sync()
                await self._wake.wait()
        finally:
            for informer in (self.nodes, self.slices):
                informer.remove_handler(handler)
                await informer.stop()

    async def sync(self) -> None:
        plan = plan_slices([_as_dict(n) for n in self.nodes.store.list()],
                           [_as_dict(s) for s in self.slices.store.list()])
        for body in plan.create:
            await self._write(self.client.create(model(ResourceSlice, body)), body)
        for body in plan.update:
            await self._write(self.client.replace(model(ResourceSlice, body)), body)
        for name in plan.delete:
            await self._write(self.client.delete(ResourceSlice, name), {"metadata": {"name": name}})

    async def _write(self, call: Any, body: Mapping[str, Any]) -> None:
        try:
            await call
        except ApiError as exc:
            # A stale cache: the watch brings the current state and the next sync fixes it.
            if exc.status.code not in (404, 409):
                raise
            log.debug("slice %s: %s", body["metadata"]["name"], exc.status.message)

    async def _ensure_classes(self) -> None:
        for body in device_classes():
            try:
                await self.client.create(model(DeviceClass, body))
            except ApiError as exc:
                if exc.status.code != 409:
                    raise


async def run_gpu_driver(client: AsyncClient, informers: SharedInformers) -> None:
    await GpuDriver(client, informers).run()
