"""Worst-case cost of a CEL expression, after cel-go's ``checker/cost.go`` and Kubernetes' call costs.

cel-expr-python (cel-cpp) offers neither cost estimation nor a runtime cost limit (its ``Env``,
``Expression`` and ``NewEnv`` take no cost or iteration options), so kplane estimates costs itself. The
syntax tree comes from the engine's own parser: ``Env.compile(text, disable_check=True).serialize()`` is
a ``cel.expr.ParsedExpr`` with macros already expanded into comprehensions, read here with a small
protobuf wire decoder (field numbers from github.com/google/cel-spec ``proto/cel/expr/syntax.proto``).

The cost model follows github.com/google/cel-go ``checker/cost.go`` (constants from
``common/cost.go``): literals cost 0, identifiers and selections on maps or objects 1, list and map
literals 10 plus their parts, a call 1 plus its arguments unless its cost depends on sizes (string
comparison and equality: the smaller size x 0.1; ``in`` on a list: the list size; ``matches``: (size+1)
x 0.1 times regex size x 0.25), ``&&`` / ``||`` their arguments only, a comprehension its range, init and
result plus the range size times (loop condition + step). Kubernetes' library costs
(``k8s.io/apiserver/pkg/cel/library/cost.go`` ``EstimateCallCost``) are added for the string functions.
Only the maximum is tracked. Sizes come from literals, computed results, or a :class:`Decl` tree that
tells the maximum size of every value reachable from a variable (cel-go's ``SizeEstimator``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cel_expr_python import cel as _cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings

UNKNOWN = 2**64 - 1
"""cel-go's ``math.MaxUint64``: an unbounded size or cost; arithmetic saturates here."""
STRING_TRAVERSAL = 0.1
"""``common.StringTraversalCostFactor``."""
REGEX_LENGTH = 0.25
"""``common.RegexStringLengthCostFactor``."""
LIST_CREATE = 10
MAP_CREATE = 30
STRUCT_CREATE = 40
"""``common.ListCreateBaseCost``, ``MapCreateBaseCost``, ``StructCreateBaseCost``."""
_SCALARS = frozenset({"bool", "int", "uint", "double", "timestamp", "duration"})


class CostError(ValueError):
    """The expression does not parse (the caller reports the engine's compile error instead)."""


@dataclass(frozen=True)
class Decl:
    """A declared value: its CEL kind (``string``, ``map``, ``object``, ``dyn`` …), its maximum size
    (characters or elements), and what selection and iteration reach from it."""

    kind: str
    size: int = UNKNOWN
    fields: Mapping[str, Decl] = field(default_factory=dict)
    key: Decl | None = None
    elem: Decl | None = None
    any_field_is_elem: bool = False
    """Selecting a name that is not in ``fields`` reaches ``elem`` (a map read with ``.name``)."""

    def step(self, name: str) -> Decl | None:
        if name in ("@items", "@values"):
            return self.elem
        if name == "@keys":
            return self.key
        found = self.fields.get(name)
        if found is None and self.any_field_is_elem:
            return self.elem
        return found


def lookup(roots: Mapping[str, Decl], path: tuple[str, ...]) -> Decl | None:
    decl = roots.get(path[0]) if path else None
    for name in path[1:]:
        if decl is None:
            return None
        decl = decl.step(name)
    return decl


# --- syntax tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """One node of a parsed expression; ``op`` is const, ident, select, call, list, map, struct or comp."""

    op: str
    name: str = ""
    value: Any = None
    target: Expr | None = None
    args: tuple[Expr, ...] = ()
    test_only: bool = False
    comp: Comprehension | None = None


@dataclass(frozen=True)
class Comprehension:
    iter_var: str
    iter_var2: str
    iter_range: Expr
    accu_var: str
    accu_init: Expr
    loop_condition: Expr
    loop_step: Expr
    result: Expr


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise CostError(f"unexpected protobuf wire type {wire}")
        yield number, value


def _constant(buf: bytes) -> Any:
    for number, value in _fields(buf):
        if number == 2:
            return bool(value)
        if number == 3:
            return value - (1 << 64) if value >= 1 << 63 else value
        if number in (4, 8, 9):
            return value
        if number == 5:
            return struct.unpack("<d", value)[0]
        if number == 6:
            return value.decode()
        if number == 7:
            return bytes(value)
    return None


