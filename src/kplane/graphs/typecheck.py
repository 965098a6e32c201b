"""Static type checking of ``${…}`` expressions against OpenAPI schemas, the way kro's builder does it.

kro (``pkg/graph/builder.go``, ``pkg/cel/compatibility.go``, doc ``05-static-type-checking.md``) types every
resource id from its kind's OpenAPI schema, types ``schema`` from the instance spec, compiles each
expression, and compares its output type with the type of the field it lands in: CEL assignability first,
then structural compatibility (lists and maps recursively, a struct must be a subset of the expected one,
map↔struct allowed). The engine kplane uses cannot declare schema-shaped types, so this module infers types
itself over :mod:`kplane.graphs.celast` trees; where it cannot tell, a type is ``dyn`` and the check passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kplane.api.schema import Schema
from kplane.api.validation import json_type
from kplane.graphs.celast import NAMESPACES, Node, qualified_name


class TypeCheckError(ValueError):
    """An expression that cannot type-check; the message is worded as cel-go's checker words it."""


@dataclass(frozen=True, eq=False)
class Ty:
    """A CEL type for analysis; ``object`` types carry an OpenAPI schema or the fields of a map literal."""

    kind: str
    elem: Ty | None = None
    schema: Schema | None = None
    fields: Mapping[str, Ty] | None = field(default=None)

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list({self.elem or DYN})"
        if self.kind == "map":
            return f"map(string, {self.elem or DYN})"
        if self.kind == "optional":
            return f"optional_type({self.elem or DYN})"
        return self.kind


DYN = Ty("dyn")
INT = Ty("int")
UINT = Ty("uint")
DOUBLE = Ty("double")
BOOL = Ty("bool")
STRING = Ty("string")
BYTES = Ty("bytes")
NULL = Ty("null_type")
_PRIMITIVES = {t.kind: t for t in (DYN, INT, UINT, DOUBLE, BOOL, STRING, BYTES, NULL)}


def list_of(elem: Ty) -> Ty:
    return Ty("list", elem)


def map_of(elem: Ty) -> Ty:
    return Ty("map", elem)


def from_schema(schema: Schema | None) -> Ty:
    """The CEL type of values under an OpenAPI schema (as the apiserver's SchemaDeclType maps them)."""
    if schema is None or schema.int_or_string or "oneOf" in schema.raw or "anyOf" in schema.raw:
        return DYN
    kind = schema.type
    if kind == "integer":
        return INT
    if kind == "number":
        return DOUBLE
    if kind == "boolean":
        return BOOL
    if kind == "string":
        return STRING
    if kind == "array":
        return list_of(from_schema(schema.items))
    if kind == "object":
        if schema.properties:
            return Ty("object", schema=schema)
        extra = schema.additional_properties
        if extra is not None:
            return map_of(from_schema(extra))
        return DYN if schema.preserves_unknown_fields or schema.raw.get("additionalProperties") is True \
            else map_of(DYN)
    return DYN


def select(t: Ty, name: str, optional: bool = False) -> Ty:
    """The type of ``t.name``; cel-go's errors for missing fields and scalars."""
    if t.kind == "optional":
        return Ty("optional", select(t.elem or DYN, name))
    if optional:
        return Ty("optional", select(t, name))
    if t.kind == "dyn":
        return DYN
    if t.kind == "map":
        return t.elem or DYN
    if t.kind == "object":
        if t.fields is not None:
            if name not in t.fields:
                raise TypeCheckError(f"undefined field '{name}'")
            return t.fields[name]
        assert t.schema is not None
        child = t.schema.field(name)
        if child is None:
            if t.schema.preserves_unknown_fields:
                return DYN
            raise TypeCheckError(f"undefined field '{name}'")
        return from_schema(child)
    raise TypeCheckError(f"type '{t}' does not support field selection")


def _index(t: Ty, index: Node, env: Mapping[str, Ty], optional: bool) -> Ty:
    key = infer(index, env)
    if t.kind == "optional":
        return Ty("optional", _index(t.elem or DYN, index, env, False))
    if optional:
        return Ty("optional", _index(t, index, env, False))
    if t.kind == "list":
        if key.kind not in ("int", "uint", "dyn"):
            raise TypeCheckError(f"found no matching overload for '_[_]' applied to '({t}, {key})'")
        return t.elem or DYN
    if t.kind == "object" and index.op == "lit" and isinstance(index.value, str):
        return select(t, index.value)
    if t.kind in ("map", "object"):
        return t.elem or DYN if t.kind == "map" else DYN
    if t.kind == "dyn":
        return DYN
    raise TypeCheckError(f"found no matching overload for '_[_]' applied to '({t}, {key})'")


