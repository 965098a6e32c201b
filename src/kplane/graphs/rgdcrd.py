"""The CRDs kro's Helm chart installs, which kplane's RGD controller installs itself (v0.9):

- ``resourcegraphdefinitions.kro.run`` (``helm/crds/kro.run_resourcegraphdefinitions.yaml``): cluster-scoped,
  short name ``rgd``, the printer columns APIVERSION, KIND, STATE, READY, TOPOLOGICALORDER (priority 1) and AGE;
  the schema patterns for ``kind`` and ``apiVersion`` and the rule that they may not change. Raw SimpleSchema
  and templates are kept as written (unknown fields preserved).
- ``graphrevisions.internal.kro.run`` (``helm/crds/internal.kro.run_graphrevisions.yaml``): cluster-scoped,
  short name ``gr``, an immutable ``spec`` (revision number and a snapshot of the RGD spec), selectable by
  ``.spec.snapshot.name``, columns RGD (priority 1), REVISION, HASH (priority 1), READY and AGE.
"""

from __future__ import annotations

from typing import Any

RGD_CRD_NAME = "resourcegraphdefinitions.kro.run"
GRAPH_REVISION_CRD_NAME = "graphrevisions.internal.kro.run"

_RAW: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


def _immutable(what: str) -> list[dict[str, str]]:
    return [{"rule": "self == oldSelf", "message": f"{what} is immutable"}]


def _conditions() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "required": ["status", "type"], "properties": {
        "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": "string"},
        "message": {"type": "string"}, "lastTransitionTime": {"type": "string", "format": "date-time"},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0}}}}


def _resources_info() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "string"},
        "dependencies": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}}}}


def _rgd_spec() -> dict[str, Any]:
    """The RGD ``spec`` schema, shared by the RGD and the snapshot inside a GraphRevision."""
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
    return {"type": "object", "required": ["schema"], "properties": {
        "schema": schema_spec, "resources": {"type": "array", "items": resource}}}


def _schema() -> dict[str, Any]:
    status = {
        "type": "object",
        "properties": {
            "state": {"type": "string"},
            "topologicalOrder": _STRINGS,
            "lastIssuedRevision": {"type": "integer"},
            "conditions": _conditions(),
            "resources": _resources_info(),
        },
    }
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": _rgd_spec(), "status": status}}


def _graph_revision_schema() -> dict[str, Any]:
    snapshot = {"type": "object", "required": ["generation", "name", "spec"], "properties": {
        "generation": {"type": "integer", "format": "int64"},
        "name": {"type": "string"},
        "spec": _rgd_spec()}}
    spec = {"type": "object", "required": ["revision", "snapshot"],
            "properties": {"revision": {"type": "integer", "format": "int64", "minimum": 1}, "snapshot": snapshot},
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec is immutable"}]}
    status = {"type": "object", "properties": {
        "conditions": _conditions(), "resources": _resources_info(), "topologicalOrder": _STRINGS}}
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": spec, "status": status}}


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


def graph_revision_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": GRAPH_REVISION_CRD_NAME},
        "spec": {
            "group": "internal.kro.run",
            "scope": "Cluster",
            "names": {"kind": "GraphRevision", "listKind": "GraphRevisionList", "plural": "graphrevisions",
                      "singular": "graphrevision", "shortNames": ["gr"]},
            "versions": [{
                "name": "v1alpha1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "selectableFields": [{"jsonPath": ".spec.snapshot.name"}],
                "schema": {"openAPIV3Schema": _graph_revision_schema()},
                "additionalPrinterColumns": [
                    {"name": "RGD", "type": "string", "priority": 1, "jsonPath": ".spec.snapshot.name"},
                    {"name": "REVISION", "type": "integer", "jsonPath": ".spec.revision"},
                    {"name": "HASH", "type": "string", "priority": 1,
                     "jsonPath": ".metadata.labels.kro\\.run/graph-revision-hash"},
                    {"name": "READY", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                    {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        },
    }
