"""Breaking-change detection between two generated CRDs, as kro's ``pkg/graph/crd/compat`` decides it."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.graphs import breaking as b
from kplane.graphs.crd import instance_crd


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required is not None:
        out["required"] = required
    return out


def types(report: b.Report) -> tuple[list[str], list[str]]:
    return [c.type for c in report.breaking], [c.type for c in report.non_breaking]


def test_identical_schemas_have_no_changes() -> None:
    schema = obj({"name": {"type": "string", "pattern": "^a", "maxLength": 5}}, ["name"])
    report = b.compare_schemas(schema, schema)
    assert not report.has_changes and not report.has_breaking_changes
    assert str(report) == "no breaking changes"


@pytest.mark.parametrize(("old", "new", "expected"), [
    (obj({"a": {"type": "string"}}), obj({}), b.PROPERTY_REMOVED),
    (obj({"a": {"type": "string"}}), obj({"a": {"type": "integer"}}), b.TYPE_CHANGED),
    (obj({"a": {"type": "string"}}), obj({"a": {"type": "string"}}, ["a"]), b.REQUIRED_ADDED),
    (obj({}), obj({"a": {"type": "string"}}, ["a"]), b.PROPERTY_ADDED),
    (obj({"a": {"type": "string", "enum": ["x", "y"]}}), obj({"a": {"type": "string", "enum": ["x"]}}),
     b.ENUM_RESTRICTED),
    (obj({"a": {"type": "string"}}), obj({"a": {"type": "string", "pattern": "^x$"}}), b.PATTERN_ADDED),
    (obj({"a": {"type": "string", "pattern": "^x"}}), obj({"a": {"type": "string", "pattern": "^y"}}),
     b.PATTERN_CHANGED),
    (obj({"a": {"type": "string", "default": "x"}}, ["a"]), obj({"a": {"type": "string"}}, ["a"]),
     b.REQUIRED_DEFAULT_REMOVED),
    (obj({"a": {"type": "integer"}}), obj({"a": {"type": "integer", "minimum": 1}}), "MINIMUM_ADDED"),
    (obj({"a": {"type": "integer", "minimum": 1}}), obj({"a": {"type": "integer", "minimum": 2}}),
     "MINIMUM_INCREASED"),
    (obj({"a": {"type": "integer", "maximum": 9}}), obj({"a": {"type": "integer", "maximum": 8}}),
     "MAXIMUM_DECREASED"),
    (obj({"a": {"type": "string", "minLength": 1}}), obj({"a": {"type": "string", "minLength": 3}}),
     "MIN_LENGTH_INCREASED"),
    (obj({"a": {"type": "string"}}), obj({"a": {"type": "string", "maxLength": 3}}), "MAX_LENGTH_ADDED"),
    (obj({"a": {"type": "array", "items": {"type": "string"}, "minItems": 0}}),
     obj({"a": {"type": "array", "items": {"type": "string"}, "minItems": 1}}), "MIN_ITEMS_INCREASED"),
    (obj({"a": {"type": "array", "items": {"type": "string"}, "maxItems": 4}}),
     obj({"a": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}), "MAX_ITEMS_DECREASED"),
    (obj({"a": {"type": "array", "items": {"type": "string"}}}), obj({"a": {"type": "array"}}), b.PROPERTY_REMOVED),
    (obj({"a": {"type": "array", "items": obj({"x": {"type": "string"}})}}),
     obj({"a": {"type": "array", "items": obj({})}}), b.PROPERTY_REMOVED),
])
def test_breaking(old: dict[str, Any], new: dict[str, Any], expected: str) -> None:
    report = b.compare_schemas(old, new)
    assert expected in types(report)[0]
    assert report.has_breaking_changes


@pytest.mark.parametrize(("old", "new", "expected"), [
    (obj({}), obj({"a": {"type": "string"}}), b.PROPERTY_ADDED),
    (obj({}), obj({"a": {"type": "string", "default": "x"}}, ["a"]), b.PROPERTY_ADDED),
    (obj({"a": {"type": "string", "description": "old"}}), obj({"a": {"type": "string", "description": "new"}}),
     b.DESCRIPTION_CHANGED),
    (obj({"a": {"type": "string", "default": "x"}}), obj({"a": {"type": "string", "default": "y"}}),
     b.DEFAULT_CHANGED),
    (obj({"a": {"type": "string"}}, ["a"]), obj({"a": {"type": "string"}}), b.REQUIRED_REMOVED),
    (obj({"a": {"type": "string", "enum": ["x"]}}), obj({"a": {"type": "string", "enum": ["x", "y"]}}),
     b.ENUM_EXPANDED),
    (obj({"a": {"type": "string", "pattern": "^x"}}), obj({"a": {"type": "string"}}), b.PATTERN_REMOVED),
    (obj({"a": {"type": "integer", "minimum": 3}}), obj({"a": {"type": "integer", "minimum": 1}}),
     "MINIMUM_DECREASED"),
    (obj({"a": {"type": "integer", "maximum": 3}}), obj({"a": {"type": "integer"}}), "MAXIMUM_REMOVED"),
    (obj({"a": {"type": "string", "maxLength": 3}}), obj({"a": {"type": "string", "maxLength": 9}}),
     "MAX_LENGTH_INCREASED"),
    (obj({"a": {"type": "array"}}), obj({"a": {"type": "array", "items": {"type": "string"}}}), b.PROPERTY_ADDED),
])
def test_non_breaking(old: dict[str, Any], new: dict[str, Any], expected: str) -> None:
    report = b.compare_schemas(old, new)
    assert report.breaking == []
    assert expected in types(report)[1]


def test_type_change_stops_the_walk_and_enum_appearing_is_not_compared() -> None:
    report = b.compare_schemas(obj({"a": {"type": "string", "pattern": "x"}}),
                               obj({"a": {"type": "integer", "minimum": 1}}))
    assert types(report) == ([b.TYPE_CHANGED], [])
    assert b.compare_schemas({"type": "string"}, {"type": "string", "enum": ["a"]}).has_changes is False


def test_new_required_property_is_judged_once() -> None:
    """A new property in ``required`` is a breaking PROPERTY_ADDED, not also a REQUIRED_ADDED. kro words it
    "Optional …": its Description tests for ``required`` while the change stores ``required=true``."""
    report = b.compare_schemas(obj({}), obj({"a": {"type": "string"}}, ["a"]))
    assert types(report) == ([b.PROPERTY_ADDED], [])
    assert report.breaking[0].description() == "Optional property a was added"


def test_descriptions_and_summary() -> None:
    old = obj({name: {"type": "string", "enum": ["x", "y"], "maximum": 2.5} for name in "abcde"})
    report = b.compare_schemas(old, obj({"e": {"type": "string", "enum": ["x"], "maximum": 1.25}}))
    assert [c.path for c in report.breaking[:2]] == [".properties.a", ".properties.b"]
    summary = str(report)
    assert summary.startswith("Property a was removed; Property b was removed; Property c was removed; ")
    assert summary.endswith("and 3 more changes")
    assert b.Change(".properties.e.enum", b.ENUM_RESTRICTED, '"y"').description() == 'Enum value "y" was removed'
    assert b.Change("x.maximum", "MAXIMUM_DECREASED", "2.5", "1.25").description() == \
        "Maximum was decreased from 2.5 to 1.25"
    assert "Maximum was decreased from 2.5 to 1.25" in [c.description() for c in report.breaking]
    assert b.Change("p", "MIN_ITEMS_ADDED", "", "1").description() == "MinItems constraint 1 was added"
    assert b.Change("p", "WHATEVER").description() == "Unknown change to p"
    assert b.Change(".x.required", b.REQUIRED_ADDED, "", "x").description() == "Field x is newly required"


def test_odd_nodes_do_not_crash() -> None:
    assert types(b.compare_schemas(None, {"type": "string"})) == ([], [b.PROPERTY_ADDED])
    assert types(b.compare_schemas({"type": "string"}, None)) == ([b.PROPERTY_REMOVED], [])
    assert not b.compare_schemas(None, None).has_changes
    weird = {"type": "object", "properties": "nope", "required": "nope", "enum": 3}
    assert not b.compare_schemas(weird, weird).has_changes
    tuple_items = {"type": "array", "items": [{"type": "string"}]}
    assert not b.compare_schemas(tuple_items, tuple_items).has_changes


def crd(spec: dict[str, Any], **version: Any) -> dict[str, Any]:
    out = instance_crd(kind="Demo", group="kro.run", version="v1alpha1", scope="Namespaced",
                       spec=spec, status={}, rgd_name="demo")
    out["spec"]["versions"][0].update(version)
    return out


def test_compare_versions() -> None:
    old = crd(obj({"name": {"type": "string"}}))
    assert not b.compare_versions(old["spec"]["versions"], old["spec"]["versions"]).has_changes
    renamed = crd(obj({"name": {"type": "string"}}), name="v1beta1")
    assert types(b.compare_versions(old["spec"]["versions"], renamed["spec"]["versions"])) == ([b.TYPE_CHANGED], [])
    unserved = crd(obj({"name": {"type": "string"}}), served=False, subresources={})
    paths = [c.path for c in b.compare_versions(old["spec"]["versions"], unserved["spec"]["versions"]).breaking]
    assert paths == ["version.served", "version.subresources.status"]
    with pytest.raises(ValueError, match="expected exactly one version in each CRD, got 2 old and 1 new"):
        b.compare_versions([old["spec"]["versions"][0]] * 2, old["spec"]["versions"])
    with pytest.raises(ValueError, match="old version v1alpha1 has no schema"):
        b.compare_versions([{"name": "v1alpha1"}], old["spec"]["versions"])


def test_update_refusal_and_annotation() -> None:
    old = crd(obj({"name": {"type": "string"}, "size": {"type": "integer"}}))
    new = crd(obj({"name": {"type": "string"}}))
    message = b.update_refusal(old, new, allow_breaking=False)
    assert message == "cannot update CRD demos.kro.run: breaking changes detected: Property size was removed"
    assert b.update_refusal(old, new, allow_breaking=True) is None
    assert b.update_refusal(new, old, allow_breaking=False) is None, "adding an optional field is fine"
    assert str(b.update_refusal({"spec": {"versions": []}}, new, allow_breaking=True)).startswith(
        "failed to check schema compatibility: expected exactly one version")
    assert b.allows_breaking_changes({"metadata": {"annotations": {b.ALLOW_BREAKING_ANNOTATION: "true"}}})
    assert not b.allows_breaking_changes({"metadata": {"annotations": {b.ALLOW_BREAKING_ANNOTATION: "True"}}})
    assert not b.allows_breaking_changes({"metadata": {}})
