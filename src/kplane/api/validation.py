"""Structural validation of an object against an OpenAPI v3 schema, worded as the API server words it.

Kubernetes validates custom resources with kube-openapi's validator and turns its errors into field errors in
``apiextensions-apiserver/pkg/apiserver/validation/validation.go``: type errors become
``FieldValueTypeInvalid`` with the found JSON type as the value, ``required`` becomes ``Required value``,
``enum`` becomes ``Unsupported value``, ``maxLength`` becomes ``Too long``, ``maxItems``/``maxProperties``
become ``Too many``, and everything else is ``Invalid value: <value>: <path> in body <kube-openapi message>``.
List-type and embedded-resource checks follow ``apiextensions-apiserver/pkg/apiserver/schema/listtype`` and
``objectmeta``."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from kplane.api.meta import json_bytes
from kplane.api.schema import Schema
from kplane.api.status import Cause, field_required

MAX_JSON_INT = 2**53 - 1
"""kube-openapi accepts a float as an integer when it is whole and within ±(2^53-1)."""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


_FOUND: dict[type, str] = {dict: "object", str: "string", int: "integer", bool: "boolean", float: "number",
                           list: "array"}
"""``json_type`` of the types decoded JSON is made of, looked up rather than tested in turn."""


def render(value: Any) -> str:
    """A value as Go's field errors print it: strings quoted, numbers and booleans bare, the rest as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def child_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _invalid(path: str, value: Any, message: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {render(value)}: {path} in body {message}", path)


def _type_error(path: str, found: str, expected: str) -> Cause:
    return Cause(
        "FieldValueTypeInvalid",
        f'Invalid value: "{found}": {path} in body must be of type {expected}: "{found}"',
        path,
    )


def _too_many(path: str, actual: int, limit: int) -> Cause:
    noun = "item" if limit == 1 else "items"
    return Cause("FieldValueTooMany", f"Too many: {actual}: must have at most {limit} {noun}", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {render(value)}", path)


def _type_ok(value: Any, plan: _Plan) -> str | None:
    """The expected type named as kube-openapi names it when ``value`` does not fit, else None."""
    if value is None:
        if plan.nullable or not (plan.type or plan.int_or_string):
            return None
        return "integer,string" if plan.int_or_string else plan.type
    if plan.int_or_string:
        return None if json_type(value) in ("integer", "string") or _whole(value) else "integer,string"
    expected = plan.type
    if not expected:
        return None
    found = _FOUND.get(type(value)) or json_type(value)
    if not expected or found == expected:
        return None
    if expected == "number" and found == "integer":
        return None
    if expected == "integer" and _whole(value):
        return None
    return expected


def _whole(value: Any) -> bool:
    return (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) <= MAX_JSON_INT
    )


# --- formats (kube-openapi strfmt, the subset apiextensions-apiserver/pkg/apiserver/validation/formats.go kee

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-{v}[0-9a-fA-F]{3}-[89abAB]?[0-9a-fA-F]{3,4}-[0-9a-fA-F]{12}"
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_DURATION = re.compile(r"^\s*([+-]?\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w|[a-z]+)\s*)+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _parses(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return False
        return True

    return check


def _date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _date_time,
    "datetime": _date_time,
    "date": _parses(lambda s: datetime.strptime(s, "%Y-%m-%d")),
    "duration": lambda s: bool(_DURATION.match(s)),
    "byte": _base64,
    "uuid": lambda s: bool(re.fullmatch(_UUID.replace("{v}", "[0-9a-fA-F]"), s)),
    "uuid3": lambda s: bool(re.fullmatch(_UUID.replace("{v}", "3"), s)),
    "uuid4": lambda s: bool(re.fullmatch(_UUID.replace("{v}", "4"), s)),
    "uuid5": lambda s: bool(re.fullmatch(_UUID.replace("{v}", "5"), s)),
    "ipv4": _parses(ipaddress.IPv4Address),
    "ipv6": _parses(ipaddress.IPv6Address),
    "cidr": lambda s: "/" in s and _parses(ipaddress.ip_network)(s),
    "mac": lambda s: bool(_MAC.match(s)),
    "hostname": lambda s: bool(_HOSTNAME.match(s)),
    "email": lambda s: bool(_EMAIL.match(s)),
}


