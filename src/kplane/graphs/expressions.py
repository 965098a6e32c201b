"""``${…}`` expressions embedded in YAML: finding them, standalone versus string templates, field paths.

Semantics follow kro's parser (``pkg/graph/parser/cel.go``, ``schemaless.go``): braces are counted only
outside double-quoted string literals (with ``\\`` escapes), a ``${`` inside an expression is a nested
expression unless it directly follows a ``"``, and an unterminated ``${`` is plain text. A string that is
exactly one ``${expr}`` is *standalone* and may produce any type; anything else is a *template* whose parts
are concatenated as strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class ExpressionError(ValueError):
    """An ill-formed ``${…}`` embedding; the message is kro's."""


NESTED = "nested expressions are not allowed unless inside string literals"


def find_expressions(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, expression)`` for every ``${…}`` in ``text``; ``end`` is one past the closing brace."""
    found: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            return found
        end = _closing_brace(text, start + 2)
        if end < 0:
            return found
        found.append((start, end + 1, text[start + 2:end]))
        pos = end + 1


def _closing_brace(text: str, pos: int) -> int:
    depth, in_string, i = 1, False, pos
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "$" and text.startswith("${", i) and text[i - 1] != '"':
            raise ExpressionError(NESTED)
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def is_standalone(text: str) -> bool:
    found = find_expressions(text)
    return len(found) == 1 and found[0][0] == 0 and found[0][1] == len(text)


def standalone_expression(text: str) -> str:
    """The expression of a field that must be standalone (readyWhen, includeWhen, forEach, conditions)."""
    if not isinstance(text, str) or not is_standalone(text):
        raise ExpressionError("only standalone expressions are allowed")
    return find_expressions(text)[0][2]


def _cel_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def template_source(text: str) -> str:
    """A string template as one CEL expression, ``"prefix-" + (e1) + "-" + (e2)`` (kro's buildStringTemplate)."""
    parts: list[str] = []
    pos = 0
    for start, end, expr in find_expressions(text):
        if start > pos:
            parts.append(_cel_string(text[pos:start]))
        parts.append(f"({expr})")
        pos = end
    if pos < len(text):
        parts.append(_cel_string(text[pos:]))
    return " + ".join(parts)


@dataclass(frozen=True)
class Field:
    """A field of a template whose value is computed: where it lands and the CEL that computes it."""

    path: tuple[str | int, ...]
    text: str
    expressions: tuple[str, ...]
    standalone: bool

    @property
    def source(self) -> str:
        return self.expressions[0] if self.standalone else template_source(self.text)

    @property
    def path_text(self) -> str:
        return join_path(self.path)


_PLAIN_KEY = re.compile(r"^[^.\[\]\"]+$")


def join_path(path: tuple[str | int, ...]) -> str:
    """kro's field path text: ``spec.containers[0].name``, odd keys as ``["a.b"]`` (joinPathAndFieldName)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def walk_fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[Field]:
    """Every string (map keys excluded) under ``value`` that embeds at least one expression."""
    if isinstance(value, str):
        found = find_expressions(value)
        if found:
            standalone = len(found) == 1 and found[0][0] == 0 and found[0][1] == len(value)
            yield Field(path, value, tuple(e for _, _, e in found), standalone)
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from walk_fields(child, (*path, str(key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from walk_fields(child, (*path, i))


def set_path(obj: Any, path: tuple[str | int, ...], value: Any) -> None:
    """Write ``value`` at ``path`` inside nested dicts and lists that already exist."""
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value
