"""Validation of resource.k8s.io/v1 objects and of the pod's claim fields (kplane.api.builtin_validation_dra)."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.api.builtin_validation import validate_builtin
from kplane.api.builtin_validation_dra import (
    validate_device_class,
    validate_pod_claims,
    validate_resource_claim,
    validate_resource_claim_template,
)
from kplane.api.builtin_validation_dra_slice import validate_resource_slice
from kplane.api.resources import ResourceType
from kplane.sim.gpudriver import device_classes, node_slices, parse_profile


def claim(requests: list[dict[str, Any]], **devices: Any) -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": "d"}, "spec": {"devices": {"requests": requests, **devices}}}


def exact(name: str = "gpu", **fields: Any) -> dict[str, Any]:
    return {"name": name, "exactly": {"deviceClassName": "gpu.nvidia.com", **fields}}


def messages(causes: list[Any]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def test_valid_claim_has_no_causes() -> None:
    good = claim([exact(selectors=[{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}], count=2)],
                 constraints=[{"requests": ["gpu"], "matchAttribute": "gpu.nvidia.com/uuid"}],
                 config=[{"requests": ["gpu"], "opaque": {"driver": "gpu.nvidia.com", "parameters": {"a": 1}}}])
    assert validate_resource_claim(good, None) == []


def test_request_needs_exactly_one_kind() -> None:
    both = {"name": "r2", "exactly": {"deviceClassName": "x"},
            "firstAvailable": [{"name": "s", "deviceClassName": "x"}]}
    assert messages(validate_resource_claim(claim([{"name": "r"}, both]), None)) == [
        ("spec.devices.requests[0]", "Required value: exactly one of `exactly` or `firstAvailable` is required"),
        ("spec.devices.requests[1]", "Invalid value: null: exactly one of `exactly` or `firstAvailable` is "
                                     "required, but multiple fields are set"),
    ]


def test_limits_short_circuit() -> None:
    causes = validate_resource_claim(claim([exact(f"r{i}") for i in range(33)]), None)
    assert messages(causes) == [("spec.devices.requests", "Too many: 33: must have at most 32 items")]
    subs = [{"name": f"s{i}", "deviceClassName": "x"} for i in range(9)]
    causes = validate_resource_claim(claim([{"name": "r", "firstAvailable": subs}]), None)
    assert messages(causes) == [("spec.devices.requests[0].firstAvailable", "Too many: 9: must have at most 8 items")]


def test_names_duplicates_counts_and_modes() -> None:
    causes = messages(validate_resource_claim(claim([exact("Bad_Name"), exact("a", count=0), exact("a"),
                                                     exact("b", allocationMode="Some"),
                                                     exact("c", allocationMode="All", count=2)]), None))
    fields = [f for f, _ in causes]
    assert "spec.devices.requests[0].name" in fields
    assert ("spec.devices.requests[1].exactly.count", "Invalid value: 0: must be greater than zero") in causes
    assert ("spec.devices.requests[2]", 'Duplicate value: "a"') in causes
    assert ("spec.devices.requests[3].exactly.allocationMode",
            'Unsupported value: "Some": supported values: "All", "ExactCount"') in causes
    assert ("spec.devices.requests[4].exactly.count",
            "Invalid value: 2: must not be specified when allocationMode is 'All'") in causes


@pytest.mark.parametrize("expression", ["device.driver ==", "device.driver + 1 ==", "'just a string'"])
def test_cel_selector_errors(expression: str) -> None:
    causes = validate_resource_claim(claim([exact(selectors=[{"cel": {"expression": expression}}])]), None)
    assert [c.field for c in causes] == ["spec.devices.requests[0].exactly.selectors[0].cel.expression"]
    assert "Invalid value" in causes[0].message


def test_cel_selector_too_long_and_missing() -> None:
    long = "true && " * 2000 + "true"
    causes = validate_resource_claim(claim([exact(selectors=[{"cel": {"expression": long}}, {}])]), None)
    assert messages(causes) == [
        ("spec.devices.requests[0].exactly.selectors[0].cel.expression", "Too long: may not be more than 10240 bytes"),
        ("spec.devices.requests[0].exactly.selectors[1].cel", "Required value"),
    ]


def test_constraint_and_config_request_references() -> None:
    bad = claim([exact("gpu")], constraints=[{"requests": ["nope"], "matchAttribute": "uuid"}, {}],
                config=[{"requests": ["gpu/x/y"], "opaque": {"driver": "gpu.nvidia.com", "parameters": [1]}}])
    causes = messages(validate_resource_claim(bad, None))
    ref = "must be the name of a request in the claim or the name of a request and a subrequest separated by '/'"
    assert ("spec.devices.constraints[0].requests[0]", f'Invalid value: "nope": {ref}') in causes
    assert any(f == "spec.devices.constraints[0].matchAttribute" and "fully qualified" in m for f, m in causes)
    assert ("spec.devices.constraints[1].matchAttribute", "Required value") in causes
    assert ("spec.devices.config[0].requests[0]", f'Invalid value: "gpu/x/y": {ref}') in causes
    assert ("spec.devices.config[0].opaque.parameters",
            'Invalid value: "<value omitted>": must be a valid JSON object') in causes


def test_claim_spec_is_immutable_and_status_rules() -> None:
    old = claim([exact()])
    changed = claim([exact(count=2)])
    assert messages(validate_resource_claim(changed, old))[0][1].endswith("field is immutable")
    reserved = {**old, "status": {"reservedFor": [{"resource": "pods", "name": "p", "uid": "u"}]}}
    assert messages(validate_resource_claim(reserved, old)) == [
        ("status.reservedFor", "Forbidden: may not be specified when `allocated` is not set")]
    result = {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "n", "device": "gpu-0"}
    allocated = {**old, "status": {"allocation": {"devices": {"results": [result]}}}}
    assert validate_resource_claim(allocated, old) == []
    moved = {**old, "status": {"allocation": {"devices": {"results": [{**result, "device": "gpu-1"}]}}}}
    assert messages(validate_resource_claim(moved, allocated))[0][1].endswith("field is immutable")
    unknown = {**old, "status": {"allocation": {"devices": {"results": [{**result, "request": "other"}]}}}}
    assert [c.field for c in validate_resource_claim(unknown, old)] == ["status.allocation.devices.results[0].request"]
    dup = [{"resource": "pods", "name": "p", "uid": "u"}] * 2
    dup_status = {**allocated, "status": {**allocated["status"], "reservedFor": dup}}
    assert messages(validate_resource_claim(dup_status, allocated)) == [
        ("status.reservedFor[1]", 'Duplicate value: "u"')]


def test_template_checks_inner_spec_and_immutability() -> None:
    template = {"metadata": {"name": "t", "namespace": "d"},
                "spec": {"metadata": {"labels": {"a": "b"}}, "spec": claim([{"name": "r"}])["spec"]}}
    assert [c.field for c in validate_resource_claim_template(template, None)] == ["spec.spec.devices.requests[0]"]
    ok = {**template, "spec": {"spec": claim([exact()])["spec"]}}
    assert validate_resource_claim_template(ok, None) == []
    assert validate_resource_claim_template(template, ok)[0].message.endswith("field is immutable")


def test_device_class_selectors_and_config() -> None:
    for klass in device_classes():
        assert validate_device_class(klass, None) == []
    bad = {"metadata": {"name": "c"}, "spec": {"selectors": [{"cel": {"expression": "1 +"}}] * 33}}
    assert messages(validate_device_class(bad, None)) == [
        ("spec.selectors", "Too many: 33: must have at most 32 items")]
    ext = {"metadata": {"name": "c"}, "spec": {"extendedResourceName": "cpu", "config": [{}]}}
    assert [c.field for c in validate_device_class(ext, None)] == ["spec.config[0].opaque", "spec.extendedResourceName"]


def slice_(**spec: Any) -> dict[str, Any]:
    base = {"driver": "gpu.nvidia.com", "pool": {"name": "n", "generation": 0, "resourceSliceCount": 1},
            "nodeName": "n", "devices": [{"name": "gpu-0"}]}
    return {"metadata": {"name": "s"}, "spec": {**base, **spec}}


def test_simulated_slices_are_valid() -> None:
    for profile in ("8x H100-80GB", "8x H200-141GB", "2x A100-40GB"):
        for s in node_slices("node-a", parse_profile(profile), node_uid="uid"):
            assert validate_resource_slice(s, None) == []


def test_slice_node_selection_one_of() -> None:
    assert messages(validate_resource_slice(slice_(nodeName=None), None)) == [
        ("spec", "Required value: exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` "
                 "is required")]
    causes = messages(validate_resource_slice(slice_(allNodes=True), None))
    assert causes == [("spec", 'Invalid value: "{`nodeName`, `allNodes`}": exactly one of `nodeName`, `nodeSelector`, '
                               "`allNodes`, `perDeviceNodeSelection` is required, but multiple fields are set")]
    assert [c.field for c in validate_resource_slice(slice_(nodeName=None, allNodes=False), None)] == [
        "spec.allNodes", "spec"]


def test_slice_devices_attributes_and_counters() -> None:
    device = {"name": "gpu-0", "attributes": {"bad-name": {"string": "x"}, "v": {"version": "1.02.3"},
                                              "two": {"int": 1, "bool": True}, "none": {}},
              "capacity": {"memory": {"value": "lots"}}}
    fields = [c.field for c in validate_resource_slice(slice_(devices=[device, {"name": "gpu-0"}]), None)]
    assert fields == ["spec.devices[0].attributes[bad-name]", "spec.devices[0].attributes[v].version",
                      "spec.devices[0].attributes[two]", "spec.devices[0].attributes[none]",
                      "spec.devices[0].capacity[memory].value", "spec.devices[1]"]
    many = [{"name": f"d{i}"} for i in range(129)]
    assert messages(validate_resource_slice(slice_(devices=many), None)) == [
        ("spec.devices", "Too many: 129: must have at most 128 items")]
    consuming = [{"name": f"d{i}", "consumesCounters": [{"counterSet": "s", "counters": {"c": {"value": "1"}}}]}
                 for i in range(65)]
    assert messages(validate_resource_slice(slice_(devices=consuming), None)) == [
        ("spec.devices", "Too many: 65: must have at most 64 items")]
    both = slice_(sharedCounters=[{"name": "s", "counters": {"c": {"value": "1"}}}])
    assert messages(validate_resource_slice(both, None)) == [
        ("spec", 'Invalid value: "": only one of `sharedCounters` or `devices` is allowed')]


def test_slice_update_keeps_driver_pool_and_node() -> None:
    old = slice_()
    new = slice_(driver="other.example.com", nodeName="m")
    assert [c.field for c in validate_resource_slice(new, old)] == ["spec.driver", "spec.nodeName"]


def pod(claims: Any, container_claims: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "d"},
            "spec": {"resourceClaims": claims,
                     "containers": [{"name": "c", "image": "i", "resources": {"claims": container_claims}}]}}


def test_pod_claims() -> None:
    good = pod([{"name": "gpu", "resourceClaimTemplateName": "t"}], [{"name": "gpu"}, {"name": "gpu", "request": "r"}])
    assert validate_pod_claims(good, None) == []
    bad = pod([{"name": "gpu", "resourceClaimTemplateName": "t", "resourceClaimName": "c"}, {"name": "gpu"},
               {"name": "x"}],
              [{"name": "gpu"}, {"name": "gpu"}, {"name": "other"}, {}])
    causes = messages(validate_pod_claims(bad, None))
    assert causes[0][0] == "spec.resourceClaims[0]" and "at most one of" in causes[0][1]
    assert ("spec.resourceClaims[1].name", 'Duplicate value: "gpu"') in causes
    assert any(f == "spec.resourceClaims[2]" and "must specify one of" in m for f, m in causes)
    assert ("spec.containers[0].resources.claims[1]", 'Duplicate value: "gpu"') in causes
    assert ("spec.containers[0].resources.claims[2]",
            'Not found: "other": must be one of the names in pod.spec.resourceClaims: gpu, x') in causes
    assert ("spec.containers[0].resources.claims[3]", "Required value") in causes
    none = pod(None, [{"name": "gpu"}])
    assert messages(validate_pod_claims(none, None)) == [
        ("spec.containers[0].resources.claims[0]",
         'Not found: "gpu": must be one of the names in pod.spec.resourceClaims which is empty')]


def test_hooked_into_validate_builtin() -> None:
    pods = ResourceType(group="", version="v1", plural="pods", kind="Pod", namespaced=True)
    assert any("resources.claims" in c.field for c in validate_builtin(pods, pod(None, [{"name": "g"}]), None))
    slices = ResourceType(group="resource.k8s.io", version="v1", plural="resourceslices", kind="ResourceSlice",
                          namespaced=False)
    assert [c.field for c in validate_builtin(slices, slice_(nodeName=None), None)] == ["spec"]
