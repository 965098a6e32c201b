"""The Kubernetes JSONPath subset used by CRD printer columns, scale paths and kubectl-style lookups.

Syntax follows client-go's ``util/jsonpath``: an optional ``{…}`` wrapper, an optional ``$`` root, ``.field``
(dots escaped as ``\\.``), ``['a.b']`` / ``["a"]``, ``[0]``, ``[-1]``, ``[1:3]``, ``[*]``, ``.*``, ``..field``
(recursive descent), unions ``[0,2]`` / ``['a','b']`` and filters ``[?(@.type=="Ready")]`` with ``==``,
``!=``, ``<``, ``<=``, ``>``, ``>=`` or a bare ``[?(@.x)]`` existence test.

Evaluation behaves like the CRD table convertor, which turns on ``AllowMissingKeys``: a missing key or an
index out of range yields no result rather than an error. Parse errors raise ``ValueError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_NAME_STOP = set(".[]{}() \t\n\"'=!<>,")


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Slice:
    start: int | None
    end: int | None
    step: int | None


@dataclass(frozen=True)
class _Union:
    parts: tuple[_Step, ...]


@dataclass(frozen=True)
class _Recursive:
    step: _Step


@dataclass(frozen=True)
class _Filter:
    left: tuple[_Step, ...] | Any
    op: str  # "" for an existence test
    right: tuple[_Step, ...] | Any


_Step = _Field | _Wildcard | _Index | _Slice | _Union | _Recursive | _Filter


class _Literal:
    """Marks a filter operand that is a constant rather than an ``@`` path."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"{what} in jsonpath {self.text!r} at position {self.pos}")

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos:self.pos + n]

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def path(self, stop: str = "") -> tuple[_Step, ...]:
        steps: list[_Step] = []
        while not self.done() and self.peek() not in stop:
            if self.peek(2) == "..":
                self.pos += 2
                if self.peek() == "[":
                    steps.append(_Recursive(self.bracket()))
                else:
                    steps.append(_Recursive(self.dotted()))
            elif self.peek() == ".":
                self.pos += 1
                if self.done() or self.peek() in stop:
                    break  # a bare "." (or a trailing one) names the current node
                if self.peek() == "[":
                    continue
                steps.append(self.dotted())
            elif self.peek() == "[":
                steps.append(self.bracket())
            else:
                raise self.error(f"unrecognized character {self.peek()!r}")
        return tuple(steps)

    def dotted(self) -> _Step:
        if self.peek() == "*":
            self.pos += 1
            return _Wildcard()
        name: list[str] = []
        while not self.done():
            ch = self.peek()
            if ch == "\\" and self.peek(2) == "\\.":
                name.append(".")
                self.pos += 2
                continue
            if ch in _NAME_STOP:
                break
            name.append(ch)
            self.pos += 1
        if not name:
            raise self.error("expected a field name")
        return _Field("".join(name))

    def bracket(self) -> _Step:
        self.pos += 1  # "["
        self.skip_space()
        step: _Step
        if self.peek(2) == "?(":
            self.pos += 2
            step = self.filter()
        elif self.peek() == "*":
            self.pos += 1
            step = _Wildcard()
        else:
            step = self.union()
        self.skip_space()
        if self.peek() != "]":
            raise self.error("unterminated array")
        self.pos += 1
        return step

    def union(self) -> _Step:
        parts = [self.subscript()]
        self.skip_space()
        while self.peek() == ",":
            self.pos += 1
            self.skip_space()
            parts.append(self.subscript())
            self.skip_space()
        return parts[0] if len(parts) == 1 else _Union(tuple(parts))

    def subscript(self) -> _Step:
        if self.peek() in ("'", '"'):
            return _Field(self.quoted())
        bounds: list[int | None] = []
        while True:
            self.skip_space()
            match = re.compile(r"-?\d+").match(self.text, self.pos)
            if match:
                bounds.append(int(match.group()))
                self.pos = match.end()
            else:
                bounds.append(None)
            self.skip_space()
            if self.peek() != ":":
                break
            self.pos += 1
        if len(bounds) == 1:
            if bounds[0] is None:
                raise self.error("invalid array index")
            return _Index(bounds[0])
        if len(bounds) > 3:
            raise self.error("invalid array slice")
        start, end, step = [*bounds, None, None][:3]
        if step == 0:
            raise self.error("slice step cannot be zero")
        return _Slice(start, end, step)

    def quoted(self) -> str:
        quote = self.peek()
        self.pos += 1
        out: list[str] = []
        while not self.done() and self.peek() != quote:
            if self.peek() == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            out.append(self.peek())
            self.pos += 1
        if self.done():
            raise self.error("unterminated quoted string")
        self.pos += 1
        return "".join(out)

    def filter(self) -> _Filter:
        self.skip_space()
        left = self.operand()
        self.skip_space()
        op = ""
        for candidate in ("==", "!=", "<=", ">=", "<", ">"):
            if self.peek(len(candidate)) == candidate:
                op = candidate
                self.pos += len(candidate)
                break
        right: Any = None
        if op:
            self.skip_space()
            right = self.operand()
            self.skip_space()
        elif isinstance(left, _Literal):
            raise self.error("a filter without an operator must test an @ path")
        if self.peek() != ")":
            raise self.error("unterminated filter")
        self.pos += 1
        return _Filter(left, op, right)

    def operand(self) -> tuple[_Step, ...] | _Literal:
        ch = self.peek()
        if ch == "@":
            self.pos += 1
            return self.path(stop=" =!<>)")
        if ch in ("'", '"'):
            return _Literal(self.quoted())
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return _Literal(value)
        match = _NUMBER.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            number = match.group()
            return _Literal(float(number) if any(c in number for c in ".eE") else int(number))
        raise self.error("invalid filter operand")

    def skip_space(self) -> None:
        while not self.done() and self.peek() in " \t":
            self.pos += 1


