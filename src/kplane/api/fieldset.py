"""Field paths and sets of them, as server-side apply tracks ownership, and their ``FieldsV1`` wire form.

Semantics follow sigs.k8s.io/structured-merge-diff (fieldpath/element.go, set.go, serialize.go, and
typed/tofieldset.go, typed/compare.go): a path is a sequence of elements, each a field name (``f:``), a
list-map key (``k:``), a set value (``v:``) or an index (``i:``). A set stores *members* (paths it owns)
and *children* (sub-sets under an element); ``FieldsV1`` writes a member that also has children as a
``"."`` entry. Elements sort as upstream's ``PathElement.Compare`` does, which fixes the JSON key order.

Walking an object against its schema uses one notion of *shape* (scalar, atomic, granular map,
associative list); where the schema says nothing (no schema, preserve-unknown-fields) the shape is
deduced from the value as upstream's ``deduced`` type does: maps are granular, lists atomic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kplane.api.schema import Schema

PathElement = tuple[str, Any]
"""``("f", name)``, ``("k", ((field, frozen value), ...))``, ``("v", frozen value)`` or ``("i", index)``."""
Path = tuple[PathElement, ...]

SCALAR, ATOMIC, MAP, LIST = "scalar", "atomic", "map", "list"


class TypedError(ValueError):
    """An object does not fit its schema the way structured-merge-diff requires (e.g. a bad list-map item)."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"{path_string(path)}: {message}" if path else message)


# --- values inside path elements -------------------------------------------------------------------

def freeze(value: Any) -> tuple[Any, ...]:
    """A hashable, type-tagged copy of a JSON value (so ``true`` and ``1`` stay distinct)."""
    if value is None:
        return ("z",)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list | tuple):
        return ("l", tuple(freeze(v) for v in value))
    if isinstance(value, Mapping):
        return ("m", tuple(sorted((str(k), freeze(v)) for k, v in value.items())))
    raise TypeError(f"not a JSON value: {value!r}")


def thaw(frozen: tuple[Any, ...]) -> Any:
    tag = frozen[0]
    if tag == "z":
        return None
    if tag == "l":
        return [thaw(v) for v in frozen[1]]
    if tag == "m":
        return {k: thaw(v) for k, v in frozen[1]}
    return frozen[1]


# upstream value.Compare: numbers < strings < booleans < lists < maps < null
_RANK = {"n": 0, "s": 1, "b": 2, "l": 3, "m": 4, "z": 5}


def _value_key(frozen: tuple[Any, ...]) -> tuple[Any, ...]:
    tag = frozen[0]
    if tag == "l":
        return (3, tuple(_value_key(v) for v in frozen[1]))
    if tag == "m":
        return (4, tuple((k, _value_key(v)) for k, v in frozen[1]))
    if tag == "z":
        return (5,)
    return (_RANK[tag], frozen[1])


def element_key(pe: PathElement) -> tuple[Any, ...]:
    """Sort key matching upstream ``PathElement.Compare``: fields, then keys, then values, then indices."""
    kind, payload = pe
    if kind == "f":
        return (0, payload)
    if kind == "k":
        return (1, tuple((name, _value_key(v)) for name, v in payload))
    if kind == "v":
        return (2, _value_key(payload))
    return (3, payload)


def field(name: str) -> PathElement:
    return ("f", name)


def key(**fields: Any) -> PathElement:
    return ("k", tuple(sorted((k, freeze(v)) for k, v in fields.items())))


def value(v: Any) -> PathElement:
    return ("v", freeze(v))


def index(i: int) -> PathElement:
    return ("i", i)


def make_path(*parts: str | PathElement) -> Path:
    """``make_path("spec", "replicas")``; plain strings are field names."""
    return tuple(field(p) if isinstance(p, str) else p for p in parts)


# --- text forms ------------------------------------------------------------------------------------

