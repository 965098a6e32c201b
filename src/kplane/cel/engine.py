"""The one CEL adapter: compile with type checking, evaluate, and report errors as cel-go words them.

The engine is ``cel-expr-python`` (Google's cel-cpp) because it type-checks at compile time, which CRD
creation needs (a rule like ``self.replicas + "x"`` must be refused then, not at the first write). Everything
the rest of kplane sees is this module's :class:`CelType`, :class:`Program` and :class:`CelError`, so the
engine can be swapped.

Two limits of the engine shape the design:

- Custom functions cannot return opaque values (an abstract type fails with "Unimplemented type"). Kubernetes
  library values (Quantity, Semver, URL, IP, CIDR) therefore travel at run time as small tagged maps or lists,
  and at check time as distinct *brand* types (``map(string, bytes)``, ``list(bytes)`` …) so the checker
  still refuses, say, ``semver(…).compareTo(quantity(…))``. Compile errors name the brands as library types.
- An exception raised by a Python function reaches CEL only as "No matching overloads found"; the real message
  is kept aside while the evaluation runs and substituted into the error."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cel_expr_python import cel as _cel
from cel_expr_python.ext import ext_bindings, ext_encoders, ext_math, ext_optional, ext_strings

from kplane.cel import twovar

LIBRARIES = ("kubernetes", "standard")
TAG = "@k8s"
"""Marks the tagged maps and lists that carry Kubernetes library values (see :func:`wrap`)."""


@dataclass(frozen=True)
class CelType:
    """An engine-neutral CEL type: ``int``, ``list(string)``, ``map(string, dyn)`` or a library type."""

    name: str
    params: tuple[CelType, ...] = ()
    opaque: str = ""
    """For library types: the run-time shape, ``map`` or ``list`` (see :func:`wrap`); empty otherwise."""

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(str(p) for p in self.params)})"


DYN = CelType("dyn")
INT = CelType("int")
UINT = CelType("uint")
DOUBLE = CelType("double")
BOOL = CelType("bool")
STRING = CelType("string")
BYTES = CelType("bytes")
NULL = CelType("null_type")
TIMESTAMP = CelType("google.protobuf.Timestamp")
DURATION = CelType("google.protobuf.Duration")


def list_of(elem: CelType) -> CelType:
    return CelType("list", (elem,))


def map_of(key: CelType, value: CelType) -> CelType:
    return CelType("map", (key, value))


class CelError(Exception):
    """A compile (syntax or type) error or a runtime error, worded as cel-go words it where we can."""


@dataclass(frozen=True)
class Overload:
    """One typed signature of a library function with its Python implementation."""

    id: str
    name: str
    params: tuple[CelType, ...]
    result: CelType
    impl: Callable[..., Any]
    member: bool = False


_SIMPLE = {
    "dyn": _cel.Type.DYN,
    "int": _cel.Type.INT,
    "uint": _cel.Type.UINT,
    "double": _cel.Type.DOUBLE,
    "bool": _cel.Type.BOOL,
    "string": _cel.Type.STRING,
    "bytes": _cel.Type.BYTES,
    "null_type": _cel.Type.NULL,
    "google.protobuf.Timestamp": _cel.Type.TIMESTAMP,
    "google.protobuf.Duration": _cel.Type.DURATION,
}
_BRANDS: dict[str, tuple[str, int]] = {}
"""Opaque type name -> (shape, depth). A brand is ``map(string, L)`` or ``list(L)`` where ``L`` is
``bytes`` nested in ``depth`` lists: types JSON data never has, distinct per library type, able to hold it."""


def _brand(t: CelType) -> tuple[str, int]:
    if t.name not in _BRANDS:
        depth = sum(1 for shape, _ in _BRANDS.values() if shape == t.opaque)
        if depth > 2:
            raise CelError(f"too many opaque {t.opaque} types for the CEL adapter: {t.name}")
        _BRANDS[t.name] = (t.opaque, depth)
    return _BRANDS[t.name]


def _leaf(depth: int) -> Any:
    return _cel.Type.BYTES if depth == 0 else _cel.Type.List(_leaf(depth - 1))


def _leaf_text(depth: int) -> str:
    return "bytes" if depth == 0 else f"list({_leaf_text(depth - 1)})"


def _brand_text(shape: str, depth: int) -> str:
    return f"list({_leaf_text(depth)})" if shape == "list" else f"map(string, {_leaf_text(depth)})"


def _engine_type(t: CelType) -> Any:
    if t.opaque:
        shape, depth = _brand(t)
        return (
            _cel.Type.List(_leaf(depth)) if shape == "list" else _cel.Type.Map(_cel.Type.STRING, _leaf(depth))
        )
    if t.name == "list":
        return _cel.Type.List(_engine_type(t.params[0]) if t.params else _cel.Type.DYN)
    if t.name == "map":
        key, value = (*t.params, DYN, DYN)[:2]
        return _cel.Type.Map(_engine_type(key), _engine_type(value))
    simple = _SIMPLE.get(t.name)
    if simple is None:
        raise CelError(f"unknown CEL type {t}")
    return simple


def _runtime_kind(t: CelType) -> str:
    return t.opaque or t.name


def _encode(text: str, depth: int) -> Any:
    return text.encode() if depth == 0 else [_encode(text, depth - 1)]


def _decode(value: Any) -> str:
    while isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return bytes(value).decode() if isinstance(value, bytes | bytearray) else ""


def wrap(t: CelType, canonical: str) -> Any:
    """A library value as the engine carries it: its canonical string inside the type's brand shape."""
    shape, depth = _brand(t)
    if shape == "list":
        return [_encode(part, depth) for part in (TAG, t.name, canonical)]
    return {TAG: _encode(t.name, depth), "v": _encode(canonical, depth)}


