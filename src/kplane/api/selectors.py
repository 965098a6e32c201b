"""Label and field selectors, parsed and matched as the apiserver does.

Clients send ``labelSelector`` / ``fieldSelector`` query strings and embed ``metav1.LabelSelector`` objects in
specs; kubectl, informers and controllers rely on the exact grammar and on the error texts. Semantics follow
k8s.io/apimachinery pkg/labels/selector.go (lexer, parser, ``NewRequirement``, ``Requirement.String``),
pkg/fields/selector.go (``ParseSelector``, escaping), pkg/apis/meta/v1/helpers.go
(``LabelSelectorAsSelector``) and pkg/util/validation (qualified names and label values).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kplane.api.status import StatusError, bad_request

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "field_value",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
]

# selection.Operator values
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "in", "notin", "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_INT64 = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Requirement:
    """One term: ``key``, an operator (``=``, ``==``, ``!=``, ``in``, ``notin``, ``exists``, ``!``, ``gt``,
    ``lt``) and its values, kept sorted and unique so equal requirements compare equal."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in (GREATER_THAN, LESS_THAN) and present and len(self.values) == 1:
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if self.operator == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{joined}"


def _parse_int64(text: str) -> int | None:
    """``strconv.ParseInt(s, 10, 64)``: optional sign, digits only, within int64."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True)
class LabelSelector:
    """Requirements ANDed together, sorted by key (stable, as upstream sorts them).

    ``nothing`` is upstream's ``labels.Nothing()``: what a nil ``metav1.LabelSelector`` converts to.
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector selects everything."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _make_selector(requirements: list[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


NOTHING = LabelSelector(nothing=True)


# ---- label validation (k8s.io/apimachinery pkg/util/validation/validation.go) ----

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT)
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _name_regex_error() -> str:
    return _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")


