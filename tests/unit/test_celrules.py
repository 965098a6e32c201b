"""CRD x-kubernetes-validations: compile-time errors and evaluation results as upstream renders them."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.api.celrules import compile_rules, evaluate_rules, normalize_field_path, uses_old_self
from kplane.api.schema import Schema
from kplane.api.status import Cause


def spec_schema(rules: list[dict[str, Any]], **props: Any) -> Schema:
    properties = {
        "replicas": {"type": "integer"},
        "minReplicas": {"type": "integer"},
        "name": {"type": "string"},
        "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        **props,
    }
    return Schema(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-validations": rules, "properties": properties},
            },
        }
    )


def errors(rules: list[dict[str, Any]], spec: Any, old: Any = None) -> list[Cause]:
    ruleset = compile_rules(spec_schema(rules))
    assert list(ruleset.all_causes()) == []
    return evaluate_rules(ruleset, {"spec": spec}, None if old is None else {"spec": old})


def test_passing_rule_reports_nothing() -> None:
    assert errors([{"rule": "self.minReplicas <= self.replicas"}], {"replicas": 3, "minReplicas": 1}) == []


def test_failing_rule_default_message_omits_object_value() -> None:
    assert errors([{"rule": "  self.minReplicas <= self.replicas "}], {"replicas": 1, "minReplicas": 2}) == [
        Cause("FieldValueInvalid", "Invalid value: failed rule: self.minReplicas <= self.replicas", "spec")
    ]


def test_message_and_scalar_value() -> None:
    schema = spec_schema(
        [],
        name={
            "type": "string",
            "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "too long"}],
        },
    )
    got = evaluate_rules(compile_rules(schema), {"spec": {"name": "abcd"}}, None)
    assert got == [Cause("FieldValueInvalid", 'Invalid value: "abcd": too long', "spec.name")]


def test_message_expression() -> None:
    rule = {
        "rule": "self.replicas < 5",
        "message": "static",
        "messageExpression": "'got ' + string(self.replicas)",
    }
    assert errors([rule], {"replicas": 7}) == [Cause("FieldValueInvalid", "Invalid value: got 7", "spec")]


def test_message_expression_that_fails_falls_back_to_message() -> None:
    rule = {"rule": "self.replicas < 5", "message": "static", "messageExpression": "self.missing"}
    assert errors([rule], {"replicas": 7}) == [Cause("FieldValueInvalid", "Invalid value: static", "spec")]
    blank = {"rule": "self.replicas < 5", "messageExpression": "'  '"}
    assert errors([blank], {"replicas": 7})[0].message == "Invalid value: failed rule: self.replicas < 5"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("FieldValueForbidden", "Forbidden: no"),
        ("FieldValueRequired", "Required value: no"),
        ("FieldValueDuplicate", "Duplicate value"),
        ("FieldValueInvalid", "Invalid value: no"),
    ],
)
def test_reasons(reason: str, message: str) -> None:
    rule = {"rule": "false", "message": "no", "reason": reason}
    assert errors([rule], {}) == [Cause(reason, message, "spec")]


def test_field_path_moves_the_error() -> None:
    rule = {
        "rule": "has(self.name)",
        "reason": "FieldValueRequired",
        "fieldPath": ".name",
        "message": "set it",
    }
    assert errors([rule], {}) == [Cause("FieldValueRequired", "Required value: set it", "spec.name")]
    rule = {"rule": "false", "fieldPath": ".labels['a.b']"}
    assert errors([rule], {})[0].field == "spec.labels[a.b]"


def test_transition_rules_need_an_old_value() -> None:
    rule = {"rule": "self.replicas >= oldSelf.replicas", "message": "no shrinking"}
    assert errors([rule], {"replicas": 1}) == []  # create: skipped
    assert errors([rule], {"replicas": 1}, old={"replicas": 3}) == [
        Cause("FieldValueInvalid", "Invalid value: no shrinking", "spec")
    ]
    assert errors([rule], {"replicas": 4}, old={"replicas": 3}) == []


def test_optional_old_self_runs_on_create() -> None:
    rule = {
        "rule": "!oldSelf.hasValue() || self.replicas >= oldSelf.value().replicas",
        "optionalOldSelf": True,
        "messageExpression": "oldSelf.hasValue() ? 'shrunk' : 'new'",
    }
    assert errors([rule], {"replicas": 1}) == []
    assert errors([rule], {"replicas": 1}, old={"replicas": 2}) == [
        Cause("FieldValueInvalid", "Invalid value: shrunk", "spec")
    ]
    gate = {"rule": "oldSelf.hasValue()", "optionalOldSelf": True, "message": "create refused"}
    assert errors([gate], {}) == [Cause("FieldValueInvalid", "Invalid value: create refused", "spec")]


def test_rules_on_items_and_map_values() -> None:
    schema = spec_schema(
        [],
        tags={
            "type": "array",
            "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'bad'"}]},
        },
        labels={
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "x-kubernetes-validations": [{"rule": "self.size() > 0"}],
            },
        },
    )
    got = evaluate_rules(compile_rules(schema), {"spec": {"tags": ["ok", "bad"], "labels": {"a": ""}}}, None)
    assert got == [
        Cause("FieldValueInvalid", "Invalid value: \"bad\": failed rule: self != 'bad'", "spec.tags[1]"),
        Cause("FieldValueInvalid", 'Invalid value: "": failed rule: self.size() > 0', "spec.labels[a]"),
    ]


def test_number_fields_are_doubles_even_when_written_as_integers() -> None:
    assert errors([{"rule": "self.ratio > 0.5"}], {"ratio": 1}) == []


def test_runtime_error_is_reported_with_the_schema_type() -> None:
    assert errors([{"rule": "self.replicas > 1"}], {}) == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: "object": no such key: replicas evaluating rule: self.replicas > 1',
            "spec",
        )
    ]


def test_root_rules_are_reported_at_nil() -> None:
    schema = Schema({"type": "object", "x-kubernetes-validations": [{"rule": "false", "message": "m"}]})
    assert evaluate_rules(compile_rules(schema), {}, None) == [
        Cause("FieldValueInvalid", "Invalid value: m", "<nil>")
    ]


def test_null_values_are_not_validated() -> None:
    schema = Schema({"type": "object", "nullable": True, "x-kubernetes-validations": [{"rule": "false"}]})
    assert evaluate_rules(compile_rules(schema), None, None) == []


def test_kubernetes_libraries_in_rules() -> None:
    schema = spec_schema(
        [],
        name={
            "type": "string",
            "x-kubernetes-validations": [
                {
                    "rule": "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))",
                    "message": "under 1Gi",
                }
            ],
        },
    )
    ruleset = compile_rules(schema)
    assert evaluate_rules(ruleset, {"spec": {"name": "512Mi"}}, None) == []
    assert (
        evaluate_rules(ruleset, {"spec": {"name": "2Gi"}}, None)[0].message
        == 'Invalid value: "2Gi": under 1Gi'
    )


PREFIX = "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"


@pytest.mark.parametrize(
    ("rule", "field", "fragment"),
    [
        (
            {"rule": "self.replicas +"},
            f"{PREFIX}.rule",
            "compilation failed: ERROR: <input>:1:16: Syntax error",
        ),
        (
            {"rule": "self.size() + 'x' == 'y'"},
            f"{PREFIX}.rule",
            "compilation failed: ERROR: <input>:1:13: found no matching overload for '_+_' applied to "
            "'(int, string)'",
        ),
        ({"rule": "1 + 1"}, f"{PREFIX}.rule", "compilation failed: cel expression must evaluate to a bool"),
        ({"rule": "nope(self)"}, f"{PREFIX}.rule", "undeclared reference to 'nope'"),
        (
            {"rule": "true", "messageExpression": "self +"},
            f"{PREFIX}.messageExpression",
            "messageExpression compilation failed",
        ),
        (
            {"rule": "true", "messageExpression": "1"},
            f"{PREFIX}.messageExpression",
            "must evaluate to a string",
        ),
        ({"rule": "true", "reason": "Nope"}, f"{PREFIX}.reason", 'Unsupported value: "Nope"'),
        ({"rule": "true", "fieldPath": ".missing"}, f"{PREFIX}.fieldPath", "does not refer to a valid field"),
        ({"rule": "true", "optionalOldSelf": True}, f"{PREFIX}.optionalOldSelf", "oldSelf is not used"),
        ({"rule": " "}, f"{PREFIX}.rule", "Required value"),
    ],
)
def test_compile_errors(rule: dict[str, Any], field: str, fragment: str) -> None:
    causes = list(compile_rules(spec_schema([rule])).all_causes())
    assert [c.field for c in causes] == [field]
    assert fragment in causes[0].message


def test_compile_error_echoes_the_rule_as_upstream_does() -> None:
    (cause,) = compile_rules(spec_schema([{"rule": "self.x +"}])).all_causes()
    assert cause.message.startswith('Invalid value: apiextensions.ValidationRule{Rule:"self.x +", Message:""')
    assert cause.reason == "FieldValueInvalid"


def test_compile_errors_in_nested_nodes_use_schema_paths() -> None:
    schema = spec_schema(
        [],
        tags={"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self +"}]}},
    )
    (cause,) = compile_rules(schema, "spec.versions[0].schema.openAPIV3Schema").all_causes()
    assert cause.field == (
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule"
    )


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("self.a == oldSelf.a", True),
        ("oldSelf", True),
        ("self.oldSelf", False),
        ("'oldSelf' == self.a", False),
        ('"x oldSelf y".size() > 0', False),
        ("self.oldSelfish", False),
    ],
)
def test_uses_old_self(expr: str, expected: bool) -> None:
    assert uses_old_self(expr) is expected


def test_normalize_field_path() -> None:
    schema = spec_schema([]).field("spec")
    assert schema is not None
    assert normalize_field_path(".name", schema) == "name"
    assert normalize_field_path(".labels['x']", schema) == "labels[x]"
    with pytest.raises(ValueError):
        normalize_field_path("name", schema)
    with pytest.raises(ValueError):
        normalize_field_path(".name.deeper", schema)


def test_transition_rules_on_map_list_items_correlate_by_key() -> None:
    item = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "v went down"}],
        "properties": {"k": {"type": "string"}, "v": {"type": "integer"}},
    }
    schema = Schema(
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["k"],
            "items": item,
        }
    )
    ruleset = compile_rules(schema)
    new = [{"k": "b", "v": 1}, {"k": "a", "v": 5}, {"k": "c", "v": 0}]
    old = [{"k": "a", "v": 4}, {"k": "b", "v": 2}]
    assert evaluate_rules(ruleset, new, old, "spec.items") == [
        Cause("FieldValueInvalid", "Invalid value: v went down", "spec.items[0]")
    ]
