"""cel-go's two-variable comprehensions (``ext.TwoVarComprehensions``) rewritten into single-variable CEL.

The engine knows only the one-variable macros, while kro enables the two-variable ones
(github.com/google/cel-go ``ext/comprehensions.go``): ``all``, ``exists``, ``existsOne``, ``transformList``,
``transformMap`` and ``transformMapEntry`` over a list bind an index and an element, over a map a key and a
value. Each call becomes a one-variable macro over the indices (``lists.range(size(l))``) or the keys, with the
element bound by ``cel.bind``. The target is bound once, so the rewrite needs no type: the range is picked at
run time by ``type(target) == list``.

No one-variable macro builds a map, so the two map-building forms collect a list in CEL and hand it to an
engine-internal function (:data:`MAP_FROM_PAIRS`, :data:`MAP_FROM_ENTRIES`; the engine declares them) that
builds the map in Python. Values cross into Python and back, so the result holds what the engine can return
from a function: JSON-like values, bytes and uints (as ints), but no timestamps or durations.

Positions in compile errors about the rewritten parts refer to the rewritten text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplane.cel.lexer import TOKEN

PREDICATES = {"all": "all", "exists": "exists", "existsOne": "exists_one", "exists_one": "exists_one"}
TRANSFORMS = frozenset({"transformList", "transformMap", "transformMapEntry"})
BINDING = "__kplane_tv"
"""Prefix of the variable that holds a comprehension's target; users cannot collide without meaning to."""
MAP_FROM_PAIRS = "__kplane_tv_map"
"""``list(list(dyn)) -> map(dyn, dyn)``: the ``[key, value]`` pairs of ``transformMap`` as a map."""
MAP_FROM_ENTRIES = "__kplane_tv_entries"
"""``list(map(dyn, dyn)) -> map(dyn, dyn)``: the maps ``transformMapEntry``'s transform made, merged."""
INTERNAL_NAMES = {MAP_FROM_PAIRS: "transformMap", MAP_FROM_ENTRIES: "transformMapEntry"}
"""How compile errors about the internal functions name them to the user."""
ACCUMULATOR = "__result__"
"""cel-go's accumulator variable (``parser.AccumulatorName``), which iteration variables may not shadow."""

_OPEN = {"(": ")", "[": "]", "[?": "]", "{": "}"}
_CLOSE = {")": "(", "]": "[", "}": "{"}


class TwoVarError(ValueError):
    """A two-variable comprehension this rewrite cannot express, or malformed text around one."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Tok] | None:
    """The tokens, or ``None`` for text this scanner cannot read (the engine then reports the error)."""
    out: list[_Tok] = []
    pos = 0
    while text[pos:].strip():
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup or ""
        out.append(_Tok(kind, m.group(kind), m.start(kind), m.end()))
        pos = m.end()
    return out


def _closing(toks: list[_Tok], i: int) -> int | None:
    """Index of the bracket closing the one opened at ``i``."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].text in _OPEN:
            depth += 1
        elif toks[j].text in _CLOSE:
            depth -= 1
            if depth == 0:
                return j
    return None


def _opening(toks: list[_Tok], i: int) -> int | None:
    depth = 0
    for j in range(i, -1, -1):
        if toks[j].text in _CLOSE:
            depth += 1
        elif toks[j].text in _OPEN:
            depth -= 1
            if depth == 0:
                return j
    return None


def _target_start(toks: list[_Tok], dot: int) -> int | None:
    """First token of the member chain that ends just before ``toks[dot]`` (the ``.`` of the call)."""
    i = dot - 1
    while i >= 0:
        if toks[i].text in _CLOSE:
            opened = _opening(toks, i)
            if opened is None:
                return None
            i = opened
            before = toks[i - 1] if i > 0 else None
            if before is not None and ((before.kind == "id" and before.text != "in") or before.text in _CLOSE):
                i -= 1
                continue
        elif toks[i].kind not in ("id", "num", "str"):
            return None
        if i > 0 and toks[i - 1].text in (".", ".?"):
            i -= 2
            continue
        return i
    return None


def _arguments(toks: list[_Tok], open_paren: int, close_paren: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of the top-level arguments between the parentheses."""
    spans: list[tuple[int, int]] = []
    start, depth = open_paren + 1, 0
    for j in range(open_paren + 1, close_paren):
        text = toks[j].text
        if text in _OPEN:
            depth += 1
        elif text in _CLOSE:
            depth -= 1
        elif text == "," and depth == 0:
            spans.append((start, j))
            start = j + 1
    if start < close_paren:
        spans.append((start, close_paren))
    return spans


def _is_two_var(name: str, arity: int) -> bool:
    if name in PREDICATES:
        return arity == 3
    return name in TRANSFORMS and arity in (3, 4)


def _key_text(key: Any) -> str:
    """A map key as Go's ``%v`` prints the CEL value (cel-go's duplicate-key error shows it so)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