def go_json(v: Any) -> str:
    """JSON as Go's encoder writes it (compact, HTML-escaped), which upstream uses inside ``k:``/``v:``."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        v = int(v)
    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                     ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text


def element_to_string(pe: PathElement) -> str:
    """The ``FieldsV1`` key of one element (upstream fieldpath/serialize-pe.go)."""
    kind, payload = pe
    if kind == "f":
        return "f:" + payload
    if kind == "k":
        inner = ",".join(f"{go_json(name)}:{go_json(thaw(v))}" for name, v in payload)
        return "k:{" + inner + "}"
    if kind == "v":
        return "v:" + go_json(thaw(payload))
    return f"i:{payload}"


def element_from_string(text: str) -> PathElement | None:
    """Parse one ``FieldsV1`` key; ``None`` for an unknown kind, which upstream skips for forward compat."""
    if len(text) < 2:
        raise ValueError(f"key must be 2 characters long: {text!r}")
    if text[1] != ":":
        raise ValueError(f"missing colon: {text}")
    kind, rest = text[0], text[2:]
    if kind == "f":
        return ("f", rest)
    if kind == "i":
        try:
            return ("i", int(rest))
        except ValueError:
            raise ValueError(f"invalid index in {text!r}") from None
    if kind not in ("k", "v"):
        return None
    try:
        parsed = json.loads(rest)
    except ValueError as err:
        raise ValueError(f"invalid JSON in {text!r}: {err}") from None
    if kind == "v":
        return ("v", freeze(parsed))
    if not isinstance(parsed, dict):
        raise ValueError(f"key element must be a JSON object: {text!r}")
    return ("k", tuple(sorted((k, freeze(v)) for k, v in parsed.items())))


def _go_value_string(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(_go_value_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "".join(f"{k}={_go_value_string(x)}" for k, x in v.items())
    return str(v)


def element_display(pe: PathElement) -> str:
    """Upstream ``PathElement.String``: ``.name``, ``[name="app"]``, ``[=value]``, ``[3]``."""
    kind, payload = pe
    if kind == "f":
        return "." + payload
    if kind == "k":
        return "[" + ",".join(f"{name}={_go_value_string(thaw(v))}" for name, v in payload) + "]"
    if kind == "v":
        return f"[={_go_value_string(thaw(payload))}]"
    return f"[{payload}]"


def path_string(path: Path) -> str:
    """How conflicts name a field: ``.spec.template.spec.containers[name="app"].image``."""
    return "".join(element_display(pe) for pe in path)


# --- the set ---------------------------------------------------------------------------------------

class FieldSet:
    """An immutable set of field paths, stored as a tree of members and children."""

    __slots__ = ("_children", "_members")

    def __init__(self, members: Iterable[PathElement] = (),
                 children: Mapping[PathElement, FieldSet] | None = None) -> None:
        self._members: frozenset[PathElement] = frozenset(members)
        self._children: dict[PathElement, FieldSet] = {
            pe: fs for pe, fs in (children or {}).items() if not fs.empty
        }

    @classmethod
    def from_paths(cls, paths: Iterable[Path]) -> FieldSet:
        builder = Builder()
        for p in paths:
            builder.insert(p)
        return builder.freeze()

    @property
    def members(self) -> frozenset[PathElement]:
        return self._members

    @property
    def children(self) -> Mapping[PathElement, FieldSet]:
        return self._children

    @property
    def empty(self) -> bool:
        return not self._members and not self._children

    def __bool__(self) -> bool:
        return not self.empty

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self._members == other._members and self._children == other._children

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._members) + sum(len(c) for c in self._children.values())

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, tuple) or not path:
            return False
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node._children.get(pe) if node is not None else None
        return node is not None and path[-1] in node._members

    def __iter__(self) -> Iterator[Path]:
        return self.paths()

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Upstream iteration order: this level's members (sorted), then each child's paths (sorted)."""
        for pe in sorted(self._members, key=element_key):
            yield (*prefix, pe)
        for pe in sorted(self._children, key=element_key):
            yield from self._children[pe].paths((*prefix, pe))

    def with_prefix(self, pe: PathElement) -> FieldSet:
        return self._children.get(pe, EMPTY)

    def union(self, other: FieldSet) -> FieldSet:
        """Shares structure: ``self`` itself when ``other`` adds nothing, so unchanged ownership stays the
        same object from write to write (and its cached wire form with it)."""
        if other.empty:
            return self
        if self.empty:
            return other
        members = self._members | other._members
        changed = len(members) != len(self._members)
        children = dict(self._children)
        for pe, fs in other._children.items():
            mine = children.get(pe)
            merged = fs if mine is None else mine.union(fs)
            if merged is not mine:
                children[pe] = merged
                changed = True
        return FieldSet(members, children) if changed else self

    def intersection(self, other: FieldSet) -> FieldSet:
        children = {pe: fs.intersection(other._children[pe])
                    for pe, fs in self._children.items() if pe in other._children}
        return FieldSet(self._members & other._members, children)

    def difference(self, other: FieldSet) -> FieldSet:
        """``self`` itself when ``other`` removes nothing (see :meth:`union`)."""
        if other.empty or self.empty:
            return self
        members = self._members - other._members
        changed = len(members) != len(self._members)
        children: dict[PathElement, FieldSet] = {}
        for pe, fs in self._children.items():
            sub = other._children.get(pe)
            rest = fs if sub is None else fs.difference(sub)
            changed = changed or rest is not fs
            children[pe] = rest
        return FieldSet(members, children) if changed else self

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like :meth:`difference`, and also drops everything below a member of ``other``."""
        children: dict[PathElement, FieldSet] = {}
        for pe, fs in self._children.items():
            if pe in other._members:
                continue
            children[pe] = fs.recursive_difference(other._children[pe]) if pe in other._children else fs
        return FieldSet(self._members - other._members, children)

    def __repr__(self) -> str:
        return "FieldSet(" + ", ".join(path_string(p) for p in self.paths()) + ")"


EMPTY = FieldSet()


class Builder:
    """Mutable twin of :class:`FieldSet` used while walking an object."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[PathElement] = set()
        self.children: dict[PathElement, Builder] = {}

    def insert(self, path: Path) -> None:
        node = self
        for pe in path[:-1]:
            node = node.children.setdefault(pe, Builder())
        node.members.add(path[-1])

    def freeze(self) -> FieldSet:
        # A builder's children all hold something (they exist only on the way to a member), so the set is
        # assembled directly rather than through the filtering constructor.
        fs = FieldSet.__new__(FieldSet)
        fs._members = frozenset(self.members)
        fs._children = {pe: b.freeze() for pe, b in self.children.items()}
        return fs


