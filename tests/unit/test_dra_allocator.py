"""The DRA allocator on GPU-shaped inputs: outcomes, search size, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.dra.allocator import allocate, parse_slices
from kplane.dra.features import Features
from kplane.dra.model import AllocatedState, DeviceID

NODE = {"metadata": {"name": "node-1", "labels": {"zone": "a"}}}
GPU_CLASS = {"metadata": {"name": "gpu"},
             "spec": {"selectors": [{"cel": {"expression": 'device.driver == "gpu.example.com"'}}]}}


def gpu_slice(n: int = 8, node: str = "node-1", **device_extra: Any) -> dict[str, Any]:
    devices = [{"name": f"gpu-{i}", "attributes": {"numa": {"int": i // 4}, "productName": {"string": "H100"},
                                                   "driverVersion": {"version": "550.54.15"}},
                "capacity": {"memory": {"value": "80Gi"}}, **device_extra} for i in range(n)]
    return {"metadata": {"name": f"{node}-gpus"}, "spec": {"driver": "gpu.example.com", "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1}, "devices": devices}}


def claim(name: str, count: int = 1, **devices: Any) -> dict[str, Any]:
    req = {"name": "gpus", "exactly": {"deviceClassName": "gpu", "count": count}}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"devices": {"requests": [req], **devices}}}


def test_one_gpu_is_allocated_on_the_node() -> None:
    out = allocate(NODE, [claim("c")], [gpu_slice()], [GPU_CLASS])
    assert out.kind == "allocated"
    assert out.results == [{
        "devices": {"results": [{"request": "gpus", "driver": "gpu.example.com", "pool": "node-1", "device": "gpu-0"}]},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]},
    }]
    assert out.steps == 4


def test_allocated_devices_are_skipped() -> None:
    taken = AllocatedState(devices={DeviceID("gpu.example.com", "node-1", f"gpu-{i}") for i in range(4)})
    out = allocate(NODE, [claim("c")], [gpu_slice()], [GPU_CLASS], taken)
    assert out.results is not None
    assert out.results[0]["devices"]["results"][0]["device"] == "gpu-4"


def test_nine_gpus_on_eight_fail_fast_with_combinations() -> None:
    out = allocate(NODE, [claim("c", 9)], [gpu_slice()], [GPU_CLASS])
    assert out.kind == "unsatisfiable" and out.reason
    assert out.steps == 256


def test_two_claims_of_five_on_eight() -> None:
    out = allocate(NODE, [claim("a", 5), claim("b", 5)], [gpu_slice()], [GPU_CLASS])
    assert out.kind == "unsatisfiable"
    assert out.steps == 723


def test_match_attribute_keeps_gpus_on_one_numa_node() -> None:
    taken = AllocatedState(devices={DeviceID("gpu.example.com", "node-1", "gpu-0")})
    c = claim("c", 4, constraints=[{"matchAttribute": "gpu.example.com/numa"}])
    out = allocate(NODE, [c], [gpu_slice()], [GPU_CLASS], taken)
    assert out.results is not None
    assert [r["device"] for r in out.results[0]["devices"]["results"]] == ["gpu-4", "gpu-5", "gpu-6", "gpu-7"]


def test_other_nodes_slices_are_ignored() -> None:
    out = allocate(NODE, [claim("c")], [gpu_slice(node="node-2")], [GPU_CLASS])
    assert out.kind == "unsatisfiable"


@pytest.mark.parametrize(("expression", "fits"), [
    ('device.attributes["gpu.example.com"].productName == "H100"', True),
    ('device.attributes["gpu.example.com"].driverVersion.isGreaterThan(semver("600.0.0"))', False),
    ('device.capacity["gpu.example.com"].memory.compareTo(quantity("40Gi")) >= 0', True),
    ('"numa" in device.attributes["other.example.com"]', False),
])
def test_request_selectors(expression: str, fits: bool) -> None:
    c = claim("c")
    c["spec"]["devices"]["requests"][0]["exactly"]["selectors"] = [{"cel": {"expression": expression}}]
    out = allocate(NODE, [c], [gpu_slice()], [GPU_CLASS])
    assert out.kind == ("allocated" if fits else "unsatisfiable"), out


@pytest.mark.parametrize(("expression", "error"), [
    ("device.attributes[\"gpu.example.com\"].missing", "CEL runtime error: no such key: missing"),
    ("noSuchVar", "CEL compile error"),
    ("device.allowMultipleAllocations", "undefined field 'allowMultipleAllocations'"),
    ('device.driver + "x"', "must evaluate to bool"),
])
def test_selector_errors_are_errors_not_no_fit(expression: str, error: str) -> None:
    c = claim("c")
    c["spec"]["devices"]["requests"][0]["exactly"]["selectors"] = [{"cel": {"expression": expression}}]
    out = allocate(NODE, [c], [gpu_slice()], [GPU_CLASS])
    assert out.kind == "error"
    assert out.error.startswith("claim ns/c: selector #0: ")
    assert error in out.error


def test_bad_quantity_is_an_error_outcome() -> None:
    bad = gpu_slice(1)
    bad["spec"]["devices"][0]["capacity"] = {"memory": {"value": "lots"}}
    out = allocate(NODE, [claim("c")], [bad], [GPU_CLASS])
    assert out.kind == "error" and "quantities must match" in out.error


def test_taints_need_the_feature_and_a_toleration() -> None:
    tainted = gpu_slice(1, taints=[{"key": "broken", "effect": "NoSchedule"}])
    assert allocate(NODE, [claim("c")], [tainted], [GPU_CLASS]).kind == "allocated"
    on = Features(device_taints=True)
    assert allocate(NODE, [claim("c")], [tainted], [GPU_CLASS], features=on).kind == "unsatisfiable"
    c = claim("c")
    c["spec"]["devices"]["requests"][0]["exactly"]["tolerations"] = [{"key": "broken", "operator": "Exists"}]
    out = allocate(NODE, [c], [tainted], [GPU_CLASS], features=on)
    assert out.results is not None
    assert out.results[0]["devices"]["results"][0]["tolerations"] == [{"key": "broken", "operator": "Exists"}]


def mig_slices() -> list[dict[str, Any]]:
    pool = {"name": "node-1", "generation": 1, "resourceSliceCount": 2}
    counters = {"name": "gpu-0-counters", "counters": {"memory": {"value": "80Gi"}}}
    full = {"name": "gpu-0", "consumesCounters": [{"counterSet": "gpu-0-counters",
                                                   "counters": {"memory": {"value": "80Gi"}}}]}
    mig = {"name": "gpu-0-mig-1g", "consumesCounters": [{"counterSet": "gpu-0-counters",
                                                         "counters": {"memory": {"value": "10Gi"}}}]}
    return [
        {"metadata": {"name": "a-counters"}, "spec": {"driver": "gpu.example.com", "nodeName": "node-1", "pool": pool,
                                                      "sharedCounters": [counters]}},
        {"metadata": {"name": "b-devices"}, "spec": {"driver": "gpu.example.com", "nodeName": "node-1", "pool": pool,
                                                     "devices": [full, mig]}},
    ]


def test_mig_partition_and_full_gpu_are_never_allocated_together() -> None:
    on = Features(partitionable_devices=True)
    assert allocate(NODE, [claim("c", 2)], mig_slices(), [GPU_CLASS], features=on).kind == "unsatisfiable"
    taken = AllocatedState(devices={DeviceID("gpu.example.com", "node-1", "gpu-0-mig-1g")})
    assert allocate(NODE, [claim("c")], mig_slices(), [GPU_CLASS], taken, on).kind == "unsatisfiable"
    out = allocate(NODE, [claim("c")], mig_slices(), [GPU_CLASS], features=on)
    assert out.results is not None and out.results[0]["devices"]["results"][0]["device"] == "gpu-0"


def test_partitionable_slices_are_ignored_without_the_feature() -> None:
    assert allocate(NODE, [claim("c")], mig_slices(), [GPU_CLASS]).kind == "unsatisfiable"


def test_parsed_slices_can_be_reused() -> None:
    views = parse_slices([gpu_slice()])
    first = allocate(NODE, [claim("c")], views, {"gpu": GPU_CLASS})
    again = allocate(NODE, [claim("c")], views, {"gpu": GPU_CLASS})
    assert first.results == again.results


def test_timeout_is_an_error() -> None:
    out = allocate(NODE, [claim("c", 9)], [gpu_slice()], [GPU_CLASS], timeout_s=-1)
    assert out.kind == "error" and out.error.startswith("filter operation aborted")


def test_shared_device_capacity_is_accounted() -> None:
    on = Features(consumable_capacity=True)
    shared = gpu_slice(1, allowMultipleAllocations=True)
    c = claim("c")
    c["spec"]["devices"]["requests"][0]["exactly"]["capacity"] = {"requests": {"memory": "50Gi"}}
    out = allocate(NODE, [c, {**c, "metadata": {"name": "d"}}], [shared], [GPU_CLASS], features=on)
    assert out.kind == "unsatisfiable"
    out = allocate(NODE, [c], [shared], [GPU_CLASS], features=on)
    assert out.results is not None
    result = out.results[0]["devices"]["results"][0]
    assert result["consumedCapacity"] == {"memory": "50Gi"} and result["shareID"]
    state = AllocatedState.from_claims([{**c, "status": {"allocation": out.results[0]}}])
    assert allocate(NODE, [c], [shared], [GPU_CLASS], state, on).kind == "unsatisfiable"
