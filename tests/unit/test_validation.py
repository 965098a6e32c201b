"""Structural validation against an OpenAPI v3 schema, with upstream's field paths and messages."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.api.schema import Schema
from kplane.api.status import Cause
from kplane.api.validation import validate

SPEC = Schema(
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                    "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "multipleOf": 0.5},
                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                    "level": {"type": "integer", "enum": [1, 2]},
                    "on": {"type": "boolean"},
                    "note": {"type": "string", "nullable": True},
                    "port": {"x-kubernetes-int-or-string": True},
                    "when": {"type": "string", "format": "date-time"},
                    "id": {"type": "string", "format": "uuid"},
                    "data": {"type": "string", "format": "byte"},
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string", "maxLength": 1}},
                        },
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "items": {
                            "type": "object",
                            "properties": {
                                "port": {"type": "integer"},
                                "protocol": {"type": "string", "default": "TCP"},
                            },
                        },
                    },
                    "labels": {
                        "type": "object",
                        "maxProperties": 2,
                        "minProperties": 1,
                        "additionalProperties": {"type": "string"},
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                },
            }
        },
    }
)


def check(spec: dict[str, Any]) -> list[Cause]:
    return validate({"spec": {"name": "ok", **spec}}, SPEC)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"replicas": 1, "ratio": 1.5, "mode": "fast", "level": 2, "on": False, "note": None},
        {"replicas": 3.0},  # whole floats are integers (kube-openapi isFloatInt)
        {"ratio": 2},  # integers are numbers
        {"port": 80},
        {"port": "http"},
        {"when": "2024-01-02T03:04:05Z", "id": "123e4567-e89b-12d3-a456-426614174000", "data": "aGk="},
        {"items": [{"name": "a"}], "tags": ["a", "b"], "labels": {"a": "b"}},
        {"ports": [{"port": 80}, {"port": 80, "protocol": "UDP"}]},
        {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}},
    ],
)
def test_valid(spec: dict[str, Any]) -> None:
    assert check(spec) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"replicas": "three"},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
                "spec.replicas",
            ),
        ),
        (
            {"replicas": 1.5},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "number": spec.replicas in body must be of type integer: "number"',
                "spec.replicas",
            ),
        ),
        (
            {"on": "yes"},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.on in body must be of type boolean: "string"',
                "spec.on",
            ),
        ),
        (
            {"replicas": None},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "null": spec.replicas in body must be of type integer: "null"',
                "spec.replicas",
            ),
        ),
        (
            {"port": True},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
                "spec.port",
            ),
        ),
        (
            {"replicas": 0},
            Cause(
                "FieldValueInvalid",
                "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
                "spec.replicas",
            ),
        ),
        (
            {"replicas": 11},
            Cause(
                "FieldValueInvalid",
                "Invalid value: 11: spec.replicas in body should be less than or equal to 10",
                "spec.replicas",
            ),
        ),
        (
            {"ratio": 0},
            Cause(
                "FieldValueInvalid",
                "Invalid value: 0: spec.ratio in body should be greater than 0",
                "spec.ratio",
            ),
        ),
        (
            {"ratio": 0.7},
            Cause(
                "FieldValueInvalid",
                "Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5",
                "spec.ratio",
            ),
        ),
        (
            {"mode": "medium"},
            Cause(
                "FieldValueNotSupported",
                'Unsupported value: "medium": supported values: "fast", "slow"',
                "spec.mode",
            ),
        ),
        (
            {"level": 3},
            Cause("FieldValueNotSupported", 'Unsupported value: 3: supported values: "1", "2"', "spec.level"),
        ),
        (
            {"name": "abcdef"},
            Cause("FieldValueTooLong", "Too long: may not be more than 5 bytes", "spec.name"),
        ),
        (
            {"name": "A"},
            Cause(
                "FieldValueInvalid",
                "Invalid value: \"A\": spec.name in body should match '^[a-z]+$'",
                "spec.name",
            ),
        ),
        (
            {"when": "yesterday"},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"',
                "spec.when",
            ),
        ),
        (
            {"id": "not-a-uuid"},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "not-a-uuid": spec.id in body must be of type uuid: "not-a-uuid"',
                "spec.id",
            ),
        ),
        (
            {"items": [{"name": "a"}] * 5},
            Cause("FieldValueTooMany", "Too many: 5: must have at most 3 items", "spec.items"),
        ),
        (
            {"items": []},
            Cause(
                "FieldValueInvalid",
                "Invalid value: 0: spec.items in body should have at least 1 items",
                "spec.items",
            ),
        ),
        ({"items": [{}]}, Cause("FieldValueRequired", "Required value", "spec.items[0].name")),
        (
            {"items": [{"name": "a"}, {"name": "bb"}]},
            Cause("FieldValueTooLong", "Too long: may not be more than 1 byte", "spec.items[1].name"),
        ),
        ({"tags": ["a", "b", "a"]}, Cause("FieldValueDuplicate", 'Duplicate value: "a"', "spec.tags[2]")),
        (
            {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]},
            Cause("FieldValueDuplicate", 'Duplicate value: {"port":80,"protocol":"TCP"}', "spec.ports[1]"),
        ),
        (
            {"ports": [{"protocol": "TCP"}]},
            Cause("FieldValueRequired", "Required value", "spec.ports[0].port"),
        ),
        (
            {"labels": {"a": "1", "b": "2", "c": "3"}},
            Cause("FieldValueTooMany", "Too many: 3: must have at most 2 items", "spec.labels"),
        ),
        (
            {"labels": {"a": 1}},
            Cause(
                "FieldValueTypeInvalid",
                'Invalid value: "integer": spec.labels.a in body must be of type string: "integer"',
                "spec.labels.a",
            ),
        ),
        (
            {"template": {"kind": "Pod"}},
            Cause("FieldValueRequired", "Required value", "spec.template.apiVersion"),
        ),
    ],
)
def test_invalid(spec: dict[str, Any], expected: Cause) -> None:
    assert check(spec) == [expected]


def test_required_and_type_of_root_fields() -> None:
    assert validate({"spec": {}}, SPEC) == [Cause("FieldValueRequired", "Required value", "spec.name")]
    assert validate({"spec": []}, SPEC) == [
        Cause(
            "FieldValueTypeInvalid",
            'Invalid value: "array": spec in body must be of type object: "array"',
            "spec",
        )
    ]


def test_type_error_stops_descent() -> None:
    causes = check({"items": "x"})
    assert [c.field for c in causes] == ["spec.items"]


def test_several_errors_are_all_reported() -> None:
    causes = check({"replicas": 0, "mode": "x", "name": "ABCDEFG"})
    assert {c.field for c in causes} == {"spec.replicas", "spec.mode", "spec.name"}
    assert len(causes) == 4  # name is both too long and off-pattern


def test_refs_are_followed() -> None:
    schema = Schema(
        {"type": "object", "properties": {"x": {"$ref": "#/definitions/X"}}},
        {"X": {"type": "object", "required": ["y"], "properties": {"y": {"type": "integer"}}}},
    )
    assert validate({"x": {}}, schema) == [Cause("FieldValueRequired", "Required value", "x.y")]
    assert validate({"x": {"y": 1}}, schema) == []
