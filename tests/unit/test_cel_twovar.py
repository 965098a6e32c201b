"""Two-variable comprehensions: the rewrite into one-variable CEL, its evaluation, and its refusals.

Expected values for ``transformMap``/``transformMapEntry`` follow cel-go's ``ext/comprehensions_test.go``."""

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
    ("xs.all(i + 1, v, true)", "argument must be a simple name"),
    ("xs.transformList(i, i, i)", "duplicate variable name: i"),
    ("m.transformMap(k.x, v, v)", "transformMap: argument must be a simple name"),
    ("m.transformMapEntry(k, 'v', {k: 1})", "transformMapEntry: argument must be a simple name"),
    ("m.transformMap(k, k, 1)", "transformMap: duplicate variable name: k"),
    ("m.transformMapEntry(__result__, v, {v: 1})", "iteration variable overwrites accumulator variable"),
    ("m.transformMap(k, __kplane_tv0, 1)", "iteration variable overwrites accumulator variable"),
    ("m.transformMap(k, v)", "undeclared reference to 'transformMap'"),
    ("m.transformMap(k, v, true, v, v)", "undeclared reference to 'transformMap'"),
    ("m.transformMapEntry(k)", "undeclared reference to 'transformMapEntry'"),
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


@pytest.mark.parametrize(("expr", "expected"), [
    ("xs.transformMap(i, v, v * i)", {0: 0, 1: 4, 2: 10}),
    ("[1, 2, 3].transformMap(i, v, i * v + v)", {0: 1, 1: 4, 2: 9}),
    ("[1, 2, 3].transformMap(i, v, i % 2 == 0, i * v + v)", {0: 1, 2: 9}),
    ("['Hello', 'world'].transformMap(i, v, [v.lowerAscii()])", {0: ["hello"], 1: ["world"]}),
    ("m.transformMap(k, v, k + string(v))", {"a": "a1", "b": "b2"}),
    ("m.transformMap(k, v, v > 1, v + 10)", {"b": 12}),
    ("m.transformMap(k, v, false, v)", {}),
    ("{1: 2, 3: 4, 5: 6}.transformMap(k, v, k % 3 == 0, v + 1)", {3: 5}),
    ("[].transformMap(k, v, v + 1)", {}),
    ("{}.transformMap(k, v, v + 1)", {}),
    ("cel.bind(n, {'hello': 'hello'}, n.transformMap(k, v, v + 'world'))", {"hello": "helloworld"}),
    ("m.transformMapEntry(k, v, {v: k})", {1: "a", 2: "b"}),
    ("xs.transformMapEntry(i, v, {'n' + string(v): i})", {"n3": 0, "n4": 1, "n5": 2}),
    ("xs.transformMapEntry(i, v, v != 4, {v: i})", {3: 0, 5: 2}),
    ("m.transformMapEntry(k, v, {})", {}),
    ("m.transformMapEntry(k, v, {k: v, k + k: v * 2})", {"a": 1, "aa": 2, "b": 2, "bb": 4}),
    ("[].transformMapEntry(i, v, {v: i})", {}),
    ("'key1:value1 key2:value2 key3'.split(' ').transformMapEntry(i, v, "
     "cel.bind(e, v.split(':'), e.size() == 2 ? {e[0]: e[1]} : {}))", {"key1": "value1", "key2": "value2"}),
])
def test_map_building_forms(expr: str, expected: Any) -> None:
    assert run(expr) == expected


def test_map_building_results_are_cel_maps() -> None:
    assert run("m.transformMap(k, v, v * 2) == {'a': 2, 'b': 4}") is True
    assert run("[1, 2, 3].transformMapEntry(i, v, {v: i})[3]") == 2
    assert run("size(xs.transformMap(i, v, v)) + xs.transformMap(i, v, v)[2]") == 8
    assert run("m.transformMap(k, v, v).transformList(k, v, v).sum()") == 3
    assert run("['world', 'Hello'].transformMap(i, v, [v.lowerAscii()]).transformList(k, v, v).flatten().sort()") == [
        "hello", "world"]


def test_values_keep_their_types() -> None:
    data = {"obj": {"s": "x", "i": 7, "f": 1.5, "b": True, "n": None, "l": [1, "two", [3]], "o": {"deep": {"z": 0}}}}
    out = celenv.compile_expression("obj.transformMap(k, v, v)", data).evaluate(data)
    assert out == data["obj"]
    assert [type(out[k]) for k in ("s", "i", "f", "b", "n")] == [str, int, float, bool, type(None)]
    names = "(type(v) == int ? 'int' : type(v) == double ? 'double' : type(v) == bool ? 'bool' : 'other')"
    types = f"obj.transformMap(k, v, v).transformMap(k, v, {names})"
    assert celenv.compile_expression(types, data).evaluate(data) == {
        "s": "other", "i": "int", "f": "double", "b": "bool", "n": "other", "l": "other", "o": "other"}
    assert run("type(xs.transformMap(i, v, v)[0]) == int && type(m.transformMapEntry(k, v, {v: k})[1]) == string")
    assert run("[true].transformMapEntry(i, v, {v: [v, null]})") == {True: [True, None]}


