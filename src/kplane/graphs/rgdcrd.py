"""The ``resourcegraphdefinitions.kro.run`` CRD, shaped as kro's ``helm/crds/kro.run_resourcegraphdefinitions.yaml``
(v0.9): cluster-scoped, short name ``rgd``, the printer columns APIVERSION, KIND, STATE, READY,
TOPOLOGICALORDER (priority 1) and AGE; the schema patterns for ``kind`` and ``apiVersion`` and the rule that
they may not change. Raw SimpleSchema and templates are kept as written (unknown fields preserved).
"""

from __future__ import annotations

from typing import Any

RGD_CRD_NAME = "resourcegraphdefinitions.kro.run"

_RAW: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


def _immutable(what: str) -> list[dict[str, str]]:
    return [{"rule": "self == oldSelf", "message": f"{what} is immutable"}]


def _schema() -> dict[str, Any]:
    schema_spec = {
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"type": "string", "pattern": "^v[0-9]+(alpha[0-9]+|beta[0-9]+)?$",
                           "x-kubernetes-validations": _immutable("apiVersion")},
            "kind": {"type": "string", "pattern": "^[A-Z][a-zA-Z0-9]{0,62}$",
                     "x-kubernetes-validations": _immutable("kind")},
            "group": {"type": "string", "default": "kro.run", "x-kubernetes-validations": _immutable("group")},
            "scope": {"type": "string", "enum": ["Namespaced", "Cluster"], "default": "Namespaced",
                      "x-kubernetes-validations": _immutable("scope")},
            "spec": _RAW, "types": _RAW, "status": _RAW,
            "additionalPrinterColumns": {"type": "array", "items": _RAW},
            "shortNames": {**_STRINGS, "maxItems": 32, "x-kubernetes-list-type": "set"},
            "categories": {**_STRINGS, "maxItems": 32, "x-kubernetes-list-type": "set"},
            "metadata": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        },
    }
    resource = {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "template": _RAW,
            "externalRef": _RAW,
            "readyWhen": _STRINGS,
            "includeWhen": _STRINGS,
            "forEach": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"},
                                                   "minProperties": 1, "maxProperties": 1}},
        },
    }
    status = {
        "type": "object",
        "properties": {
            "state": {"type": "string"},
            "topologicalOrder": _STRINGS,
            "lastIssuedRevision": {"type": "integer"},
            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": "string"},
                "message": {"type": "string"}, "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer"}}}},
            "resources": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"},
                "dependencies": {"type": "array", "items": {"type": "object",
                                                            "properties": {"id": {"type": "string"}}}}}}},
        },
    }
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["schema"], "properties": {
            "schema": schema_spec, "resources": {"type": "array", "items": resource}}},
        "status": status}}


def rgd_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": RGD_CRD_NAME},
        "spec": {
            "group": "kro.run",
            "scope": "Cluster",
            "names": {"kind": "ResourceGraphDefinition", "listKind": "ResourceGraphDefinitionList",
                      "plural": "resourcegraphdefinitions", "singular": "resourcegraphdefinition",
                      "shortNames": ["rgd"]},
            "versions": [{
                "name": "v1alpha1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": _schema()},
                "additionalPrinterColumns": [
                    {"name": "APIVERSION", "type": "string", "jsonPath": ".spec.schema.apiVersion"},
                    {"name": "KIND", "type": "string", "jsonPath": ".spec.schema.kind"},
                    {"name": "STATE", "type": "string", "jsonPath": ".status.state"},
                    {"name": "READY", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                    {"name": "TOPOLOGICALORDER", "type": "string", "priority": 1,
                     "jsonPath": ".status.topologicalOrder"},
                    {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        },
    }
