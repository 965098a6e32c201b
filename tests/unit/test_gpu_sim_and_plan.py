"""GPU profiles of the simulated driver, slice planning, `kplane gpu plan` and `kplane gpu discover`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from kplane.cli import gpu
from kplane.cli.main import app
from kplane.dra.discovery import DiscoveryError, cuda_version, discover, semver
from kplane.sim.gpudriver import (
    DRIVER,
    PROFILE_LABEL,
    node_profile,
    node_slices,
    parse_profile,
    plan_slices,
)


@pytest.mark.parametrize(("text", "count", "model"), [
    ("8x H100-80GB", 8, "H100-80GB"), ("8x-H200-141GB", 8, "H200-141GB"), ("2xa100-40gb", 2, "A100-40GB")])
def test_parse_profile(text: str, count: int, model: str) -> None:
    profile = parse_profile(text)
    assert (profile.count, profile.model.key) == (count, model)


@pytest.mark.parametrize("text", ["H100", "0x H100-80GB", "17x H100-80GB", "8x B200-192GB", "eight H100-80GB"])
def test_bad_profiles(text: str) -> None:
    with pytest.raises(ValueError, match=r"profile|model"):
        parse_profile(text)


def test_h100_devices_look_like_nvidias() -> None:
    (slice_,) = node_slices("n", parse_profile("8x H100-80GB"))
    spec = slice_["spec"]
    assert spec["driver"] == DRIVER and spec["nodeName"] == "n"
    assert spec["pool"] == {"name": "n", "generation": 0, "resourceSliceCount": 1}
    devices = spec["devices"]
    assert [d["name"] for d in devices] == [f"gpu-{i}" for i in range(8)]
    attrs = devices[3]["attributes"]
    assert attrs["type"] == {"string": "gpu"} and attrs["productName"] == {"string": "NVIDIA H100 80GB HBM3"}
    assert attrs["architecture"] == {"string": "Hopper"} and attrs["cudaComputeCapability"] == {"version": "9.0.0"}
    assert attrs["index"] == {"int": 3} and attrs["uuid"]["string"].startswith("GPU-")
    assert devices[0]["capacity"] == {"memory": {"value": "81559Mi"}}
    assert len({d["attributes"]["uuid"]["string"] for d in devices}) == 8


def test_a100_mig_partitions_share_counters_with_their_gpu() -> None:
    slices = node_slices("n", parse_profile("2x A100-40GB"))
    assert [s["metadata"]["name"] for s in slices] == ["n-gpu.nvidia.com-counters", "n-gpu.nvidia.com-gpu-0",
                                                       "n-gpu.nvidia.com-gpu-1"]
    assert all(s["spec"]["pool"]["resourceSliceCount"] == 3 for s in slices)
    counters = slices[0]["spec"]["sharedCounters"]
    assert [c["name"] for c in counters] == ["gpu-0-counter-set", "gpu-1-counter-set"]
    devices = {d["name"]: d for d in slices[1]["spec"]["devices"]}
    assert len(devices) == 15
    full, small = devices["gpu-0"], devices["gpu-0-mig-19-3-1"]
    assert full["consumesCounters"][0]["counters"]["memory-slice-3"] == {"value": "1"}
    assert small["consumesCounters"][0] == {"counterSet": "gpu-0-counter-set",
                                            "counters": {"memory": {"value": "5Gi"}, "memory-slice-3": {"value": "1"}}}
    assert small["attributes"]["type"] == {"string": "mig"} and small["attributes"]["profile"] == {"string": "1g.5gb"}
    assert small["attributes"]["parentUUID"] == full["attributes"]["uuid"]


def sim_node(name: str, profile: str | None) -> dict[str, Any]:
    labels = {"kplane.io/simulated": "true"}
    if profile:
        labels[PROFILE_LABEL] = profile
    return {"metadata": {"name": name, "uid": f"uid-{name}", "labels": labels}}


def test_node_profile_from_label_or_annotation() -> None:
    assert node_profile(sim_node("a", None)) is None
    annotated = {"metadata": {"name": "a", "annotations": {PROFILE_LABEL: "4x H200-141GB"}}}
    assert str(node_profile(annotated)) == "4x H200-141GB"


def test_plan_slices_creates_updates_and_deletes() -> None:
    nodes = [sim_node("a", "2x-H100-80GB"), sim_node("b", None), sim_node("c", "nonsense"),
             {"metadata": {"name": "real", "labels": {PROFILE_LABEL: "8x-H100-80GB"}}}]
    plan = plan_slices(nodes, [])
    assert [s["metadata"]["name"] for s in plan.create] == ["a-gpu.nvidia.com-gpus"]
    assert plan.create[0]["metadata"]["ownerReferences"][0]["uid"] == "uid-a"
    published = [{**s, "metadata": {**s["metadata"], "resourceVersion": "7"}} for s in plan.create]
    assert plan_slices(nodes, published) == type(plan)()
    grown = plan_slices([sim_node("a", "4x-H100-80GB")], published)
    assert grown.create == () and len(grown.update) == 1
    assert grown.update[0]["spec"]["pool"]["generation"] == 1
    assert grown.update[0]["metadata"]["resourceVersion"] == "7"
    other_driver = {"metadata": {"name": "x"}, "spec": {"driver": "other.example.com"}}
    assert plan_slices([], [*published, other_driver]).delete == ("a-gpu.nvidia.com-gpus",)


# --- gpu plan -------------------------------------------------------------------------------------------


def k8s_node(name: str, profile: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}},
            "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}}}


def gpu_pod(name: str, count: int, cpu: str = "1") -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"resourceClaims": [{"name": "gpus", "resourceClaimTemplateName": f"gpus-{count}"}],
                     "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]}}


def template(count: int) -> dict[str, Any]:
    return {"kind": "ResourceClaimTemplate", "metadata": {"name": f"gpus-{count}", "namespace": "default"},
            "spec": {"spec": {"devices": {"requests": [{"name": "g", "exactly": {
                "deviceClassName": "gpu.nvidia.com", "count": count}}]}}}}


def cluster() -> gpu.Cluster:
    from kplane.sim.gpudriver import device_classes

    slices = node_slices("n1", parse_profile("8x H100-80GB")) + node_slices("n2", parse_profile("8x H100-80GB"))
    return gpu.Cluster(nodes=[k8s_node("n1"), k8s_node("n2"), k8s_node("cpu")], slices=slices,
                       classes=device_classes(), templates=[template(n) for n in (2, 4, 6, 9)])


def test_plan_places_in_order_and_explains_misfits() -> None:
    result = gpu.plan(cluster(), [gpu_pod("a", 6), gpu_pod("b", 4), gpu_pod("c", 6), gpu_pod("d", 9),
                                  gpu_pod("e", 2, cpu="64"), {**gpu_pod("f", 2), "spec": {
                                      **gpu_pod("f", 2)["spec"], "resourceClaims": [
                                          {"name": "x", "resourceClaimTemplateName": "missing"}]}}])
    by_pod = {p.pod: p for p in result.placements}
    assert {by_pod["default/a"].node, by_pod["default/b"].node} == {"n1", "n2"}
    assert by_pod["default/a"].devices == tuple(f"gpu-{i}" for i in range(6))
    assert by_pod["default/c"].node is None and "cannot allocate all claims" in by_pod["default/c"].reason
    assert "0/3 nodes are available" in by_pod["default/d"].reason
    assert "Insufficient cpu" in by_pod["default/e"].reason
    assert by_pod["default/f"].reason == 'resourceclaimtemplate.resource.k8s.io "missing" not found'
    assert [(n.node, n.used, n.total) for n in result.gpus] == [("n1", 6, 8), ("n2", 4, 8)]
    assert result.utilisation == pytest.approx(10 / 16)
    assert result.fragmentation == 1.0
    text = gpu.render(result)
    assert "GPU utilisation: 62%" in text and "fragmentation: 100%" in text


def test_plan_counts_existing_allocations() -> None:
    c = cluster()
    c.claims = [{"metadata": {"name": "old", "namespace": "default"}, "status": {"allocation": {"devices": {
        "results": [{"request": "g", "driver": DRIVER, "pool": "n1", "device": f"gpu-{i}"} for i in range(8)]}}}}]
    assert gpu.plan(c, []).fragmentation == pytest.approx(0.0)
    result = gpu.plan(c, [gpu_pod("a", 4)])
    assert result.placements[0].node == "n2"
    assert result.fragmentation == pytest.approx(1.0)


def test_read_pods_rejects_other_kinds(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text("kind: Deployment\nmetadata: {name: x}\n")
    with pytest.raises(ValueError, match="only Pod"):
        gpu.read_pods(path)
    path.write_text("kind: List\nitems:\n- kind: Pod\n  metadata: {name: p}\n- " + "kind: ResourceClaimTemplate\n"
                    "  metadata: {name: t, namespace: default}\n")
    pods, extra = gpu.read_pods(path)
    assert [p["metadata"]["namespace"] for p in pods] == ["default"] and len(extra.templates) == 1


def test_plan_command_fails_in_one_line_without_cluster(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text("kind: Pod\nmetadata: {name: p}\n")
    result = CliRunner().invoke(app, ["gpu", "plan", "-f", str(path), "--kubeconfig", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error:")


# --- gpu discover ---------------------------------------------------------------------------------------


class FakeNvml:
    def __init__(self, count: int = 2, fail_init: bool = False) -> None:
        self.count, self.fail_init, self.shut = count, fail_init, False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetMinorNumber(self, h: int) -> int:
        return h

    def nvmlDeviceGetUUID(self, h: int) -> bytes:
        return f"GPU-{h}".encode()

    def nvmlDeviceGetName(self, h: int) -> str:
        return "NVIDIA H200"

    def nvmlDeviceGetBrand(self, h: int) -> int:
        return 14

    def nvmlDeviceGetArchitecture(self, h: int) -> int:
        return 9

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return (9, 0)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(total=143771 * 1024 * 1024)

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=f"00000000:{0x18 + h:02X}:00.0")

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.127.08"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040


def test_discover_builds_a_slice_from_nvml() -> None:
    nvml = FakeNvml()
    found = discover("host", load=lambda: nvml)
    assert nvml.shut
    devices = found["spec"]["devices"]
    assert [d["name"] for d in devices] == ["gpu-0", "gpu-1"]
    attrs = devices[1]["attributes"]
    assert attrs["driverVersion"] == {"version": "550.127.8"}
    assert attrs["cudaDriverVersion"] == {"version": "12.4.0"}
    assert attrs["architecture"] == {"string": "Hopper"} and attrs["brand"] == {"string": "Nvidia"}
    assert attrs["resource.kubernetes.io/pciBusID"] == {"string": "00000000:19:00.0"}
    assert devices[0]["capacity"] == {"memory": {"value": "143771Mi"}}


def test_discover_without_driver_or_gpus() -> None:
    with pytest.raises(DiscoveryError, match="no NVIDIA driver found"):
        discover("host", load=lambda: FakeNvml(fail_init=True))
    nvml = FakeNvml(count=0)
    with pytest.raises(DiscoveryError, match="no NVIDIA GPU found"):
        discover("host", load=lambda: nvml)
    assert nvml.shut


def test_version_helpers() -> None:
    assert semver("550.127.08") == "550.127.8" and semver("12.4") == "12.4.0"
    assert cuda_version(12040) == "12.4.0" and cuda_version(11080) == "11.8.0"


def test_discover_command_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gpu(node: str) -> Any:
        raise DiscoveryError("no NVIDIA driver found (NVML: NVML Shared Library Not Found)")

    monkeypatch.setattr(gpu, "discover", no_gpu)
    result = CliRunner().invoke(app, ["gpu", "discover"])
    assert result.exit_code == 1
    assert result.output == "error: no NVIDIA driver found (NVML: NVML Shared Library Not Found)\n"