def _expr(buf: bytes) -> Expr:
    for number, value in _fields(buf):
        if number == 3:
            return Expr("const", value=_constant(value))
        if number == 4:
            return Expr("ident", name=next((v.decode() for n, v in _fields(value) if n == 1), ""))
        if number == 5:
            parts = dict(_fields(value))
            return Expr("select", name=bytes(parts.get(2, b"")).decode(), target=_expr(parts.get(1, b"")),
                        test_only=bool(parts.get(3, 0)))
        if number == 6:
            return _call(value)
        if number == 7:
            return Expr("list", args=tuple(_expr(v) for n, v in _fields(value) if n == 1))
        if number == 8:
            return _struct(value)
        if number == 9:
            return _comprehension(value)
    return Expr("const")


def _call(buf: bytes) -> Expr:
    target: Expr | None = None
    name, args = "", []
    for number, value in _fields(buf):
        if number == 1:
            target = _expr(value)
        elif number == 2:
            name = value.decode()
        elif number == 3:
            args.append(_expr(value))
    return Expr("call", name=name, target=target, args=tuple(args))


def _struct(buf: bytes) -> Expr:
    message, values = "", []
    for number, value in _fields(buf):
        if number == 1:
            message = value.decode()
        elif number == 2:
            entry = dict(_fields(value))
            if 3 in entry:
                values.append(_expr(entry[3]))
            values.append(_expr(entry.get(4, b"")))
    return Expr("struct" if message else "map", name=message, args=tuple(values))


def _comprehension(buf: bytes) -> Expr:
    p = dict(_fields(buf))
    text = {k: bytes(p.get(k, b"")).decode() for k in (1, 3, 8)}
    return Expr("comp", comp=Comprehension(
        text[1], text[8], _expr(p.get(2, b"")), text[3], _expr(p.get(4, b"")), _expr(p.get(5, b"")),
        _expr(p.get(6, b"")), _expr(p.get(7, b""))))


@lru_cache(maxsize=1)
def _parser() -> Any:
    return _cel.NewEnv(extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(),
                                   ext_bindings.ExtBindings()])


@lru_cache(maxsize=1024)
def parse(expression: str) -> Expr:
    """The macro-expanded syntax tree, as the engine's parser builds it."""
    try:
        serialized = _parser().compile(expression, disable_check=True).serialize()
    except RuntimeError as err:
        raise CostError(str(err)) from None
    any_value = dict(_fields(serialized)).get(2, b"")  # google.protobuf.Any.value
    return _expr(dict(_fields(any_value)).get(2, b""))  # ParsedExpr.expr


# --- estimation ----------------------------------------------------------------------------------------


def _add(*values: int) -> int:
    return min(sum(values), UNKNOWN)


def _mul(a: int, b: int) -> int:
    return min(a * b, UNKNOWN)


def _factor(size: int, factor: float) -> int:
    """cel-go's ``MultiplyByCostFactor``: ceil(size x factor), computed in floating point as Go does."""
    return min(math.ceil(float(size) * factor), UNKNOWN)


@dataclass(frozen=True)
class _Info:
    """What the estimator knows of a node's value: kind, maximum size and declared path."""

    kind: str = "dyn"
    size: int = UNKNOWN
    path: tuple[str, ...] | None = None
    elem: str = "dyn"
    """Element kind of a list (key kind of a map)."""


_RESULT_KINDS: dict[str, str] = {
    **dict.fromkeys(("_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "!_", "_&&_", "_||_", "@in",
                     "@not_strictly_false", "startsWith", "endsWith", "contains", "matches", "isSemver",
                     "isQuantity", "isGreaterThan", "isLessThan", "isInteger", "isSorted", "isURL", "isIP",
                     "isCIDR"), "bool"),
    **dict.fromkeys(("size", "compareTo", "sign", "asInteger", "major", "minor", "patch", "int", "indexOf",
                     "lastIndexOf"), "int"),
    **dict.fromkeys(("lowerAscii", "upperAscii", "trim", "substring", "replace", "string", "join", "find",
                     "charAt", "format", "quote", "reverse"), "string"),
    **dict.fromkeys(("split", "findAll", "sort", "lists.range"), "list"),
    **dict.fromkeys(("quantity", "semver", "add", "sub", "url", "ip", "cidr"), "object"),
    **dict.fromkeys(("asApproximateFloat", "double"), "double"),
}
_COMPARISONS = frozenset({"_<_", "_<=_", "_>_", "_>=_"})
_TEXT = frozenset({"string", "bytes"})
_TWO_VAR: dict[str, tuple[int, int, int]] = {
    "all": (0, 3, 1), "exists": (0, 4, 1), "existsOne": (0, 2, 2), "exists_one": (0, 2, 2),
    "transformList": (LIST_CREATE, 12, 1), "transformMap": (MAP_CREATE, 2, 1), "transformMapEntry": (MAP_CREATE, 2, 1),
}
"""Two-variable comprehensions (cel-go ``ext/comprehensions.go``): the cost of the accumulator's init,
of the loop condition plus the step around the body (``@not_strictly_false(accu)`` and ``accu && body``
for ``all`` …), and of the result, as :meth:`_Estimator._comp` would count their expansion."""


