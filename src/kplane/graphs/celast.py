"""A small CEL parser for *analysis*: which identifiers an expression reads, and what type it returns.

The evaluation engine (:mod:`kplane.cel`) compiles and runs expressions but exposes no syntax tree, while
kro needs one twice: its dependency inspector collects the root identifiers of every expression
(``pkg/cel/ast/inspector.go``), and its type checker follows field selections into OpenAPI schemas. This
parser follows the CEL grammar (github.com/google/cel-spec ``doc/langdef.md``) closely enough for both;
anything it cannot read is reported so the caller can fall back on the engine's own error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kplane.cel.lexer import TOKEN

MACROS_ONE_VAR = frozenset({"all", "exists", "exists_one", "map", "filter"})
MACROS_TWO_VAR = frozenset({"existsOne", "transformList", "transformMap", "transformMapEntry"})


class ParseError(ValueError):
    """The text is not CEL this parser understands."""


@dataclass(frozen=True)
class Node:
    """One syntax node; ``op`` says which: ident, lit, select, index, call, list, map."""

    op: str
    name: str = ""
    args: tuple[Node, ...] = ()
    target: Node | None = None
    value: object = None
    optional: bool = False


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "`": "`", "?": "?", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}


def _unquote(text: str) -> tuple[str | bytes, bool]:
    prefix = ""
    while text[0] in "bBrR":
        prefix += text[0].lower()
        text = text[1:]
    quote = text[:3] if text[:3] in ('"""', "'''") else text[0]
    body = text[len(quote):-len(quote)]
    if "r" not in prefix:
        body = re.sub(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{3}|.)", _escape, body, flags=re.DOTALL)
    return (body.encode() if "b" in prefix else body), "b" in prefix


def _escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "ux" and len(code) > 1:
        return chr(int(code[1:], 16))
    if code.isdigit():
        return chr(int(code, 8))
    return _ESCAPES.get(code, "\\" + code)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ParseError(f"Syntax error: token recognition error at: '{text[pos:].strip()[:1]}'")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