# --- walking objects against schemas ---------------------------------------------------------------

# What a schema node is to structured-merge-diff; computed once per node (``Schema.derived``).
_DEDUCED, _GRANULAR_MAP, _ATOMIC_MAP, _ASSOCIATIVE_LIST, _ATOMIC_LIST, _SCALAR = range(6)


def _node_kind(schema: Schema) -> int:
    if _deduced(schema):
        return _DEDUCED
    if _is_object(schema):
        return _ATOMIC_MAP if schema.map_type == "atomic" else _GRANULAR_MAP
    if schema.type == "array":
        return _ATOMIC_LIST if schema.list_type == "atomic" else _ASSOCIATIVE_LIST
    return _SCALAR


def _kind(schema: Schema | None) -> int:
    return _DEDUCED if schema is None else schema.derived("fieldset.kind", _node_kind)


def _is_map(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)


def shape(schema: Schema | None, v: Any) -> str:
    """How structured-merge-diff treats a node: ``scalar``, ``atomic``, ``map`` or ``list``."""
    node = _kind(schema)
    if node == _DEDUCED:
        return MAP if _is_map(v) else (ATOMIC if isinstance(v, list) else SCALAR)
    if node == _GRANULAR_MAP:
        return MAP if v is None or _is_map(v) else ATOMIC
    if node == _ASSOCIATIVE_LIST:
        return LIST if v is None or isinstance(v, list) else ATOMIC
    if node == _SCALAR:
        return SCALAR if not (_is_map(v) or isinstance(v, list)) else ATOMIC
    return ATOMIC


def _is_object(schema: Schema) -> bool:
    return schema.type == "object" or bool(schema.properties) or schema.additional_properties is not None


def _deduced(schema: Schema) -> bool:
    if schema.int_or_string:
        return False
    if not schema.type and not schema.properties and schema.items is None:
        return True
    return (schema.preserves_unknown_fields and schema.type not in ("object", "array")
            and not schema.properties)


def child_schema(schema: Schema | None, name: str) -> Schema | None:
    """A map entry's schema; ``None`` (deduced) for a key the schema does not describe."""
    return None if schema is None or _kind(schema) == _DEDUCED else schema.field(name)


def is_named(schema: Schema | None, name: str) -> bool:
    """Whether ``name`` is a declared struct field (upstream ``FindField``), not a free-form map key."""
    return schema is not None and _kind(schema) != _DEDUCED and name in schema.properties


def item_schema(schema: Schema | None) -> Schema | None:
    return None if schema is None else schema.items


