"""Structural validation against an OpenAPI v3 schema, with upstream's field paths and messages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from kplane.api.defaulting import unknown_fields
from kplane.api.meta import deep_copy, json_bytes
from kplane.api.schema import Schema
from kplane.api.status import Cause
from kplane.api.validation import CleanValues, validate, validate_update

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


# --- updates: unchanged fields reuse earlier verdicts (validate_update, unknown_fields with old) ---------------

ROOT = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}},
        "spec": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 5},
                                                  "xs": {"type": "array", "items": {"type": "string"}}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string", "enum": ["A", "B"]}}},
    },
}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"spec": {"n": 1}}, {"spec": {"n": 1}, "status": {"phase": "A"}}),
        ({"spec": {"n": 1}}, {"spec": {"n": 9}}),
        ({"spec": {"n": 9}}, {"spec": {"n": 9}, "status": {"phase": "C"}}),  # stored before a stricter schema
        ({"spec": {"n": 1}}, {"status": {"phase": "A"}}),
        ({"spec": {"xs": ["a"]}}, {"spec": {"xs": ("a",)}}),  # a tuple is not the stored list
        ({"spec": {"n": None}}, {"spec": {"n": float("nan")}}),  # NaN is not the stored null
        ({"spec": {"n": 1}, "metadata": {"name": "long"}}, {"spec": {"n": 1}, "metadata": {"name": "long"}}),
        ({"spec": {"n": 1}}, {"spec": {"n": 1.0}}),
        ({"spec": {"n": 1}}, {"spec": {"n": True}}),
        ({"spec": {"n": 1}}, []),
    ],
)
def test_validate_update_reports_what_validate_reports(old: dict[str, Any], new: Any) -> None:
    schema = Schema(ROOT)
    for _ in range(3):  # the first pass may remember verdicts the later ones reuse
        assert validate_update(new, old, schema) == validate(new, Schema(ROOT))
        assert unknown_fields(new, schema, old) == unknown_fields(new, Schema(ROOT))


def test_validate_update_skips_a_clean_unchanged_field_only_after_passing_it() -> None:
    schema = Schema(ROOT)
    old = {"spec": {"n": 1, "xs": ["a"]}}
    runs: list[str] = []
    clean = schema.derived("validation.clean", CleanValues.for_schema)

    def run(found: list[str]) -> Any:
        def counted() -> list[str]:
            runs.append("ran")
            return found

        return counted

    assert clean.check("spec", {"n": 1, "xs": ["a"]}, old, run([])) == []
    assert clean.check("spec", {"n": 1, "xs": ["a"]}, old, run([])) == []
    assert runs == ["ran"]
    assert clean.check("spec", {"xs": ["a"], "n": 1}, old, run([])) == []  # other text: checked again
    assert clean.check("metadata", {"name": "a"}, {"metadata": {"name": "a"}}, run([])) == []
    assert clean.check("metadata", {"name": "a"}, {"metadata": {"name": "a"}}, run([])) == []
    assert runs == ["ran"] * 4
    assert clean.check("status", {"p": 1}, {"status": {"p": 1}}, run(["bad"])) == ["bad"]
    assert clean.check("status", {"p": 1}, {"status": {"p": 1}}, run(["bad"])) == ["bad"]  # failures recur
    assert runs == ["ran"] * 6


def test_clean_values_forget_the_oldest_beyond_their_size() -> None:
    clean = CleanValues(size=2)
    runs: list[int] = []
    for n in (1, 2, 3, 1):
        def counted(n: int = n) -> list[str]:
            runs.append(n)
            return []

        clean.check("spec", {"n": n}, {"spec": {"n": n}}, counted)
    assert runs == [1, 2, 3, 1]


def test_unknown_fields_of_an_update_keep_document_order() -> None:
    schema = Schema(ROOT)
    old = {"spec": {"n": 1, "zz": 1}, "status": {"phase": "A"}}
    new = {"spec": {"n": 1, "zz": 1}, "status": {"phase": "A", "yy": 2}, "metadata": {"name": "a", "xx": 1}}
    expected = ["spec.zz", "status.yy", "metadata.xx"]
    assert unknown_fields(new, schema, old) == expected == unknown_fields(new, schema)
    assert unknown_fields(new, schema, old) == expected  # an unchanged field with findings is walked again


# --- plain JSON copies ---------------------------------------------------------------------------------------

class _Text(str):
    pass


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"d": [value]}
    return value


def _walk(value: Any) -> Iterator[Any]:
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    for child in children:
        yield from _walk(child)


def _leaves(value: Any) -> list[Any]:
    return [x for x in _walk(value) if not isinstance(x, dict | list | tuple)]


def _containers(value: Any) -> list[Any]:
    return [x for x in _walk(value) if isinstance(x, dict | list)]


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, "x", None, True, {"b": []}]},
        [{"a": 1}],
        {"when": datetime(2024, 1, 1)},  # YAML bodies decode timestamps
        {"t": (1, 2)},
        {"n": float("nan")},
        {"big": 2**80},
        {1: "int key"},
        {"s": _Text("sub")},
        {"deep": _nested(140)},  # deeper than orjson goes
        "scalar",
    ],
)
def test_deep_copy_keeps_every_value_and_shares_no_container(value: Any) -> None:
    copied = deep_copy(value)
    assert repr(copied) == repr(value)
    assert [type(x) for x in _leaves(copied)] == [type(x) for x in _leaves(value)]
    assert not ({id(x) for x in _containers(copied)} & {id(x) for x in _containers(value)})


def test_json_bytes_refuses_what_orjson_would_convert() -> None:
    assert json_bytes({"a": [1, None]}) == b'{"a":[1,null]}'
    assert json_bytes({"when": datetime(2024, 1, 1)}) is None
    assert json_bytes({"s": _Text("x")}) is None
    assert json_bytes({1: 2}) is None
    assert json_bytes(2**80) is None
