"""GPU discovery through NVML: a ResourceSlice for the NVIDIA GPUs of the machine kplane runs on.

The slice has the shape NVIDIA's kubelet plugin publishes (k8s-dra-driver-gpu v25.12.0 `deviceinfo.go`; the
same attributes as :mod:`kplane.sim.gpudriver`): driver `gpu.nvidia.com`, the node's pool, one device
`gpu-<minor>` per GPU. NVML comes from the `nvidia-ml-py` package (module `pynvml`), imported only when
discovery runs, so kplane works on machines without it or without a GPU.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DRIVER = "gpu.nvidia.com"
# nvmlDeviceGetArchitecture values (nvml.h NVML_DEVICE_ARCH_*).
ARCHITECTURES = {2: "Kepler", 3: "Maxwell", 4: "Pascal", 5: "Volta", 6: "Turing", 7: "Ampere", 8: "Ada",
                 9: "Hopper", 10: "Blackwell"}
# nvmlDeviceGetBrand values (nvml.h nvmlBrandType_t), named as the NVIDIA driver publishes them.
BRANDS = {0: "Unknown", 1: "Quadro", 2: "Tesla", 3: "NVS", 4: "Grid", 5: "GeForce", 6: "Titan",
          7: "NvidiaVApps", 8: "NvidiaVPC", 9: "NvidiaVCS", 10: "NvidiaVWS", 11: "NvidiaCloudGaming",
          12: "QuadroRTX", 13: "NvidiaRTX", 14: "Nvidia", 15: "GeForceRTX", 16: "TitanRTX"}


class DiscoveryError(Exception):
    """No NVIDIA driver, no GPU, or NVML not installed: one line for the user."""


@dataclass(frozen=True)
class GpuInfo:
    minor: int
    index: int
    uuid: str
    product_name: str
    brand: str
    architecture: str
    compute_capability: tuple[int, int]
    memory_bytes: int
    pci_bus_id: str


def semver(text: str) -> str:
    """NVIDIA's versions coerced to semver as the driver does (`550.127.08` → `550.127.8`, `12.4` → `12.4.0`)."""
    parts = [str(int(p)) for p in re.findall(r"\d+", text)[:3]]
    while len(parts) < 3:
        parts.append("0")
    return ".".join(parts)


def cuda_version(value: int) -> str:
    """nvmlSystemGetCudaDriverVersion's integer (12040) as semver (12.4.0)."""
    return f"{value // 1000}.{value % 1000 // 10}.0"


def _memory(value: int) -> str:
    mib = 1024 * 1024
    return f"{value // mib}Mi" if value % mib == 0 else str(value)


def device_for(gpu: GpuInfo, driver_version: str, cuda_driver_version: str) -> dict[str, Any]:
    major, minor = gpu.compute_capability
    return {
        "name": f"gpu-{gpu.minor}",
        "attributes": {
            "type": {"string": "gpu"},
            "uuid": {"string": gpu.uuid},
            "index": {"int": gpu.index},
            "minor": {"int": gpu.minor},
            "productName": {"string": gpu.product_name},
            "brand": {"string": gpu.brand},
            "architecture": {"string": gpu.architecture},
            "cudaComputeCapability": {"version": f"{major}.{minor}.0"},
            "driverVersion": {"version": semver(driver_version)},
            "cudaDriverVersion": {"version": cuda_driver_version},
            "resource.kubernetes.io/pciBusID": {"string": gpu.pci_bus_id},
        },
        "capacity": {"memory": {"value": _memory(gpu.memory_bytes)}},
    }


def slice_for(node: str, gpus: list[GpuInfo], driver_version: str, cuda_driver_version: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{DRIVER}-gpus"},
        "spec": {
            "driver": DRIVER,
            "nodeName": node,
            "pool": {"name": node, "generation": 0, "resourceSliceCount": 1},
            "devices": [device_for(g, driver_version, cuda_driver_version) for g in gpus],
        },
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _load_nvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise DiscoveryError("NVML is not available: install the nvidia-ml-py package") from None


def _read(nvml: Any) -> tuple[list[GpuInfo], str, str]:
    count = nvml.nvmlDeviceGetCount()
    if count == 0:
        raise DiscoveryError("no NVIDIA GPU found on this machine")
    gpus = []
    for index in range(count):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        gpus.append(GpuInfo(
            minor=int(nvml.nvmlDeviceGetMinorNumber(handle)),
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            product_name=_text(nvml.nvmlDeviceGetName(handle)),
            brand=BRANDS.get(int(nvml.nvmlDeviceGetBrand(handle)), "Unknown"),
            architecture=ARCHITECTURES.get(int(nvml.nvmlDeviceGetArchitecture(handle)), "Unknown"),
            compute_capability=tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle)),
            memory_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            pci_bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId).lower(),
        ))
    driver = _text(nvml.nvmlSystemGetDriverVersion())
    cuda = cuda_version(int(nvml.nvmlSystemGetCudaDriverVersion()))
    return gpus, driver, cuda


def discover(node: str, load: Callable[[], Any] = _load_nvml) -> dict[str, Any]:
    """The ResourceSlice of this machine's GPUs for node `node`; DiscoveryError when there are none."""
    nvml = load()
    try:
        nvml.nvmlInit()
    except Exception as exc:
        raise DiscoveryError(f"no NVIDIA driver found (NVML: {exc})") from None
    try:
        gpus, driver, cuda = _read(nvml)
    except DiscoveryError:
        raise
    except Exception as exc:
        raise DiscoveryError(f"reading GPUs through NVML failed: {exc}") from None
    finally:
        with contextlib.suppress(Exception):  # shutting down after a failure must not hide the failure
            nvml.nvmlShutdown()
    return slice_for(node, gpus, driver, cuda)
