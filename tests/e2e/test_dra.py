"""DRA end to end: `kplane up` with two simulated GPU nodes (nodes.yaml), claims from templates, the scheduler's
allocation, and the shared counters of MIG partitions, through kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import KUBECTL, ControlPlane, start_control_plane, unique

NODES_YAML = """
apiVersion: v1
kind: Node
metadata: {name: gpu-h100, labels: {gpu.kplane.io/profile: 8x-H100-80GB}}
---
apiVersion: v1
kind: Node
metadata: {name: gpu-a100, labels: {gpu.kplane.io/profile: 1x-A100-40GB}}
"""


@pytest.fixture(scope="module")
def gpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    base = tmp_path_factory.mktemp("kplane-dra")
    (base / "data").mkdir()
    (base / "data" / "nodes.yaml").write_text(NODES_YAML)
    plane = start_control_plane(base, "--nodes", "2")
    try:
        plane.wait_for(lambda: len(plane.kubectl_json("get", "resourceslices")["items"]) >= 3, timeout=60,
                       what="GPU ResourceSlices")
        yield plane
    finally:
        plane.down()


def apply(plane: ControlPlane, *objects: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def gpu_request(name: str, klass: str, count: int, selector: str = "") -> dict[str, Any]:
    exactly: dict[str, Any] = {"deviceClassName": klass, "count": count}
    if selector:
        exactly["selectors"] = [{"cel": {"expression": selector}}]
    return {"devices": {"requests": [{"name": name, "exactly": exactly}]}}


def pod(name: str, claims: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"resourceClaims": claims,
                 "containers": [{"name": "main", "image": "cuda:12", "resources": {"claims": [
                     {"name": c["name"]} for c in claims]}}]},
    }


def get(plane: ControlPlane, *args: str) -> Any:
    proc = plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def events_of(plane: ControlPlane, name: str) -> list[str]:
    items = plane.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [f"{e['reason']}: {e['message']}" for e in items]


def test_template_claim_gets_one_gpu(gpus: ControlPlane, tmp_path: Path) -> None:
    template, name = unique("one-h100"), unique("trainer")
    apply(gpus, {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": {"name": template},
                 "spec": {"spec": gpu_request(
                     "gpu", "gpu.nvidia.com", 1,
                     "device.attributes['gpu.nvidia.com'].productName.startsWith('NVIDIA H100')")}},
          pod(name, [{"name": "gpu", "resourceClaimTemplateName": template}]))
    running = gpus.wait_for(lambda: (p := get(gpus, "pod", name)) and p["status"].get("phase") == "Running" and p,
                            timeout=60, what=f"pod {name} running")
    assert running["spec"]["nodeName"] == "gpu-h100"
    statuses = running["status"]["resourceClaimStatuses"]
    assert [s["name"] for s in statuses] == ["gpu"]
    claim = get(gpus, "resourceclaim", statuses[0]["resourceClaimName"])
    assert claim["metadata"]["annotations"]["resource.kubernetes.io/pod-claim-name"] == "gpu"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == running["metadata"]["uid"]
    results = claim["status"]["allocation"]["devices"]["results"]
    assert [(r["driver"], r["pool"]) for r in results] == [("gpu.nvidia.com", "gpu-h100")]
    assert [r["uid"] for r in claim["status"]["reservedFor"]] == [running["metadata"]["uid"]]
    gpus.kubectl("delete", "pod", name, "--wait=true", timeout=90)
    gpus.wait_for(lambda: get(gpus, "resourceclaim", statuses[0]["resourceClaimName"]) is None, timeout=60,
                  what="generated claim deleted with its pod")


def test_more_gpus_than_any_node_stays_pending(gpus: ControlPlane) -> None:
    claim, name = unique("nine-gpus"), unique("greedy")
    apply(gpus, {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": claim},
                 "spec": gpu_request("gpus", "gpu.nvidia.com", 9)},
          pod(name, [{"name": "gpus", "resourceClaimName": claim}]))
    message = gpus.wait_for(lambda: [e for e in events_of(gpus, name) if e.startswith("FailedScheduling")],
                            timeout=60, what="FailedScheduling event")[0]
    assert "0/2 nodes are available" in message and "cannot allocate all claims" in message
    assert get(gpus, "pod", name)["status"]["phase"] == "Pending"
    assert "allocation" not in (get(gpus, "resourceclaim", claim).get("status") or {})


def test_mig_partition_and_full_gpu_never_together(gpus: ControlPlane) -> None:
    mig_claim, full_claim = unique("mig"), unique("full-a100")
    mig_pod, full_pod = unique("mig-user"), unique("full-user")
    apply(gpus,
          {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": mig_claim},
           "spec": gpu_request("slice", "mig.nvidia.com", 1)},
          {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": full_claim},
           "spec": gpu_request("gpu", "gpu.nvidia.com", 1,
                               "device.attributes['gpu.nvidia.com'].architecture == 'Ampere'")},
          pod(mig_pod, [{"name": "slice", "resourceClaimName": mig_claim}]))
    gpus.wait_for(lambda: (p := get(gpus, "pod", mig_pod)) and p["spec"].get("nodeName") == "gpu-a100",
                  timeout=60, what="MIG pod bound")
    apply(gpus, pod(full_pod, [{"name": "gpu", "resourceClaimName": full_claim}]))
    gpus.wait_for(lambda: [e for e in events_of(gpus, full_pod) if "cannot allocate all claims" in e],
                  timeout=60, what="full-GPU pod refused while a MIG partition is taken")
    assert not get(gpus, "pod", full_pod)["spec"].get("nodeName")

    gpus.kubectl("delete", "pod", mig_pod, "--wait=true", timeout=90)
    gpus.wait_for(lambda: "allocation" not in (get(gpus, "resourceclaim", mig_claim).get("status") or {}),
                  timeout=60, what="MIG claim deallocated once its pod is gone")
    bound = gpus.wait_for(lambda: (p := get(gpus, "pod", full_pod)) and p["spec"].get("nodeName") and p,
                          timeout=90, what="full-GPU pod bound after the MIG claim was freed")
    assert bound["spec"]["nodeName"] == "gpu-a100"
    results = get(gpus, "resourceclaim", full_claim)["status"]["allocation"]["devices"]["results"]
    assert [r["device"] for r in results] == ["gpu-0"]