def unwrap(value: Any) -> str:
    return _decode(value[2] if isinstance(value, list | tuple) else value["v"])


def _tag(value: Any) -> str:
    if isinstance(value, Mapping):
        return _decode(value.get(TAG))
    if isinstance(value, list | tuple) and len(value) == 3 and _decode(value[0]) == TAG:
        return _decode(value[1])
    return ""


def accepts(t: CelType, value: Any) -> bool:
    """Whether a run-time value fits a parameter type; used to pick among overloads the engine merges."""
    if t.opaque:
        return _tag(value) == t.name
    checks: dict[str, Callable[[Any], bool]] = {
        "dyn": lambda v: True,
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "uint": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, float),
        "bool": lambda v: isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "bytes": lambda v: isinstance(v, bytes | bytearray),
        "list": lambda v: isinstance(v, list | tuple) and not _tag(v),
        "map": lambda v: isinstance(v, Mapping) and not _tag(v),
    }
    check = checks.get(t.name)
    return check(value) if check else True


class _Errors(threading.local):
    message: str | None = None


_errors = _Errors()


def _guarded(ov: Overload) -> Callable[..., Any]:
    """The overload's implementation, with its error message kept aside for :meth:`Program.evaluate`."""

    def impl(*args: Any) -> Any:
        if not all(accepts(p, a) for p, a in zip(ov.params, args, strict=True)):
            _errors.message = f"no such overload: {ov.name}"
            raise CelError(_errors.message)
        try:
            return ov.impl(*args)
        except (CelError, ArithmeticError, ValueError, TypeError, KeyError, IndexError) as err:
            _errors.message = str(err) or type(err).__name__
            raise

    return impl


_TWO_VAR_OVERLOADS = (
    Overload("kplane_tv_map", twovar.MAP_FROM_PAIRS, (list_of(list_of(DYN)),), map_of(DYN, DYN),
             twovar.map_from_pairs),
    Overload("kplane_tv_entries", twovar.MAP_FROM_ENTRIES, (list_of(map_of(DYN, DYN)),), map_of(DYN, DYN),
             twovar.map_from_entries),
)
"""What the rewritten ``transformMap``/``transformMapEntry`` call (see :mod:`kplane.cel.twovar`)."""

_EXTRA_LIBRARIES: dict[str, tuple[Overload, ...]] = {}
"""Libraries registered by other packages (kro's functions …): the Kubernetes library plus their overloads."""


def register_library(name: str, overloads: tuple[Overload, ...]) -> None:
    """Make ``library=name`` mean the Kubernetes library plus ``overloads`` (registering twice replaces)."""
    if name in LIBRARIES:
        raise CelError(f"CEL library {name!r} is built in")
    _EXTRA_LIBRARIES[name] = overloads
    _env.cache_clear()