def test_nested_map_building() -> None:
    assert run("m.transformMap(k, v, m.transformMap(k2, w, w + v))") == {
        "a": {"a": 2, "b": 3}, "b": {"a": 3, "b": 4}}
    assert run("xs.transformMap(i, v, i < 2, [v].transformMapEntry(j, w, {string(w): i + j}))") == {
        0: {"3": 0}, 1: {"4": 1}}
    assert run("m.transformMapEntry(k, v, {k: xs.transformList(i, x, x * v)})") == {"a": [3, 4, 5], "b": [6, 8, 10]}
    assert run("xs.transformMap(i, v, v).all(k, v, xs[k] == v)") is True


@pytest.mark.parametrize(("expr", "message"), [
    ("[1, 1].transformMapEntry(i, v, {v: i})", "insert failed: key 1 already exists"),
    ("[0, 0u].transformMapEntry(i, v, {v: i})", "insert failed: key 0 already exists"),
    ("{'greeting': 'aloha', 'farewell': 'aloha'}.transformMapEntry(k, v, {v: k})",
     "insert failed: key aloha already exists"),
    ("[true, true].transformMapEntry(i, v, {v: i})", "insert failed: key true already exists"),
    ("xs.transformMapEntry(i, v, {'same': v})", "insert failed: key same already exists"),
    ("m.transformMapEntry(k, v, dyn([k]))", "no such overload: cel.@mapInsert"),
    ("m.transformMapEntry(k, v, dyn(v))", "no such overload: cel.@mapInsert"),
])
def test_map_entry_errors_at_run_time(expr: str, message: str) -> None:
    with pytest.raises(CelError, match=message):
        run(expr)


def test_bool_and_int_keys_stay_apart_or_fail_loudly() -> None:
    assert run("[true, 2].transformMapEntry(i, v, {v: i})") == {True: 0, 2: 1}
    with pytest.raises(CelError, match="cannot hold both bool and int keys equal to 1"):
        run("[true, 1].transformMapEntry(i, v, {v: i})")


def test_map_building_type_errors_name_the_macro() -> None:
    typed = {"m": engine.map_of(engine.STRING, engine.INT)}
    with pytest.raises(CelError, match="found no matching overload for 'transformMapEntry'") as err:
        engine.compile("m.transformMapEntry(k, v, [])", typed, library=celenv.LIBRARY)
    assert "__kplane" not in str(err.value).splitlines()[0]
    with pytest.raises(CelError, match="no matching overload"):
        engine.compile("m.transformMap(k, v, 'not a bool', v)", typed, library=celenv.LIBRARY)
    with pytest.raises(CelError, match="no matching overload"):
        engine.compile("m.transformMap(k, v, v + 'x')", typed, library=celenv.LIBRARY)
    program = engine.compile("m.transformMap(k, v, v + 1)['a'] * 2", typed, library=celenv.LIBRARY)
    assert program.evaluate({"m": {"a": 20}}) == 42


def test_libraries_without_list_ranges_refuse_map_building() -> None:
    for library in ("kubernetes", "standard"):
        with pytest.raises(CelError, match=f"not supported by CEL library '{library}'"):
            engine.compile("self.transformMap(k, v, v)", {"self": engine.list_of(engine.INT)}, library=library)


def test_rewrite_of_map_building_forms() -> None:
    assert twovar.rewrite("m.transformMap(k, v, v > 1, v)") == (
        "cel.bind(__kplane_tv0, m, __kplane_tv_map((type(__kplane_tv0) == list ? lists.range(size(__kplane_tv0))"
        " : dyn(__kplane_tv0)).map(k, cel.bind(v, __kplane_tv0[k], v > 1), [k, cel.bind(v, __kplane_tv0[k], v)])))"
    )
    assert twovar.rewrite("l.transformMapEntry(i, v, {v: i})") == (
        "cel.bind(__kplane_tv0, l, __kplane_tv_entries((type(__kplane_tv0) == list ? lists.range(size(__kplane_tv0))"
        " : dyn(__kplane_tv0)).map(i, cel.bind(v, __kplane_tv0[i], {v: i}))))"
    )


def test_map_builders_directly() -> None:
    assert twovar.map_from_pairs([[0, "a"], [1, {"b": [2]}]]) == {0: "a", 1: {"b": [2]}}
    assert twovar.map_from_entries([{"a": 1}, {}, {"b": 2, "c": 3}]) == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(ValueError, match="insert failed: key false already exists"):
        twovar.map_from_entries([{False: 1}, {False: 2}])
    with pytest.raises(ValueError, match="no such overload"):
        twovar.map_from_entries([{"a": 1}, ["b"]])


def test_rgd_uses_map_building_comprehensions() -> None:
    rgd = {"metadata": {"name": "t"}, "spec": {
        "schema": {"apiVersion": "v1alpha1", "kind": "Thing",
                   "spec": {"labels": "map[string]string", "ports": "[]integer"}},
        "resources": [{"id": "cfg", "template": {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "labels": "${schema.spec.labels.transformMap(k, v, v + '-x')}"},
            "data": "${schema.spec.ports.transformMapEntry(i, p, p > 80, {'port' + string(i): string(p)})}",
        }}],
    }}
    graph = build_graph(rgd)
    instance = {"metadata": {"name": "i", "namespace": "ns"},
                "spec": {"labels": {"a": "1", "b": "2"}, "ports": [80, 443, 8080]}}
    (obj,) = render(graph, instance, {}).objects()
    assert obj["metadata"]["labels"] == {"a": "1-x", "b": "2-x"}
    assert obj["data"] == {"port1": "443", "port2": "8080"}