_ADDABLE = frozenset({"int", "uint", "double", "string", "bytes", "list"})
_NUMERIC = frozenset({"int", "uint", "double"})


def _arith(op: str, left: Ty, right: Ty) -> Ty:
    allowed = _ADDABLE if op == "_+_" else _NUMERIC
    if left.kind == "dyn" or right.kind == "dyn":
        other = right if left.kind == "dyn" else left
        return other if other.kind in allowed else DYN
    if left.kind == right.kind and left.kind in allowed:
        return left if left.kind != "list" else list_of(_unify(left.elem or DYN, right.elem or DYN))
    raise TypeCheckError(f"found no matching overload for '{op}' applied to '({left}, {right})'")


def _unify(a: Ty, b: Ty) -> Ty:
    if a.kind == "null_type":
        return b
    if b.kind == "null_type" or a is b or (a.kind == b.kind and a.kind in _PRIMITIVES):
        return a
    if a.kind == b.kind == "list":
        return list_of(_unify(a.elem or DYN, b.elem or DYN))
    return DYN


_GLOBAL_RESULTS = {
    "size": INT, "int": INT, "uint": UINT, "double": DOUBLE, "string": STRING, "bytes": BYTES, "bool": BOOL,
    "has": BOOL, "matches": BOOL, "isQuantity": BOOL, "isSemver": BOOL, "isURL": BOOL, "isIP": BOOL,
    "isCIDR": BOOL, "random.seededString": STRING, "random.seededInt": INT, "hash.fnv64a": BYTES,
    "hash.sha256": BYTES, "hash.md5": BYTES, "json.marshal": STRING, "base64.encode": STRING,
    "base64.decode": BYTES, "lists.range": list_of(INT), "strings.quote": STRING,
}
_MEMBER_RESULTS = {
    "contains": BOOL, "startsWith": BOOL, "endsWith": BOOL, "matches": BOOL, "isSorted": BOOL, "hasValue": BOOL,
    "size": INT, "indexOf": INT, "lastIndexOf": INT, "split": list_of(STRING), "join": STRING,
    "lowerAscii": STRING, "upperAscii": STRING, "replace": STRING, "trim": STRING, "substring": STRING,
    "charAt": STRING, "format": STRING, "find": STRING, "findAll": list_of(STRING), "getHost": STRING,
    "getHostname": STRING, "getPort": STRING, "getScheme": STRING, "getEscapedPath": STRING,
    "isLessThan": BOOL, "isGreaterThan": BOOL, "asInteger": INT, "asApproximateFloat": DOUBLE,
    "compareTo": INT, "major": INT, "minor": INT, "patch": INT,
}
_SAME_AS_TARGET = frozenset({"slice", "sort", "distinct", "reverse", "merge"})
_COMPREHENSIONS = frozenset(
    {"all", "exists", "exists_one", "existsOne", "transformList", "transformMap", "transformMapEntry"}
)


def _elements(t: Ty) -> Ty:
    """What a comprehension iterates over: list elements, map keys."""
    if t.kind == "list":
        return t.elem or DYN
    if t.kind in ("map", "object"):
        return STRING
    return DYN


def _member_call(node: Node, target: Ty, env: Mapping[str, Ty]) -> Ty:
    name, args = node.name, node.args
    two_var = len(args) >= 3 and args[0].op == "ident" and args[1].op == "ident"
    if name in _COMPREHENSIONS and args and args[0].op == "ident":
        inner = {**env, args[0].name: _elements(target)}
        if two_var and (name.startswith("transform") or len(args) == 3):
            inner[args[1].name] = (target.elem or DYN) if target.kind in ("list", "map") else DYN
            inner[args[0].name] = INT if target.kind == "list" else STRING
        for arg in args[2:-1]:
            infer(arg, inner)
        result = infer(args[-1], inner)
        if name == "transformMap":
            # Keys stay the target's: a map's keep string keys; a list's indices make int keys, not expressible here.
            return map_of(result) if target.kind in ("map", "object") else DYN
        if name == "transformMapEntry":
            return DYN
        return list_of(result) if name == "transformList" else BOOL
    if name in ("map", "filter") and args and args[0].op == "ident":
        inner = {**env, args[0].name: _elements(target)}
        for arg in args[1:-1]:
            infer(arg, inner)
        result = infer(args[-1], inner)
        return list_of(result) if name == "map" else (target if target.kind == "list" else list_of(DYN))
    if name == "bind" and qualified_name(node.target or Node("lit")) == "cel" and len(args) == 3:
        return infer(args[2], {**env, args[0].name: infer(args[1], env)})
    for arg in args:
        infer(arg, env)
    if name in ("orValue", "value"):
        return (target.elem or DYN) if target.kind == "optional" else target
    if name in ("sum", "min", "max"):
        return (target.elem or DYN) if target.kind == "list" else DYN
    if name == "flatten":
        return list_of(DYN)
    if name in _SAME_AS_TARGET:
        return target if target.kind in ("list", "string", "map", "object") else DYN
    return _MEMBER_RESULTS.get(name, DYN)


