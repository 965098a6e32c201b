"""cel-go's two-variable comprehensions (``ext.TwoVarComprehensions``) rewritten into single-variable CEL.

The engine knows only the one-variable macros, while kro enables the two-variable ones
(github.com/google/cel-go ``ext/comprehensions.go``): ``all``, ``exists``, ``existsOne`` and
``transformList`` over a list bind an index and an element, over a map a key and a value. Each call becomes a
one-variable macro over the indices (``lists.range(size(l))``) or the keys, with the element bound by
``cel.bind``. The target is bound once, so the rewrite needs no type: the range is picked at run time by
``type(target) == list``. ``transformMap`` and ``transformMapEntry`` build maps, which no one-variable macro
and no library function of the engine can, so they are refused by name.

Positions in compile errors about the rewritten parts refer to the rewritten text."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREDICATES = {"all": "all", "exists": "exists", "existsOne": "exists_one", "exists_one": "exists_one"}
UNSUPPORTED = frozenset({"transformMap", "transformMapEntry"})
BINDING = "__kplane_tv"
"""Prefix of the variable that holds a comprehension's target; users cannot collide without meaning to."""

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>0x[0-9a-fA-F]+u?|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+u?)
  | (?P<str>[bB]?[rR]?(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|\.\?|\[\?|[-+*/%!<>?:.,()\[\]{}])
  )""",
    re.VERBOSE | re.DOTALL,
)
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
        m = _TOKEN.match(text, pos)
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
    return name == "transformList" and arity in (3, 4)


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
        if name in UNSUPPORTED:
            raise TwoVarError(f"{name} is not supported: kplane's CEL engine cannot build maps in a comprehension")
        if not _is_two_var(name, len(args)):
            continue
        start = _target_start(toks, i)
        if start is None:
            raise TwoVarError(f"cannot find the target of {name}")
        names = [toks[a:b] for a, b in args[:2]]
        if any(len(n) != 1 or n[0].kind != "id" for n in names):
            raise TwoVarError(f"{name}: argument must be a simple name")
        first, second = names[0][0].text, names[1][0].text
        if first == second:
            raise TwoVarError(f"{name}: duplicate variable name: {first}")
        bodies = [text[toks[a].start : toks[b - 1].end] for a, b in args[2:]]
        target = text[toks[start].start : toks[i - 1].end]
        held = f"{BINDING}{serial}"
        bound = [f"cel.bind({second}, {held}[{first}], {body})" for body in bodies]
        macro = PREDICATES.get(name, "map")
        loop = (
            f"cel.bind({held}, {target}, (type({held}) == list ? lists.range(size({held})) : dyn({held}))"
            f".{macro}({first}, {', '.join(bound)}))"
        )
        return text[: toks[start].start] + loop + text[toks[close].end :]
    return None


def rewrite(text: str) -> str:
    """``text`` with every two-variable comprehension in single-variable CEL; unchanged when it has none.

    :class:`TwoVarError` for ``transformMap``/``transformMapEntry`` and for malformed two-variable calls."""
    serial = 0
    while (rewritten := _rewrite_one(text, serial)) is not None:
        text, serial = rewritten, serial + 1
    return text
