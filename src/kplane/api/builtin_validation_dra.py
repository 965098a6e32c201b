"""Semantic validation of ``resource.k8s.io/v1`` kinds and of the pod's DRA fields.

After ``pkg/apis/resource/validation/validation.go`` (1.35) and ``validatePodResourceClaims`` /
``validateResourceClaimNames`` in ``pkg/apis/core/validation/validation.go``: the same limits (32 requests,
8 subrequests, 32 selectors, 256 reservedFor entries; ResourceSlices are in :mod:`builtin_validation_dra_slice`),
the same one-of rules and messages, and CEL selectors compiled (syntax and result type) through
:mod:`kplane.cel` and held to the selector cost limit (:mod:`kplane.cel.draenv`). An over-long list
is reported once as ``Too many`` and its items are not looked at, as upstream does to keep huge inputs
cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kplane import cel
from kplane.api import names
from kplane.api.builtin_validation_meta import (
    duplicate,
    go_value,
    immutable,
    invalid_raw,
    required,
    too_long,
    too_many,
    validate_label_name,
    validate_template_meta,
)
from kplane.api.status import Cause, field_forbidden, field_invalid, field_unsupported
from kplane.cel.draenv import over_cost_limit

# resource/v1 types.go constants.
DEVICE_REQUESTS_MAX = 32
FIRST_AVAILABLE_MAX = 8
DEVICE_SELECTORS_MAX = 32
DEVICE_CONSTRAINTS_MAX = 32
DEVICE_CONFIG_MAX = 32
ALLOCATION_RESULTS_MAX = 32
RESERVED_FOR_MAX = 256
SLICE_MAX_DEVICES = 128
SLICE_MAX_DEVICES_WITH_TAINTS_OR_COUNTERS = 64
SLICE_MAX_COUNTER_SETS = 8
COUNTERS_PER_SET_MAX = 32
COUNTER_CONSUMPTIONS_PER_DEVICE_MAX = 2
COUNTERS_PER_CONSUMPTION_MAX = 32
ATTRIBUTES_AND_CAPACITIES_MAX = 32
DEVICE_TAINTS_MAX = 16
DRIVER_NAME_MAX = 63
POOL_NAME_MAX = 253
DOMAIN_MAX = 63
ID_MAX = 32
ATTRIBUTE_VALUE_MAX = 64
CEL_EXPRESSION_MAX = 10 * 1024
OPAQUE_PARAMETERS_MAX = 10 * 1024

ALLOCATION_MODES = ["All", "ExactCount"]
CONFIG_SOURCES = ["FromClaim", "FromClass"]
TAINT_EFFECTS = ["NoExecute", "NoSchedule", "None"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
REQUEST_REF = "must be the name of a request in the claim or the name of a request and a subrequest separated by '/'"
NODE_SELECTION = "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required"
DEVICE_NODE_SELECTION = ("exactly one of `nodeName`, `nodeSelector`, or `allNodes` is required when "
                         "`perDeviceNodeSelection` is set to true in the ResourceSlice spec")
PER_DEVICE_ONLY = ("`nodeName`, `nodeSelector` and `allNodes` can only be set if `perDeviceNodeSelection` "
                   "is set to true in the ResourceSlice spec")
_C_IDENTIFIER = "[A-Za-z_][A-Za-z0-9_]*"
_C_IDENTIFIER_MSG = "a valid C identifier must start with alphabetic character or '_', followed by a string of " \
    "alphanumeric characters or '_'"
# semver.org 2.0.0, as the upstream validation spells it out.
_NUM = r"(0|[1-9]\d*)"
_PRE = r"(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD = r"[0-9a-zA-Z-]+"
SEMVER = re.compile(rf"{_NUM}\.{_NUM}\.{_NUM}(-{_PRE}(\.{_PRE})*)?(\+{_BUILD}(\.{_BUILD})*)?")

Obj = Mapping[str, Any]
ItemRule = Callable[[Any, str], list[Cause]]


# --- generic list helpers (validateSlice / validateSet) ----------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def check_list(items: Any, limit: int, rule: ItemRule, path: str,
               key: Callable[[Any], Any] | None = None) -> list[Cause]:
    """Size first (short-circuits), then each item, then duplicates by `key` when given."""
    values = _list(items)
    if limit >= 0 and len(values) > limit:
        return [too_many(path, len(values), limit)]
    causes: list[Cause] = []
    for i, item in enumerate(values):
        causes += rule(item, f"{path}[{i}]")
    if key is not None:
        seen: set[Any] = set()
        for i, item in enumerate(values):
            k = key(item)
            if k in seen:
                causes.append(duplicate(f"{path}[{i}]", k))
            seen.add(k)
    return causes


def _name_of(item: Any) -> Any:
    return _map(item).get("name", "")


def _label(value: Any, path: str) -> list[Cause]:
    return [field_invalid(path, value, m) for m in names.is_dns1123_label(str(value))]


def _subdomain(value: Any, path: str) -> list[Cause]:
    return [field_invalid(path, value, m) for m in names.is_dns1123_subdomain(str(value))]


def _request_name(value: Any, path: str) -> list[Cause]:
    if not value:
        return [required(path)]
    return _label(value, path)


# --- names: drivers, pools, qualified attribute names --------------------------------------------------


def validate_driver_name(value: Any, path: str) -> list[Cause]:
    """``ValidateCSIDriverName``: required, at most 63 characters, a DNS subdomain once lower-cased."""
    if not value:
        return [required(path)]
    text = str(value)
    causes: list[Cause] = []
    if len(text) > DRIVER_NAME_MAX:
        causes.append(too_long(path, DRIVER_NAME_MAX))
    causes += [field_invalid(path, text, m) for m in names.is_dns1123_subdomain(text.lower())]
    return causes


def validate_pool_name(value: Any, path: str) -> list[Cause]:
    if not value:
        return [required(path)]
    text = str(value)
    causes = [too_long(path, POOL_NAME_MAX)] if len(text) > POOL_NAME_MAX else []
    for part in text.split("/"):
        causes += _subdomain(part, path)
    return causes


def _c_identifier(value: str, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if len(value) > ID_MAX:
        causes.append(too_long(path, ID_MAX))
    if not re.fullmatch(_C_IDENTIFIER, value):
        detail = names.regex_error(_C_IDENTIFIER_MSG, _C_IDENTIFIER, "my_name", "MY_NAME", "MyName")
        causes.append(field_invalid(path, value, detail))
    return causes


def validate_qualified_name(value: Any, path: str) -> list[Cause]:
    """An attribute or capacity name: ``<id>`` or ``<domain>/<id>``."""
    text = str(value)
    if not text:
        return [required(path, "name required")]
    domain, _, ident = text.rpartition("/")
    causes: list[Cause] = []
    if "/" in text:
        if not domain:
            causes.append(required(path, "the domain must not be empty"))
        else:
            if len(domain) > DOMAIN_MAX:
                causes.append(too_long(path, DOMAIN_MAX))
            causes += _subdomain(domain, path)
    if not ident:
        causes.append(required(path, "the name must not be empty"))
    else:
        causes += _c_identifier(ident, path)
    return causes


def validate_fully_qualified_name(value: Any, path: str) -> list[Cause]:
    """``matchAttribute`` / ``distinctAttribute``: the domain is required."""
    causes = validate_qualified_name(value, path)
    if value and "/" not in str(value):
        causes.append(required(path, "a fully qualified name must be a domain and a name separated by a slash"))
    return causes


# --- CEL selectors ------------------------------------------------------------------------------------


def validate_cel_expression(expression: Any, path: str) -> list[Cause]:
    """Compile against the DRA environment (one variable, `device`); a selector must yield a bool and
    its worst-case cost must stay within CELSelectorExpressionMaxCost (validateCELSelector in
    pkg/apis/resource/validation/validation.go: ``field.Forbidden(..., "too complex, exceeds cost limit")``,
    checked only once the expression compiles)."""
    text = str(expression or "")
    if len(text) > CEL_EXPRESSION_MAX:
        return [too_long(path, CEL_EXPRESSION_MAX)]
    if not text:
        return [required(path, "expression must not be empty")]
    try:
        program = cel.compile(text, {"device": cel.DYN})
    except cel.CelError as err:
        return [field_invalid(path, text, f"compilation failed: {err}")]
    if program.result_type not in ("bool", "dyn"):
        return [field_invalid(path, text, "must evaluate to bool")]
    if over_cost_limit(text):
        return [field_forbidden(path, "too complex, exceeds cost limit")]
    return []


def _selector(selector: Any, path: str) -> list[Cause]:
    cel_selector = _map(selector).get("cel")
    if not isinstance(cel_selector, Mapping):
        return [required(f"{path}.cel")]
    return validate_cel_expression(cel_selector.get("expression"), f"{path}.cel.expression")


def _selectors(selectors: Any, path: str) -> list[Cause]:
    return check_list(selectors, DEVICE_SELECTORS_MAX, _selector, path)


# --- opaque configuration -----------------------------------------------------------------------------


def _opaque(config: Any, path: str) -> list[Cause]:
    opaque = _map(config).get("opaque")
    if not isinstance(opaque, Mapping):
        return [required(f"{path}.opaque")]
    causes = validate_driver_name(opaque.get("driver"), f"{path}.opaque.driver")
    params = opaque.get("parameters")
    where = f"{path}.opaque.parameters"
    if params is None:
        causes.append(required(where))
    elif len(json.dumps(params, separators=(",", ":"))) > OPAQUE_PARAMETERS_MAX:
        causes.append(too_long(where, OPAQUE_PARAMETERS_MAX))
    elif not isinstance(params, Mapping):
        causes.append(invalid_raw(where, '"<value omitted>"', "must be a valid JSON object"))
    return causes


# --- claims -------------------------------------------------------------------------------------------


def request_names(devices: Obj) -> dict[str, set[str] | None]:
    """Request name → its subrequest names (None for a plain request)."""
    out: dict[str, set[str] | None] = {}
    for request in _list(devices.get("requests")):
        first = _list(_map(request).get("firstAvailable"))
        out[str(_map(request).get("name", ""))] = {str(_map(s).get("name", "")) for s in first} if first else None
    return out


def _known_ref(ref: str, known: Mapping[str, set[str] | None]) -> bool:
    parts = ref.split("/")
    if len(parts) > 2 or parts[0] not in known:
        return False
    subs = known[parts[0]]
    return len(parts) == 1 or (subs is not None and parts[1] in subs)


def _request_ref(ref: Any, path: str, known: Mapping[str, set[str] | None]) -> list[Cause]:
    text = str(ref)
    segments = text.split("/")
    if len(segments) > 2:
        return [field_invalid(path, text, REQUEST_REF)]
    causes: list[Cause] = []
    for segment in segments:
        causes += _request_name(segment, path)
    if not _known_ref(text, known):
        causes.append(field_invalid(path, text, REQUEST_REF))
    return causes


def _request_refs(refs: Any, path: str, known: Mapping[str, set[str] | None]) -> list[Cause]:
    return check_list(refs, DEVICE_REQUESTS_MAX, lambda r, p: _request_ref(r, p, known), path, key=str)


def _allocation_mode(selection: Obj, path: str) -> list[Cause]:
    mode = selection.get("allocationMode", "ExactCount")
    count = selection.get("count")
    if mode == "All":
        if count:
            return [field_invalid(f"{path}.count", count, "must not be specified when allocationMode is 'All'")]
        return []
    if mode == "ExactCount":
        value = 1 if count is None else count
        if isinstance(value, int) and value <= 0:
            return [field_invalid(f"{path}.count", value, "must be greater than zero")]
        return []
    return [field_unsupported(f"{path}.allocationMode", mode, ALLOCATION_MODES)]


def _toleration(toleration: Any, path: str) -> list[Cause]:
    t = _map(toleration)
    causes: list[Cause] = []
    if t.get("key"):
        causes += validate_label_name(f"{path}.key", str(t["key"]))
    operator = t.get("operator", "Equal")
    value = str(t.get("value") or "")
    if operator == "Exists":
        if value:
            causes.append(field_invalid(f"{path}.value", value, "must be empty for operator `Exists`"))
    elif operator == "Equal":
        causes += [field_invalid(f"{path}.value", value, m) for m in names.is_valid_label_value(value)]
    elif not operator:
        causes.append(required(f"{path}.operator"))
    else:
        causes.append(field_unsupported(f"{path}.operator", operator, TOLERATION_OPERATORS))
    effect = t.get("effect")
    if effect and effect not in TAINT_EFFECTS:
        causes.append(field_unsupported(f"{path}.effect", effect, TAINT_EFFECTS))
    return causes


def _device_selection(selection: Obj, path: str) -> list[Cause]:
    """What ExactDeviceRequest and DeviceSubRequest share: class, selectors, mode and count, tolerations."""
    class_name = selection.get("deviceClassName")
    causes = [required(f"{path}.deviceClassName")] if not class_name else _subdomain(class_name,
                                                                                     f"{path}.deviceClassName")
    causes += _selectors(selection.get("selectors"), f"{path}.selectors")
    causes += _allocation_mode(selection, path)
    for i, toleration in enumerate(_list(selection.get("tolerations"))):
        causes += _toleration(toleration, f"{path}.tolerations[{i}]")
    return causes


def _subrequest(sub: Any, path: str) -> list[Cause]:
    return _request_name(_map(sub).get("name"), f"{path}.name") + _device_selection(_map(sub), path)


def _request(request: Any, path: str) -> list[Cause]:
    r = _map(request)
    causes = _request_name(r.get("name"), f"{path}.name")
    exactly = r.get("exactly")
    first = _list(r.get("firstAvailable"))
    if exactly is not None and first:
        causes.append(invalid_raw(path, "null",
                                  "exactly one of `exactly` or `firstAvailable` is required, but multiple fields "
                                  "are set"))
    elif exactly is None and not first:
        causes.append(required(path, "exactly one of `exactly` or `firstAvailable` is required"))
    elif first:
        causes += check_list(first, FIRST_AVAILABLE_MAX, _subrequest, f"{path}.firstAvailable", key=_name_of)
    else:
        causes += _device_selection(_map(exactly), f"{path}.exactly")
    return causes


def _constraint(constraint: Any, path: str, known: Mapping[str, set[str] | None]) -> list[Cause]:
    c = _map(constraint)
    causes = _request_refs(c.get("requests"), f"{path}.requests", known)
    if c.get("matchAttribute") is not None:
        causes += validate_fully_qualified_name(c["matchAttribute"], f"{path}.matchAttribute")
    elif c.get("distinctAttribute") is not None:
        causes += validate_fully_qualified_name(c["distinctAttribute"], f"{path}.distinctAttribute")
    else:
        causes.append(required(f"{path}.matchAttribute"))
    return causes


def validate_device_claim(devices: Any, path: str) -> list[Cause]:
    d = _map(devices)
    known = request_names(d)
    causes = check_list(d.get("requests"), DEVICE_REQUESTS_MAX, _request, f"{path}.requests", key=_name_of)
    causes += check_list(d.get("constraints"), DEVICE_CONSTRAINTS_MAX,
                         lambda c, p: _constraint(c, p, known), f"{path}.constraints")
    causes += check_list(d.get("config"), DEVICE_CONFIG_MAX,
                         lambda c, p: _request_refs(_map(c).get("requests"), f"{p}.requests", known) + _opaque(c, p),
                         f"{path}.config")
    return causes


def _consumer(ref: Any, path: str) -> list[Cause]:
    r = _map(ref)
    return [required(f"{path}.{field}") for field in ("resource", "name", "uid") if not r.get(field)]


def _result(result: Any, path: str, known: Mapping[str, set[str] | None]) -> list[Cause]:
    r = _map(result)
    causes = _request_ref(r.get("request", ""), f"{path}.request", known)
    causes += validate_driver_name(r.get("driver"), f"{path}.driver")
    causes += validate_pool_name(r.get("pool"), f"{path}.pool")
    device = r.get("device")
    causes += [required(f"{path}.device")] if not device else _label(device, f"{path}.device")
    return causes


def _allocation_config(config: Any, path: str, known: Mapping[str, set[str] | None]) -> list[Cause]:
    c = _map(config)
    source = c.get("source")
    causes: list[Cause] = []
    if not source:
        causes.append(required(f"{path}.source"))
    elif source not in CONFIG_SOURCES:
        causes.append(field_unsupported(f"{path}.source", source, CONFIG_SOURCES))
    return causes + _request_refs(c.get("requests"), f"{path}.requests", known) + _opaque(c, path)


def validate_claim_status(status: Obj, old_status: Obj, deleting: bool,
                          known: Mapping[str, set[str] | None]) -> list[Cause]:
    reserved = _list(status.get("reservedFor"))
    causes = check_list(reserved, RESERVED_FOR_MAX, _consumer, "status.reservedFor",
                        key=lambda ref: _map(ref).get("uid", ""))
    allocation = status.get("allocation")
    old_allocation = old_status.get("allocation")
    if reserved:
        if allocation is None:
            causes.append(field_forbidden("status.reservedFor", "may not be specified when `allocated` is not set"))
        elif deleting:
            before = {json.dumps(r, sort_keys=True) for r in _list(old_status.get("reservedFor"))}
            if any(json.dumps(r, sort_keys=True) not in before for r in reserved):
                causes.append(field_forbidden("status.reservedFor", "new entries may not be added while "
                                              "`deallocationRequested` or `deletionTimestamp` are set"))
    if allocation is not None and old_allocation is not None:
        causes += immutable("status.allocation", allocation, old_allocation)
    elif isinstance(allocation, Mapping):
        devices = _map(allocation.get("devices"))
        causes += check_list(devices.get("results"), ALLOCATION_RESULTS_MAX,
                             lambda r, p: _result(r, p, known), "status.allocation.devices.results")
        causes += check_list(devices.get("config"), 2 * DEVICE_CONFIG_MAX,
                             lambda c, p: _allocation_config(c, p, known), "status.allocation.devices.config")
    return causes


def validate_resource_claim(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _map(obj.get("spec"))
    if old is not None:
        causes = immutable("spec", obj.get("spec"), old.get("spec"))
        deleting = bool(_map(obj.get("metadata")).get("deletionTimestamp"))
        return causes + validate_claim_status(_map(obj.get("status")), _map(old.get("status")), deleting,
                                              request_names(_map(spec.get("devices"))))
    return validate_device_claim(spec.get("devices"), "spec.devices")


def validate_resource_claim_template(obj: Obj, old: Obj | None) -> list[Cause]:
    if old is not None:
        return immutable("spec", obj.get("spec"), old.get("spec"))
    spec = _map(obj.get("spec"))
    causes = validate_template_meta(spec.get("metadata"), "spec.metadata")
    return causes + validate_device_claim(_map(spec.get("spec")).get("devices"), "spec.spec.devices")


# --- device classes -----------------------------------------------------------------------------------


def validate_device_class(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _map(obj.get("spec"))
    causes = _selectors(spec.get("selectors"), "spec.selectors")
    causes += check_list(spec.get("config"), DEVICE_CONFIG_MAX, _opaque, "spec.config")
    extended = spec.get("extendedResourceName")
    if extended is not None and not _is_extended_resource_name(str(extended)):
        causes.append(field_invalid("spec.extendedResourceName", extended, "must be a valid extended resource name"))
    return causes


def _is_extended_resource_name(name: str) -> bool:
    """core/v1 helper IsExtendedResourceName: a qualified name outside kubernetes.io, not `requests.`."""
    if name.startswith("requests.") or "/" not in name:
        return False
    if name.split("/")[0].endswith("kubernetes.io"):
        return False
    return not names.is_qualified_name(name)


# --- pods ---------------------------------------------------------------------------------------------


def _pod_claim(claim: Any, path: str, seen: set[str]) -> list[Cause]:
    c = _map(claim)
    name = c.get("name")
    causes: list[Cause] = []
    if not name:
        causes.append(required(f"{path}.name"))
    elif name in seen:
        causes.append(duplicate(f"{path}.name", name))
    else:
        causes += _label(name, f"{path}.name")
        seen.add(str(name))
    by_name, by_template = c.get("resourceClaimName"), c.get("resourceClaimTemplateName")
    if by_name is not None and by_template is not None:
        causes.append(invalid_raw(path, go_value(dict(c)),
                                  "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified"))
    elif by_name is None and by_template is None:
        causes.append(invalid_raw(path, go_value(dict(c)),
                                  "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`"))
    for field, value in (("resourceClaimName", by_name), ("resourceClaimTemplateName", by_template)):
        if value is not None:
            causes += _subdomain(value, f"{path}.{field}")
    return causes


def _container_claims(claims: Any, path: str, pod_claims: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    keys: set[str] = set()
    for i, claim in enumerate(_list(claims)):
        here = f"{path}[{i}]"
        c = _map(claim)
        name = str(c.get("name") or "")
        if not name:
            causes.append(required(here))
            continue
        key = name
        if c.get("request"):
            causes += _label(c["request"], f"{here}.request")
            key += "/" + str(c["request"])
        if key in keys:
            causes.append(duplicate(here, key))
        keys.add(key)
        if name not in pod_claims:
            detail = "must be one of the names in pod.spec.resourceClaims"
            detail += ": " + ", ".join(sorted(pod_claims)) if pod_claims else " which is empty"
            causes.append(Cause("FieldValueNotFound", f"Not found: {go_value(name)}: {detail}", here))
    return causes


def validate_pod_claims(obj: Obj, old: Obj | None) -> list[Cause]:
    """``spec.resourceClaims`` and every container's ``resources.claims`` (init containers included)."""
    spec = _map(obj.get("spec"))
    seen: set[str] = set()
    causes: list[Cause] = []
    for i, claim in enumerate(_list(spec.get("resourceClaims"))):
        causes += _pod_claim(claim, f"spec.resourceClaims[{i}]", seen)
    for field in ("initContainers", "containers"):
        for i, container in enumerate(_list(spec.get(field))):
            claims = _map(_map(container).get("resources")).get("claims")
            causes += _container_claims(claims, f"spec.{field}[{i}].resources.claims", seen)
    return causes


KIND_RULES: dict[tuple[str, str], Callable[[Obj, Obj | None], list[Cause]]] = {
    ("resource.k8s.io", "deviceclasses"): validate_device_class,
    ("resource.k8s.io", "resourceclaims"): validate_resource_claim,
    ("resource.k8s.io", "resourceclaimtemplates"): validate_resource_claim_template,
}
EXTRA_RULES: dict[tuple[str, str], Sequence[Callable[[Obj, Obj | None], list[Cause]]]] = {
    ("", "pods"): (validate_pod_claims,),
}
