"""Author-defined instance conditions (kro v0.9 ``spec.schema.status.conditions``): parsing and validation.

An RGD may list ``${runtime.newCondition({type, status, reason, message})}`` entries (or entries returning
a list of them) under ``status.conditions``; they then replace kro's built-in conditions on the instance,
which stay readable as ``runtime.condition(schema, 'ResourcesReady')``. The rules and error texts follow
``kubernetes-sigs/kro`` ``pkg/graph/builder.go`` (``extractConditionExpressions``, ``buildConditions``,
``validateConditionOutputType``), ``pkg/graph/conditions.go`` (duplicate types, self-reference, literal
values) and ``pkg/cel/library/runtime.go`` (the ``newCondition`` macro's key rules).

kro's macro turns ``{type: 'X'}`` (bare identifier keys) into a string-keyed map at parse time. The engine
kplane uses has no macros, so :func:`expand_new_condition` quotes those keys in the source text instead;
the quoted text is what gets compiled and evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplane.cel import CelError, Program
from kplane.graphs import celast, celenv
from kplane.graphs import typecheck as tc
from kplane.graphs.expressions import ExpressionError, standalone_expression
from kplane.graphs.validation import GraphError

BUILTIN_TYPES = ("InstanceManaged", "GraphResolved", "ResourcesReady", "Ready")
"""kro's ``v1alpha1.KROBuiltinConditionTypes``: the only types ``runtime.condition(schema, …)`` may name."""
RUNTIME = "runtime"
PREFIX = "failed to build instance conditions: "
OUTSIDE = "runtime is only available in status.conditions expressions"


@dataclass(frozen=True)
class AuthorCondition:
    """One ``status.conditions`` entry: the expression as written and the CEL that runs (keys quoted)."""

    text: str
    source: str


def go_quote(text: str) -> str:
    """Go's ``%q`` for the texts that appear in kro's messages."""
    return json.dumps(text, ensure_ascii=False)


def _go_type(value: Any) -> str:
    """Go's ``%T`` of a value decoded from YAML through JSON, as kro's messages print it."""
    names = ((bool, "bool"), (int, "float64"), (float, "float64"), (str, "string"),
             (Mapping, "map[string]interface {}"), (list, "[]interface {}"))
    return next((name for kind, name in names if isinstance(value, kind)), "<nil>")


def extract(status: Any) -> tuple[Any, list[str]]:
    """``status`` without its ``conditions`` key, and the entries of that key (kro removes it before the
    status schema is inferred, so the CRD keeps kro's standard conditions schema)."""
    if not isinstance(status, Mapping) or "conditions" not in status:
        return status, []
    rest = {k: v for k, v in status.items() if k != "conditions"}
    raw = status["conditions"]
    where = "failed to build instance status schema: failed to extract conditions block: "
    if not isinstance(raw, list):
        raise GraphError(f"{where}status.conditions must be a list, got {_go_type(raw)}")
    for i, entry in enumerate(raw):
        if not isinstance(entry, str):
            raise GraphError(f"{where}status.conditions[{i}] must be a CEL expression string, got {_go_type(entry)}")
    return rest, list(raw)


# -- the newCondition macro ------------------------------------------------------------------------------------

Token = tuple[str, str, int]
"""``(kind, text, offset)``."""


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    for kind, tok in celast.tokenize(text):
        # Only blanks separate tokens, so the next occurrence is the token itself.
        start = text.index(tok, pos)
        out.append((kind, tok, start))
        pos = start + len(tok)
    return out


_OPEN = {"(": ")", "[": "]", "[?": "]", "{": "}"}