@lru_cache(maxsize=512)
def parse(expr: str) -> tuple[_Step, ...]:
    """Parse once; printer columns evaluate the same few expressions for every row."""
    text = expr.strip()
    if text.startswith("{"):
        if not text.endswith("}"):
            raise ValueError(f"unclosed action in jsonpath {expr!r}")
        text = text[1:-1].strip()
    elif text.endswith("}"):
        raise ValueError(f"unexpected '}}' in jsonpath {expr!r}")
    if text.startswith("$"):
        text = text[1:]
    parser = _Parser(text)
    steps = parser.path()
    if not parser.done():
        raise parser.error("unexpected trailing input")
    return steps


def evaluate(expr: str, obj: Any) -> list[Any]:
    """All values ``expr`` selects in ``obj``, in document order; ``[]`` when nothing matches."""
    return _walk(parse(expr), [obj])


def _walk(steps: tuple[_Step, ...], nodes: list[Any]) -> list[Any]:
    for step in steps:
        nodes = [out for node in nodes for out in _apply(step, node)]
    return nodes


def _apply(step: _Step, node: Any) -> Iterator[Any]:
    if isinstance(step, _Field):
        if isinstance(node, Mapping) and step.name in node:
            yield node[step.name]
    elif isinstance(step, _Wildcard):
        yield from _children(node)
    elif isinstance(step, _Index):
        if isinstance(node, list) and -len(node) <= step.index < len(node):
            yield node[step.index]
    elif isinstance(step, _Slice):
        if isinstance(node, list):
            yield from node[step.start:step.end:step.step]
    elif isinstance(step, _Union):
        for part in step.parts:
            yield from _apply(part, node)
    elif isinstance(step, _Recursive):
        for descendant in _descendants(node):
            yield from _apply(step.step, descendant)
    else:
        if isinstance(node, list):
            yield from (item for item in node if _matches(step, item))


def _children(node: Any) -> list[Any]:
    if isinstance(node, Mapping):
        return [node[k] for k in sorted(node)]
    if isinstance(node, list):
        return list(node)
    return []


def _descendants(node: Any) -> Iterator[Any]:
    yield node
    for child in _children(node):
        yield from _descendants(child)


def _operand(side: Any, item: Any) -> list[Any]:
    if isinstance(side, _Literal):
        return [side.value]
    return _walk(side, [item])


def _matches(flt: _Filter, item: Any) -> bool:
    lefts = _operand(flt.left, item)
    if not flt.op:
        return bool(lefts)
    rights = _operand(flt.right, item)
    if not lefts or not rights:
        return False
    return _COMPARE[flt.op](lefts[0], rights[0])


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if _numeric(a) and _numeric(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if (_numeric(a) and _numeric(b)) or (isinstance(a, str) and isinstance(b, str)):
            return test(a, b)
        return False

    return compare


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "<": _ordered(lambda a, b: a < b),
    "<=": _ordered(lambda a, b: a <= b),
    ">": _ordered(lambda a, b: a > b),
    ">=": _ordered(lambda a, b: a >= b),
}


def format_value(value: Any) -> str:
    """Text of one result as client-go's ``PrintResults`` writes it: maps and lists as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)