class _Estimator:
    def __init__(self, roots: Mapping[str, Decl]) -> None:
        self.roots = roots
        self.scopes: list[dict[str, _Info]] = []

    def info(self, kind: str = "dyn", size: int | None = None, path: tuple[str, ...] | None = None,
             elem: str = "dyn") -> _Info:
        decl = lookup(self.roots, path) if path else None
        if decl is not None:
            kind = decl.kind if kind == "dyn" else kind
            size = decl.size if size is None else size
            inner = decl.elem if kind == "list" else decl.key
            elem = inner.kind if inner is not None else elem
        if size is None:
            size = 1 if kind in _SCALARS else UNKNOWN
        return _Info(kind, size, path, elem)

    def cost(self, e: Expr) -> tuple[int, _Info]:
        handler = getattr(self, f"_{e.op}")
        result: tuple[int, _Info] = handler(e)
        return result

    def _const(self, e: Expr) -> tuple[int, _Info]:
        v = e.value
        if isinstance(v, bool):
            return 0, self.info("bool")
        if isinstance(v, int):
            return 0, self.info("int")
        if isinstance(v, float):
            return 0, self.info("double")
        if isinstance(v, str | bytes):
            return 0, self.info("string" if isinstance(v, str) else "bytes", len(v))
        return 0, self.info("null_type", 1)

    def _ident(self, e: Expr) -> tuple[int, _Info]:
        for scope in reversed(self.scopes):
            if e.name in scope:
                return 1, scope[e.name]
        return 1, self.info(path=(e.name,))

    def _select(self, e: Expr) -> tuple[int, _Info]:
        assert e.target is not None
        cost, operand = self.cost(e.target)
        if e.test_only:
            return _add(cost, 1), self.info("bool")
        if operand.kind in ("map", "object"):
            cost = _add(cost, 1)
        path = _extend(operand.path, e.name)
        return cost, self.info(path=path)

    def _list(self, e: Expr) -> tuple[int, _Info]:
        costs = [self.cost(a) for a in e.args]
        kinds = {i.kind for _, i in costs}
        elem = kinds.pop() if len(kinds) == 1 else "dyn"
        return _add(LIST_CREATE, *(c for c, _ in costs)), self.info("list", len(e.args), elem=elem)

    def _map(self, e: Expr) -> tuple[int, _Info]:
        costs = [self.cost(a) for a in e.args]
        return _add(MAP_CREATE, *(c for c, _ in costs)), self.info("map", len(e.args) // 2)

    def _struct(self, e: Expr) -> tuple[int, _Info]:
        return _add(STRUCT_CREATE, *(self.cost(a)[0] for a in e.args)), self.info("object")

    def _comp(self, e: Expr) -> tuple[int, _Info]:
        c = e.comp
        assert c is not None
        range_cost, rng = self.cost(c.iter_range)
        init_cost, init = self.cost(c.accu_init)
        self.scopes.append({c.accu_var: init, **self._iter_vars(c.iter_var, c.iter_var2, rng)})
        loop_cost = _add(self.cost(c.loop_condition)[0], self.cost(c.loop_step)[0])
        self.scopes.pop()
        self.scopes.append({c.accu_var: init})
        result_cost, result = self.cost(c.result)
        self.scopes.pop()
        if init.kind == "list":  # map and filter build a list as long as the range at most
            result = self.info("list", rng.size)
        return _add(range_cost, init_cost, result_cost, _mul(rng.size, loop_cost)), result

    def _iter_vars(self, first: str, second: str, rng: _Info) -> dict[str, _Info]:
        base = rng.path
        if rng.kind == "map":
            key = self.info(rng.elem, path=_extend(base, "@keys"))
            value = self.info(path=_extend(base, "@values"))
            return {first: key, second: value} if second else {first: key}
        item = self.info(rng.elem, path=_extend(base, "@items"))
        return {first: self.info("int"), second: item} if second else {first: item}

    def _call(self, e: Expr) -> tuple[int, _Info]:
        if e.target is not None and e.name in _TWO_VAR and len(e.args) >= 3 and \
                all(a.op == "ident" for a in e.args[:2]):
            return self._two_var(e)
        target = self.cost(e.target) if e.target is not None else None
        args = [self.cost(a) for a in e.args]
        arg_sum = _add(*(c for c, _ in args), target[0] if target else 0)
        infos = [i for _, i in args]
        if e.name in ("_&&_", "_||_"):
            return arg_sum, self.info("bool")
        if e.name == "_?_:_":
            cost = _add(args[0][0], max(args[1][0], args[2][0]))
            a, b = infos[1], infos[2]
            return cost, self.info(a.kind if a.kind == b.kind else "dyn", max(a.size, b.size))
        if e.name == "_[_]":
            return _add(1, arg_sum), self._index(infos[0])
        if e.name == "_+_" and len(infos) == 2:
            return self._plus(infos, arg_sum)
        own = self._own_cost(e.name, target[1] if target else None, infos, e.args)
        kind = _RESULT_KINDS.get(e.name, infos[0].kind if e.name in ("_-_", "_*_", "_/_", "_%_", "-_") else "dyn")
        size = self._result_size(e.name, target[1] if target else None, e.args)
        return _add(own, arg_sum), self.info(kind, size, elem="string" if kind == "list" else "dyn")

    def _index(self, container: _Info) -> _Info:
        if container.path is None or container.kind not in ("map", "list"):
            return self.info()
        return self.info(path=_extend(container.path, "@values" if container.kind == "map" else "@items"))

    def _plus(self, infos: list[_Info], arg_sum: int) -> tuple[int, _Info]:
        a, b = infos
        size = _add(a.size, b.size)
        if a.kind in _TEXT or b.kind in _TEXT:
            return _add(_factor(size, STRING_TRAVERSAL), arg_sum), self.info(a.kind, size)
        if a.kind == "list" or b.kind == "list":
            return _add(1, arg_sum), self.info("list", size)
        return _add(1, arg_sum), self.info(a.kind)

    def _own_cost(self, name: str, target: _Info | None, infos: list[_Info], args: tuple[Expr, ...]) -> int:
        """A call's cost without its arguments (cel-go ``functionCost``, Kubernetes ``EstimateCallCost``)."""
        if name in ("_==_", "_!=_") or (name in _COMPARISONS and _texts(infos)):
            text_cost = _factor(min(infos[0].size, infos[1].size), STRING_TRAVERSAL)
            # Two dyn operands also match the O(1) numeric overloads; cel-go takes the union.
            both_dyn = infos[0].kind == infos[1].kind == "dyn"
            return max(text_cost, 1) if name in _COMPARISONS and both_dyn else text_cost
        if name == "@in" and len(infos) == 2:
            container = infos[1]
            if container.kind == "list":
                return container.size
            return max(1, container.size) if container.kind == "dyn" else 1
        if target is None:
            return 1
        size = target.size
        if name == "matches" and infos:
            return _mul(_factor(_add(size, 1), STRING_TRAVERSAL), _factor(infos[0].size, REGEX_LENGTH))
        if name in ("find", "findAll") and infos:
            return _mul(_factor(_add(size, 1), STRING_TRAVERSAL), _factor(infos[0].size, REGEX_LENGTH))
        if name == "contains" and infos:
            return _mul(_factor(size, STRING_TRAVERSAL), _factor(infos[0].size, STRING_TRAVERSAL))
        if name in ("startsWith", "endsWith") and infos:
            return _factor(infos[0].size, STRING_TRAVERSAL)
        if name in ("lowerAscii", "upperAscii", "substring", "trim"):
            return _factor(size, STRING_TRAVERSAL)
        if name in ("replace", "split") and (name == "split" or len(infos) >= 2):
            return _factor(size, 2 * STRING_TRAVERSAL)
        if name in ("isSorted", "sum", "max", "min", "indexOf", "lastIndexOf"):
            if target.kind != "list":
                return _factor(size, STRING_TRAVERSAL)
            per_item = 1 + (_factor(self._item_size(target), STRING_TRAVERSAL) if target.elem in _TEXT else 0)
            return _mul(size, per_item)
        if name == "join":
            separators = _mul(infos[0].size, max(size, 1) - 1) if infos else 0
            return _factor(_add(_mul(size, self._item_size(target)), separators), STRING_TRAVERSAL)
        return 1

    def _item_size(self, container: _Info) -> int:
        path = _extend(container.path, "@items")
        decl = lookup(self.roots, path) if path is not None else None
        return decl.size if decl is not None else UNKNOWN

    def _result_size(self, name: str, target: _Info | None, args: tuple[Expr, ...]) -> int | None:
        if target is None:
            return None
        if name in ("lowerAscii", "upperAscii", "substring", "trim", "find", "findAll"):
            return target.size
        if name == "split":
            limit = args[1].value if len(args) > 1 and args[1].op == "const" else None
            return int(limit) if isinstance(limit, int) and limit >= 0 else target.size
        return None

    def _two_var(self, e: Expr) -> tuple[int, _Info]:
        """A two-variable comprehension (``ext.TwoVarComprehensions``), which the parse-only environment
        leaves as a call: costed as cel-go's expansion (step = predicate plus the accumulator update)."""
        assert e.target is not None
        range_cost, rng = self.cost(e.target)
        self.scopes.append(self._iter_vars(e.args[0].name, e.args[1].name, rng))
        body = _add(*(self.cost(a)[0] for a in e.args[2:]))
        self.scopes.pop()
        init, step, result_cost = _TWO_VAR[e.name]
        kind = {"transformList": "list", "transformMap": "map", "transformMapEntry": "map"}.get(e.name, "bool")
        result = self.info(kind, rng.size if kind != "bool" else None)
        return _add(range_cost, init, result_cost, _mul(rng.size, _add(body, step))), result


def _extend(path: tuple[str, ...] | None, name: str) -> tuple[str, ...] | None:
    return (*path, name) if path is not None else None


def _texts(infos: list[_Info]) -> bool:
    kinds = {i.kind for i in infos[:2]}
    return bool(kinds & _TEXT) or kinds == {"dyn"}


def estimate(expression: str, roots: Mapping[str, Decl]) -> int:
    """The worst-case cost of ``expression``; :data:`UNKNOWN` when a size it depends on is unbounded.
    :class:`CostError` when it does not parse."""
    return _Estimator(roots).cost(parse(expression))[0]


def decl_of(value: Any) -> Decl:
    """A :class:`Decl` holding the actual sizes of a value, for bounding one evaluation with real input."""
    if isinstance(value, bool):
        return Decl("bool", 1)
    if isinstance(value, int):
        return Decl("int", 1)
    if isinstance(value, float):
        return Decl("double", 1)
    if isinstance(value, str | bytes):
        return Decl("string" if isinstance(value, str) else "bytes", len(value))
    if isinstance(value, Mapping):
        fields = {str(k): decl_of(v) for k, v in value.items()}
        return Decl("map", len(value), fields, _widest(decl_of(k) for k in value),
                    _widest(fields.values()), any_field_is_elem=True)
    if isinstance(value, list | tuple):
        return Decl("list", len(value), elem=_widest(decl_of(v) for v in value))
    return Decl("dyn", 1)


def _widest(decls: Any) -> Decl:
    """One declaration covering all of ``decls``: the largest sizes and, for mixed kinds, ``dyn``."""
    merged: Decl | None = None
    for decl in decls:
        merged = decl if merged is None else _merge(merged, decl)
    return merged if merged is not None else Decl("dyn", 0)


def _merge(a: Decl, b: Decl) -> Decl:
    fields = dict(a.fields)
    for name, decl in b.fields.items():
        fields[name] = _merge(fields[name], decl) if name in fields else decl
    return Decl(a.kind if a.kind == b.kind else "dyn", max(a.size, b.size), fields, _either(a.key, b.key),
                _either(a.elem, b.elem), a.any_field_is_elem or b.any_field_is_elem)


def _either(a: Decl | None, b: Decl | None) -> Decl | None:
    if a is None or b is None:
        return a or b
    return _merge(a, b)