def infer(node: Node, env: Mapping[str, Ty]) -> Ty:
    """The static type of ``node`` given variable types; :class:`TypeCheckError` when it cannot check."""
    if node.op == "lit":
        return _PRIMITIVES.get(node.name, DYN)
    if node.op == "ident":
        return env.get(node.name, DYN)
    if node.op == "list":
        elems = [infer(arg, env) for arg in node.args]
        elem = elems[0] if elems else DYN
        for other in elems[1:]:
            elem = _unify(elem, other)
        return list_of(elem)
    if node.op == "map":
        keys, values = node.args[::2], node.args[1::2]
        types = [infer(v, env) for v in values]
        if keys and all(k.op == "lit" and isinstance(k.value, str) for k in keys):
            return Ty("object", fields={str(k.value): t for k, t in zip(keys, types, strict=True)})
        return map_of(DYN)
    if node.op == "select":
        assert node.target is not None
        name = qualified_name(node)
        if name is not None and name in env:
            return env[name]
        return select(infer(node.target, env), node.name, node.optional)
    if node.op == "index":
        assert node.target is not None
        return _index(infer(node.target, env), node.args[0], env, node.optional)
    return _call(node, env)


def _call(node: Node, env: Mapping[str, Ty]) -> Ty:
    if node.target is not None:
        namespace = qualified_name(node.target) or ""
        root = namespace.split(".")[0]
        if root not in NAMESPACES or root in env or namespace == "cel":
            return _member_call(node, infer(node.target, env), env)
        node = Node("call", f"{namespace}.{node.name}", node.args)
    args = [infer(arg, env) for arg in node.args]
    name = node.name
    if name in ("_+_", "_-_", "_*_", "_/_", "_%_"):
        return _arith(name, *args)
    if name == "-_":
        return args[0]
    if name == "_?_:_":
        return _unify(args[1], args[2])
    if name in ("_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "@in", "_&&_", "_||_", "!_"):
        return BOOL
    if name in ("lists.setAtIndex", "lists.insertAtIndex", "lists.removeAtIndex"):
        return args[0]
    return _GLOBAL_RESULTS.get(name, DYN)


def mismatch(output: Ty, expected: Ty) -> str | None:
    """Why ``output`` cannot land where ``expected`` is declared; ``None`` when it can (kro's rules)."""
    if expected.kind == "dyn" or output.kind in ("dyn", "null_type"):
        return None
    if output.kind == "optional":
        return mismatch(output.elem or DYN, expected)
    if expected.kind in _PRIMITIVES:
        same = output.kind == expected.kind or (output.kind in _NUMERIC and expected.kind in _NUMERIC)
        return None if same else _returns(output, expected)
    if expected.kind == "list":
        if output.kind != "list":
            return _returns(output, expected)
        return mismatch(output.elem or DYN, expected.elem or DYN)
    if output.kind not in ("map", "object"):
        return _returns(output, expected)
    if output.kind == "map" or output.fields is None:
        if expected.kind == "map" and output.kind == "map":
            return mismatch(output.elem or DYN, expected.elem or DYN)
        return _schema_subset(output, expected)
    for name, child in output.fields.items():
        if expected.kind == "map":
            target = expected.elem or DYN
        else:
            try:
                target = select(expected, name)
            except TypeCheckError:
                return f'field "{name}" exists in output but not in expected type'
        reason = mismatch(child, target)
        if reason:
            return reason
    return None


def _schema_subset(output: Ty, expected: Ty) -> str | None:
    if output.schema is None or expected.kind != "object" or expected.schema is None:
        return None
    if output.schema.raw is expected.schema.raw or expected.schema.preserves_unknown_fields:
        return None
    for name in output.schema.properties:
        if expected.schema.field(name) is None:
            return f'field "{name}" exists in output but not in expected type'
    return None


def _returns(output: Ty, expected: Ty) -> str:
    return f'returns type "{output}" but expected "{expected}"'


def schema_of(t: Ty, depth: int = 0) -> dict[str, Any]:
    """The OpenAPI schema a status field gets from its expression's type (kro's inferStatusSchema)."""
    simple = {"bool": "boolean", "int": "integer", "uint": "integer", "double": "number", "string": "string"}
    if t.kind in simple:
        return {"type": simple[t.kind]}
    if t.kind == "bytes":
        return {"type": "string", "format": "byte"}
    if t.kind == "optional":
        return schema_of(t.elem or DYN, depth)
    if t.kind == "list":
        return {"type": "array", "items": schema_of(t.elem or DYN, depth + 1)}
    if t.kind == "map":
        return {"type": "object", "additionalProperties": schema_of(t.elem or DYN, depth + 1)}
    if t.kind == "object" and t.fields is not None:
        return {"type": "object", "properties": {k: schema_of(v, depth + 1) for k, v in t.fields.items()}}
    if t.kind == "object" and t.schema is not None:
        return inline(t.schema, depth)
    return {"x-kubernetes-preserve-unknown-fields": True}


_DROPPED = frozenset({"x-kubernetes-group-version-kind", "$ref", "allOf"})


def inline(schema: Schema, depth: int = 0) -> dict[str, Any]:
    """A copy of ``schema`` with every ``$ref`` expanded (recursive types cut off deep down)."""
    if depth > 12:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {k: v for k, v in schema.raw.items() if k not in _DROPPED}
    if schema.type and "type" not in out and "oneOf" not in out:
        out["type"] = schema.type
    if "properties" in out:
        out["properties"] = {k: inline(Schema(v, schema.definitions), depth + 1) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), Mapping):
            out[key] = inline(Schema(out[key], schema.definitions), depth + 1)
    return out