def _library(name: str) -> list[Any]:
    extensions: list[Any] = [ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_bindings.ExtBindings()]
    if name == "standard":
        return extensions
    if name != "kubernetes" and name not in _EXTRA_LIBRARIES:
        raise CelError(f"unknown CEL library {name!r}; expected one of {', '.join(LIBRARIES)}")
    from kplane.cel import k8slib  # the library imports this module's types, so it is loaded on first use

    by_name: dict[str, list[Overload]] = {}
    for ov in (*k8slib.OVERLOADS, *_TWO_VAR_OVERLOADS, *_EXTRA_LIBRARIES.get(name, ())):
        by_name.setdefault(ov.name, []).append(ov)
    decls: list[Any] = []
    for fname, overloads in by_name.items():
        kinds = [(ov.member, tuple(_runtime_kind(p) for p in ov.params)) for ov in overloads]
        if len(set(kinds)) != len(kinds):
            # The run time keys functions by argument kinds only; opaque types pick their shape to avoid this.
            raise CelError(f"overloads of {fname} share run-time argument kinds")
        decls.append(
            _cel.FunctionDecl(
                fname,
                [
                    _cel.Overload(
                        ov.id,
                        _engine_type(ov.result),
                        [_engine_type(p) for p in ov.params],
                        ov.member,
                        impl=_guarded(ov),
                    )
                    for ov in overloads
                ],
            )
        )
    # Declared in an extension after the strings one, so that ``indexOf`` on lists merges with strings'.
    extensions += [ext_math.ExtMath(), ext_encoders.ExtEncoders(), _cel.CelExtension("kubernetes", decls)]
    return extensions


@lru_cache(maxsize=256)
def _env(variables: tuple[tuple[str, CelType], ...], library: str) -> Any:
    return _cel.NewEnv(variables={k: _engine_type(v) for k, v in variables}, extensions=_library(library))


_STATUS = re.compile(r"^[A-Z_]+: ")
_STATUS_TAIL = re.compile(r"\s*\[[A-Z_]+\]\s*$")


def _clean(message: str) -> str:
    message = _STATUS_TAIL.sub("", _STATUS.sub("", message, count=1))
    brands = sorted(
        ((_brand_text(*brand), name) for name, brand in _BRANDS.items()), key=lambda b: -len(b[0])
    )
    for text, name in brands:
        message = message.replace(text, name)
    return message


# cel-cpp's runtime messages, reworded as cel-go prints them (Kubernetes shows cel-go's).
_RUNTIME_WORDING = [
    (re.compile(r"^divide by zero$"), "division by zero"),
    (re.compile(r'^Key not found in map : "?(.*?)"?$'), r"no such key: \1"),
    (re.compile(r"^Index error: index=(-?\d+) size=\d+$"), r"index out of bounds: \1"),
    (re.compile(r"^No matching overloads found : (.*)$"), r"no such overload: \1"),
]


def _reword(message: str) -> str:
    for pattern, replacement in _RUNTIME_WORDING:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


class Program:
    """A compiled, type-checked expression; cheap to evaluate many times."""

    __slots__ = ("_expression", "result_type", "source")

    def __init__(self, source: str, expression: Any) -> None:
        self.source = source
        self._expression = expression
        self.result_type = expression.return_type().name().lower()

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """The plain Python result (bool, int, str, list, dict …); :class:`CelError` on a runtime error."""
        _errors.message = None
        try:
            value = self._expression.eval(data=dict(activation))
        except RuntimeError as err:
            raise CelError(_clean(str(err))) from None
        finally:
            kept, _errors.message = _errors.message, None
        if value.type().name() == "ERROR":
            message = _clean(str(value))
            if kept and "No matching overloads found" in message:
                message = kept
            raise CelError(_reword(message))
        return value.plain_value()


def _iterates_ranges(library: str) -> bool:
    """Whether rewritten two-variable comprehensions can compile: they iterate lists with ``lists.range``."""
    if library == "standard":
        return False
    from kplane.cel import k8slib

    return any(ov.name == "lists.range" for ov in (*k8slib.OVERLOADS, *_EXTRA_LIBRARIES.get(library, ())))


def compile(expr: str, variables: Mapping[str, CelType], *, library: str = "kubernetes") -> Program:  # noqa: A001
    """Parse and type-check ``expr`` against declared variables; :class:`CelError` says why it cannot."""
    try:
        source = twovar.rewrite(expr)
    except twovar.TwoVarError as err:
        raise CelError(str(err)) from None
    try:
        env = _env(tuple(sorted(variables.items(), key=lambda kv: kv[0])), library)
        if source != expr and not _iterates_ranges(library):
            raise CelError(f"two-variable comprehensions are not supported by CEL library {library!r}")
        return Program(expr, env.compile(source))
    except RuntimeError as err:
        message = _clean(str(err))
        for internal, shown in twovar.INTERNAL_NAMES.items():
            message = message.replace(internal, shown)
        raise CelError(message) from None
