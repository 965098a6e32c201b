"""kro's structural rules for an RGD: names, reserved words and labels, template shape, scope.

Facts and error texts from ``kubernetes-sigs/kro`` ``pkg/graph/validation.go`` (v0.9) and the RGD CRD
(``helm/crds/kro.run_resourcegraphdefinitions.yaml``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


class GraphError(ValueError):
    """An RGD kro would refuse; the message is kro's (as GraphAccepted=False/InvalidResourceGraph shows it)."""


ID_PATTERN = re.compile(r"^[a-z][a-zA-Z0-9]*$")
KIND_PATTERN = re.compile(r"^[A-Z][a-zA-Z0-9]{0,62}$")
API_VERSION_PATTERN = re.compile(r"^v[0-9]+(alpha[0-9]+|beta[0-9]+)?$")
KRO_RESERVED = frozenset({
    "apiVersion", "context", "dependency", "dependencies", "each", "externalRef", "externalReference",
    "externalRefs", "externalReferences", "graph", "instance", "item", "items", "kind", "kro", "metadata",
    "namespace", "object", "resource", "resourcegraphdefinition", "resourceGraphDefinition", "resources", "root",
    "runtime", "schema", "self", "serviceAccountName", "spec", "status", "this", "variables", "vars", "version"
})
CEL_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
    "let", "loop", "package", "namespace", "return", "var", "void", "while"
})
RESERVED_PREFIXES = ("kro.run/", "internal.kro.run/")
MAX_DIMENSIONS = 10


def validate_id(name: str, what: str = "id") -> None:
    if name in KRO_RESERVED or name in CEL_RESERVED:
        raise GraphError(f"naming convention violation: {what} {name} is a reserved keyword in KRO")
    if not ID_PATTERN.match(name):
        raise GraphError(
            f"naming convention violation: {what} {name} is not a valid KRO resource id: "
            "must be lower camelCase (start with a lowercase letter, letters and digits only)")


def validate_ids(resources: Sequence[Mapping[str, Any]]) -> list[str]:
    ids: list[str] = []
    for resource in resources:
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            raise GraphError("resource id is required")
        validate_id(rid)
        if rid in ids:
            raise GraphError(f"found duplicate resource IDs: {rid}")
        ids.append(rid)
    return ids


def validate_kind(kind: Any) -> str:
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        raise GraphError(f"naming convention violation: kind '{kind}' is not a valid KRO kind name: "
                         "must be UpperCamelCase")
    return kind


def validate_api_version(version: Any) -> str:
    if not isinstance(version, str) or not API_VERSION_PATTERN.match(version):
        raise GraphError(f"invalid apiVersion '{version}': must match {API_VERSION_PATTERN.pattern}")
    return version


def validate_object_structure(rid: str, template: Any) -> tuple[str, str]:
    """``(apiVersion, kind)`` of a template that has them as strings and a metadata map."""
    if not isinstance(template, Mapping):
        raise GraphError(f"resource {rid}: template must be an object")
    for key, expected in (("apiVersion", str), ("kind", str), ("metadata", Mapping)):
        if key not in template:
            raise GraphError(f"resource {rid}: {key} field not found")
        if not isinstance(template[key], expected):
            wanted = "a string" if expected is str else "a map"
            raise GraphError(f"resource {rid}: {key} field is not {wanted}")
    return str(template["apiVersion"]), str(template["kind"])


def validate_metadata_keys(rid: str, metadata: Mapping[str, Any]) -> None:
    for field in ("labels", "annotations"):
        keys = metadata.get(field) or {}
        if not isinstance(keys, Mapping):
            continue
        for key in keys:
            if str(key).startswith(RESERVED_PREFIXES):
                raise GraphError(f"resource {rid}: {field[:-1]} key \"{key}\": keys with prefixes "
                                 f"{', '.join(RESERVED_PREFIXES)} are reserved for internal use")


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def validate_for_each(rid: str, entries: Any, ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(iterator, text)`` pairs of a forEach list (single-key maps), names checked like ids."""
    if not isinstance(entries, list):
        raise GraphError(f"resource {rid}: forEach must be a list")
    if len(entries) > MAX_DIMENSIONS:
        raise GraphError(f"resource {rid}: forEach cannot have more than {MAX_DIMENSIONS} dimensions, "
                         f"got {len(entries)}")
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise GraphError(f"resource {rid}: each forEach entry must be a map with exactly one iterator")
        (name, text), = entry.items()
        name = str(name)
        validate_id(name, "forEach iterator")
        if name in ids:
            raise GraphError(f"resource {rid}: forEach iterator \"{name}\" conflicts with resource ID \"{name}\"")
        if name in (n for n, _ in pairs):
            raise GraphError(f"resource {rid}: duplicate forEach iterator \"{name}\"")
        pairs.append((name, text))
    return pairs


def validate_external_ref(rid: str, ref: Any) -> tuple[str, str]:
    if not isinstance(ref, Mapping):
        raise GraphError(f"resource {rid}: externalRef must be an object")
    for key in ("apiVersion", "kind"):
        if not isinstance(ref.get(key), str) or not ref.get(key):
            raise GraphError(f"resource {rid}: externalRef {key} field not found")
    metadata = ref.get("metadata")
    if not isinstance(metadata, Mapping):
        raise GraphError(f"resource {rid}: externalRef metadata field not found")
    has_name, has_selector = bool(metadata.get("name")), metadata.get("selector") is not None
    if has_name == has_selector:
        raise GraphError(f"resource {rid}: externalRef metadata must set exactly one of name or selector")
    return str(ref["apiVersion"]), str(ref["kind"])