def item_element(schema: Schema, item: Any, path: Path) -> PathElement:
    """The path element naming one item of an associative list: its key fields, or its value in a set."""
    keys = schema.list_map_keys if schema.list_type == "map" else ()
    if not keys:
        if isinstance(item, Mapping):
            raise TypedError(path, "associative list without keys has an element that's a map type")
        if isinstance(item, list):
            raise TypedError(path, "associative list without keys has an element that's a list type")
        return ("v", freeze(item))
    if item is None:
        raise TypedError(path, "associative list with keys may not have a null element")
    if not isinstance(item, Mapping):
        raise TypedError(path, "associative list with keys may not have non-map elements")
    fields = []
    items = schema.items
    for k in keys:
        if k in item:
            fields.append((k, freeze(item[k])))
            continue
        default = items.field(k) if items is not None else None
        if default is not None and default.get("default") is not None:
            fields.append((k, freeze(default.get("default"))))
    if not fields:
        raise TypedError(path, f"associative list with keys has an element that omits all key fields "
                               f"{list(keys)!r} (and doesn't have default values for any key fields)")
    return ("k", tuple(sorted(fields)))


def typed_fieldset(obj: Any, schema: Schema | None) -> FieldSet:
    """Every leaf of ``obj`` plus list items and free-form map keys, as upstream ``ToFieldSet``."""
    builder = Builder()
    _walk_fields(obj, schema, (), builder)
    return builder.freeze()


def _walk_fields(v: Any, schema: Schema | None, path: Path, out: Builder) -> None:
    kind = shape(schema, v)
    if kind in (SCALAR, ATOMIC):
        if path:
            out.insert(path)
        return
    if kind == MAP:
        for name, sub in (v or {}).items():
            p = (*path, ("f", name))
            _walk_fields(sub, child_schema(schema, name), p, out)
            if sub is None or (isinstance(sub, Mapping) and not sub) or not is_named(schema, name):
                out.insert(p)
        return
    assert schema is not None
    seen: dict[PathElement, int] = {}
    for i, item in enumerate(v or []):
        pe = item_element(schema, item, (*path, ("i", i)))
        seen[pe] = seen.get(pe, 0) + 1
    for i, item in enumerate(v or []):
        pe = item_element(schema, item, (*path, ("i", i)))
        p = (*path, pe)
        if seen[pe] > 1:
            out.insert(p)
            continue
        _walk_fields(item, item_schema(schema), p, out)
        out.insert(p)


def reject_duplicates(v: Any, schema: Schema | None, path: Path = ()) -> None:
    """Raise for an associative list naming one key twice, which an applied config may not do."""
    kind = shape(schema, v)
    if kind == MAP:
        for name, sub in (v or {}).items():
            reject_duplicates(sub, child_schema(schema, name), (*path, ("f", name)))
    elif kind == LIST:
        assert schema is not None
        seen: set[PathElement] = set()
        for i, item in enumerate(v or []):
            pe = item_element(schema, item, (*path, ("i", i)))
            if pe in seen:
                raise TypedError(path, f"duplicate entries for key {element_display(pe)}")
            seen.add(pe)
            reject_duplicates(item, item_schema(schema), (*path, pe))


def ensure_named_fields_are_members(fs: FieldSet, schema: Schema | None) -> FieldSet:
    """Add each declared struct field that has owned children as a member (upstream helper for pruning)."""
    members = set(fs.members)
    children: dict[PathElement, FieldSet] = {}
    for pe, sub in fs.children.items():
        if pe[0] == "f":
            if is_named(schema, pe[1]):
                members.add(pe)
            sub_schema = child_schema(schema, pe[1])
        else:
            sub_schema = item_schema(schema)
        children[pe] = ensure_named_fields_are_members(sub, sub_schema)
    return FieldSet(members, children)


# --- what managedFields track ----------------------------------------------------------------------

STRIPPED = FieldSet.from_paths([
    make_path("apiVersion"), make_path("kind"), make_path("metadata"),
    *(make_path("metadata", name) for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
        "managedFields", "resourceVersion")),
])
"""Paths no manager ever owns (upstream managedfields/internal/stripmeta.go)."""


def fieldset_of(obj: Mapping[str, Any], schema: Schema) -> FieldSet:
    """The fields a manager owns by having set everything in ``obj`` (identity and system metadata aside)."""
    return typed_fieldset(obj, schema).difference(STRIPPED)
