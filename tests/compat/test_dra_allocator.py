"""The upstream allocator test table (k8s.io/dynamic-resource-allocation structured/internal/allocatortesting,
v0.35.6), ported as data: each YAML file under ``dra/`` holds cases with inputs and expected outputs, written
from the meaning of the Go cases. Shorthands keep the cases readable; :func:`expand_case` turns them into the
real ``resource.k8s.io/v1`` objects (see tests/compat/dra/README in the first file's header comment).

Shorthands, mirroring the upstream helpers: ``node: node-1`` is a node labelled ``region: region-1`` (``node-2``
→ ``region-2``) and ``planet: earth``; a class ``{name, driver}`` selects ``device.driver == driver``; a slice
``{name, node | allNodes | perDevice | selector, pool, driver, devices, counterSets}`` with ``pool: NAME`` =
generation 1, one slice; a device given as a string is a bare device; ``capacity: {name: "1Gi"}`` is
``{value: 1Gi}``; a request ``{name, class, count, mode, selectors: [expr], adminAccess, tolerations,
capacity, firstAvailable}``. Expected results per claim: ``devices: [[request, driver, pool, device], …]`` (or
dicts with extra fields), ``node`` (a nodeName selector), ``selector`` (a full node selector) or neither (nil).

More shorthands for upstream helpers: a class with ``allowMultipleAllocations: BOOL`` also selects on that field
(``classWithAllowMultipleAllocations``); a device's ``consumes: {set: {counter: value}}`` is its
``consumesCounters``, and ``fromCounters: true`` gives it those counters as capacity; ``rangePolicy: {name:
value}`` is a capacity with requestPolicy default 2, validRange 2..4 step 2 (``withCapacityRequestPolicyRange``);
``validValuesPolicy: {default, capacity: {name: value}, extra: [...]}`` is ``withCapacityRequestPolicyValidValues``;
a slice's ``deviceCount: N`` holds ``device-0`` … ``device-N-1``; an expected device ``{deviceRange: [request,
driver, pool, first, count]}`` stands for ``device-first`` … in order."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from kplane.cel.k8slib import parse_quantity
from kplane.dra.allocator import allocate
from kplane.dra.capacity import format_quantity
from kplane.dra.features import Features
from kplane.dra.model import AllocatedState, DeviceID

HERE = Path(__file__).parent / "dra"
FEATURES = {
    "AdminAccess": "admin_access",
    "PrioritizedList": "prioritized_list",
    "PartitionableDevices": "partitionable_devices",
    "DeviceTaints": "device_taints",
    "ConsumableCapacity": "consumable_capacity",
    "DeviceBindingAndStatus": "device_binding_and_status",
}


def _node(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"name": spec, "region": "region-" + spec.rsplit("-", 1)[-1]}
    return {"metadata": {"name": spec["name"], "labels": {"region": spec["region"], "planet": "earth"}}}


def _class(spec: dict[str, Any]) -> dict[str, Any]:
    if "metadata" in spec:
        return spec
    out: dict[str, Any] = {"metadata": {"name": spec["name"]}, "spec": {}}
    default = [f'device.driver == "{spec["driver"]}"'] if "driver" in spec else []
    if "allowMultipleAllocations" in spec:
        flag = str(bool(spec["allowMultipleAllocations"])).lower()
        default = [f'{default[0]} && device.allowMultipleAllocations == {flag}']
    selectors = list(spec.get("selectors", default))
    out["spec"]["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    if "config" in spec:
        out["spec"]["config"] = spec["config"]
    return out


def _capacity(values: dict[str, Any]) -> dict[str, Any]:
    return {k: {"value": str(v)} if not isinstance(v, dict) else v for k, v in values.items()}


def _device(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec}
    out = dict(spec)
    if "capacity" in out:
        out["capacity"] = _capacity(out["capacity"])
    consumes = out.pop("consumes", None)
    if consumes is not None:
        out["consumesCounters"] = [
            {"counterSet": name, "counters": {k: {"value": str(v)} for k, v in (counters or {}).items()}}
            for name, counters in consumes.items()
        ]
        if out.pop("fromCounters", False):
            out["capacity"] = {
                k: {"value": str(v)} for counters in consumes.values() for k, v in (counters or {}).items()}
    for name, value in (out.pop("rangePolicy", None) or {}).items():
        policy = {"default": "2", "validRange": {"min": "2", "step": "2", "max": "4"}}
        out.setdefault("capacity", {})[name] = {"value": str(value), "requestPolicy": policy}
    valid = out.pop("validValuesPolicy", None)
    if valid is not None:
        values = [str(valid["default"]), *(str(v) for v in valid.get("extra", ()))]
        for name, value in valid["capacity"].items():
            policy = {"default": str(valid["default"]), "validValues": values}
            out.setdefault("capacity", {})[name] = {"value": str(value), "requestPolicy": policy}
    return out


def _pool(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec, "generation": 1, "resourceSliceCount": 1}
    return {"name": spec["name"], "generation": spec.get("generation", 1), "resourceSliceCount": spec.get("count", 1)}


def _slice(spec: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"driver": spec["driver"], "pool": _pool(spec["pool"])}
    if "node" in spec:
        body["nodeName"] = spec["node"]
    if spec.get("allNodes"):
        body["allNodes"] = True
    if spec.get("perDevice"):
        body["perDeviceNodeSelection"] = True
    if "selector" in spec:
        body["nodeSelector"] = spec["selector"]
    if "devices" in spec:
        body["devices"] = [_device(d) for d in spec["devices"]]
    if "deviceCount" in spec:
        body["devices"] = [{"name": f"device-{i}"} for i in range(spec["deviceCount"])]
    if "counterSets" in spec:
        body["sharedCounters"] = [
            {"name": name, "counters": {k: {"value": str(v)} for k, v in counters.items()}}
            for name, counters in spec["counterSets"].items()
        ]
    return {"metadata": {"name": spec["name"]}, "spec": body}


def _exact(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"deviceClassName": spec.get("class", ""), "allocationMode": spec.get("mode", "ExactCount")}
    if out["allocationMode"] == "ExactCount" or "count" in spec:
        out["count"] = spec.get("count", 1)
    if spec.get("selectors"):
        out["selectors"] = [{"cel": {"expression": e}} if isinstance(e, str) else e for e in spec["selectors"]]
    for key in ("adminAccess", "tolerations"):
        if key in spec:
            out[key] = spec[key]
    if "capacity" in spec:
        out["capacity"] = {"requests": {k: str(v) for k, v in spec["capacity"].items()}}
    return out


def _request(spec: dict[str, Any]) -> dict[str, Any]:
    if "firstAvailable" in spec:
        subs = [{"name": s["name"], **_exact(s)} for s in spec["firstAvailable"]]
        return {"name": spec["name"], "firstAvailable": subs}
    return {"name": spec["name"], "exactly": _exact(spec)}


def _claim(spec: dict[str, Any]) -> dict[str, Any]:
    devices: dict[str, Any] = {"requests": [_request(r) for r in spec.get("requests", [])]}
    for key in ("constraints", "config"):
        if key in spec:
            devices[key] = spec[key]
    return {"metadata": {"name": spec["name"]}, "spec": {"devices": devices}}


def expand_case(case: dict[str, Any]) -> dict[str, Any]:
    allocated = AllocatedState(devices={DeviceID(*d.split("/", 2)) for d in case.get("allocated", [])})
    for entry in case.get("allocatedCapacity", []):
        device = DeviceID(*entry["device"].split("/", 2))
        allocated.capacity[device] = {k: parse_quantity(str(v)) for k, v in entry["capacity"].items()}
    return {
        "node": _node(case.get("node")),
        "claims": [_claim(c) for c in case.get("claims", [])],
        "slices": [_slice(s) for s in case.get("slices", [])],
        "classes": [_class(c) for c in case.get("classes", [])],
        "allocated": allocated,
        "features": Features(**{FEATURES[f]: True for f in case.get("features", [])}),
    }


def _expected_result(spec: dict[str, Any]) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for d in spec.get("devices", []):
        if isinstance(d, dict) and "deviceRange" in d:
            request, driver, pool, first, count = d["deviceRange"]
            results.extend({"request": request, "driver": driver, "pool": pool, "device": f"device-{i}"}
                           for i in range(first, first + count))
        elif isinstance(d, list):
            results.append({"request": d[0], "driver": d[1], "pool": d[2], "device": d[3]})
        else:
            results.append(dict(d))
    out: dict[str, Any] = {"results": results, "config": spec.get("config")}
    if "node" in spec:
        out["nodeSelector"] = {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [spec["node"]]}]}]}
    else:
        out["nodeSelector"] = spec.get("selector")
    return out


def _normal_device(d: dict[str, Any]) -> tuple[Any, ...]:
    d = dict(d)
    if "shareID" in d:
        d["shareID"] = "any"
    if "consumedCapacity" in d:
        d["consumedCapacity"] = {k: format_quantity(parse_quantity(str(v))) for k, v in d["consumedCapacity"].items()}
    return tuple(sorted((k, repr(v)) for k, v in d.items()))


def _normal_selector(selector: dict[str, Any] | None) -> Any:
    if selector is None:
        return None
    terms = []
    for term in selector.get("nodeSelectorTerms", []):
        terms.append({
            key: sorted((r["key"], r["operator"], tuple(sorted(r.get("values", [])))) for r in term.get(key) or [])
            for key in ("matchExpressions", "matchFields")
        })
    return terms


def _cases() -> list[Any]:
    params = []
    for path in sorted(HERE.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()) or []:
            params.append(pytest.param(case, id=f"{path.stem}/{case['name']}"))
    return params


CASES = _cases()


def test_table_is_large() -> None:
    assert len(CASES) >= 180


@pytest.mark.parametrize("case", CASES)
def test_upstream_case(case: dict[str, Any]) -> None:
    inputs = expand_case(case)
    outcome = allocate(inputs["node"], inputs["claims"], inputs["slices"], inputs["classes"],
                       inputs["allocated"], inputs["features"])
    expect = case.get("expect", {})
    if "error" in expect:
        assert outcome.kind == "error", outcome
        assert expect["error"] in outcome.error
    elif expect.get("unsatisfiable"):
        assert outcome.kind == "unsatisfiable", outcome
    else:
        assert outcome.kind == "allocated", outcome
        assert outcome.results is not None
        wanted = [_expected_result(r) for r in expect.get("results", [])]
        if not inputs["claims"]:
            wanted = []
        assert len(outcome.results) == len(wanted)
        for got, want in zip(outcome.results, wanted, strict=True):
            got_devices = sorted(_normal_device(d) for d in got["devices"]["results"])
            assert got_devices == sorted(_normal_device(d) for d in want["results"])
            assert got["devices"].get("config") == want["config"]
            assert _normal_selector(got.get("nodeSelector")) == _normal_selector(want["nodeSelector"])
    if "steps" in case:
        assert outcome.steps == case["steps"]


def test_inputs_are_not_mutated() -> None:
    import copy

    for param in CASES:
        inputs = expand_case(param.values[0])
        before = copy.deepcopy([inputs["claims"], inputs["slices"], inputs["classes"]])
        allocate(inputs["node"], inputs["claims"], inputs["slices"], inputs["classes"], inputs["allocated"],
                 inputs["features"])
        assert [inputs["claims"], inputs["slices"], inputs["classes"]] == before


def test_fraction_helper_round_trip() -> None:
    assert format_quantity(Fraction(2**30)) == "1Gi"


@pytest.mark.parametrize("timeout_s", [None, 0.0])
def test_interrupt(timeout_s: float | None) -> None:
    """Upstream's ``interrupt`` sub-test: six devices asked of five; without a limit that is a plain no fit,
    with an expired deadline the search stops with the context error."""
    inputs = expand_case({
        "claims": [{"name": "claim-0", "requests": [{"name": "req-0", "class": "class-a", "count": 6}]}],
        "classes": [{"name": "class-a", "driver": "driver-a"}],
        "slices": [{"name": "slice-1", "node": "node-1", "pool": "pool-1", "driver": "driver-a", "deviceCount": 5}],
        "node": "node-1",
    })
    outcome = allocate(inputs["node"], inputs["claims"], inputs["slices"], inputs["classes"], inputs["allocated"],
                       inputs["features"], timeout_s=timeout_s)
    if timeout_s is None:
        assert outcome.kind == "unsatisfiable", outcome
    else:
        assert outcome.kind == "error", outcome
        assert "context deadline exceeded" in outcome.error
