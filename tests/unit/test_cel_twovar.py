"""Two-variable comprehensions: the rewrite into one-variable CEL, its evaluation, and its refusals."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.cel import CelError, engine, twovar
from kplane.graphs import build_graph, celenv, render

DATA = {"xs": [3, 4, 5], "m": {"a": 1, "b": 2}, "words": ["all(i, v, p)", "b"]}


def run(expr: str) -> Any:
    return celenv.compile_expression(expr, DATA).evaluate(DATA)


@pytest.mark.parametrize(("expr", "expected"), [
    ("xs.all(i, v, v == i + 3)", True),
    ("xs.all(i, v, v > i + 3)", False),
    ("xs.exists(i, v, i == 2 && v == 5)", True),
    ("xs.exists(i, v, i == v)", False),
    ("xs.existsOne(i, v, v > 4)", True),
    ("xs.exists_one(i, v, v > 3)", False),
    ("xs.transformList(i, v, v * i)", [0, 4, 10]),
    ("xs.transformList(i, v, i != 1, v + i)", [3, 7]),
    ("[].all(i, v, false)", True),
    ("[].transformList(i, v, v)", []),
    ("m.all(k, v, v < 3 && k in ['a', 'b'])", True),
    ("m.exists(k, v, k == 'b' && v == 2)", True),
    ("m.existsOne(k, v, v > 0)", False),
    ("m.transformList(k, v, v > 1, k + string(v))", ["b2"]),
])
def test_forms_on_lists_and_maps(expr: str, expected: Any) -> None:
    assert run(expr) == expected


def test_map_transform_list_covers_every_entry() -> None:
    assert sorted(run("m.transformList(k, v, k + string(v))")) == ["a1", "b2"]


def test_nesting_chaining_and_outer_variables() -> None:
    assert run("[[1], [2, 3]].transformList(i, v, v.transformList(j, w, i + j + w))") == [[1], [3, 5]]
    assert run("xs.transformList(i, v, v).all(i, v, xs[i] == v)") is True
    assert run("xs.all(i, v, m.exists(k, w, w + i == v - 2))") is True
    assert run("xs.all(i, v, m.exists(k, w, w + i == v))") is False
    assert run("xs.map(x, x * 2).transformList(i, v, v - i)") == [6, 7, 8]
    assert run("cel.bind(i, 10, xs.exists(j, v, v + i == 13))") is True
    assert run("size(xs.filter(x, x > 3).transformList(i, v, i)) + 1") == 3


def test_method_names_inside_strings_are_left_alone() -> None:
    assert run("words.existsOne(i, v, v == 'all(i, v, p)')") is True
    assert run("'x.all(i, v, p)'") == "x.all(i, v, p)"
    assert twovar.rewrite("a.all(x, p) && 'y.transformMap(i, v, v)' != ''") == (
        "a.all(x, p) && 'y.transformMap(i, v, v)' != ''"
    )


def test_one_variable_macros_are_untouched() -> None:
    for expr in ("xs.all(x, x > 0)", "xs.map(x, x > 3, x)", "m.exists(k, k == 'a')", "xs.filter(x, true)"):
        assert twovar.rewrite(expr) == expr


@pytest.mark.parametrize(("expr", "message"), [
    ("xs.transformMap(i, v, v)", "transformMap is not supported"),
    ("m.transformMapEntry(k, v, {k: v})", "transformMapEntry is not supported"),
    ("xs.all(i + 1, v, true)", "argument must be a simple name"),
    ("xs.transformList(i, i, i)", "duplicate variable name: i"),
])
def test_unsupported_and_malformed_forms(expr: str, message: str) -> None:
    with pytest.raises(CelError, match=message):
        run(expr)


def test_type_errors_inside_the_body_still_surface() -> None:
    with pytest.raises(CelError):
        engine.compile("xs.all(i, v, v + 'x')", {"xs": engine.list_of(engine.INT)}, library=celenv.LIBRARY)


def test_libraries_without_list_ranges_refuse_them() -> None:
    with pytest.raises(CelError, match="two-variable comprehensions are not supported by CEL library"):
        engine.compile("self.all(i, v, v > 0)", {"self": engine.list_of(engine.INT)})


def test_rgd_uses_two_variable_comprehensions() -> None:
    rgd = {"metadata": {"name": "t"}, "spec": {
        "schema": {"apiVersion": "v1alpha1", "kind": "Thing", "spec": {"ports": "[]integer"}},
        "resources": [{"id": "cfg", "template": {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
            "data": {
                "ports": "${schema.spec.ports.transformList(i, p, 'p' + string(i) + '=' + string(p)).join(',')}",
                "ok": "${string(schema.spec.ports.all(i, p, p > 1000 + i))}",
            },
        }}],
    }}
    graph = build_graph(rgd)
    assert graph.resources["cfg"].dependencies == ()
    instance = {"metadata": {"name": "i", "namespace": "ns"}, "spec": {"ports": [8080, 8443]}}
    (obj,) = render(graph, instance, {}).objects()
    assert obj["data"] == {"ports": "p0=8080,p1=8443", "ok": "true"}
