"""CRD ``x-kubernetes-validations``: compile every rule when the CRD is written, evaluate them on each write.

Semantics follow ``apiextensions-apiserver/pkg/apiserver/schema/cel`` (compilation.go, validation.go):
``self`` is bound at the node that carries the rule; rules that mention ``oldSelf`` are transition rules and
run only on update when the node has a correlated old value (unless ``optionalOldSelf``, where ``oldSelf`` is
an optional); null values are not validated; failures are reported with the rule's ``reason`` at the node path
extended by ``fieldPath``. Objects and arrays are not echoed back in failure messages (upstream since the fix
for kubernetes/kubernetes#132486), scalars are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kplane.api.schema import Schema
from kplane.api.status import Cause
from kplane.cel import engine
from kplane.cel.engine import CelError, CelType, Program

REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
MAX_MESSAGE_BYTES = 5000
"""celconfig.MaxEvaluatedMessageExpressionSizeBytes."""


@dataclass(frozen=True)
class Rule:
    rule: str
    program: Program
    message: str = ""
    message_program: Program | None = None
    reason: str = "FieldValueInvalid"
    field_path: str = ""
    uses_old_self: bool = False
    optional_old_self: bool = False


@dataclass
class RuleSet:
    """The compiled rules of one schema node and of its descendants; ``causes`` lists compile errors."""

    schema: Schema
    rules: list[Rule] = field(default_factory=list)
    properties: dict[str, RuleSet] = field(default_factory=dict)
    additional: RuleSet | None = None
    items: RuleSet | None = None
    causes: list[Cause] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.rules or self.properties or self.additional or self.items)

    def all_causes(self) -> Iterator[Cause]:
        yield from self.causes
        for child in (*self.properties.values(), self.additional, self.items):
            if child is not None:
                yield from child.all_causes()


# --- types and values ---------------------------------------------------------------------------------------


def cel_type(schema: Schema) -> CelType:
    """The CEL type of values under ``schema``; objects are maps: the engine has no declared structs."""
    if schema.int_or_string or schema.get("nullable"):
        return engine.DYN
    t = schema.type
    if t == "integer":
        return engine.INT
    if t == "number":
        return engine.DOUBLE
    if t == "boolean":
        return engine.BOOL
    if t == "string":
        return engine.STRING
    if t == "array":
        return engine.list_of(cel_type(schema.items) if schema.items else engine.DYN)
    if t == "object":
        extra = schema.additional_properties
        if extra is not None and not schema.properties:
            return engine.map_of(engine.STRING, cel_type(extra))
        return engine.map_of(engine.STRING, engine.DYN)
    return engine.DYN


def cel_value(value: Any, schema: Schema | None) -> Any:
    """JSON data as the declared types expect it: ``number`` as doubles, whole ``integer`` floats as ints."""
    if schema is None:
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            out[k] = cel_value(v, schema.field(k))
        return out
    if isinstance(value, list):
        return [cel_value(v, schema.items) for v in value]
    if schema.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if schema.type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- compilation --------------------------------------------------------------------------------------------

_STRINGS = re.compile(r"""'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*\"""", re.S)
_OLD_SELF = re.compile(r"(?<![\w.])oldSelf\b")


def uses_old_self(expr: str) -> bool:
    """Whether an expression refers to ``oldSelf`` outside string literals: that makes a transition rule."""
    return bool(_OLD_SELF.search(_STRINGS.sub('""', expr)))


def _go_rule(rule: Mapping[str, Any]) -> str:
    # Upstream prints the whole internal ValidationRule with %#v as the invalid value.
    def ptr(kind: str, value: Any) -> str:
        return f"(*{kind})(nil)" if value is None else f"(*{kind})({json.dumps(value)})"

    return (
        "apiextensions.ValidationRule{"
        f"Rule:{json.dumps(rule.get('rule', ''))}, Message:{json.dumps(rule.get('message', ''))}, "
        f"MessageExpression:{json.dumps(rule.get('messageExpression', ''))}, "
        f"Reason:{ptr('apiextensions.FieldValueErrorReason', rule.get('reason'))}, "
        f"FieldPath:{json.dumps(rule.get('fieldPath', ''))}, "
        f"OptionalOldSelf:{ptr('bool', rule.get('optionalOldSelf'))}}}"
    )


