"""CRD definition validation, the resource types derived from a CRD, and the accepted status."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from kplane.api.crd import accepted_status, crd_resource_types, crd_schema, default_crd, validate_crd
from kplane.api.status import Cause

NOW = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)


def make_crd() -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "color": {"type": "string"},
                    "port": {"x-kubernetes-int-or-string": True},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "extra": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": False,
                    "deprecated": True,
                    "schema": {"openAPIV3Schema": copy.deepcopy(schema)},
                },
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.size",
                            "statusReplicasPath": ".status.size",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {
                            "name": "Size",
                            "type": "integer",
                            "jsonPath": ".spec.size",
                            "priority": 1,
                            "description": "how big",
                        }
                    ],
                    "selectableFields": [{"jsonPath": ".spec.color"}],
                },
                {
                    "name": "v0",
                    "served": False,
                    "storage": False,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                },
            ],
        },
    }


def msgs(causes: list[Cause]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def test_good_crd() -> None:
    assert validate_crd(make_crd(), None) == []


def test_defaults() -> None:
    spec = default_crd(make_crd())["spec"]
    assert spec["names"]["singular"] == "widget"
    assert spec["names"]["listKind"] == "WidgetList"
    assert spec["conversion"] == {"strategy": "None"}


def test_name_must_be_plural_dot_group() -> None:
    crd = make_crd()
    crd["metadata"]["name"] = "gadgets.example.com"
    assert msgs(validate_crd(crd, None)) == [
        ("metadata.name", 'Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group')
    ]


def test_group_scope_names() -> None:
    crd = make_crd()
    crd["metadata"]["name"] = "widgets.example"
    crd["spec"]["group"] = "example"
    crd["spec"]["scope"] = "Global"
    crd["spec"]["names"].update(kind="widget_thing", listKind="widget_thing", shortNames=["W"])
    causes = msgs(validate_crd(crd, None))
    assert ("spec.group", 'Invalid value: "example": should be a domain with at least one dot') in causes
    assert ("spec.scope", 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"') in causes
    kind = [m for f, m in causes if f == "spec.names.kind"]
    assert kind and kind[0].startswith(
        'Invalid value: "widget_thing": may have mixed case, but should otherwise match: a DNS-1035 label'
    )
    assert (
        "spec.names.listKind",
        'Invalid value: "widget_thing": kind and listKind may not be the same',
    ) in causes
    assert [f for f, _ in causes if f.startswith("spec.names.shortNames")] == ["spec.names.shortNames[0]"]
    crd = make_crd()
    del crd["spec"]["names"]["plural"]
    crd["metadata"]["name"] = ".example.com"
    assert ("spec.names.plural", "Required value") in msgs(validate_crd(crd, None))


def test_versions() -> None:
    crd = make_crd()
    crd["spec"]["versions"][0]["storage"] = True
    crd["spec"]["versions"][2]["name"] = "v1"
    causes = msgs(validate_crd(crd, None))
    assert (
        "spec.versions",
        'Invalid value: ["v1beta1","v1","v1"]: must contain unique version names',
    ) in causes
    assert (
        "spec.versions",
        'Invalid value: ["v1beta1","v1","v1"]: must have exactly one version marked as storage version',
    ) in causes
    crd = make_crd()
    crd["spec"]["versions"][0]["name"] = "V1"
    assert [f for f, _ in msgs(validate_crd(crd, None))] == ["spec.versions[0].name"]
    crd["spec"]["versions"] = []
    fields = [f for f, _ in msgs(validate_crd(crd, None))]
    assert fields == ["spec.versions", "spec.versions"]


def test_schema_required_and_structural() -> None:
    crd = make_crd()
    del crd["spec"]["versions"][0]["schema"]
    props = crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]
    props["spec"]["properties"]["untyped"] = {"description": "no type"}
    props["spec"]["properties"]["list"] = {"type": "array"}
    props["spec"]["properties"]["tags"]["items"] = {}
    props["spec"]["properties"]["closed"] = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": False,
    }
    props["spec"]["properties"]["ref"] = {"$ref": "#/x", "type": "object"}
    props["status"]["x-kubernetes-preserve-unknown-fields"] = False
    base = "spec.versions[1].schema.openAPIV3Schema"
    causes = msgs(validate_crd(crd, None))
    assert ("spec.versions[0].schema.openAPIV3Schema", "Required value: schemas are required") in causes
    assert (
        f"{base}.properties[spec].properties[untyped].type",
        "Required value: must not be empty for specified object fields",
    ) in causes
    assert (f"{base}.properties[spec].properties[list].items", "Required value: must be specified") in causes
    assert (
        f"{base}.properties[spec].properties[tags].items.type",
        "Required value: must not be empty for specified array items",
    ) in causes
    assert (
        f"{base}.properties[spec].properties[closed].additionalProperties",
        "Forbidden: additionalProperties and properties are mutual exclusive",
    ) in causes
    assert (f"{base}.properties[spec].properties[ref].$ref", "Forbidden: $ref is not supported") in causes
    assert (
        f"{base}.properties[status].x-kubernetes-preserve-unknown-fields",
        "Invalid value: false: must be true or undefined",
    ) in causes


def test_root_schema_rules() -> None:
    crd = make_crd()
    crd["spec"]["versions"][2]["schema"]["openAPIV3Schema"] = {"type": "string"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "kind": {"type": "integer"},
        }
    }
    causes = msgs(validate_crd(crd, None))
    assert (
        "spec.versions[2].schema.openAPIV3Schema.type",
        'Invalid value: "string": must be object at the root',
    ) in causes
    root = "spec.versions[0].schema.openAPIV3Schema"
    assert (f"{root}.type", "Required value: must not be empty at the root") in causes
    assert (f"{root}.properties[kind].type", 'Invalid value: "integer": must be string') in causes
    assert (
        f"{root}.properties[metadata]",
        "Forbidden: must not specify anything other than name and "
        "generateName, but metadata is implicitly specified",
    ) in causes


def test_printer_columns_subresources_selectable_fields() -> None:
    crd = make_crd()
    version = crd["spec"]["versions"][1]
    version["additionalPrinterColumns"] = [
        {"name": "", "type": "text", "jsonPath": "spec.size", "format": "x"}
    ]
    version["subresources"]["scale"] = {
        "specReplicasPath": ".status.size",
        "labelSelectorPath": ".metadata.x",
    }
    version["selectableFields"] = [
        {"jsonPath": ".spec.size"},
        {"jsonPath": ".spec.tags"},
        {"jsonPath": ".spec.no"},
        {"jsonPath": ".spec.size"},
        {},
    ]
    causes = msgs(validate_crd(crd, None))
    col = "spec.versions[1].additionalPrinterColumns[0]"
    assert (f"{col}.name", "Required value") in causes
    assert (
        f"{col}.type",
        'Invalid value: "text": must be one of boolean,date,integer,number,string',
    ) in causes
    assert (
        f"{col}.format",
        'Invalid value: "x": must be one of byte,date,date-time,double,float,int32,int64,password',
    ) in causes
    assert (
        f"{col}.jsonPath",
        'Invalid value: "spec.size": must be a simple json path starting with .',
    ) in causes
    sub = "spec.versions[1].subresources.scale"
    assert (
        f"{sub}.specReplicasPath",
        'Invalid value: ".status.size": should be a json path under .spec',
    ) in causes
    assert (f"{sub}.statusReplicasPath", "Required value") in causes
    assert (
        f"{sub}.labelSelectorPath",
        'Invalid value: ".metadata.x": should be a json path under either .spec or .status',
    ) in causes
    sel = "spec.versions[1].selectableFields"
    assert (
        f"{sel}[1].jsonPath",
        'Invalid value: ".spec.tags": must point to a field of type string, boolean or '
        "integer. Enum string fields and strings with formats are allowed.",
    ) in causes
    assert f"{sel}[2].jsonPath" in [f for f, _ in causes]
    assert (f"{sel}[3].jsonPath", 'Duplicate value: ".spec.size"') in causes
    assert (f"{sel}[4].jsonPath", "Required value") in causes


def test_too_many_selectable_fields() -> None:
    crd = make_crd()
    spec_props = crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    spec_props.update({f"f{i}": {"type": "string"} for i in range(9)})
    crd["spec"]["versions"][1]["selectableFields"] = [{"jsonPath": f".spec.f{i}"} for i in range(9)]
    assert msgs(validate_crd(crd, None)) == [
        ("spec.versions[1].selectableFields", "Too many: 9: must have at most 8 items")
    ]


def test_webhook_conversion_is_unsupported() -> None:
    crd = make_crd()
    crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"]}}
    assert msgs(validate_crd(crd, None)) == [
        ("spec.conversion.strategy", 'Unsupported value: "Webhook": supported values: "None"')
    ]


def test_update_rules() -> None:
    old = make_crd()
    old["status"] = accepted_status(old, now=NOW)
    new = copy.deepcopy(old)
    new["spec"]["versions"][0]["served"] = False
    assert validate_crd(new, old) == []
    new["spec"]["scope"] = "Cluster"
    new["spec"]["names"]["kind"] = "Gadget"
    new["spec"]["group"] = "other.io"
    new["metadata"]["name"] = "widgets.other.io"
    causes = msgs(validate_crd(new, old))
    assert ("spec.group", 'Invalid value: "other.io": field is immutable') in causes
    assert ("spec.scope", 'Invalid value: "Cluster": field is immutable') in causes
    assert ("spec.names.kind", 'Invalid value: "Gadget": field is immutable') in causes
    not_established = copy.deepcopy(old)
    not_established["status"]["conditions"] = []
    rescoped = copy.deepcopy(not_established)
    rescoped["spec"]["scope"] = "Cluster"
    assert validate_crd(rescoped, not_established) == []
    dropped = copy.deepcopy(old)
    dropped["status"]["storedVersions"] = ["v1alpha1", "v1"]
    assert msgs(validate_crd(dropped, old)) == [
        ("status.storedVersions[0]", 'Invalid value: "v1alpha1": must appear in spec.versions')
    ]


def test_resource_types() -> None:
    types = crd_resource_types(make_crd())
    assert [t.version for t in types] == ["v1beta1", "v1"]
    v1beta1, v1 = types
    assert (v1.group, v1.plural, v1.kind, v1.singular, v1.namespaced) == (
        "example.com",
        "widgets",
        "Widget",
        "widget",
        True,
    )
    assert v1.short_names == ("wd",) and v1.categories == ("all",)
    assert v1.subresources == ("status", "scale") and v1beta1.subresources == ()
    assert v1.storage_version == v1beta1.storage_version == "v1"
    assert v1.crd_name == "widgets.example.com"
    assert v1.selectable_fields == ("spec.color",)
    assert v1.scale_paths == (".spec.size", ".status.size", ".status.selector")
    assert v1beta1.scale_paths is None
    assert [(c.name, c.type, c.json_path, c.priority, c.description) for c in v1.printer_columns] == [
        ("Size", "integer", ".spec.size", 1, "how big")
    ]
    assert [(c.name, c.type, c.json_path) for c in v1beta1.printer_columns] == [
        ("Age", "date", ".metadata.creationTimestamp")
    ]
    assert v1beta1.extra["deprecated"] is True
    cluster = make_crd()
    cluster["spec"]["scope"] = "Cluster"
    assert not crd_resource_types(cluster)[0].namespaced


def test_crd_schema() -> None:
    crd = make_crd()
    assert crd_schema(crd, "v1") is crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]
    assert crd_schema(crd, "v9") is None
    del crd["spec"]["versions"][0]["schema"]
    assert crd_schema(crd, "v1beta1") is None


def test_accepted_status() -> None:
    status = accepted_status(make_crd(), now=NOW)
    assert status["conditions"] == [
        {
            "type": "NamesAccepted",
            "status": "True",
            "lastTransitionTime": "2025-03-01T08:00:00Z",
            "reason": "NoConflicts",
            "message": "no conflicts found",
        },
        {
            "type": "Established",
            "status": "True",
            "lastTransitionTime": "2025-03-01T08:00:00Z",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        },
    ]
    assert status["acceptedNames"] == {
        "plural": "widgets",
        "singular": "widget",
        "shortNames": ["wd"],
        "kind": "Widget",
        "listKind": "WidgetList",
        "categories": ["all"],
    }
    assert status["storedVersions"] == ["v1"]


def test_accepted_status_keeps_history() -> None:
    crd = make_crd()
    crd["status"] = accepted_status(crd, now=NOW)
    crd["spec"]["versions"][0]["storage"], crd["spec"]["versions"][1]["storage"] = True, False
    later = accepted_status(crd, now=datetime(2025, 3, 2, tzinfo=UTC))
    assert later["storedVersions"] == ["v1", "v1beta1"]
    assert {c["lastTransitionTime"] for c in later["conditions"]} == {"2025-03-01T08:00:00Z"}


@pytest.mark.parametrize("field", ["group", "scope"])
def test_missing_required_spec_fields(field: str) -> None:
    crd = make_crd()
    del crd["spec"][field]
    if field == "group":
        crd["metadata"]["name"] = "widgets."
    assert (f"spec.{field}", "Required value") in msgs(validate_crd(crd, None))