def _closing(tokens: Sequence[Token], start: int) -> int:
    """The index of the bracket closing the one at ``start``, or -1 when it is not closed."""
    depth = 0
    for i in range(start, len(tokens)):
        tok = tokens[i][1]
        if tok in _OPEN:
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split(tokens: Sequence[Token], separator: str) -> list[list[Token]]:
    """Split at top-level ``separator`` tokens."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        tok = token[1]
        if tok in _OPEN:
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
        if depth == 0 and tok == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _macro_calls(tokens: Sequence[Token]) -> Iterator[tuple[int, int]]:
    """``(open, close)`` paren indexes of each ``runtime.newCondition(…)`` with one argument (what kro's
    receiver macro matches: the receiver must be the plain identifier ``runtime``)."""
    for i in range(len(tokens) - 3):
        if tokens[i][:2] != ("id", RUNTIME) or (i > 0 and tokens[i - 1][1] in (".", ".?")):
            continue
        if [t[1] for t in tokens[i + 1:i + 4]] != [".", "newCondition", "("]:
            continue
        close = _closing(tokens, i + 3)
        if close > 0 and len(_split(tokens[i + 4:close], ",")) == 1 and close > i + 4:
            yield i + 3, close


def _quoted_keys(tokens: Sequence[Token], open_: int, close: int) -> list[tuple[int, int, str]]:
    """Edits ``(start, end, text)`` that quote one call's keys; :class:`ValueError` with kro's macro error."""
    arg = tokens[open_ + 1:close]
    if arg[0][1] != "{" or _closing(tokens, open_ + 1) != close - 1:
        raise ValueError("runtime.newCondition: argument must be a map literal")
    seen: list[str] = []
    edits = []
    for entry in _split(arg[1:-1], ","):
        if not entry:
            continue
        key = _split(entry, ":")[0]
        if len(key) != 1 or key[0][0] != "id":
            raise ValueError("runtime.newCondition: keys must be bare identifiers (type, status, reason, "
                             "message); quoted or computed keys are not allowed")
        name, start = key[0][1], key[0][2]
        if name not in celenv.CONDITION_KEYS:
            raise ValueError(f"runtime.newCondition: unknown key {go_quote(name)} "
                             "(allowed: type, status, reason, message)")
        if name in seen:
            raise ValueError(f"runtime.newCondition: duplicate key {go_quote(name)}")
        seen.append(name)
        edits.append((start, start + len(name), f'"{name}"'))
    for required in ("type", "status"):
        if required not in seen:
            raise ValueError(f"runtime.newCondition: '{required}' is required")
    return edits


def expand_new_condition(text: str) -> str:
    """``text`` with every ``runtime.newCondition`` map's bare keys quoted; :class:`ValueError` with kro's
    macro error when a call breaks the key rules. Text the tokenizer cannot read is left to the compiler."""
    try:
        tokens = _tokens(text)
    except celast.ParseError:
        return text
    edits = [edit for open_, close in _macro_calls(tokens) for edit in _quoted_keys(tokens, open_, close)]
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


# -- build-time rules ------------------------------------------------------------------------------------------

def _runtime_calls(node: celast.Node, name: str) -> Iterator[celast.Node]:
    if node.op == "call" and node.name == name and node.target is not None \
            and node.target.op == "ident" and node.target.name == RUNTIME:
        yield node
    for child in (*node.args, *((node.target,) if node.target is not None else ())):
        yield from _runtime_calls(child, name)


def _literal(node: celast.Node) -> str | None:
    return node.value if node.op == "lit" and isinstance(node.value, str) else None


def _map_literal(node: celast.Node, key: str) -> str | None:
    if node.op != "map":
        return None
    for k, v in zip(node.args[::2], node.args[1::2], strict=True):
        if _literal(k) == key:
            return _literal(v)
    return None


def _declared_types(tree: celast.Node) -> set[str]:
    return {t for call in _runtime_calls(tree, "newCondition") if len(call.args) == 1
            for t in [_map_literal(call.args[0], "type")] if t is not None}


def _check_calls(tree: celast.Node, declared: set[str], text: str) -> None:
    """kro's ``validateConditionAST``: literal lookups on ``schema`` name built-ins only; literal status and
    type values are valid (computed ones are checked when evaluated)."""
    quoted = go_quote(text)
    for call in _runtime_calls(tree, "condition"):
        if len(call.args) != 2 or call.args[0].op != "ident" or call.args[0].name != "schema":
            continue
        wanted = _literal(call.args[1])
        if wanted is None or wanted in BUILTIN_TYPES:
            continue
        if wanted in declared:
            raise GraphError(f"{PREFIX}runtime.condition(schema, {go_quote(wanted)}): custom conditions cannot "
                             f"reference each other in expression {quoted}")
        raise GraphError(f"{PREFIX}runtime.condition(schema, {go_quote(wanted)}): unknown condition type; only "
                         f"kro's built-in types (InstanceManaged, GraphResolved, ResourcesReady, Ready) can be "
                         f"read from schema in expression {quoted}")
    for call in _runtime_calls(tree, "newCondition"):
        if len(call.args) != 1:
            continue
        status = _map_literal(call.args[0], "status")
        if status is not None and status not in celenv.CONDITION_STATUSES:
            raise GraphError(f"{PREFIX}runtime.newCondition: status must be one of True, False, Unknown "
                             f"(got {go_quote(status)}) in expression {quoted}")
        if _map_literal(call.args[0], "type") == "":
            raise GraphError(f"{PREFIX}runtime.newCondition: type must not be empty in expression {quoted}")


def _check_output(t: tc.Ty, text: str) -> None:
    """kro's ``validateConditionOutputType``: a condition, a list of them, or ``dyn`` (the analyser types
    ``runtime`` calls as ``dyn``; what they really return is checked when evaluated)."""
    elem = (t.elem or tc.DYN) if t.kind == "list" else t
    if elem.kind != "dyn":
        raise GraphError(f"{PREFIX}condition {go_quote(text)}: condition expressions must return "
                         f"runtime.newCondition(...) or a list of them, got {go_quote(str(t))}")


def _parsed(texts: Sequence[str]) -> list[tuple[str, str | ValueError, celast.Node | None]]:
    """Per entry: its text, its quoted source (or the macro error), and its tree (when readable)."""
    out: list[tuple[str, str | ValueError, celast.Node | None]] = []
    for text in texts:
        try:
            source = expand_new_condition(text)
        except ValueError as err:
            out.append((text, err, None))
            continue
        try:
            out.append((text, source, celast.parse(source)))
        except celast.ParseError:
            out.append((text, source, None))
    return out


def build_conditions(entries: Sequence[str], ids: Collection[str], env: Mapping[str, tc.Ty],
                     ) -> tuple[tuple[AuthorCondition, ...], dict[str, Program]]:
    """Validate and compile the ``status.conditions`` entries in kro's order: unwrap, duplicate literal types,
    lookups and literal values, identifiers, types, compile. The programs are keyed by quoted source."""
    try:
        texts = [standalone_expression(entry) for entry in entries]
    except ExpressionError as err:
        raise GraphError(f"{PREFIX}invalid conditions block: {err}") from None
    parsed = _parsed(texts)
    declared: set[str] = set()
    for _, _, tree in parsed:
        for typ in sorted(_declared_types(tree)) if tree is not None else ():
            if typ in declared:
                raise GraphError(f"{PREFIX}condition type {go_quote(typ)} is declared by more than one "
                                 "conditions entry")
            declared.add(typ)
    for text, _, tree in parsed:
        if tree is not None:
            _check_calls(tree, declared, text)
    conditions: list[AuthorCondition] = []
    programs: dict[str, Program] = {}
    allowed = {*ids, "schema", RUNTIME}
    for text, source, tree in parsed:
        where = f"{PREFIX}condition {go_quote(text)}: "
        if isinstance(source, ValueError):
            raise GraphError(f"{where}{source}")
        if tree is not None:
            unknown = celast.root_identifiers(tree) - allowed
            if unknown:
                raise GraphError(f"{where}references unknown identifiers: [{' '.join(sorted(unknown))}]")
            if "omit" in celast.function_names(tree):
                raise GraphError(f"{where}omit() can only be used in resource template expressions")
            try:
                output = tc.infer(tree, env)
            except tc.TypeCheckError as err:
                raise GraphError(f"{PREFIX}failed to type-check condition {go_quote(text)}: {err}") from None
            _check_output(output, text)
        try:
            programs[source] = celenv.compile_condition(source, sorted({*ids, "schema"}))
        except CelError as err:
            raise GraphError(f"{PREFIX}failed to compile condition {go_quote(text)}: {err}") from None
        conditions.append(AuthorCondition(text, source))
    return tuple(conditions), programs


# -- evaluation results ----------------------------------------------------------------------------------------

def flatten(value: Any, text: str) -> list[dict[str, str]]:
    """kro's ``flattenCelConditionValue``: one condition or a list of them; :class:`ValueError` otherwise."""
    quoted = go_quote(text)
    if value is None:
        raise ValueError(f"condition {quoted} returned null")
    if celenv.is_condition(value):
        return [dict(value)]
    if isinstance(value, list | tuple):
        for elem in value:
            if not celenv.is_condition(elem):
                raise ValueError(f"condition {quoted} list element is not a Condition (got {type(elem).__name__})")
        return [dict(elem) for elem in value]
    raise ValueError(f"condition {quoted} must return a Condition or list(Condition), got {type(value).__name__}")


def without_duplicates(conditions: Sequence[Mapping[str, str]]) -> tuple[list[Mapping[str, str]], list[str]]:
    """Every occurrence of a type produced more than once is dropped (kro's ``dedupConditionTypes``)."""
    counts: dict[str, int] = {}
    for c in conditions:
        counts[c["type"]] = counts.get(c["type"], 0) + 1
    return [c for c in conditions if counts[c["type"]] == 1], sorted(t for t, n in counts.items() if n > 1)