def _compile(expr: str, self_type: CelType, optional_old: bool) -> Program:
    if optional_old:
        wrapped = f"cel.bind(oldSelf, __hasOld ? optional.of(__old) : optional.none(), ({expr}))"
        return engine.compile(wrapped, {"self": self_type, "__old": self_type, "__hasOld": engine.BOOL})
    return engine.compile(expr, {"self": self_type, "oldSelf": self_type})


def _compile_one(raw: Mapping[str, Any], schema: Schema, path: str, causes: list[Cause]) -> Rule | None:
    expr = str(raw.get("rule", ""))
    invalid = f"Invalid value: {_go_rule(raw)}"
    if not expr.strip():
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.rule"))
        return None
    self_type = cel_type(schema)
    optional_old = bool(raw.get("optionalOldSelf"))
    old = uses_old_self(expr)
    if optional_old and not old:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f"{invalid}: may not be set if oldSelf is not used in rule",
                f"{path}.optionalOldSelf",
            )
        )
    try:
        program = _compile(expr, self_type, optional_old)
    except CelError as err:
        causes.append(Cause("FieldValueInvalid", f"{invalid}: compilation failed: {err}", f"{path}.rule"))
        return None
    if program.result_type not in ("bool", "dyn"):
        causes.append(
            Cause(
                "FieldValueInvalid",
                f"{invalid}: compilation failed: cel expression must evaluate to a bool",
                f"{path}.rule",
            )
        )
        return None
    message_program = None
    message_expr = str(raw.get("messageExpression", ""))
    if message_expr:
        try:
            message_program = _compile(message_expr, self_type, optional_old)
        except CelError as err:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"{invalid}: messageExpression compilation failed: {err}",
                    f"{path}.messageExpression",
                )
            )
        else:
            if message_program.result_type not in ("string", "dyn"):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f"{invalid}: must evaluate to a string",
                        f"{path}.messageExpression",
                    )
                )
    reason = str(raw.get("reason") or "FieldValueInvalid")
    if reason not in REASONS:
        choices = ", ".join(f'"{r}"' for r in REASONS)
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{reason}": supported values: {choices}',
                f"{path}.reason",
            )
        )
    field_path = str(raw.get("fieldPath", ""))
    if field_path:
        try:
            field_path = normalize_field_path(field_path, schema)
        except ValueError as err:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{raw.get("fieldPath")}": fieldPath must be a valid path: {err}',
                    f"{path}.fieldPath",
                )
            )
    return Rule(
        expr, program, str(raw.get("message", "")), message_program, reason, field_path, old, optional_old
    )


def compile_rules(schema: Schema, path: str = "spec.validation.openAPIV3Schema") -> RuleSet:
    """Compile every rule under ``schema``; failures land in ``causes`` with upstream's field paths."""
    out = RuleSet(schema)
    for i, raw in enumerate(schema.get("x-kubernetes-validations") or []):
        rule = _compile_one(raw, schema, f"{path}.x-kubernetes-validations[{i}]", out.causes)
        if rule is not None:
            out.rules.append(rule)
    for name in schema.properties:
        child_schema = schema.field(name)
        if child_schema is not None:
            child = compile_rules(child_schema, f"{path}.properties[{name}]")
            if not child.empty() or child.causes:
                out.properties[name] = child
    if schema.additional_properties is not None:
        child = compile_rules(schema.additional_properties, f"{path}.additionalProperties")
        out.additional = None if child.empty() and not child.causes else child
    if schema.items is not None:
        child = compile_rules(schema.items, f"{path}.items")
        out.items = None if child.empty() and not child.causes else child
    return out


