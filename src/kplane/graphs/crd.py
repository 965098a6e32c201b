"""The CustomResourceDefinition kro generates for an RGD's instance kind (``pkg/graph/crd/crd.go``,
``defaults.go``): one served and storage version with the status subresource, ``status.state`` and
``status.conditions`` injected, and State/Ready/Age columns unless the author gives their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KRO_VERSION = "v0.9.3"
CONDITIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string"},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    },
}
DEFAULT_COLUMNS: tuple[dict[str, Any], ...] = (
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)
_IRREGULAR = {"person": "people", "child": "children", "man": "men", "woman": "women", "mouse": "mice",
              "goose": "geese", "tooth": "teeth", "foot": "feet", "index": "indices", "matrix": "matrices",
              "vertex": "vertices", "status": "statuses", "policy": "policies", "endpoints": "endpoints"}


def pluralize(word: str) -> str:
    """English plural of a lower-case kind, as flect.Pluralize does for the common cases."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    for singular, plural in _IRREGULAR.items():
        if word.endswith(singular):
            return word[: -len(singular)] + plural
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def status_schema(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The status schema: inferred fields plus kro's ``state`` and ``conditions`` unless present."""
    properties = dict(fields)
    properties.setdefault("state", {"type": "string"})
    properties.setdefault("conditions", CONDITIONS_SCHEMA)
    return {"type": "object", "properties": properties}


def instance_crd(
    *,
    kind: str,
    group: str,
    version: str,
    scope: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    rgd_name: str = "",
    printer_columns: Sequence[Mapping[str, Any]] = (),
    short_names: Sequence[str] = (),
    categories: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    singular = kind.lower()
    plural = pluralize(singular)
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": singular}
    if short_names:
        names["shortNames"] = list(short_names)
    if categories:
        names["categories"] = list(categories)
    crd_labels = {**(labels or {}), "kro.run/owned": "true", "kro.run/kro-version": KRO_VERSION}
    if rgd_name:
        crd_labels["kro.run/resource-graph-definition-name"] = rgd_name
    metadata: dict[str, Any] = {"name": f"{plural}.{group}", "labels": crd_labels}
    if annotations:
        metadata["annotations"] = dict(annotations)
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": dict(spec),
            "status": status_schema(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "names": names,
            "scope": scope,
            "versions": [{
                "name": version,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [dict(c) for c in (printer_columns or DEFAULT_COLUMNS)],
            }],
        },
    }