# --- the walk -----------------------------------------------------------------------------------------------


class _Plan:
    """The keywords of one schema node that validation reads, gathered once per node (``Schema.derived``):
    most nodes of a built-in schema carry only a type, so most of the checks below can be skipped."""

    __slots__ = ("all_of", "array", "children", "embedded", "enum", "enum_strings", "extra", "int_or_string", "leaf",
                 "nullable", "numeric", "object", "object_limits", "properties", "required", "string", "type")

    def __init__(self, schema: Schema) -> None:
        get = schema.get
        self.type = schema.type
        self.int_or_string = schema.int_or_string
        self.nullable = bool(get("nullable"))
        self.enum = bool(get("enum"))
        allowed = get("enum")
        self.enum_strings = frozenset(a for a in allowed if isinstance(a, str)) if isinstance(allowed, list) \
            else frozenset()
        fmt = get("format")
        self.string = (any(get(k) is not None for k in ("maxLength", "minLength", "pattern"))
                       or (isinstance(fmt, str) and fmt in FORMATS and not self.int_or_string))
        self.numeric = any(get(k) is not None for k in ("maximum", "minimum")) or bool(get("multipleOf"))
        self.array = (schema.items is not None or get("x-kubernetes-list-type") in ("set", "map")
                      or any(get(k) is not None for k in ("maxItems", "minItems")))
        self.object = (bool(get("required")) or schema.embedded_resource or bool(schema.properties)
                       or schema.additional_properties is not None
                       or any(get(k) is not None for k in ("maxProperties", "minProperties")))
        self.all_of = tuple(Schema(sub, schema.definitions) for sub in get("allOf") or [])
        self.required = tuple(get("required") or ())
        self.embedded = schema.embedded_resource
        self.object_limits = any(get(k) is not None for k in ("maxProperties", "minProperties"))
        self.properties = schema.properties
        # Each declared property's node and its ``leaf`` type, filled in as objects meet them; every other
        # key shares ``extra`` (the additionalProperties node), so what is kept is bounded by the schema.
        self.children: dict[str, tuple[Schema | None, str]] = {}
        self.extra: tuple[Schema | None, str] | None = None
        # A node that checks nothing but its type: a value of that type passes without a visit.
        checks = (self.enum or self.string or self.numeric or self.array or self.object or self.all_of
                  or self.int_or_string)
        self.leaf = "" if checks else self.type


def _plan(schema: Schema) -> _Plan:
    return schema.derived("validation.plan", _Plan)


def validate_update(obj: Any, old: Mapping[str, Any], schema: Schema) -> list[Cause]:
    """:func:`validate` for an update whose stored object is ``old``: a top-level field that ``obj`` leaves
    as it was, and whose value this schema already passed, is not walked again (see :class:`CleanValues`)."""
    plan = _plan(schema)
    if type(obj) is not dict or not plan.object or plan.enum or plan.all_of or _type_ok(obj, plan) is not None:
        return validate(obj, schema)
    clean = schema.derived("validation.clean", CleanValues.for_schema)

    def child(value: Any, sub: Schema, key: str) -> list[Cause]:
        return clean.check(key, value, old, lambda: validate(value, sub, key))

    return _object(obj, schema, "", child)


def validate(obj: Any, schema: Schema, path: str = "") -> list[Cause]:
    """Every structural violation of ``obj`` under ``schema``; fields are named as upstream names them."""
    plan = _plan(schema)
    expected = _type_ok(obj, plan)
    if expected is not None:
        return [_type_error(path, json_type(obj), expected)]
    if obj is None:
        return []
    causes = _enum(obj, schema, path) if plan.enum and not (type(obj) is str and obj in plan.enum_strings) else []
    if isinstance(obj, str):
        if plan.string:
            causes += _string(obj, schema, path)
    elif isinstance(obj, dict):
        if plan.object:
            causes += _object(obj, schema, path)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        if plan.numeric:
            causes += _numeric(obj, schema, path)
    elif isinstance(obj, list):
        if plan.array:
            causes += _array(obj, schema, path)
    elif isinstance(obj, Mapping) and plan.object:
        causes += _object(obj, schema, path)
    for sub in plan.all_of:
        causes += validate(obj, sub, path)
    return causes