def normalize_field_path(path: str, schema: Schema) -> str:
    """A rule's ``fieldPath`` (``.spec.x``, ``['a.b']``) checked against the schema, as a field path."""
    out = ""
    node: Schema | None = schema
    for m in re.finditer(r"\.([^.\[\]]+)|\['((?:\\.|[^'\\])*)'\]|(.)", path):
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if m.group(3) is not None or node is None:
            raise ValueError(f"expected [ or . but got: {m.group(0)}")
        if node.properties:
            if name not in node.properties:
                raise ValueError("does not refer to a valid field")
            out = f"{out}.{name}" if out else name
        elif node.additional_properties is not None:
            out = f"{out}[{name}]"
        else:
            raise ValueError("does not refer to a valid field")
        node = node.field(name)
    return out


# --- evaluation ---------------------------------------------------------------------------------------------


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _join(base: str, extra: str) -> str:
    if not extra:
        return base
    if not base or extra.startswith("["):
        return base + extra
    return f"{base}.{extra}"


def _failure(rule: Rule, path: str, value: Any, detail: str) -> Cause:
    shown = None if isinstance(value, Mapping | list) else _render(value)
    where = _join(path, rule.field_path) or "<nil>"
    if rule.reason == "FieldValueForbidden":
        return Cause(rule.reason, f"Forbidden: {detail}", where)
    if rule.reason == "FieldValueRequired":
        return Cause(rule.reason, f"Required value: {detail}", where)
    if rule.reason == "FieldValueDuplicate":
        return Cause(rule.reason, "Duplicate value" + (f": {shown}" if shown else ""), where)
    return Cause("FieldValueInvalid", "Invalid value: " + (f"{shown}: " if shown else "") + detail, where)


def _message(rule: Rule, activation: Mapping[str, Any]) -> str:
    if rule.message_program is not None:
        try:
            text = rule.message_program.evaluate(activation)
        except CelError:
            text = None
        if (
            isinstance(text, str)
            and text.strip()
            and "\n" not in text.strip()
            and len(text.strip().encode()) <= MAX_MESSAGE_BYTES
        ):
            return text.strip()
    if rule.message.strip():
        return rule.message.strip()
    return f"failed rule: {rule.rule.strip()}"


def _evaluate_node(rules: RuleSet, value: Any, old: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    schema_type = rules.schema.type or "object"
    current = cel_value(value, rules.schema)
    previous = cel_value(old, rules.schema) if old is not None else None
    for rule in rules.rules:
        if rule.uses_old_self and previous is None and not rule.optional_old_self:
            continue
        if rule.optional_old_self:
            activation = {"self": current, "__old": previous, "__hasOld": previous is not None}
        else:
            activation = {"self": current, "oldSelf": previous}
        try:
            ok = rule.program.evaluate(activation)
        except CelError as err:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{schema_type}": {err} evaluating rule: {rule.rule.strip()}',
                    path or "<nil>",
                )
            )
            continue
        if ok is not True:
            causes.append(_failure(rule, path, value, _message(rule, activation)))
    return causes


def _correlate(schema: Schema, old: Any, item: Any) -> Any:
    """The old element matching a new list element: by map keys for ``map`` lists, none for atomic lists."""
    if not isinstance(old, list):
        return None
    if schema.list_type == "map" and isinstance(item, Mapping):
        keys = schema.list_map_keys
        return next(
            (o for o in old if isinstance(o, Mapping) and all(o.get(k) == item.get(k) for k in keys)), None
        )
    if schema.list_type == "set":
        return item if item in old else None
    return None


def evaluate_rules(rules: RuleSet, obj: Any, old: Any | None, path: str = "") -> list[Cause]:
    """Every failing rule under ``rules`` for ``obj`` (``old`` is the stored object on update, else None)."""
    if obj is None:
        return []
    causes = _evaluate_node(rules, obj, old, path)
    if isinstance(obj, Mapping):
        old_map = old if isinstance(old, Mapping) else {}
        for key, value in obj.items():
            child = rules.properties.get(key)
            if child is not None:
                causes += evaluate_rules(child, value, old_map.get(key), _join(path, key))
            elif rules.additional is not None and key not in rules.schema.properties:
                causes += evaluate_rules(rules.additional, value, old_map.get(key), f"{path}[{key}]")
    elif isinstance(obj, list) and rules.items is not None:
        for i, item in enumerate(obj):
            causes += evaluate_rules(rules.items, item, _correlate(rules.schema, old, item), f"{path}[{i}]")
    return causes
