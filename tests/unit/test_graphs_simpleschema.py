"""SimpleSchema → OpenAPI, markers and custom types, with kro's error texts."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.graphs.dag import CycleError, reverse_layers, topological_order
from kplane.graphs.simpleschema import SchemaError, split_markers, to_openapi


def prop(spec: dict[str, Any], name: str = "f", types: dict[str, Any] | None = None) -> dict[str, Any]:
    return to_openapi(spec, types)["properties"][name]


def test_types() -> None:
    assert prop({"f": "float"}) == {"type": "number"}
    assert prop({"f": "[]map[string]integer"}) == {
        "type": "array", "items": {"type": "object", "additionalProperties": {"type": "integer"}}}
    assert prop({"f": "object"}) == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert prop({"f": "Port"}, types={"Port": {"n": "integer | required=true"}})["required"] == ["n"]


def test_markers() -> None:
    assert split_markers('a=1 b="x \\" y" c=[1, 2] d={"k": 1}') == [
        ("a", "1"), ("b", 'x " y'), ("c", "[1, 2]"), ("d", '{"k": 1}')]
    schema = prop({"f": 'string | default=x enum="a, b" pattern="^a" minLength=1 description="d e"'})
    assert schema == {"type": "string", "default": "x", "enum": ["a", "b"], "pattern": "^a", "minLength": 1,
                      "description": "d e"}
    assert prop({"f": "integer | enum=\"1,2\" default=2"})["enum"] == [1, 2]
    assert prop({"f": "[]string | default=[\"a\"] listType=map listMapKey=k listMapKey=j"})[
        "x-kubernetes-list-map-keys"] == ["k", "j"]
    assert prop({"f": 'string | validation="self != \'\'"'})["x-kubernetes-validations"] == [
        {"rule": "self != ''", "message": "validation failed"}]


def test_required_sorted_and_default_propagation() -> None:
    schema = to_openapi({"b": "string | required=true", "a": "string | required=true", "c": {"x": "string"}})
    assert schema["required"] == ["a", "b"] and "default" not in schema
    nested = to_openapi({"c": {"x": "integer | default=1"}, "d": {"x": "integer | default=1", "y": "string |"
                                                                   " required=true"}})
    assert nested["properties"]["c"]["default"] == {} and "default" not in nested["properties"]["d"]
    assert to_openapi({"f": "Alias"}, {"Alias": "string | required=true"})["required"] == ["f"]


@pytest.mark.parametrize(("spec", "types", "message"), [
    ({"f": "integer | default=hello"}, None, "default value must be a valid integer, got: hello"),
    ({"f": "boolean | default=yes"}, None, "default value must be a valid boolean"),
    ({"f": "string | foo=bar"}, None, "unknown marker: foo"),
    ({"f": "string | required"}, None, 'marker key "required" without a value'),
    ({"f": "map[int]string"}, None, "map key must be string"),
    ({"f": "boolean | enum=\"a,b\""}, None, "enum values only supported for string and integer types"),
    ({"f": "string | enum=\"a,,b\""}, None, "empty enum values"),
    ({"f": "string | pattern=\"(\""}, None, "invalid pattern regex"),
    ({"f": "integer | minLength=1"}, None, "minLength marker is only valid for string types"),
    ({"f": "string | minItems=1"}, None, "minItems marker is only valid for array types"),
    ({"f": "[]string | listMapKey=name"}, None, "listMapKey set while listType is unset"),
    ({"f": "[]string | listType=map listMapKey=a listMapKey=a"}, None, "duplicate listMapKey"),
    ({"f": "[]string | uniqueItems=true listType=atomic"}, None, "conflicting listType"),
    ({"f": "A"}, {"A": {"b": "B"}, "B": {"a": "A"}}, "cyclic dependency in type"),
    ({"f": "Nope"}, None, "unknown type: Nope"),
    ({"f": "[]" * 17 + "string"}, None, "type nesting too deep"),
    ({"f": 3}, None, "invalid type for field f"),
])
def test_errors(spec: dict[str, Any], types: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(SchemaError) as err:
        to_openapi(spec, types)
    assert message in str(err.value)


def test_dag_order_cycles_and_layers() -> None:
    deps = {"service": ["deployment"], "deployment": [], "configmap": []}
    assert topological_order(["service", "deployment", "configmap"], deps) == ["deployment", "service", "configmap"]
    with pytest.raises(CycleError, match="graph contains a cycle: a -> b -> a"):
        topological_order(["a", "b"], {"a": ["b"], "b": ["a"]})
    assert reverse_layers(["a", "b", "c"], {"b": ["a"], "c": ["a"]}) == [["b", "c"], ["a"]]