def qualified_name_errors(value: str) -> list[str]:
    """``validation.IsQualifiedName``: an optional DNS-subdomain prefix and ``/``, then a name ≤ 63 chars."""
    parts = value.split("/")
    errors: list[str] = []
    if len(parts) > 2:
        return [
            f"a qualified name {_name_regex_error()} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN.fullmatch(prefix):
                errors.append(
                    "prefix part "
                    + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME.fullmatch(name):
        errors.append(f"name part {_name_regex_error()}")
    return errors


def label_value_errors(value: str) -> list[str]:
    """``validation.IsValidLabelValue``: empty, or ≤ 63 alphanumerics with ``-_.`` inside."""
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _invalid(path: str, shown: str, detail: str) -> str:
    """One ``field.Error`` rendered as text: ``<path>: Invalid value: <value>: <detail>``."""
    return f"{path}: Invalid value: {shown}: {detail}"


def _go_strings(values: Collection[str]) -> str:
    """Go's ``%#v`` of a ``[]string`` (empty ones are nil where upstream builds them)."""
    if not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def new_requirement(key: str, operator: str, values: Collection[str]) -> Requirement:
    """``labels.NewRequirement``: validate the key, the operator's value count and each value."""
    errors: list[str] = []
    if key_errors := qualified_name_errors(key):
        errors.append(_invalid("key", _go_quote(key), "; ".join(key_errors)))
    shown = _go_strings(values)
    if operator in (IN, NOT_IN) and not values:
        errors.append(_invalid("values", shown, "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(values) != 1:
        errors.append(_invalid("values", shown, "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST) and values:
        errors.append(_invalid("values", shown, "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errors.append(
                _invalid("values", shown, "for 'Gt', 'Lt' operators, exactly one value is required")
            )
        errors.extend(
            _invalid(f"values[{i}]", _go_quote(v), "for 'Gt', 'Lt' operators, the value must be an integer")
            for i, v in enumerate(values)
            if _parse_int64(v) is None
        )
    elif operator not in (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST):
        supported = ", ".join(
            _go_quote(o)
            for o in (
                DOES_NOT_EXIST,
                EQUALS,
                DOUBLE_EQUALS,
                IN,
                NOT_EQUALS,
                NOT_IN,
                EXISTS,
                GREATER_THAN,
                LESS_THAN,
            )
        )
        errors.append(f"operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}")
    for i, value in enumerate(values):
        if value_errors := label_value_errors(value):
            errors.append(_invalid(f"values[{i}][{key}]", _go_quote(value), "; ".join(value_errors)))
    if errors:
        raise bad_request(_aggregate(errors))
    return Requirement(key, operator, tuple(sorted(set(values))))


def _aggregate(errors: list[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message alone, several in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ---- label selector grammar (k8s.io/apimachinery pkg/labels/selector.go) ----

_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_SYMBOLS = frozenset({")", ",", "!", "==", "=", ">", "<", "!=", "("})
_KEYWORDS = frozenset({IN, NOT_IN})
_END, _IDENT = "end", "identifier"


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal); symbols and keywords are their own kind; the lexer stops at a NUL."""
    text = text.split("\0", 1)[0]
    tokens: list[tuple[str, str]] = []
    i = 0
    while True:
        while i < len(text) and text[i] in _WHITESPACE:
            i += 1
        if i >= len(text):
            tokens.append((_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            # longest run of special characters that is still a known symbol
            j = i + 1
            while j < len(text) and text[j] in _SPECIAL and text[i : j + 1] in _SYMBOLS:
                j += 1
            tokens.append((text[i:j], text[i:j]))
        else:
            j = i
            while j < len(text) and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
                j += 1
            word = text[i:j]
            tokens.append((word if word in _KEYWORDS else _IDENT, word))
        i = j


class _LabelParser:
    """Recursive descent over the token list; ``values`` context reads ``in``/``notin`` as identifiers."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        return self._as(self.tokens[min(self.pos, len(self.tokens) - 1)], values)

    def take(self, values: bool = True) -> tuple[str, str]:
        token = self.peek(values)
        self.pos += 1
        return token

    @staticmethod
    def _as(token: tuple[str, str], values: bool) -> tuple[str, str]:
        return (_IDENT, token[1]) if values and token[0] in _KEYWORDS else token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind == _END:
                return requirements
            if kind not in (_IDENT, "!"):
                raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except ValueError as err:
                raise ValueError(f"unable to parse requirement: {err}") from None
            kind, literal = self.take()
            if kind == _END:
                return requirements
            if kind != ",":
                raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.peek()
            if kind not in (_IDENT, "!"):
                raise ValueError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        kind, key = self.take()
        if kind == "!":
            negated = True
            kind, key = self.take()
        if kind != _IDENT:
            raise ValueError(f"found '{key}', expected: identifier")
        if errors := qualified_name_errors(key):
            raise ValueError(_invalid("<nil>", _go_quote(key), "; ".join(errors)))
        if negated:
            return _checked(key, DOES_NOT_EXIST, [])
        if self.peek()[0] in (_END, ","):
            return _checked(key, EXISTS, [])
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return _checked(key, operator, values)

    def operator(self) -> str:
        kind, literal = self.take(values=False)
        symbols = {
            "=": EQUALS,
            "==": DOUBLE_EQUALS,
            "!=": NOT_EQUALS,
            ">": GREATER_THAN,
            "<": LESS_THAN,
            IN: IN,
            NOT_IN: NOT_IN,
        }
        if kind not in symbols:
            raise ValueError(f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}")
        return symbols[kind]

    def exact_value(self) -> list[str]:
        if self.peek()[0] in (_END, ","):
            return [""]
        kind, literal = self.take()
        if kind != _IDENT:
            raise ValueError(f"found '{literal}', expected: identifier")
        return [literal]

    def value_set(self) -> list[str]:
        kind, literal = self.take()
        if kind != "(":
            raise ValueError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == ")":
            self.take()
            return [""]
        if kind not in (_IDENT, ","):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self.identifiers()
        self.take()  # the ")" that ended the list
        return values

    def identifiers(self) -> list[str]:
        """Items up to ``)``; empty items (``(,a)``, ``(a,)``, ``(a,,b)``) stand for the empty value."""
        values: list[str] = []
        while True:
            kind, literal = self.take()
            if kind == _IDENT:
                values.append(literal)
                kind, literal = self.peek()
                if kind == ")":
                    return values
                if kind != ",":
                    raise ValueError(f"found '{literal}', expected: ',' or ')'")
            elif kind == ",":
                if not values:
                    values.append("")
                following = self.peek()[0]
                if following == ")":
                    values.append("")
                    return values
                if following == ",":
                    self.take()
                    values.append("")
            else:
                raise ValueError(f"found '{literal}', expected: ',', or identifier")


def _checked(key: str, operator: str, values: list[str]) -> Requirement:
    try:
        return new_requirement(key, operator, values)
    except StatusError as err:
        raise ValueError(err.message) from None


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` string; errors are 400 BadRequest with upstream's message."""
    try:
        requirements = _LabelParser(text).parse()
    except ValueError as err:
        raise bad_request(str(err)) from None
    return _make_selector(requirements)


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector``: None selects nothing, ``{}`` selects everything."""
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    requirements = [new_requirement(str(k), EQUALS, [str(v)]) for k, v in match_labels.items()]
    for expression in expressions:
        operator = expression.get("operator", "")
        if operator not in _EXPRESSION_OPERATORS:
            raise bad_request(f"{_go_quote(str(operator))} is not a valid label selector operator")
        values = [str(v) for v in expression.get("values") or []]
        key = str(expression.get("key", ""))
        requirements.append(new_requirement(key, _EXPRESSION_OPERATORS[operator], values))
    return _make_selector(requirements)


# ---- field selectors (k8s.io/apimachinery pkg/fields/selector.go) ----


def field_value(obj: Mapping[str, Any], path: str) -> str | None:
    """The text a field selector compares for dotted ``path``; None when absent or not a scalar."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, int | float | str):
        return str(current)
    return None


@dataclass(frozen=True)
class FieldSelector:
    """Terms ANDed together; each is a :class:`Requirement` with operator ``=`` or ``!=`` and one value."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(
        self, obj: Mapping[str, Any], value_of: Callable[[Mapping[str, Any], str], str | None] = field_value
    ) -> bool:
        """True when every term holds; an absent field reads as ``""`` (Go's zero value), as upstream."""
        for r in self.requirements:
            equal = (value_of(obj, r.key) or "") == r.values[0]
            if equal != (r.operator == EQUALS):
                return False
        return True

    def exact_name(self) -> str | None:
        """The name a ``metadata.name=X`` term pins, so the server can fetch one object instead of listing."""
        for r in self.requirements:
            if r.key == "metadata.name" and r.operator == EQUALS:
                return r.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(_field_term(r) for r in self.requirements)


def _field_term(r: Requirement) -> str:
    return f"{r.key}{r.operator}{escape_field_value(r.values[0])}"


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(text: str) -> str:
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            if char not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise bad_request(f"invalid field selector: unescaped character in value: {char}")
        else:
            out.append(char)
    if escaped:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped; escapes stay in the terms."""
    terms: list[str] = []
    start = 0
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Split at the first operator (``!=``, ``==`` before ``=`` at one place); fields have no escapes."""
    for i in range(len(term)):
        for op in (NOT_EQUALS, DOUBLE_EQUALS, EQUALS):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def parse_field_selector(text: str, allowed: Collection[str]) -> FieldSelector:
    """Parse a ``fieldSelector`` string. Raw terms are checked in sorted order, as upstream checks them, so
    the same unsupported field is reported first; the result keeps its terms sorted in canonical form, so
    ``str`` round-trips. A field outside ``allowed`` is 400 ``field label not supported: <field>``.
    """
    requirements: list[Requirement] = []
    for term in sorted(_split_terms(text)) if text else []:
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, raw = split
        requirements.append(
            Requirement(field, NOT_EQUALS if op == NOT_EQUALS else EQUALS, (_unescape_field_value(raw),))
        )
    for r in requirements:
        if r.key not in allowed:
            raise bad_request(f"field label not supported: {r.key}")
    return FieldSelector(tuple(sorted(requirements, key=_field_term)))
