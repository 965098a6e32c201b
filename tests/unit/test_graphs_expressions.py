"""``${…}`` scanning (kro's parser rules) and the analysis parser's identifiers and types."""

from __future__ import annotations

import pytest

from kplane.graphs import celast
from kplane.graphs import typecheck as tc
from kplane.graphs.expressions import (
    ExpressionError,
    find_expressions,
    is_standalone,
    join_path,
    standalone_expression,
    template_source,
    walk_fields,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("${a.b}", ["a.b"]),
    ("x-${a}-${b}", ["a", "b"]),
    ("${true ? {'k': 'v'} : {}}", ["true ? {'k': 'v'} : {}"]),
    ('${"text }} inside"}', ['"text }} inside"']),
    ('${outer("${inner}")}', ['outer("${inner}")']),
    ("${unterminated", []),
    ("no expressions", []),
    ('${"esc \\" }"}', ['"esc \\" }"']),
])
def test_find_expressions(text: str, expected: list[str]) -> None:
    assert [e for _, _, e in find_expressions(text)] == expected


def test_nested_expression_is_refused() -> None:
    with pytest.raises(ExpressionError, match="nested expressions are not allowed unless inside string literals"):
        find_expressions("${outer(${inner})}")


def test_standalone_and_template() -> None:
    assert is_standalone("${a}") and not is_standalone(" ${a}") and not is_standalone("${a}${b}")
    assert standalone_expression("${x > 1}") == "x > 1"
    for bad in ("p-${x}", "${a}${b}", 3):
        with pytest.raises(ExpressionError, match="only standalone expressions are allowed"):
            standalone_expression(bad)  # type: ignore[arg-type]
    assert template_source('a"${x}\\b') == '"a\\"" + (x) + "\\\\b"'


def test_walk_fields_paths() -> None:
    fields = list(walk_fields({"spec": {"c": [{"name": "${a}-x"}], "a.b": "${b}", "n": 1}}))
    assert [(f.path_text, f.standalone) for f in fields] == [("spec.c[0].name", False), ('spec["a.b"]', True)]
    assert join_path(("a", "", 2)) == 'a[""][2]'


@pytest.mark.parametrize(("expr", "roots"), [
    ("a.b + c[0]", {"a", "c"}),
    ("items.map(x, x.y + z)", {"items", "z"}),
    ("m.all(k, v, k == v)", {"m"}),
    ("cel.bind(t, schema.spec, t.name)", {"schema"}),
    ("random.seededString(5, schema.metadata.uid)", {"schema"}),
    ("[1, 2].exists(i, i == n) ? 'a' : \"b\"", {"n"}),
    ("{'k': v}.merge(w)", {"v", "w"}),
    ("a.?b.orValue(1u) + 0x1f - 1.5e3", {"a"}),
    ("b'bytes' == r'raw\\n'", set()),
])
def test_root_identifiers(expr: str, roots: set[str]) -> None:
    assert celast.root_identifiers(celast.parse(expr)) == roots


@pytest.mark.parametrize("bad", ["a +", "(a", "a ? b", "#", "a.(b)", "{1: }"])
def test_parse_errors(bad: str) -> None:
    with pytest.raises(celast.ParseError):
        celast.parse(bad)


def _ty(expr: str, **env: tc.Ty) -> str:
    return str(tc.infer(celast.parse(expr), env))


def test_inference() -> None:
    obj = tc.Ty("object", fields={"name": tc.STRING, "n": tc.INT})
    assert _ty("o.name + '-x'", o=obj) == "string"
    assert _ty("o.n * 2", o=obj) == "int"
    assert _ty("[o.n, 1]", o=obj) == "list(int)"
    assert _ty("l.map(x, x.name)", l=tc.list_of(obj)) == "list(string)"
    assert _ty("o.name.split('.')", o=obj) == "list(string)"
    assert _ty("d.anything.goes", d=tc.DYN) == "dyn"
    assert _ty("o.?name", o=obj) == "optional_type(string)"
    assert _ty("o.?name.orValue('')", o=obj) == "string"
    assert _ty("c ? o.n : null", o=obj, c=tc.BOOL) == "int"
    for expr, message in [("o.missing", "undefined field 'missing'"),
                          ("o.name.first", "type 'string' does not support field selection"),
                          ("o.name + o.n", "found no matching overload for '_+_' applied to '(string, int)'")]:
        with pytest.raises(tc.TypeCheckError) as err:
            _ty(expr, o=obj)
        assert str(err.value) == message


def test_mismatch_rules() -> None:
    assert tc.mismatch(tc.INT, tc.DOUBLE) is None
    assert tc.mismatch(tc.STRING, tc.INT) == 'returns type "string" but expected "int"'
    assert tc.mismatch(tc.list_of(tc.STRING), tc.list_of(tc.INT)) is not None
    assert tc.mismatch(tc.NULL, tc.INT) is None
    literal = tc.Ty("object", fields={"a": tc.STRING, "extra": tc.INT})
    expected = tc.Ty("object", fields={"a": tc.STRING})
    assert "exists in output but not in expected type" in (tc.mismatch(literal, expected) or "")
    assert tc.mismatch(literal, tc.map_of(tc.DYN)) is None
