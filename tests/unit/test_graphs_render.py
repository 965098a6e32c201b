"""Graph building details and rendering: externalRef, omit(), pending data, collections, kro's functions."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.graphs import GraphError, build_graph, celenv, render
from kplane.graphs.render import _reads as reads_of


def rgd(resources: list[dict[str, Any]], spec: dict[str, Any] | None = None, **schema: Any) -> dict[str, Any]:
    return {"metadata": {"name": "t"}, "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "Thing",
                                                           "spec": spec or {"name": "string"}, **schema},
                                                "resources": resources}}


def cm(rid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}}


INSTANCE = {"metadata": {"name": "i", "namespace": "team", "uid": "u-1"}, "spec": {"name": "demo"}}


def test_namespace_defaulting_and_string_template() -> None:
    graph = build_graph(rgd([cm("a", "${schema.spec.name}-cfg", data={"n": "${string(size(schema.spec.name))}"})]))
    (obj,) = render(graph, INSTANCE, {}).objects()
    assert obj["metadata"] == {"name": "demo-cfg", "namespace": "team"} and obj["data"] == {"n": "4"}


def test_external_ref_is_not_created_and_feeds_dependents() -> None:
    graph = build_graph(rgd([
        {"id": "input", "externalRef": {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "${schema.spec.name}-in"}}},
        cm("out", "out", data={"v": '${input.?data.value.orValue("none")}'}),
    ]))
    assert graph.resources["input"].is_external and graph.resources["out"].dependencies == ("input",)
    first = render(graph, INSTANCE, {})
    assert first.resources["input"].objects[0]["metadata"]["name"] == "demo-in"
    assert [o["metadata"]["name"] for o in first.objects()] == ["out"]
    assert first.resources["out"].pending == ('input.?data.value.orValue("none")',)
    later = render(graph, INSTANCE, {"input": {"metadata": {"name": "demo-in"}, "data": {}}})
    assert later.objects()[0]["data"] == {"v": "none"}


def test_external_ref_needs_exactly_one_of_name_and_selector() -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "selector": {"matchLabels": {}}}}
    with pytest.raises(GraphError, match="exactly one of name or selector"):
        build_graph(rgd([{"id": "input", "externalRef": ref}]))


def test_selector_external_ref_is_a_list() -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"selector": {"matchLabels": {"a": "b"}}}}
    graph = build_graph(rgd([{"id": "inputs", "externalRef": ref},
                             cm("out", "out", data={"n": "${string(size(inputs))}"})]))
    assert graph.resources["inputs"].is_external_collection
    with pytest.raises(GraphError, match=r"does not support field selection|undefined field"):
        build_graph(rgd([{"id": "inputs", "externalRef": ref}, cm("out", "${inputs.metadata.name}")]))


def test_omit_removes_the_field() -> None:
    graph = build_graph(rgd([cm("a", "x", data={"k": "${schema.spec.name == 'demo' ? omit() : 'kept'}",
                                                "j": "v"})]))
    assert render(graph, INSTANCE, {}).objects()[0]["data"] == {"j": "v"}


def test_pending_versus_error() -> None:
    graph = build_graph(rgd([cm("a", "x"), cm("b", "y", data={"v": "${a.data.missing}"}),
                             cm("c", "z", data={"v": "${string(1 / (size(a.data) - 1))}"})]))
    observed = {"a": {"metadata": {"name": "x"}, "data": {"k": "v"}}}
    result = render(graph, INSTANCE, observed)
    assert result.resources["b"].pending == ("a.data.missing",) and result.resources["b"].error is None
    assert "division by zero" in (result.resources["c"].error or "")
    assert result.errors and result.errors[0].startswith("resource c:")


def test_collection_readiness_uses_each() -> None:
    graph = build_graph(rgd(
        [{"id": "cms", "forEach": [{"n": "${schema.spec.names}"}], "readyWhen": ["${each.data.ok == 'y'}"],
          "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "${n}"}, "data": {"ok": "y"}}},
         cm("after", "${string(size(cms))}")],
        spec={"names": "[]string"}))
    inst = {"metadata": {"namespace": "n"}, "spec": {"names": ["a", "b"]}}
    first = render(graph, inst, {})
    assert [o["metadata"]["name"] for o in first.resources["cms"].objects] == ["a", "b"]
    assert first.resources["after"].waiting_for == ("cms",)
    items = [{"data": {"ok": "y"}}, {"data": {"ok": "n"}}]
    assert not render(graph, inst, {"cms": items}).resources["cms"].ready
    items[1]["data"]["ok"] = "y"
    done = render(graph, inst, {"cms": items})
    assert done.resources["cms"].ready and done.resources["after"].objects[0]["metadata"]["name"] == "2"


def test_status_projection_types_and_nesting() -> None:
    graph = build_graph(rgd([cm("a", "x")], status={
        "name": "${a.metadata.name}", "info": {"size": "${size(a.data)}", "label": "cm-${a.metadata.name}"},
        "list": ["${schema.spec.name}"]}))
    status = graph.crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["name"] == {"type": "string"} and status["info"]["properties"]["size"] == {"type": "integer"}
    assert status["list"]["items"] == {"type": "string"}
    result = render(graph, INSTANCE, {"a": {"metadata": {"name": "x"}, "data": {"k": "v"}}})
    assert result.status == {"name": "x", "info": {"size": 1, "label": "cm-x"}, "list": ["demo"]}


@pytest.mark.parametrize(("resources", "message"), [
    ([cm("a", "${nope(1)}")], "uses unknown functions: [nope]"),
    ([cm("a", "${schema.spec.name +}")], "failed to compile expression"),
    ([{"id": "a", "template": {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}}],
     "schema not found"),
    ([{"id": "crd", "template": {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                                 "metadata": {"name": "x"}, "spec": {"group": "${schema.spec.name}"}}}],
     "CEL expressions in CRDs are only supported for metadata fields"),
    ([cm("a", "${b.metadata.name}"), cm("b", "x", data={"e": "${each.x}"})], "references unknown identifiers: [each]"),
    ([cm("a", "${schema.status.x}")], "undefined field 'status'"),
])
def test_build_errors(resources: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(GraphError) as err:
        build_graph(rgd(resources))
    assert message in str(err.value)


def test_cluster_scoped_instance_has_no_schema_namespace() -> None:
    resources = [cm("a", "x", data={"ns": "${schema.metadata.namespace}"})]
    with pytest.raises(GraphError, match="undefined field 'namespace'"):
        build_graph(rgd([{**resources[0], "template": {**resources[0]["template"],
                                                       "metadata": {"name": "x", "namespace": "n"}}}], scope="Cluster"))
    assert build_graph(rgd(resources)).scope == "Namespaced"


def test_kro_functions() -> None:
    assert celenv.seeded_string(10, "abc") == celenv.seeded_string(10, "abc") != celenv.seeded_string(10, "abd")
    assert len(celenv.seeded_string(40, "x")) == 40
    assert 5 <= celenv.seeded_int(5, 10, "seed") < 10
    assert celenv.fnv64a("") == bytes.fromhex("cbf29ce484222325")  # FNV-1a 64 offset basis
    assert celenv.fnv64a("a") == bytes.fromhex("af63dc4c8601ec8c")
    assert celenv.json_marshal({"b": 1, "a": [b"\x00"]}) == '{"a":["AA=="],"b":1}'
    assert celenv.merge({"a": 1}, {"a": 2, "b": 2}) == {"a": 1, "b": 2}
    assert celenv.insert_at([1, 2], 2, 3) == [1, 2, 3] and celenv.remove_at([1, 2], 0) == [2]
    for bad in (lambda: celenv.set_at([1], 1, 0), lambda: celenv.seeded_int(3, 3, "s"),
                lambda: celenv.seeded_string(0, "s"), lambda: celenv.json_unmarshal("{")):
        with pytest.raises(celenv.CelError):
            bad()
    program = celenv.compile_expression("lists.range(3).reverse().slice(0, 2)", [])
    assert program.evaluate({}) == [2, 1]


def test_lookup_observes_nodes_in_order_within_one_render() -> None:
    """kro reads each child by its rendered identity while it walks the graph: one pass reaches the end."""
    graph = build_graph(rgd([
        cm("a", "${schema.spec.name}-a"),
        {**cm("b", "${a.metadata.name}-b"), "readyWhen": ["${b.data.ok == 'yes'}"]},
        cm("c", "${b.metadata.name}-c"),
    ]))
    asked: list[str] = []

    def lookup(state: Any) -> Any:
        asked.append(state.id)
        name = state.objects[0]["metadata"]["name"]
        return {"metadata": {"name": name}, "data": {"ok": "yes" if state.id == "a" else "no"}}

    result = render(graph, INSTANCE, {}, lookup)
    assert asked == ["a", "b"], "c waits for b, whose readyWhen is false"
    assert result.resources["a"].ready and not result.resources["b"].ready
    assert result.resources["b"].objects[0]["metadata"]["name"] == "demo-a-b"
    assert result.resources["c"].waiting_for == ("b",)
    asked.clear()
    result = render(graph, INSTANCE, {"a": {"metadata": {"name": "seen-a"}}}, lambda state: asked.append(state.id))
    assert asked == ["b"], "nodes already observed are not looked up; a None answer leaves a node unobserved"
    assert result.resources["b"].objects[0]["metadata"]["name"] == "seen-a-b"
    assert result.resources["c"].waiting_for == ("b",)


def test_expressions_are_handed_only_what_they_select() -> None:
    graph = build_graph(rgd([
        cm("a", "x", data={"v": "${schema.spec.name + schema.metadata.name}"}),
        cm("b", "y", data={"v": "${a.metadata.name}", "n": "${string(size(a.metadata)) + a.metadata.name}",
                           "m": "${string(has(a.metadata.namespace))}", "k": "${a.metadata.labels.k}"}),
        cm("c", "${b.data.v}", data={"pending": "${a.metadata.uid}"}),
    ]))
    observed = {"a": {"metadata": {"name": "x", "labels": {"k": "l"}, "huge": ["z"] * 1000}},
                "b": {"metadata": {"name": "y"}, "data": {"v": "x"}}}
    result = render(graph, INSTANCE, observed)
    assert result.resources["a"].objects[0]["data"] == {"v": "demoi"}
    assert result.resources["b"].objects[0]["data"] == {"v": "x", "n": "3x", "m": "false", "k": "l"}
    assert result.resources["c"].objects[0]["metadata"]["name"] == "x"
    assert result.resources["c"].pending == ("a.metadata.uid",), "a missing field is still pending data"


@pytest.mark.parametrize(("source", "reads"), [
    ("schema.spec.name + schema.metadata.name", {"schema": {"spec": {"name": None}, "metadata": {"name": None}}}),
    ("schema.spec.name + string(size(schema.spec))", {"schema": {"spec": None}}),
    ("string(size(schema.spec)) + schema.spec.name", {"schema": {"spec": None}}),
    ("schema.spec.items.map(x, x.name)", {"schema": {"spec": {"items": None}}}),
    ("a.b[0].c", {"a": {"b": None}}),
    ("a.?b.c", {"a": None}),
    ("schema", {"schema": None}),
    ("schema.spec.x +", None),
])
def test_what_an_expression_reads(source: str, reads: Any) -> None:
    assert reads_of(source) == reads


def test_transform_map_results_are_type_checked_and_tracked() -> None:
    spec = {"labels": "map[string]string"}
    ints = cm("a", "a", data="${schema.spec.labels.transformMap(k, v, size(v))}")
    with pytest.raises(GraphError, match='returns type "int" but expected "string"'):
        build_graph(rgd([ints], spec))
    graph = build_graph(rgd([cm("a", "a", data="${schema.spec.labels.transformMap(k, v, v + '!')}"),
                             cm("b", "b", data="${a.data.transformMapEntry(k, v, {v: k})}")], spec))
    assert graph.resources["b"].dependencies == ("a",)
    instance = {**INSTANCE, "spec": {"labels": {"x": "1", "y": "2"}}}
    first = render(graph, instance, {})
    assert first.resources["a"].objects[0]["data"] == {"x": "1!", "y": "2!"}
    later = render(graph, instance, {"a": first.resources["a"].objects[0]})
    assert later.resources["b"].objects[0]["data"] == {"1!": "x", "2!": "y"}
