"""CustomResourceDefinitions: validating the definition and deriving the served resources from it.

Validation follows ``apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go`` and the
structural-schema rules of ``pkg/apiserver/schema/validation.go`` (field paths and messages as upstream).
It runs on the defaulted CRD (``singular``, ``listKind``, conversion ``None``), as the real server does.
kplane serves one shape for every version, so ``Webhook`` conversion is refused as unsupported.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kplane.api import names
from kplane.api.builtin_validation_meta import (
    FIELD_IMMUTABLE,
    duplicate,
    go_value,
    invalid_raw,
    required,
    too_many,
    validate_object_meta,
)
from kplane.api.resources import PrinterColumn, ResourceType
from kplane.api.status import Cause, field_forbidden, field_invalid, field_unsupported

PRINTER_COLUMN_TYPES = ["boolean", "date", "integer", "number", "string"]
PRINTER_COLUMN_FORMATS = ["byte", "date", "date-time", "double", "float", "int32", "int64", "password"]
SCOPES = ["Cluster", "Namespaced"]
MAX_SELECTABLE_FIELDS = 8
AGE_COLUMN = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp",
                           description="CreationTimestamp is a timestamp representing the server time when "
                                       "this object was created.")
_UNSUPPORTED_KEYWORDS = ("id", "additionalItems", "patternProperties", "definitions", "dependencies", "$ref")
_EMPTY_TYPE = {"root": "must not be empty at the root", "item": "must not be empty for specified array items",
               "field": "must not be empty for specified object fields"}
_SELECTABLE_TYPES = ("must point to a field of type string, boolean or integer. Enum string fields and "
                     "strings with formats are allowed.")


def default_crd(crd: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with upstream's v1 defaults: ``singular``, ``listKind`` and conversion strategy ``None``."""
    out = copy.deepcopy(dict(crd))
    spec = out.setdefault("spec", {})
    names_ = spec.setdefault("names", {})
    kind = names_.get("kind") or ""
    if not names_.get("singular") and kind:
        names_["singular"] = kind.lower()
    if not names_.get("listKind") and kind:
        names_["listKind"] = kind + "List"
    conversion = spec.setdefault("conversion", {})
    conversion.setdefault("strategy", "None")
    return out


def _storage_version(spec: Mapping[str, Any]) -> str:
    return next((str(v.get("name", "")) for v in spec.get("versions") or [] if v.get("storage")), "")


def _established(crd: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def _simple_json_path(path: str, value: Any) -> list[Cause]:
    if not isinstance(value, str) or not value:
        return [field_invalid(path, value or "", "must not be empty")]
    if not value.startswith("."):
        return [field_invalid(path, value, "must be a simple json path starting with .")]
    return []


# --- structural schema -------------------------------------------------------------------------------


def _schema_node(node: Any, path: str, level: str) -> list[Cause]:
    """One node of ``openAPIV3Schema``; ``level`` is ``root``, ``item`` or ``field`` as upstream names it."""
    if not isinstance(node, Mapping):
        return [field_invalid(path, go_value(node), "must be a schema object")]
    causes: list[Cause] = [field_forbidden(f"{path}.{key}", f"{key} is not supported")
                           for key in _UNSUPPORTED_KEYWORDS if node.get(key)]
    kind = node.get("type") or ""
    if kind == "null":
        causes.append(field_forbidden(f"{path}.type", "type cannot be set to null"))
    if isinstance(node.get("items"), list):
        causes.append(field_forbidden(f"{path}.items", "items must be a schema object and not an array"))
    if node.get("uniqueItems") is True:
        detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        causes.append(field_forbidden(f"{path}.uniqueItems", detail))
    embedded = node.get("x-kubernetes-embedded-resource") is True
    if embedded and kind != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        causes.append(field_invalid(f"{path}.type", kind, detail) if kind
                      else required(f"{path}.type", detail))
    elif not kind and not node.get("x-kubernetes-int-or-string") \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        causes.append(required(f"{path}.type", _EMPTY_TYPE[level]))
    if level == "root" and kind and kind != "object":
        causes.append(field_invalid(f"{path}.type", kind, "must be object at the root"))
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        causes.append(field_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False,
                                    "must be true or undefined"))
    if kind == "array" and node.get("items") is None:
        causes.append(required(f"{path}.items", "must be specified"))
    properties = node.get("properties") or {}
    extra = node.get("additionalProperties")
    if properties and (extra is False or isinstance(extra, Mapping)):
        causes.append(field_forbidden(f"{path}.additionalProperties",
                                      "additionalProperties and properties are mutual exclusive"))
    if level == "root" or embedded:
        causes += _metadata_rules(properties, path, level)
    for name in properties:
        causes += _schema_node(properties[name], f"{path}.properties[{name}]", "field")
    if isinstance(extra, Mapping):
        causes += _schema_node(extra, f"{path}.additionalProperties", "field")
    if isinstance(node.get("items"), Mapping):
        causes += _schema_node(node["items"], f"{path}.items", "item")
    return causes


