"""OpenAPI v3 schemas of the built-in kinds, per Kubernetes minor.

Source: the ``kubernetes_validate`` package (Apache-2.0), which ships the upstream definitions, converted to
JSON Schema, as ``kubernetes-json-schema/v1.<minor>.0-local/_definitions.json`` (key ``$defs``; minors 1.25 to
1.37). Its converter made every optional field nullable (``"type": ["string", "null"]``), rewrote
references to ``#/$defs/…`` and added ``$schema``/``$id``; we undo that to get back what a real API server
publishes under ``/openapi/v3`` (single ``type``, ``#/components/schemas/…`` references). Upstream built-in
schemas carry no ``nullable`` marks, so the ``"null"`` member is dropped rather than turned into
``nullable: true``.

The converted table is read-only and shared; callers must not mutate it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources as importlib_resources
from types import MappingProxyType
from typing import Any

import orjson

from kplane.api.schema import Schema

FIRST_MINOR = 25
LAST_MINOR = 37
REF_PREFIX = "#/components/schemas/"
_JSON_SCHEMA_REF_PREFIX = "#/$defs/"
_DROPPED_KEYS = frozenset({"$schema", "$id"})
# Keywords whose value is a map from names to schemas (not schema keywords themselves).
_NAME_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs"})
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

GVK = tuple[str, str, str]


def normalize_minor(minor: str | int) -> int:
    """Accept ``36``, ``"36"``, ``"1.36"`` or ``"v1.36"``; reject minors the package has no schemas for."""
    if isinstance(minor, int):
        value = minor
    else:
        text = minor.strip().removeprefix("v")
        parts = text.split(".")
        if len(parts) == 2 and parts[0] == "1" and parts[1].isdigit():
            value = int(parts[1])
        elif len(parts) == 1 and parts[0].isdigit():
            value = int(parts[0])
        else:
            raise ValueError(f"invalid kube minor {minor!r}: expected e.g. 1.36")
    if not FIRST_MINOR <= value <= LAST_MINOR:
        raise ValueError(f"no built-in schemas for 1.{value}: available 1.{FIRST_MINOR} to 1.{LAST_MINOR}")
    return value


# Defaults upstream publishes (``+default="TCP"`` on port protocols, k8s.io/api core/v1 types.go) that the
# kubernetes-validate export drops; server-side apply needs them to key list-map entries (containerPort, protocol).
_RESTORED_DEFAULTS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("io.k8s.api.core.v1.ContainerPort", ("protocol", "TCP")),
    ("io.k8s.api.core.v1.ServicePort", ("protocol", "TCP")),
    ("io.k8s.api.core.v1.EndpointPort", ("protocol", "TCP")),
)


# Types that hold arbitrary JSON in Go (``FieldsV1``, ``RawExtension``, apiextensions ``JSON``): nothing inside
# them is an unknown field, and nothing may be pruned.
_OPAQUE_JSON = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceStatus",
)


def _convert(node: Any) -> Any:
    """JSON Schema export → OpenAPI v3 schema, recursively."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else types
        elif key == "$ref" and isinstance(value, str) and value.startswith(_JSON_SCHEMA_REF_PREFIX):
            out[key] = REF_PREFIX + value[len(_JSON_SCHEMA_REF_PREFIX) :]
        elif key in ("enum", "required", "x-kubernetes-group-version-kind", "x-kubernetes-list-map-keys"):
            out[key] = value
        else:
            out[key] = _convert(value)
    return out


def _definitions_path(minor: int) -> Any:
    root = importlib_resources.files("kubernetes_validate")
    return root.joinpath("kubernetes-json-schema", f"v1.{minor}.0-local", "_definitions.json")


@cache
def _definitions(minor: int) -> Mapping[str, Any]:
    raw = orjson.loads(_definitions_path(minor).read_bytes())
    converted: dict[str, Any] = {name: _convert(schema) for name, schema in raw["$defs"].items()}
    if _INT_OR_STRING in converted:
        # Upstream publishes IntOrString as a oneOf with this format; Schema.int_or_string keys on it.
        converted[_INT_OR_STRING] = {**converted[_INT_OR_STRING], "format": "int-or-string"}
    for name in _OPAQUE_JSON:
        if name in converted:
            converted[name] = {**converted[name], "x-kubernetes-preserve-unknown-fields": True}
    for name, prop in _RESTORED_DEFAULTS:
        schema = converted.get(name)
        if schema and prop[0] in schema.get("properties", {}):
            props = dict(schema["properties"])
            props[prop[0]] = {**props[prop[0]], "default": prop[1]}
            converted[name] = {**schema, "properties": props}
    return MappingProxyType(converted)


def definitions(minor: str | int) -> Mapping[str, Any]:
    """All definitions for ``1.<minor>``, keyed by their full name (``io.k8s.api.apps.v1.Deployment``)."""
    return _definitions(normalize_minor(minor))


@cache
def _gvk_index(minor: int) -> Mapping[GVK, str]:
    index: dict[GVK, str] = {}
    for name, schema in _definitions(minor).items():
        gvks: list[dict[str, str]] = schema.get("x-kubernetes-group-version-kind") or []
        # Shared meta kinds (DeleteOptions, WatchEvent) list one GVK per group; only sole owners are indexed.
        if len(gvks) == 1:
            gvk = gvks[0]
            index[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return MappingProxyType(index)


def definition_name(minor: str | int, group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind, via its ``x-kubernetes-group-version-kind``."""
    return _gvk_index(normalize_minor(minor)).get((group, version, kind))


def schema_for_kind(minor: str | int, group: str, version: str, kind: str) -> Schema:
    """A navigable schema of a built-in kind; ``LookupError`` when ``1.<minor>`` has no such kind.

    One shared node per kind, so that what its subtree learns while objects are walked (see ``Schema``)
    serves every later request."""
    return _schema_for_kind(normalize_minor(minor), group, version, kind)


@cache
def _schema_for_kind(n: int, group: str, version: str, kind: str) -> Schema:
    name = _gvk_index(n).get((group, version, kind))
    if name is None:
        api_version = f"{group}/{version}" if group else version
        raise LookupError(f"no built-in schema for {api_version}, Kind={kind} at 1.{n}")
    defs = _definitions(n)
    return Schema(defs[name], defs)