_JSON_TYPES = {"object": "object", "array": "array", "string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean"}


def _allowed_types(schema: Schema) -> set[str] | None:
    """JSON types a literal may have here; ``None`` for anything (no type, preserve-unknown-fields)."""
    if schema.int_or_string:
        return {"integer", "string"}
    alternatives = schema.raw.get("oneOf") or schema.raw.get("anyOf")
    if alternatives:
        return {str(a.get("type")) for a in alternatives if isinstance(a, Mapping) and a.get("type")} or None
    kind = schema.type
    if not kind or (schema.preserves_unknown_fields and kind == "object"):
        return None
    return {kind, "integer"} if kind == "number" else {kind}


def walk_template(value: Any, schema: Schema | None, path: tuple[str | int, ...] = (),
                  out: dict[tuple[str | int, ...], Schema | None] | None = None,
                  ) -> dict[tuple[str | int, ...], Schema | None]:
    """Check literals as the API server would and collect the schema of every expression field
    (kro's parser.ParseResource): unknown fields and wrong literal types are errors; preserve-unknown-fields
    subtrees are not checked."""
    from kplane.graphs.expressions import find_expressions, join_path

    out = {} if out is None else out
    if isinstance(value, str) and find_expressions(value):
        out[path] = schema
        return out
    if schema is None or value is None:
        if isinstance(value, Mapping | list):
            _walk_children(value, None, path, out)
        return out
    allowed = _allowed_types(schema)
    got = json_type(value)
    if allowed is not None and got not in allowed:
        expected = sorted(allowed)[0] if len(allowed) == 1 else " or ".join(sorted(allowed))
        raise TypeCheckError(f"expected {expected} type for path {join_path(path)}, got {got}")
    if isinstance(value, Mapping):
        for key, child in value.items():
            sub = schema.field(str(key))
            if sub is None and not schema.preserves_unknown_fields and allowed is not None:
                raise TypeCheckError(f"schema not found for field {key}")
            walk_template(child, sub, (*path, str(key)), out)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            walk_template(child, schema.items, (*path, i), out)
    return out


def _walk_children(value: Any, schema: Schema | None, path: tuple[str | int, ...],
                   out: dict[tuple[str | int, ...], Schema | None]) -> None:
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, child in items:
        walk_template(child, schema, (*path, key if isinstance(key, int) else str(key)), out)
