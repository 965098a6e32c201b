"""Semantic validation of ``resource.k8s.io/v1`` ResourceSlices (split from :mod:`builtin_validation_dra`).

After ``validateResourceSliceSpec`` and ``validateDevice`` in ``pkg/apis/resource/validation/validation.go``
(1.35): exactly one node selection, at most 128 devices (64 once any device has taints or consumes counters),
8 counter sets, attributes of exactly one type (versions as semver 2.0.0), at most 32 attributes and capacities
per device, and driver, pool and node fixed once created.
"""

from __future__ import annotations

import json
from typing import Any

from kplane import cel
from kplane.api import names
from kplane.api.builtin_validation_dra import (
    ATTRIBUTE_VALUE_MAX,
    ATTRIBUTES_AND_CAPACITIES_MAX,
    COUNTER_CONSUMPTIONS_PER_DEVICE_MAX,
    COUNTERS_PER_CONSUMPTION_MAX,
    COUNTERS_PER_SET_MAX,
    DEVICE_NODE_SELECTION,
    DEVICE_TAINTS_MAX,
    NODE_SELECTION,
    PER_DEVICE_ONLY,
    SEMVER,
    SLICE_MAX_COUNTER_SETS,
    SLICE_MAX_DEVICES,
    SLICE_MAX_DEVICES_WITH_TAINTS_OR_COUNTERS,
    TAINT_EFFECTS,
    Obj,
    _label,
    _list,
    _map,
    _name_of,
    _subdomain,
    check_list,
    validate_driver_name,
    validate_pool_name,
    validate_qualified_name,
)
from kplane.api.builtin_validation_meta import (
    go_value,
    immutable,
    invalid_raw,
    required,
    too_long,
    too_many,
    validate_label_name,
)
from kplane.api.status import Cause, field_forbidden, field_invalid, field_unsupported
from kplane.cel.k8slib import parse_quantity


def _attribute(value: Any, path: str) -> list[Cause]:
    v = _map(value)
    kinds = [k for k in ("bool", "int", "string", "version") if v.get(k) is not None]
    causes: list[Cause] = []
    if "string" in kinds and len(str(v["string"])) > ATTRIBUTE_VALUE_MAX:
        causes.append(too_long(f"{path}.string", ATTRIBUTE_VALUE_MAX))
    if "version" in kinds:
        version = str(v["version"])
        if not SEMVER.fullmatch(version):
            causes.append(field_invalid(f"{path}.version", version, "must be a string compatible with semver.org "
                                                                    "spec 2.0.0"))
        if len(version) > ATTRIBUTE_VALUE_MAX:
            causes.append(too_long(f"{path}.version", ATTRIBUTE_VALUE_MAX))
    if len(kinds) != 1:
        rendered = '""' if not kinds else go_value(dict(v))
        causes.append(invalid_raw(path, rendered, "exactly one value must be specified"))
    return causes


def _quantity(value: Any, path: str) -> list[Cause]:
    try:
        parse_quantity(str(value))
    except (ValueError, cel.CelError) as err:
        return [field_invalid(path, value, str(err))]
    return []


def _capacity(value: Any, path: str, multi: bool) -> list[Cause]:
    c = _map(value)
    causes = _quantity(c.get("value"), f"{path}.value") if "value" in c else [required(f"{path}.value")]
    if c.get("requestPolicy") is not None and not multi:
        causes.append(field_forbidden(f"{path}.requestPolicy", "allowMultipleAllocations must be true"))
    return causes


def _counters(counters: Any, limit: int, path: str) -> list[Cause]:
    m = _map(counters)
    if not m:
        return [required(path)]
    if len(m) > limit:
        return [too_many(path, len(m), limit)]
    causes: list[Cause] = []
    for name, counter in m.items():
        here = f"{path}[{name}]"
        causes += _label(name, here) + _quantity(_map(counter).get("value"), f"{here}.value")
    return causes


def _counter_set(counter_set: Any, path: str) -> list[Cause]:
    c = _map(counter_set)
    name = c.get("name")
    causes = [required(f"{path}.name")] if not name else _label(name, f"{path}.name")
    return causes + _counters(c.get("counters"), COUNTERS_PER_SET_MAX, f"{path}.counters")


def _consumption(consumption: Any, path: str) -> list[Cause]:
    c = _map(consumption)
    name = c.get("counterSet")
    causes = [required(f"{path}.counterSet")] if not name else _label(name, f"{path}.counterSet")
    return causes + _counters(c.get("counters"), COUNTERS_PER_CONSUMPTION_MAX, f"{path}.counters")


def _taint(taint: Any, path: str) -> list[Cause]:
    t = _map(taint)
    causes = validate_label_name(f"{path}.key", str(t.get("key") or "")) if t.get("key") else \
        [required(f"{path}.key")]
    if t.get("value"):
        causes += [field_invalid(f"{path}.value", t["value"], m) for m in names.is_valid_label_value(str(t["value"]))]
    effect = t.get("effect")
    if not effect:
        causes.append(required(f"{path}.effect"))
    elif effect not in TAINT_EFFECTS:
        causes.append(field_unsupported(f"{path}.effect", effect, TAINT_EFFECTS))
    return causes


