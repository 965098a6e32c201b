"""Semantic validation of ``core/v1`` kinds, after ``pkg/apis/core/validation/validation.go``.

Only the rules a schema cannot express live here (names, uniqueness, enums that depend on other fields,
immutability on update). Fields that upstream defaults before validating (``restartPolicy``, port
``protocol``, service ``type``) are checked only when present, so objects that reach validation before
defaulting are not refused for a value the server would have filled in.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from kplane.api import names
from kplane.api.builtin_validation_meta import (
    FIELD_IMMUTABLE,
    duplicate,
    go_value,
    invalid_raw,
    key_path,
    nonnegative,
    required,
    too_long,
    validate_labels,
)
from kplane.api.status import Cause, field_forbidden, field_invalid, field_unsupported

PROTOCOLS = ["SCTP", "TCP", "UDP"]
RESTART_POLICIES = ["Always", "OnFailure", "Never"]
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
MAX_SECRET_SIZE = 1024 * 1024
STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}
IMMUTABLE_SET = "field is immutable when `immutable` is set"
POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _port_num(path: str, value: Any) -> list[Cause]:
    if not isinstance(value, int) or isinstance(value, bool):
        return []
    return [field_invalid(path, value, m) for m in names.is_valid_port_num(value)]


def _port_num_or_name(path: str, value: Any) -> list[Cause]:
    if isinstance(value, str):
        if value.isdigit():
            return _port_num(path, int(value))
        return [field_invalid(path, value, m) for m in names.is_valid_port_name(value)]
    return _port_num(path, value)


def _protocol(path: str, value: Any) -> list[Cause]:
    if value is None or value in PROTOCOLS:
        return []
    return [field_unsupported(path, value, PROTOCOLS)]


def _container_ports(path: str, ports: Any) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        here = f"{path}[{i}]"
        name = port.get("name")
        if name:
            causes += [field_invalid(f"{here}.name", name, m) for m in names.is_valid_port_name(name)]
            if name in seen:
                causes.append(duplicate(f"{here}.name", name))
            seen.add(name)
        if not port.get("containerPort"):
            causes.append(required(f"{here}.containerPort"))
        else:
            causes += _port_num(f"{here}.containerPort", port["containerPort"])
        if port.get("hostPort"):
            causes += _port_num(f"{here}.hostPort", port["hostPort"])
        causes += _protocol(f"{here}.protocol", port.get("protocol"))
    return causes


def _containers(path: str, containers: Any, names_seen: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    for i, ctr in enumerate(containers if isinstance(containers, list) else []):
        here = f"{path}[{i}]"
        name = ctr.get("name") or ""
        if not name:
            causes.append(required(f"{here}.name"))
        else:
            causes += [field_invalid(f"{here}.name", name, m) for m in names.is_dns1123_label(name)]
            if name in names_seen:
                causes.append(duplicate(f"{here}.name", name))
            names_seen.add(name)
        if not ctr.get("image"):
            causes.append(required(f"{here}.image"))
        causes += _container_ports(f"{here}.ports", ctr.get("ports"))
    return causes


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    """``ValidatePodSpec`` essentials: containers, names, images, ports, restartPolicy, node selector."""
    if not isinstance(spec, Mapping):
        return [required(path)]
    causes: list[Cause] = []
    containers = spec.get("containers")
    seen: set[str] = set()
    if not containers:
        causes.append(required(f"{path}.containers"))
    causes += _containers(f"{path}.containers", containers, seen)
    causes += _containers(f"{path}.initContainers", spec.get("initContainers"), seen)
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        causes.append(field_unsupported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    causes += validate_labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= 2147483647:
        causes.append(field_invalid(f"{path}.activeDeadlineSeconds", deadline,
                                    "must be between 1 and 2147483647, inclusive"))
    causes += nonnegative(f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"))
    return causes


def _images(spec: Mapping[str, Any], field: str) -> list[Any]:
    return [c.get("image") for c in spec.get(field) or []]


def _pod_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """Only images, activeDeadlineSeconds, added tolerations and removed scheduling gates may change."""
    new_spec, old_spec = dict(new.get("spec") or {}), dict(old.get("spec") or {})
    for spec in (new_spec, old_spec):
        for field in ("containers", "initContainers"):
            spec[field] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(field) or []]
        for field in ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations",
                      "schedulingGates", "ephemeralContainers"):
            spec.pop(field, None)
    causes: list[Cause] = []
    old_tolerations = (old.get("spec") or {}).get("tolerations") or []
    new_tolerations = (new.get("spec") or {}).get("tolerations") or []
    removed = [t for t in old_tolerations if t not in new_tolerations]
    if new_spec != old_spec or removed:
        causes.append(field_forbidden("spec", POD_UPDATE_FORBIDDEN))
    old_gates = (old.get("spec") or {}).get("schedulingGates") or []
    for i, gate in enumerate((new.get("spec") or {}).get("schedulingGates") or []):
        if gate not in old_gates:
            detail = f"only deletion is allowed, but found new scheduling gate '{gate.get('name')}'"
            causes.append(field_forbidden(f"spec.schedulingGates[{i}]", detail))
    return causes


def validate_pod(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes = validate_pod_spec(obj.get("spec"), "spec")
    for field in ("containers", "initContainers"):
        for i, image in enumerate(_images(obj.get("spec") or {}, field)):
            if isinstance(image, str) and image and image != image.strip():
                causes.append(field_invalid(f"spec.{field}[{i}].image", image,
                                            "must not have leading or trailing whitespace"))
    if old is not None:
        causes += _pod_update(obj, old)
    return causes


def _service_port(path: str, port: Mapping[str, Any], require_name: bool, seen: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(required(f"{path}.name"))
    elif name:
        causes += [field_invalid(f"{path}.name", name, m) for m in names.is_dns1123_label(name)]
        if name in seen:
            causes.append(duplicate(f"{path}.name", name))
        seen.add(name)
    causes += [field_invalid(f"{path}.port", port.get("port", 0), m)
               for m in names.is_valid_port_num(int(port.get("port") or 0))]
    causes += _protocol(f"{path}.protocol", port.get("protocol"))
    if port.get("targetPort") not in (None, 0, ""):
        causes += _port_num_or_name(f"{path}.targetPort", port["targetPort"])
    return causes


def validate_service(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    causes: list[Cause] = []
    if kind not in SERVICE_TYPES:
        causes.append(field_unsupported("spec.type", kind, SERVICE_TYPES))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and kind != "ExternalName":
        causes.append(required("spec.ports"))
    if kind == "ExternalName":
        external = str(spec.get("externalName") or "")
        if not external:
            causes.append(required("spec.externalName"))
        else:
            causes += [field_invalid("spec.externalName", external, m)
                       for m in names.is_dns1123_subdomain(external.removesuffix("."))]
    seen: set[str] = set()
    pairs: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        causes += _service_port(f"spec.ports[{i}]", port, len(ports) > 1, seen)
        pair = (port.get("port"), port.get("protocol") or "TCP")
        if pair in pairs:
            causes.append(duplicate(f"spec.ports[{i}]", f"{pair[0]}/{pair[1]}"))
        pairs.add(pair)
        if port.get("nodePort") and kind == "ClusterIP":
            causes.append(field_forbidden(f"spec.ports[{i}].nodePort",
                                          "may not be used when `type` is 'ClusterIP'"))
    causes += validate_labels("spec.selector", spec.get("selector"))
    return causes


def _config_keys(base: str, data: Any, other: Mapping[str, Any] | None = None,
                 other_name: str = "") -> list[Cause]:
    causes: list[Cause] = []
    for key in data if isinstance(data, Mapping) else {}:
        causes += [field_invalid(key_path(base, key), key, m) for m in names.is_config_map_key(key)]
        if other is not None and key in other:
            detail = f"duplicate of key present in {other_name}"
            causes.append(field_invalid(key_path(base, key), key, detail))
    return causes


def _decoded_size(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def _immutable_data(obj: Mapping[str, Any], old: Mapping[str, Any] | None,
                    fields: tuple[str, ...]) -> list[Cause]:
    if old is None or old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if obj.get("immutable") is not True:
        causes.append(field_forbidden("immutable", IMMUTABLE_SET))
    for field in fields:
        if (obj.get(field) or {}) != (old.get(field) or {}):
            causes.append(field_forbidden(field, IMMUTABLE_SET))
    return causes


def validate_configmap(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    causes = _immutable_data(obj, old, ("data", "binaryData"))
    causes += _config_keys("data", data, binary, "binaryData")
    causes += _config_keys("binaryData", binary)
    size = sum(len(str(v).encode()) for v in data.values()) + sum(_decoded_size(v) for v in binary.values())
    if size > MAX_SECRET_SIZE:
        causes.append(too_long("", MAX_SECRET_SIZE))
    return causes


def _secret_type_rules(kind: str, data: Mapping[str, Any], annotations: Mapping[str, Any]) -> list[Cause]:
    if kind == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            return [required(key_path("metadata.annotations", "kubernetes.io/service-account.name"))]
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            return [required(key_path("data", key))]
        try:
            json.loads(base64.b64decode(str(data[key])) if key in data else b"")
        except (ValueError, binascii.Error) as err:
            return [field_invalid(key_path("data", key), "<secret contents redacted>", str(err))]
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required(key_path("data", "username")), required(key_path("data", "password"))]
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            return [required(key_path("data", "ssh-privatekey"))]
    elif kind == "kubernetes.io/tls":
        return [required(key_path("data", key)) for key in ("tls.crt", "tls.key") if key not in data]
    return []


def validate_secret(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    # stringData is merged into data before validation upstream; check the merged view.
    data = dict(obj.get("data") or {})
    for key, value in (obj.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    causes = _immutable_data(obj, old, ("data",))
    if old is not None and (obj.get("type") or "Opaque") != (old.get("type") or "Opaque"):
        causes.append(invalid_raw("type", go_value(obj.get("type") or "Opaque"), FIELD_IMMUTABLE))
    causes += _config_keys("data", data)
    if sum(_decoded_size(v) for v in data.values()) > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    causes += _secret_type_rules(str(obj.get("type") or "Opaque"), data, annotations)
    return causes


def validate_namespace(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, finalizer in enumerate((obj.get("spec") or {}).get("finalizers") or []):
        path = f"spec.finalizers[{i}]"
        causes += [field_invalid(path, finalizer, m) for m in names.is_qualified_name(finalizer)]
        if "/" not in finalizer and finalizer not in STANDARD_FINALIZERS:
            detail = "name is neither a standard finalizer name nor is it fully qualified"
            causes.append(field_invalid(path, finalizer, detail))
    return causes


def validate_node(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, taint in enumerate((obj.get("spec") or {}).get("taints") or []):
        path = f"spec.taints[{i}]"
        causes += [field_invalid(f"{path}.key", taint.get("key", ""), m)
                   for m in names.is_qualified_name(str(taint.get("key", "")))]
        if taint.get("value"):
            causes += [field_invalid(f"{path}.value", taint["value"], m)
                       for m in names.is_valid_label_value(str(taint["value"]))]
        effect = taint.get("effect")
        if not effect:
            causes.append(required(f"{path}.effect"))
        elif effect not in TAINT_EFFECTS:
            causes.append(field_unsupported(f"{path}.effect", effect, TAINT_EFFECTS))
    return causes


def validate_endpoints(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        for j, port in enumerate(subset.get("ports") or []):
            here = f"subsets[{i}].ports[{j}]"
            causes += _port_num(f"{here}.port", port.get("port"))
            causes += _protocol(f"{here}.protocol", port.get("protocol"))
    return causes


def validate_event(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """``legacyValidateEvent``: the involved object's namespace must match the event's."""
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    involved = (obj.get("involvedObject") or {}).get("namespace") or ""
    mismatch = namespace not in ("", "default") if not involved else namespace != involved
    if mismatch:
        return [field_invalid("involvedObject.namespace", involved, "does not match event.namespace")]
    return []