def _metadata_rules(properties: Mapping[str, Any], path: str, level: str) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("kind", "apiVersion"):
        sub = properties.get(key)
        if isinstance(sub, Mapping) and sub.get("type") != "string":
            causes.append(field_invalid(f"{path}.properties[{key}].type", sub.get("type") or "",
                                        "must be string"))
    metadata = properties.get("metadata")
    if isinstance(metadata, Mapping):
        if metadata.get("type") != "object":
            causes.append(field_invalid(f"{path}.properties[metadata].type", metadata.get("type") or "",
                                        "must be object"))
        other_keys = set(metadata) - {"type", "properties", "description"}
        other_fields = set(metadata.get("properties") or {}) - {"name", "generateName"}
        if level == "root" and (other_keys or other_fields):
            causes.append(field_forbidden(f"{path}.properties[metadata]",
                                          "must not specify anything other than name and generateName, but "
                                          "metadata is implicitly specified"))
    return causes


# --- per-version parts -------------------------------------------------------------------------------


def _printer_column(col: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not col.get("name"):
        causes.append(required(f"{path}.name"))
    kind = col.get("type")
    must_be = "must be one of " + ",".join(PRINTER_COLUMN_TYPES)
    if not kind:
        causes.append(required(f"{path}.type", must_be))
    elif kind not in PRINTER_COLUMN_TYPES:
        causes.append(field_invalid(f"{path}.type", kind, must_be))
    fmt = col.get("format")
    if fmt and fmt not in PRINTER_COLUMN_FORMATS:
        causes.append(field_invalid(f"{path}.format", fmt,
                                    "must be one of " + ",".join(PRINTER_COLUMN_FORMATS)))
    if not col.get("jsonPath"):
        causes.append(required(f"{path}.jsonPath"))
    else:
        causes += _simple_json_path(f"{path}.jsonPath", col["jsonPath"])
    return causes


def _subresources(sub: Any, path: str) -> list[Cause]:
    scale = sub.get("scale") if isinstance(sub, Mapping) else None
    if not isinstance(scale, Mapping):
        return []
    causes: list[Cause] = []
    for key, prefixes, where in (("specReplicasPath", (".spec.",), ".spec"),
                                 ("statusReplicasPath", (".status.",), ".status")):
        value, here = scale.get(key), f"{path}.scale.{key}"
        if not value:
            causes.append(required(here))
            continue
        errs = _simple_json_path(here, value)
        if not errs and not str(value).startswith(prefixes):
            errs = [field_invalid(here, value, f"should be a json path under {where}")]
        causes += errs
    selector = scale.get("labelSelectorPath")
    if selector:
        here = f"{path}.scale.labelSelectorPath"
        errs = _simple_json_path(here, selector)
        if not errs and not str(selector).startswith((".spec.", ".status.")):
            errs = [field_invalid(here, selector, "should be a json path under either .spec or .status")]
        causes += errs
    return causes


def _schema_at(schema: Mapping[str, Any], dotted: str) -> Mapping[str, Any] | None:
    node: Any = schema
    for part in dotted.strip(".").split("."):
        node = (node.get("properties") or {}).get(part) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node if isinstance(node, Mapping) else None


def _selectable_fields(fields: Any, schema: Any, path: str) -> list[Cause]:
    if not fields:
        return []
    if not isinstance(schema, Mapping):
        return [field_invalid(path, "", "selectableFields may only be set when "
                                        "version.schema.openAPIV3Schema is not included")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, entry in enumerate(fields):
        here = f"{path}[{i}].jsonPath"
        value = str(entry.get("jsonPath") or "")
        if not value:
            causes.append(required(here))
            continue
        found = _schema_at(schema, value)
        if found is None:
            causes.append(field_invalid(here, value,
                                        "is an invalid path: does not refer to a field in the schema"))
            continue
        if value.strip(".").split(".")[0] == "metadata":
            causes.append(field_invalid(here, value, "must not point to fields in metadata"))
        if found.get("type") not in ("string", "boolean", "integer"):
            causes.append(field_invalid(here, value, _SELECTABLE_TYPES))
        if value in seen:
            causes.append(duplicate(here, value))
        seen.add(value)
    if len(seen) > MAX_SELECTABLE_FIELDS:
        causes.append(too_many(path, len(seen), MAX_SELECTABLE_FIELDS))
    return causes


def _version(version: Mapping[str, Any], path: str) -> list[Cause]:
    name = str(version.get("name") or "")
    causes = [field_invalid(f"{path}.name", name, m) for m in names.is_dns1035_label(name)]
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if schema is None:
        causes.append(required(f"{path}.schema.openAPIV3Schema", "schemas are required"))
    else:
        causes += _schema_node(schema, f"{path}.schema.openAPIV3Schema", "root")
    causes += _subresources(version.get("subresources"), f"{path}.subresources")
    for j, col in enumerate(version.get("additionalPrinterColumns") or []):
        causes += _printer_column(col, f"{path}.additionalPrinterColumns[{j}]")
    causes += _selectable_fields(version.get("selectableFields"), schema, f"{path}.selectableFields")
    return causes


def _names(crd_names: Mapping[str, Any], path: str) -> list[Cause]:
    causes = [required(f"{path}.{key}") for key in ("plural", "singular", "kind", "listKind")
              if not crd_names.get(key)]
    for key in ("plural", "singular"):
        value = str(crd_names.get(key) or "")
        if value:
            causes += [field_invalid(f"{path}.{key}", value, m) for m in names.is_dns1035_label(value)]
    for key in ("kind", "listKind"):
        value = str(crd_names.get(key) or "")
        errs = names.is_dns1035_label(value.lower()) if value else []
        if errs:
            causes.append(field_invalid(f"{path}.{key}", value,
                                        "may have mixed case, but should otherwise match: " + ",".join(errs)))
    for key in ("shortNames", "categories"):
        for i, value in enumerate(crd_names.get(key) or []):
            causes += [field_invalid(f"{path}.{key}[{i}]", value, m)
                       for m in names.is_dns1035_label(str(value))]
    if crd_names.get("kind") and crd_names.get("kind") == crd_names.get("listKind"):
        causes.append(field_invalid(f"{path}.listKind", crd_names["listKind"],
                                    "kind and listKind may not be the same"))
    return causes


def _spec(spec: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    group = str(spec.get("group") or "")
    if not group:
        causes.append(required("spec.group"))
    elif errs := names.is_dns1123_subdomain(group):
        causes.append(field_invalid("spec.group", group, ",".join(errs)))
    elif len(group.split(".")) < 2:
        causes.append(field_invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in SCOPES:
        causes.append(field_unsupported("spec.scope", scope, SCOPES))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(required("spec.versions", "must have at least one version"))
    for i, version in enumerate(versions):
        causes += _version(version, f"spec.versions[{i}]")
    version_names = [v.get("name") for v in versions]
    rendered = go_value(version_names)
    if len(set(version_names)) != len(version_names):
        causes.append(invalid_raw("spec.versions", rendered, "must contain unique version names"))
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(invalid_raw("spec.versions", rendered,
                                  "must have exactly one version marked as storage version"))
    causes += _names(spec.get("names") or {}, "spec.names")
    strategy = (spec.get("conversion") or {}).get("strategy") or "None"
    if strategy != "None":
        causes.append(field_unsupported("spec.conversion.strategy", strategy, ["None"]))
    elif (spec.get("conversion") or {}).get("webhook") is not None:
        causes.append(field_forbidden("spec.conversion.webhook",
                                      "should not be set when strategy is not set to Webhook"))
    return causes


def _update(crd: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    spec, old_spec = crd.get("spec") or {}, old.get("spec") or {}
    names_, old_names = spec.get("names") or {}, old_spec.get("names") or {}
    pairs = [("spec.group", spec.get("group"), old_spec.get("group")),
             ("spec.names.plural", names_.get("plural"), old_names.get("plural"))]
    if _established(old):
        pairs += [("spec.scope", spec.get("scope"), old_spec.get("scope")),
                  ("spec.names.kind", names_.get("kind"), old_names.get("kind"))]
    causes = [invalid_raw(path, go_value(new), FIELD_IMMUTABLE) for path, new, was in pairs if new != was]
    stored = (crd.get("status") or {}).get("storedVersions") \
        or (old.get("status") or {}).get("storedVersions") or []
    served = {v.get("name") for v in spec.get("versions") or []}
    for i, version in enumerate(stored):
        if version not in served:
            causes.append(field_invalid(f"status.storedVersions[{i}]", version,
                                        "must appear in spec.versions"))
    return causes


def validate_crd(crd: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """Every problem with ``crd`` (``old`` is the stored CRD on update); empty when it may be stored."""
    crd = default_crd(crd)
    spec = crd["spec"]
    wanted = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"

    def crd_name(name: str, prefix: bool) -> list[str]:
        errs = names.name_is_dns_subdomain(name, prefix)
        return errs if name == wanted else [*errs, 'must be spec.names.plural+"."+spec.group']

    causes = validate_object_meta(crd, False, crd_name)
    causes += _spec(spec)
    if old is not None:
        causes += _update(crd, default_crd(old))
    return causes


# --- derived views -----------------------------------------------------------------------------------


def crd_schema(crd: Mapping[str, Any], version: str) -> Mapping[str, Any] | None:
    """The ``openAPIV3Schema`` of ``version``, or ``None`` when the version or its schema is missing."""
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version:
            schema = (entry.get("schema") or {}).get("openAPIV3Schema")
            return schema if isinstance(schema, Mapping) else None
    return None


def _columns(version: Mapping[str, Any]) -> tuple[PrinterColumn, ...]:
    columns = tuple(PrinterColumn(name=str(c.get("name", "")), type=str(c.get("type", "")),
                                  json_path=str(c.get("jsonPath", "")),
                                  description=str(c.get("description", "")), format=str(c.get("format", "")),
                                  priority=int(c.get("priority") or 0))
                    for c in version.get("additionalPrinterColumns") or [])
    return columns or (AGE_COLUMN,)  # serveDefaultColumnsIfEmpty


def crd_resource_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One :class:`ResourceType` per served version, in ``spec.versions`` order.

    ``selectable_fields`` hold field-selector names (``spec.color``, no leading dot). Versions without
    ``additionalPrinterColumns`` get upstream's default Age column.
    """
    crd = default_crd(crd)
    spec = crd["spec"]
    crd_names = spec.get("names") or {}
    storage = _storage_version(spec)
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served"):
            continue
        sub = version.get("subresources") or {}
        scale = sub.get("scale")
        out.append(ResourceType(
            group=str(spec.get("group", "")), version=str(version.get("name", "")),
            plural=str(crd_names.get("plural", "")), kind=str(crd_names.get("kind", "")),
            namespaced=spec.get("scope") == "Namespaced", singular=str(crd_names.get("singular", "")),
            short_names=tuple(crd_names.get("shortNames") or ()),
            categories=tuple(crd_names.get("categories") or ()),
            subresources=tuple(s for s in ("status", "scale") if sub.get(s) is not None),
            storage_version=storage, printer_columns=_columns(version),
            crd_name=str((crd.get("metadata") or {}).get("name", "")),
            selectable_fields=tuple(str(f.get("jsonPath", "")).lstrip(".")
                                    for f in version.get("selectableFields") or []),
            scale_paths=(str(scale.get("specReplicasPath", "")), str(scale.get("statusReplicasPath", "")),
                         str(scale.get("labelSelectorPath") or "")) if isinstance(scale, Mapping) else None,
            extra={"deprecated": bool(version.get("deprecated")),
                   "deprecationWarning": version.get("deprecationWarning")},
        ))
    return out


def accepted_status(crd: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The status the server writes once a CRD's names are accepted and it is established.

    A condition keeps its ``lastTransitionTime`` when its status does not change; ``storedVersions``
    keeps every version ever stored and gains the current storage version.
    """
    crd = default_crd(crd)
    spec, status = crd["spec"], crd.get("status") or {}
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = {c.get("type"): c for c in status.get("conditions") or []}

    def condition(kind: str, reason: str, message: str) -> dict[str, str]:
        before = previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == "True" else None
        return {"type": kind, "status": "True", "lastTransitionTime": since or stamp, "reason": reason,
                "message": message}

    crd_names = spec.get("names") or {}
    accepted = {key: crd_names[key] for key in ("plural", "singular", "shortNames", "kind", "listKind",
                                                "categories") if crd_names.get(key)}
    stored = list(status.get("storedVersions") or [])
    storage = _storage_version(spec)
    if storage and storage not in stored:
        stored.append(storage)
    return {"conditions": [condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                           condition("Established", "InitialNamesAccepted",
                                     "the initial names have been accepted")],
            "acceptedNames": accepted, "storedVersions": stored}