class _MapBuilder:
    """A Python dict filled as CEL fills a map: ``0`` and ``0u`` are one key, ``true`` and ``1`` are two."""

    def __init__(self) -> None:
        self.out: dict[Any, Any] = {}
        self._markers: set[tuple[bool, Any]] = set()

    def put(self, key: Any, value: Any) -> None:
        marker = (isinstance(key, bool), key)
        if marker in self._markers:
            # cel-go ``common/types/map.go`` InsertMapKeyValue.
            raise ValueError(f"insert failed: key {_key_text(key)} already exists")
        if key in self.out:
            raise ValueError(f"kplane's CEL engine cannot hold both bool and int keys equal to {int(key)} in one map")
        self._markers.add(marker)
        self.out[key] = value


def map_from_pairs(pairs: Sequence[Sequence[Any]]) -> dict[Any, Any]:
    """``transformMap``'s result; its keys come from a list or a map, so they never repeat in CEL."""
    builder = _MapBuilder()
    for key, value in pairs:
        builder.put(key, value)
    return builder.out


def map_from_entries(entries: Sequence[Any]) -> dict[Any, Any]:
    """``transformMapEntry``'s result: the transforms' maps merged, a repeated key being an error.

    A transform that is not a map fails as cel-go's binary dispatch fails on ``cel.@mapInsert``
    (``interpreter/interpretable.go``)."""
    builder = _MapBuilder()
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError("no such overload: cel.@mapInsert")
        for key, value in entry.items():
            builder.put(key, value)
    return builder.out


def _variables(name: str, toks: list[_Tok], args: list[tuple[int, int]]) -> tuple[str, str]:
    """The two iteration variables, checked as cel-go's ``extractIterVars`` checks them."""
    names = [toks[a:b] for a, b in args[:2]]
    if any(len(n) != 1 or n[0].kind != "id" for n in names):
        raise TwoVarError(f"{name}: argument must be a simple name")
    first, second = names[0][0].text, names[1][0].text
    if first == second:
        raise TwoVarError(f"{name}: duplicate variable name: {first}")
    if ACCUMULATOR in (first, second) or first.startswith(BINDING) or second.startswith(BINDING):
        raise TwoVarError(f"{name}: iteration variable overwrites accumulator variable")
    return first, second


def _loop(name: str, target: str, held: str, first: str, second: str, bodies: list[str]) -> str:
    """The one-variable CEL for a call, its bodies already in source text."""
    bound = [f"cel.bind({second}, {held}[{first}], {body})" for body in bodies]
    if name == "transformMap":
        bound[-1] = f"[{first}, {bound[-1]}]"
    keys = f"(type({held}) == list ? lists.range(size({held})) : dyn({held}))"
    loop = f"{keys}.{PREDICATES.get(name, 'map')}({first}, {', '.join(bound)})"
    if name == "transformMap":
        loop = f"{MAP_FROM_PAIRS}({loop})"
    elif name == "transformMapEntry":
        loop = f"{MAP_FROM_ENTRIES}({loop})"
    return f"cel.bind({held}, {target}, {loop})"


def _rewrite_one(text: str, serial: int) -> str | None:
    """``text`` with its leftmost two-variable call rewritten, or ``None`` when it has none."""
    toks = _tokens(text)
    if toks is None:
        return None
    for i in range(1, len(toks) - 2):
        name = toks[i + 1].text
        if toks[i].text != "." or toks[i + 1].kind != "id" or toks[i + 2].text != "(":
            continue
        close = _closing(toks, i + 2)
        if close is None:
            return None
        args = _arguments(toks, i + 2, close)
        if not _is_two_var(name, len(args)):
            continue
        start = _target_start(toks, i)
        if start is None:
            raise TwoVarError(f"cannot find the target of {name}")
        first, second = _variables(name, toks, args)
        bodies = [text[toks[a].start : toks[b - 1].end] for a, b in args[2:]]
        target = text[toks[start].start : toks[i - 1].end]
        loop = _loop(name, target, f"{BINDING}{serial}", first, second, bodies)
        return text[: toks[start].start] + loop + text[toks[close].end :]
    return None


def rewrite(text: str) -> str:
    """``text`` with every two-variable comprehension in single-variable CEL; unchanged when it has none.

    :class:`TwoVarError` for malformed two-variable calls (the engine reports the rest when it compiles)."""
    serial = 0
    while (rewritten := _rewrite_one(text, serial)) is not None:
        text, serial = rewritten, serial + 1
    return text