_BINARY = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.tokens[i][1] if i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ParseError("Syntax error: unexpected end of expression")
        tok = self.tokens[self.pos]
        if expected is not None and tok[1] != expected:
            raise ParseError(f"Syntax error: expected '{expected}', found '{tok[1]}'")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.pos != len(self.tokens):
            raise ParseError(f"Syntax error: unexpected '{self.peek()}'")
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.peek() == "?":
            self.take()
            yes = self.binary(0)
            self.take(":")
            no = self.expr()
            return Node("call", "_?_:_", (cond, yes, no))
        return cond

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in _BINARY[level] and self.tokens[self.pos][0] in ("op", "id"):
            op = self.take()[1]
            right = self.binary(level + 1)
            left = Node("call", f"_{op}_" if op != "in" else "@in", (left, right))
        return left

    def unary(self) -> Node:
        if self.peek() in ("!", "-"):
            op = self.take()[1]
            return Node("call", f"{op}_", (self.unary(),))
        return self.member(self.primary())

    def arguments(self, close: str) -> tuple[Node, ...]:
        args: list[Node] = []
        while self.peek() != close:
            args.append(self.expr())
            if self.peek() != ",":
                break
            self.take()
        self.take(close)
        return tuple(args)

    def member(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok in (".", ".?"):
                self.take()
                name = self.take()[1]
                if tok == "." and self.peek() == "(":
                    self.take()
                    node = Node("call", name, self.arguments(")"), target=node)
                else:
                    node = Node("select", name, target=node, optional=tok == ".?")
            elif tok in ("[", "[?"):
                self.take()
                index = self.expr()
                self.take("]")
                node = Node("index", args=(index,), target=node, optional=tok == "[?")
            else:
                return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            return _number(text)
        if kind == "str":
            value, is_bytes = _unquote(text)
            return Node("lit", "bytes" if is_bytes else "string", value=value)
        if kind == "id":
            if text in ("true", "false"):
                return Node("lit", "bool", value=text == "true")
            if text == "null":
                return Node("lit", "null_type", value=None)
            if self.peek() == "(":
                self.take()
                return Node("call", text, self.arguments(")"))
            return Node("ident", text)
        if text == ".":
            return self.primary()
        if text == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if text == "[":
            return Node("list", args=self.arguments("]"))
        if text == "{":
            return self.map_literal()
        raise ParseError(f"Syntax error: mismatched input '{text}'")

    def map_literal(self) -> Node:
        entries: list[Node] = []
        while self.peek() != "}":
            if self.peek() == "?":
                self.take()
            key = self.expr()
            self.take(":")
            entries.extend((key, self.expr()))
            if self.peek() != ",":
                break
            self.take()
        self.take("}")
        return Node("map", args=tuple(entries))


def _number(text: str) -> Node:
    if text.endswith("u"):
        return Node("lit", "uint", value=int(text[:-1], 0))
    if text.lower().startswith("0x"):
        return Node("lit", "int", value=int(text, 16))
    if any(c in text for c in ".eE"):
        return Node("lit", "double", value=float(text))
    return Node("lit", "int", value=int(text))


def parse(text: str) -> Node:
    """The syntax tree of ``text``; :class:`ParseError` when it is not CEL."""
    return _Parser(text).parse()


def qualified_name(node: Node) -> str | None:
    """``a.b.c`` for a chain of plain selections on an identifier (how CEL spells namespaced functions)."""
    if node.op == "ident":
        return node.name
    if node.op == "select" and node.target is not None and not node.optional:
        base = qualified_name(node.target)
        return f"{base}.{node.name}" if base else None
    return None


def bound_variables(node: Node) -> tuple[str, ...]:
    """Loop or binding variables a macro call introduces for its later arguments."""
    if node.op != "call" or node.target is None or not node.args or node.args[0].op != "ident":
        return ()
    first, second = node.args[0].name, node.args[1] if len(node.args) > 1 else None
    if node.name == "bind" and qualified_name(node.target) == "cel":
        return (first,)
    two_var = node.name in MACROS_TWO_VAR or (node.name in MACROS_ONE_VAR - {"map", "filter"} and len(node.args) == 3)
    if two_var and second is not None and second.op == "ident":
        return (first, second.name)
    if node.name in MACROS_ONE_VAR and len(node.args) >= 2:
        return (first,)
    return ()


def root_identifiers(node: Node, bound: frozenset[str] = frozenset()) -> set[str]:
    """Free identifiers the expression reads, skipping comprehension and ``cel.bind`` variables."""
    if node.op == "ident":
        return set() if node.name in bound else {node.name}
    found: set[str] = set()
    names = bound_variables(node)
    if node.target is not None and not (node.op == "call" and _is_namespace(node.target, bound)):
        found |= root_identifiers(node.target, bound)
    inner = bound | frozenset(names)
    for i, arg in enumerate(node.args):
        if names and i < len(names) and arg.op == "ident" and arg.name == names[i]:
            continue
        found |= root_identifiers(arg, inner if names else bound)
    return found


NAMESPACES = frozenset({"random", "hash", "json", "lists", "base64", "strings", "math", "optional", "cel", "sets"})


def _is_namespace(target: Node, bound: frozenset[str]) -> bool:
    name = qualified_name(target)
    return name is not None and name.split(".")[0] in NAMESPACES and name.split(".")[0] not in bound


def function_names(node: Node) -> set[str]:
    """Functions the expression calls, namespaced ones by their full name (``random.seededString``)."""
    found: set[str] = set()
    if node.op == "call":
        if node.target is not None and _is_namespace(node.target, frozenset()):
            found.add(f"{qualified_name(node.target)}.{node.name}")
        else:
            found.add(node.name)
    for child in (*node.args, *((node.target,) if node.target is not None else ())):
        found |= function_names(child)
    return found
