"""kro's SimpleSchema: ``"<type> | marker=value …"`` field strings and nested maps turned into OpenAPI v3.

Semantics and error wording follow ``kubernetes-sigs/kro`` ``pkg/simpleschema`` (parse.go, markers.go,
transform.go, types/*.go) at v0.9: the type is split from the markers at the first ``|``, ``float`` becomes
``number``, ``object`` preserves unknown fields, required lists are sorted, and an object with no required
child but a defaulted one gets ``default: {}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kplane.graphs.dag import CycleError, topological_order

MAX_NESTING = 16
ATOMIC = {"string": "string", "integer": "integer", "boolean": "boolean", "float": "number", "number": "number"}
MARKERS = frozenset({
    "required", "default", "description", "minimum", "maximum", "enum", "pattern", "minLength", "maxLength",
    "minItems", "maxItems", "uniqueItems", "listType", "listMapKey", "immutable", "validation",
})


class SchemaError(ValueError):
    """A SimpleSchema that cannot be turned into OpenAPI; the message is kro's."""


@dataclass(frozen=True)
class _Built:
    schema: dict[str, Any]
    required: bool = False


def split_markers(text: str) -> list[tuple[str, str]]:
    """``key=value`` pairs separated by whitespace; quotes (with ``\\"``), ``[…]`` and ``{…}`` group a value."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and not text[i].isspace() and text[i] != "=":
            i += 1
        key = text[start:i]
        if i >= n or text[i] != "=":
            raise SchemaError(f'invalid marker: marker key "{key}" without a value')
        i += 1
        value, i = _marker_value(text, i)
        pairs.append((key, value))
    return pairs


def _marker_value(text: str, i: int) -> tuple[str, int]:
    n = len(text)
    if i < n and text[i] == '"':
        out: list[str] = []
        i += 1
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                i += 1
            out.append(text[i])
            i += 1
        if i >= n:
            raise SchemaError("invalid marker: unterminated quoted value")
        return "".join(out), i + 1
    start, depth = i, 0
    while i < n and (depth > 0 or not text[i].isspace()):
        if text[i] in "[{":
            depth += 1
        elif text[i] in "]}":
            depth -= 1
        elif text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        i += 1
    return text[start:i], i


def _number(value: str, what: str) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise SchemaError(f"invalid {what} value: {value}") from None
    return int(number) if number.is_integer() else number


def _integer(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SchemaError(f"invalid {what} value: {value}") from None


def _default(schema: Mapping[str, Any], value: str) -> Any:
    kind = schema.get("type")
    if kind == "string":
        return value
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            raise SchemaError(f"default value must be a valid integer, got: {value}") from None
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            raise SchemaError(f"default value must be a valid number, got: {value}") from None
    if kind == "boolean":
        if value not in ("true", "false"):
            raise SchemaError(f"default value must be a valid boolean, got: {value}")
        return value == "true"
    try:
        return json.loads(value)
    except ValueError:
        raise SchemaError(f"failed to parse default value: {value}") from None


def _only(schema: Mapping[str, Any], marker: str, kind: str) -> None:
    if schema.get("type") != kind:
        raise SchemaError(f"{marker} marker is only valid for {kind} types")


def apply_markers(schema: dict[str, Any], markers: list[tuple[str, str]]) -> bool:
    """Apply markers to ``schema`` in place; returns whether ``required=true`` was among them."""
    required = False
    map_keys: list[str] = []
    for key, value in markers:
        if key not in MARKERS:
            raise SchemaError(f"unknown marker: {key}")
        if key == "required":
            required = value == "true"
        elif key == "default":
            schema["default"] = _default(schema, value)
        elif key == "description":
            schema["description"] = value
        elif key in ("minimum", "maximum"):
            schema[key] = _number(value, key)
        elif key == "enum":
            schema["enum"] = _enum(schema, value)
        elif key == "pattern":
            _only(schema, "pattern", "string")
            try:
                re.compile(value)
            except re.error as err:
                raise SchemaError(f"invalid pattern regex: {err}") from None
            schema["pattern"] = value
        elif key in ("minLength", "maxLength"):
            _only(schema, key, "string")
            schema[key] = _integer(value, key)
        elif key in ("minItems", "maxItems"):
            _only(schema, key, "array")
            schema[key] = _integer(value, key)
        elif key == "uniqueItems":
            _only(schema, key, "array")
            if value == "true":
                _list_type(schema, "set")
        elif key == "listType":
            _only(schema, key, "array")
            if value not in ("atomic", "set", "map"):
                raise SchemaError(f"invalid listType value: {value}, must be one of atomic, set, map")
            _list_type(schema, value)
        elif key == "listMapKey":
            _only(schema, key, "array")
            if value in map_keys:
                raise SchemaError(f"duplicate listMapKey: {value}")
            map_keys.append(value)
        elif key == "immutable":
            if value == "true":
                schema.setdefault("x-kubernetes-validations", []).append(
                    {"rule": "self == oldSelf", "message": "field is immutable"})
        else:
            schema.setdefault("x-kubernetes-validations", []).append({"rule": value, "message": "validation failed"})
    if map_keys:
        if schema.get("x-kubernetes-list-type") != "map":
            raise SchemaError("listMapKey set while listType is unset or not 'map'")
        schema["x-kubernetes-list-map-keys"] = map_keys
    return required


def _list_type(schema: dict[str, Any], value: str) -> None:
    current = schema.get("x-kubernetes-list-type")
    if current and current != value:
        raise SchemaError(f"conflicting listType: {current} and {value}")
    schema["x-kubernetes-list-type"] = value


def _enum(schema: Mapping[str, Any], value: str) -> list[Any]:
    if schema.get("type") not in ("string", "integer"):
        raise SchemaError("enum values only supported for string and integer types")
    items = [v.strip() for v in value.split(",")]
    if any(not v for v in items):
        raise SchemaError("empty enum values are not allowed")
    if schema["type"] == "string":
        return items
    try:
        return [int(v) for v in items]
    except ValueError:
        raise SchemaError(f"enum value must be a valid integer, got: {value}") from None


class _Transformer:
    def __init__(self, types: Mapping[str, _Built]) -> None:
        self.types = types

    def type_schema(self, text: str, depth: int = 0) -> _Built:
        if depth > MAX_NESTING:
            raise SchemaError("type nesting too deep")
        text = text.strip()
        if text in ATOMIC:
            return _Built({"type": ATOMIC[text]})
        if text == "object":
            return _Built({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        if text.startswith("[]"):
            return _Built({"type": "array", "items": self.type_schema(text[2:], depth + 1).schema})
        if text.startswith("map["):
            key, value = _map_parts(text)
            if key.strip() != "string":
                raise SchemaError("map key must be string")
            return _Built({"type": "object", "additionalProperties": self.type_schema(value, depth + 1).schema})
        built = self.types.get(text)
        if built is None:
            raise SchemaError(f"unknown type: {text}")
        return _Built(json.loads(json.dumps(built.schema)), built.required)

    def field(self, name: str, value: Any) -> _Built:
        if isinstance(value, Mapping):
            return _Built(self.struct(value))
        if not isinstance(value, str):
            raise SchemaError(f"invalid type for field {name}: expected a string or a map, got {value!r}")
        type_text, _, marker_text = value.partition("|")
        built = self.type_schema(type_text)
        required = apply_markers(built.schema, split_markers(marker_text)) or built.required
        return _Built(built.schema, required)

    def struct(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, value in fields.items():
            built = self.field(str(name), value)
            properties[str(name)] = built.schema
            if built.required:
                required.append(str(name))
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = sorted(required)
        elif any("default" in child for child in properties.values()):
            schema["default"] = {}
        return schema


def _map_parts(text: str) -> tuple[str, str]:
    depth = 0
    for i, c in enumerate(text[3:], start=3):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return text[4:i], text[i + 1:]
    raise SchemaError(f"invalid map type: {text}")


_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _references(value: Any, names: Mapping[str, Any]) -> set[str]:
    if isinstance(value, Mapping):
        return set().union(*(_references(v, names) for v in value.values())) if value else set()
    if isinstance(value, str):
        return {t for t in _TYPE_NAME.findall(value.partition("|")[0]) if t in names}
    return set()


def load_types(types: Mapping[str, Any]) -> dict[str, _Built]:
    """Custom types expanded inline, in dependency order; a cycle is kro's "cyclic dependency in type"."""
    deps = {name: sorted(_references(value, types)) for name, value in types.items()}
    try:
        order = topological_order(list(types), deps)
    except CycleError as err:
        raise SchemaError(f"cyclic dependency in type {err.cycle[0]}: {err}") from None
    built: dict[str, _Built] = {}
    for name in order:
        transformer = _Transformer(built)
        value = types[name]
        built[name] = (_Built(transformer.struct(value)) if isinstance(value, Mapping)
                       else transformer.field(name, value))
    return built


def to_openapi(spec: Mapping[str, Any] | None, types: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI v3 schema of an RGD's ``spec.schema.spec`` (with ``spec.schema.types``)."""
    if spec is not None and not isinstance(spec, Mapping):
        raise SchemaError("spec schema must be a map")
    if types is not None and not isinstance(types, Mapping):
        raise SchemaError("types must be a map")
    return _Transformer(load_types(types or {})).struct(spec or {})