def _enum(obj: Any, schema: Schema, path: str) -> list[Cause]:
    allowed = schema.get("enum")
    if (
        not allowed
        or any(obj == a and type(obj) is type(a) for a in allowed)
        or (isinstance(obj, int | float) and not isinstance(obj, bool) and obj in allowed)
    ):
        return []
    shown = [a if isinstance(a, str) else json.dumps(a) for a in allowed]
    choices = ", ".join(json.dumps(a) for a in shown)
    return [
        Cause(
            "FieldValueNotSupported", f"Unsupported value: {render(obj)}: supported values: {choices}", path
        )
    ]


def _string(obj: str, schema: Schema, path: str) -> list[Cause]:
    causes: list[Cause] = []
    length = len(obj)
    max_length = schema.get("maxLength")
    if max_length is not None and length > max_length:
        unit = "byte" if max_length == 1 else "bytes"
        causes.append(Cause("FieldValueTooLong", f"Too long: may not be more than {max_length} {unit}", path))
    min_length = schema.get("minLength")
    if min_length is not None and length < min_length:
        causes.append(_invalid(path, obj, f"should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if pattern is not None and not re.search(pattern, obj):
        causes.append(_invalid(path, obj, f"should match '{pattern}'"))
    fmt = schema.get("format")
    check = FORMATS.get(fmt) if isinstance(fmt, str) and not schema.int_or_string else None
    if check is not None and not check(obj):
        causes.append(
            Cause(
                "FieldValueTypeInvalid",
                f"Invalid value: {render(obj)}: {path} in body must be of type {fmt}: {render(obj)}",
                path,
            )
        )
    return causes


def _numeric(obj: float, schema: Schema, path: str) -> list[Cause]:
    causes: list[Cause] = []
    maximum = schema.get("maximum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and obj >= maximum:
            causes.append(_invalid(path, obj, f"should be less than {_number(maximum)}"))
        elif obj > maximum:
            causes.append(_invalid(path, obj, f"should be less than or equal to {_number(maximum)}"))
    minimum = schema.get("minimum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and obj <= minimum:
            causes.append(_invalid(path, obj, f"should be greater than {_number(minimum)}"))
        elif obj < minimum:
            causes.append(_invalid(path, obj, f"should be greater than or equal to {_number(minimum)}"))
    multiple = schema.get("multipleOf")
    if multiple and not (obj / multiple).is_integer():
        causes.append(_invalid(path, obj, f"should be a multiple of {_number(multiple)}"))
    return causes


def _array(obj: list[Any], schema: Schema, path: str) -> list[Cause]:
    causes: list[Cause] = []
    max_items = schema.get("maxItems")
    if max_items is not None and len(obj) > max_items:
        causes.append(_too_many(path, len(obj), max_items))
    min_items = schema.get("minItems")
    if min_items is not None and len(obj) < min_items:
        causes.append(_invalid(path, len(obj), f"should have at least {min_items} items"))
    items = schema.items
    if items is not None:
        for i, item in enumerate(obj):
            causes += validate(item, items, f"{path}[{i}]")
    return causes + list_type_errors(obj, schema, path)


def list_type_errors(obj: list[Any], schema: Schema, path: str) -> list[Cause]:
    """``x-kubernetes-list-type``: sets hold no duplicates; maps need their keys, and no key twice."""
    lt = schema.get("x-kubernetes-list-type")
    causes: list[Cause] = []
    if lt == "set":
        seen: list[Any] = []
        for i, item in enumerate(obj):
            if item in seen:
                causes.append(duplicate(f"{path}[{i}]", item))
            else:
                seen.append(item)
    elif lt == "map":
        keys = schema.list_map_keys
        seen_keys: list[tuple[Any, ...]] = []
        for i, item in enumerate(obj):
            if not isinstance(item, Mapping):
                continue
            missing = [k for k in keys if k not in item and k not in _key_defaults(schema)]
            causes += [field_required(f"{path}[{i}].{k}") for k in missing]
            if missing:
                continue
            key = tuple(item.get(k, _key_defaults(schema).get(k)) for k in keys)
            if key in seen_keys:
                causes.append(duplicate(f"{path}[{i}]", {k: item.get(k) for k in keys}))
            else:
                seen_keys.append(key)
    return causes


def _key_defaults(schema: Schema) -> dict[str, Any]:
    items = schema.items
    if items is None:
        return {}
    out = {}
    for k in schema.list_map_keys:
        sub = items.field(k)
        if sub is not None and "default" in sub.raw:
            out[k] = sub.raw["default"]
    return out


def _object(obj: Mapping[str, Any], schema: Schema, path: str,
            child: Callable[[Any, Schema, str], list[Cause]] = validate) -> list[Cause]:
    causes: list[Cause] = []
    plan = _plan(schema)
    for name in plan.required:
        if name not in obj:
            causes.append(field_required(child_path(path, name)))
    if plan.object_limits:
        max_props = schema.get("maxProperties")
        if max_props is not None and len(obj) > max_props:
            causes.append(_too_many(path, len(obj), max_props))
        min_props = schema.get("minProperties")
        if min_props is not None and len(obj) < min_props:
            causes.append(_invalid(path, len(obj), f"should have at least {min_props} properties"))
    if plan.embedded:
        causes += [field_required(child_path(path, k)) for k in ("apiVersion", "kind") if not obj.get(k)]
    children, properties, extra = plan.children, plan.properties, plan.extra
    for key, value in obj.items():
        entry = children.get(key)
        if entry is None:
            if key in properties:
                entry = _declared(plan, schema, key)
            else:
                entry = extra = plan.extra = extra or _entry(schema.additional_properties)
        sub, leaf = entry
        if sub is not None and (not leaf or leaf != _FOUND.get(type(value))):
            causes += child(value, sub, child_path(path, key))
    return causes


def _declared(plan: _Plan, schema: Schema, name: str) -> tuple[Schema | None, str]:
    entry = plan.children[name] = _entry(schema.field(name))
    return entry


def _entry(sub: Schema | None) -> tuple[Schema | None, str]:
    return sub, _plan(sub).leaf if sub is not None else ""


T = TypeVar("T")
CLEAN_VALUES = 4096
"""Values remembered per schema node and check: at about a kilobyte each, a few megabytes at most."""


class CleanValues:
    """Top-level field values (as JSON text) that a check of one schema node found nothing wrong with.

    Most updates change one part of an object (its status, a label) and hand the rest back as stored, and a
    check is a function of the value and the schema alone, so a value passed once passes again; keying by
    the text keeps this exact even for objects stored before the schema changed, unlike upstream's
    ratcheting, which skips unchanged fields outright. Only values equal to the stored object's count: that
    rules out what JSON text cannot tell apart (NaN from null, tuples from lists), which stored objects never
    hold. ``metadata`` is always checked, since its resourceVersion makes its text new on every write.
    """

    def __init__(self, size: int = CLEAN_VALUES) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[str, bytes], None] = OrderedDict()

    @classmethod
    def for_schema(cls, _: Schema) -> CleanValues:
        return cls()

    def check(self, key: str, value: Any, old: Mapping[str, Any], run: Callable[[], list[T]]) -> list[T]:
        """``run()``, or nothing when field ``key`` holds ``value`` in ``old`` too and passed before."""
        kind = type(value)
        if key == "metadata" or (kind is not dict and kind is not list) or old.get(key) != value:
            return run()
        raw = json_bytes(value)
        if raw is None:
            return run()
        seen = (key, raw)
        if seen in self._seen:
            self._seen.move_to_end(seen)
            return []
        found = run()
        if not found:
            self._seen[seen] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return found