def _device_node_selection(device: Obj, path: str, per_device: bool) -> list[Cause]:
    present = [f"`{k}`" for k in ("nodeName", "nodeSelector", "allNodes") if device.get(k) is not None]
    if not per_device:
        return [invalid_raw(path, "null", PER_DEVICE_ONLY)] if present else []
    causes: list[Cause] = []
    if device.get("nodeName") == "":
        causes.append(field_invalid(f"{path}.nodeName", "", "must not be empty"))
    if device.get("allNodes") is False:
        causes.append(field_invalid(f"{path}.allNodes", False, "must be either unset or set to true"))
    chosen = [k for k in present if not (k == "`nodeName`" and device.get("nodeName") == "")
              and not (k == "`allNodes`" and device.get("allNodes") is False)]
    if not chosen:
        causes.append(required(path, DEVICE_NODE_SELECTION))
    elif len(chosen) > 1:
        causes.append(invalid_raw(path, json.dumps("{" + ", ".join(chosen) + "}"), DEVICE_NODE_SELECTION))
    return causes


def _device(device: Any, path: str, per_device: bool) -> list[Cause]:
    d = _map(device)
    name = d.get("name")
    causes = [required(f"{path}.name")] if not name else _label(name, f"{path}.name")
    attributes, capacity = _map(d.get("attributes")), _map(d.get("capacity"))
    total = len(attributes) + len(capacity)
    if total > ATTRIBUTES_AND_CAPACITIES_MAX:
        causes.append(field_invalid(path, total, "the total number of attributes and capacities must not exceed "
                                                 f"{ATTRIBUTES_AND_CAPACITIES_MAX}"))
    for key, value in attributes.items():
        here = f"{path}.attributes[{key}]"
        causes += validate_qualified_name(key, here) + _attribute(value, here)
    multi = bool(d.get("allowMultipleAllocations"))
    for key, value in capacity.items():
        here = f"{path}.capacity[{key}]"
        causes += validate_qualified_name(key, here) + _capacity(value, here, multi)
    causes += check_list(d.get("taints"), DEVICE_TAINTS_MAX, _taint, f"{path}.taints")
    causes += check_list(d.get("consumesCounters"), COUNTER_CONSUMPTIONS_PER_DEVICE_MAX, _consumption,
                         f"{path}.consumesCounters", key=lambda c: _map(c).get("counterSet", ""))
    return causes + _device_node_selection(d, path, per_device)


def _slice_node_selection(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    chosen: list[str] = []
    node_name = spec.get("nodeName")
    if node_name is not None:
        if node_name:
            chosen.append("`nodeName`")
            causes += _subdomain(node_name, "spec.nodeName")
        else:
            causes.append(field_invalid("spec.nodeName", "", "must be either unset or set to a non-empty string"))
    selector = spec.get("nodeSelector")
    if selector is not None:
        chosen.append("`nodeSelector`")
        terms = _list(_map(selector).get("nodeSelectorTerms"))
        if len(terms) != 1:
            causes.append(invalid_raw("spec.nodeSelector.nodeSelectorTerms", go_value(terms),
                                      "must have exactly one node selector term"))
    for field in ("allNodes", "perDeviceNodeSelection"):
        value = spec.get(field)
        if value is True:
            chosen.append(f"`{field}`")
        elif value is not None:
            causes.append(field_invalid(f"spec.{field}", value, "must be either unset or set to true"))
    if not chosen:
        causes.append(required("spec", NODE_SELECTION))
    elif len(chosen) > 1:
        causes.append(invalid_raw("spec", json.dumps("{" + ", ".join(chosen) + "}"),
                                  NODE_SELECTION + ", but multiple fields are set"))
    return causes


def validate_resource_slice(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _map(obj.get("spec"))
    causes = validate_driver_name(spec.get("driver"), "spec.driver")
    pool = _map(spec.get("pool"))
    causes += validate_pool_name(pool.get("name"), "spec.pool.name")
    count = pool.get("resourceSliceCount", 0)
    if not isinstance(count, int) or count <= 0:
        causes.append(field_invalid("spec.pool.resourceSliceCount", count, "must be greater than zero"))
    generation = pool.get("generation", 0)
    if isinstance(generation, int) and generation < 0:
        causes.append(field_invalid("spec.pool.generation", generation, "must be greater than or equal to zero"))
    if old is not None:
        old_spec = _map(old.get("spec"))
        causes += immutable("spec.pool.name", pool.get("name"), _map(old_spec.get("pool")).get("name"))
        causes += immutable("spec.driver", spec.get("driver"), old_spec.get("driver"))
        causes += immutable("spec.nodeName", spec.get("nodeName"), old_spec.get("nodeName"))
    causes += _slice_node_selection(spec)
    devices = spec.get("devices")
    if spec.get("sharedCounters") is not None and devices is not None:
        causes.append(field_invalid("spec", "", "only one of `sharedCounters` or `devices` is allowed"))
    heavy = any(_map(d).get("taints") or _map(d).get("consumesCounters") for d in _list(devices))
    per_device = spec.get("perDeviceNodeSelection") is True
    causes += check_list(devices, SLICE_MAX_DEVICES_WITH_TAINTS_OR_COUNTERS if heavy else SLICE_MAX_DEVICES,
                         lambda d, p: _device(d, p, per_device), "spec.devices", key=_name_of)
    causes += check_list(spec.get("sharedCounters"), SLICE_MAX_COUNTER_SETS, _counter_set, "spec.sharedCounters",
                         key=_name_of)
    return causes




KIND_RULES = {("resource.k8s.io", "resourceslices"): validate_resource_slice}
