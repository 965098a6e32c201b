"""Author-defined instance conditions (kro v0.9 ``status.conditions``): validation, evaluation, the wire."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.cel import CelError
from kplane.graphs import GraphError, build_graph, celenv, render
from kplane.graphs import conditions as cond
from kplane.graphs.customconditions import expand_new_condition

APP_READY = ("${runtime.newCondition({type: 'AppReady', status: has(cfg.data.ok) ? 'True' : 'False', "
             "reason: 'Data', message: 'config ' + cfg.metadata.name})}")
READY = """${runtime.newCondition({
  type: 'Ready',
  status: runtime.condition(schema, 'ResourcesReady').status,
  reason: runtime.condition(schema, 'ResourcesReady').reason,
  message: runtime.condition(schema, 'Ready').message + '/' + schema.spec.name
})}"""


def cm(rid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}}


def rgd(conditions: Any, *, status: dict[str, Any] | None = None,
        resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "t"}, "spec": {
        "schema": {"apiVersion": "v1alpha1", "kind": "Thing", "spec": {"name": "string", "names": "[]string"},
                   "status": {**(status or {}), "conditions": conditions}},
        "resources": resources if resources is not None else [cm("cfg", "${schema.spec.name}")]}}


INSTANCE = {"metadata": {"name": "i", "namespace": "team", "generation": 3}, "spec": {"name": "demo"}}
BUILTINS = [cond.managed(), cond.resolved(), cond.Condition(cond.RESOURCES_READY, "True", "AllResourcesReady", "ok")]
NOT_READY = [cond.managed(), cond.resolved(), cond.Condition(cond.RESOURCES_READY, "False", "NotReady", "waiting")]


def child(ok: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": "demo", "namespace": "team"}, "data": {"ok": "1"} if ok else {}}


def wire(graph: Any, builtins: list[cond.Condition], observed: dict[str, Any], old: Any = None,
         now: str = "T1", state: str = cond.INSTANCE_ACTIVE, instance: dict[str, Any] | None = None,
         ) -> dict[str, Any]:
    inst = instance or INSTANCE
    result = render(graph, inst, observed) if state != cond.DELETING else None
    authored = cond.authored(graph, inst, result, builtins, state)
    return cond.instance_status(result, builtins, state, old, inst["metadata"]["generation"], now, authored)


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


# -- a good RGD ------------------------------------------------------------------------------------------------

def test_good_rgd_builds_and_keeps_the_standard_conditions_schema() -> None:
    graph = build_graph(rgd([APP_READY, READY], status={"name": "${cfg.metadata.name}"}))
    assert [c.text for c in graph.conditions] == [APP_READY[2:-1], READY[2:-1]]
    assert all(c.source in graph.programs for c in graph.conditions)
    assert [f.path_text for f in graph.status_fields] == ["name"], "conditions are not a projected field"
    status = graph.crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["conditions"]["type"] == "array"
    assert "lastTransitionTime" in status["conditions"]["items"]["properties"]


def test_author_conditions_replace_the_builtins_on_the_wire() -> None:
    graph = build_graph(rgd([APP_READY, READY], status={"name": "${cfg.metadata.name}"}))
    status = wire(graph, BUILTINS, {"cfg": child()})
    assert [c["type"] for c in status["conditions"]] == ["AppReady", "Ready"]
    app, ready = status["conditions"]
    assert app == {"type": "AppReady", "status": "True", "reason": "Data", "message": "config demo",
                   "lastTransitionTime": "T1", "observedGeneration": 3}
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "AllResourcesReady", "/demo")
    assert status["state"] == cond.INSTANCE_ACTIVE and status["name"] == "demo"


def test_builtins_are_readable_and_the_wire_is_not() -> None:
    graph = build_graph(rgd([READY]))
    stale = {"conditions": [{"type": "ResourcesReady", "status": "True", "reason": "Stale", "message": ""}]}
    inst = {**INSTANCE, "status": stale}
    status = wire(graph, NOT_READY, {"cfg": child()}, old=stale, state=cond.IN_PROGRESS, instance=inst)
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "NotReady"), "kro's value this pass, not the wire's"
    assert ready["message"] == "waiting/demo", "the root Ready mirrors ResourcesReady"
    assert status["state"] == cond.IN_PROGRESS


def test_state_stays_kros_when_the_author_ready_is_false() -> None:
    graph = build_graph(rgd([APP_READY]))
    status = wire(graph, BUILTINS, {"cfg": child(ok=False)})
    assert by_type(status)["AppReady"]["status"] == "False"
    assert status["state"] == cond.INSTANCE_ACTIVE


def test_transition_time_moves_only_with_status() -> None:
    graph = build_graph(rgd([APP_READY]))
    first = wire(graph, BUILTINS, {"cfg": child(ok=False)}, now="T1")
    same = wire(graph, BUILTINS, {"cfg": child(ok=False)}, old=first, now="T2",
                instance={**INSTANCE, "metadata": {**INSTANCE["metadata"], "generation": 4}})
    assert by_type(same)["AppReady"]["lastTransitionTime"] == "T1"
    assert by_type(same)["AppReady"]["observedGeneration"] == 4
    flipped = wire(graph, BUILTINS, {"cfg": child()}, old=same, now="T3")
    assert by_type(flipped)["AppReady"]["lastTransitionTime"] == "T3"


def test_pending_entry_keeps_what_was_written_and_a_full_pass_cleans_up() -> None:
    graph = build_graph(rgd([APP_READY, READY]))
    old = {"conditions": [{"type": "AppReady", "status": "True", "reason": "Data", "message": "m",
                           "lastTransitionTime": "T0", "observedGeneration": 1},
                          {"type": "Gone", "status": "True", "reason": "", "message": ""}]}
    pending = wire(graph, NOT_READY, {}, old=old, state=cond.IN_PROGRESS)
    assert [c["type"] for c in pending["conditions"]] == ["Ready", "AppReady", "Gone"]
    assert by_type(pending)["AppReady"] == old["conditions"][0], "kept as it was"
    assert pending["state"] == cond.IN_PROGRESS, "pending data is not an error"
    full = wire(graph, BUILTINS, {"cfg": child()}, old=pending)
    assert [c["type"] for c in full["conditions"]] == ["AppReady", "Ready"]
    assert by_type(full)["AppReady"]["lastTransitionTime"] == "T0"


def test_one_entry_may_return_a_condition_per_collection_item() -> None:
    entry = ("${cms.map(c, runtime.newCondition({type: 'Cm-' + c.metadata.name + '-Ready', "
             "status: has(c.data) ? 'True' : 'False', reason: 'Item', message: ''}))}")
    each = {"id": "cms", "forEach": [{"n": "${schema.spec.names}"}],
            "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "${n}"}}}
    graph = build_graph(rgd([entry], resources=[each]))
    inst = {**INSTANCE, "spec": {"name": "demo", "names": ["a", "b"]}}
    observed = {"cms": [{"metadata": {"name": "a"}, "data": {}}, {"metadata": {"name": "b"}}]}
    status = wire(graph, BUILTINS, observed, instance=inst)
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("Cm-a-Ready", "True"),
                                                                       ("Cm-b-Ready", "False")]


def test_child_conditions_are_read_with_runtime_condition() -> None:
    entry = ("${runtime.newCondition({type: 'Copied', status: runtime.condition(cfg, 'Synced').status == '' ? "
             "'Unknown' : runtime.condition(cfg, 'Synced').status, reason: runtime.condition(cfg, 'Synced').reason})}")
    graph = build_graph(rgd([entry]))
    synced = {**child(), "status": {"conditions": [{"type": "Synced", "status": "False", "reason": "Lag"}]}}
    copied = by_type(wire(graph, BUILTINS, {"cfg": synced}))["Copied"]
    assert (copied["status"], copied["reason"], copied["message"]) == ("False", "Lag", "")
    unknown = by_type(wire(graph, BUILTINS, {"cfg": child()}))["Copied"]
    assert (unknown["status"], unknown["reason"]) == ("Unknown", ""), "a missing condition reads as empty"


def test_failed_entry_and_computed_duplicates_make_the_state_error() -> None:
    bad = "${runtime.newCondition({type: 'Computed', status: schema.spec.name})}"
    twice = "${['a', 'a', 'b'].map(t, runtime.newCondition({type: 'Dup-' + t, status: 'True'}))}"
    graph = build_graph(rgd([APP_READY, bad, twice]))
    old = {"conditions": [{"type": "Computed", "status": "True", "reason": "", "message": ""}]}
    status = wire(graph, BUILTINS, {"cfg": child()}, old=old)
    assert [c["type"] for c in status["conditions"]] == ["AppReady", "Dup-b", "Computed"]
    assert status["state"] == cond.ERROR
    authored = cond.authored(graph, INSTANCE, render(graph, INSTANCE, {"cfg": child()}), BUILTINS, "ACTIVE")
    assert authored is not None
    assert any('status must be one of True, False, Unknown (got "demo")' in e for e in authored.errors)
    assert "duplicate condition type(s) [Dup-a] dropped" in authored.errors


def test_deleting_shows_resources_ready_over_the_written_conditions() -> None:
    graph = build_graph(rgd([APP_READY]))
    old = {"conditions": [{"type": "AppReady", "status": "True", "reason": "Data", "message": ""}], "x": 1}
    builtins = [cond.managed(), cond.resolved(), cond.under_deletion(2)]
    status = wire(graph, builtins, {}, old=old, state=cond.DELETING)
    assert [c["type"] for c in status["conditions"]] == ["ResourcesReady", "AppReady"]
    assert by_type(status)["ResourcesReady"]["reason"] == "UnderDeletion"
    assert status["state"] == cond.DELETING and status["x"] == 1


def test_suspended_instance_evaluates_without_children() -> None:
    entry = ("${runtime.newCondition({type: 'Paused', status: runtime.condition(schema, 'ResourcesReady').reason"
             " == 'ReconciliationSuspended' ? 'True' : 'False'})}")
    graph = build_graph(rgd([entry, APP_READY]))
    builtins = [cond.managed(), cond.resolved(), cond.suspended()]
    authored = cond.authored(graph, INSTANCE, None, builtins, cond.IN_PROGRESS)
    assert authored is not None and authored.incomplete
    assert [(c.type, c.status) for c in authored.conditions] == [("Paused", "True")]


def test_without_entries_the_builtins_are_written() -> None:
    graph = build_graph(rgd([]))
    assert graph.conditions == () and cond.authored(graph, INSTANCE, None, BUILTINS, "ACTIVE") is None
    status = cond.instance_status(render(graph, INSTANCE, {}), BUILTINS, cond.INSTANCE_ACTIVE, None, 1, "T")
    assert [c["type"] for c in status["conditions"]] == [*cond.INSTANCE_CONDITIONS, cond.READY]


# -- rejections ------------------------------------------------------------------------------------------------

def nc(**fields: str) -> str:
    return "${runtime.newCondition({" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "})}"


@pytest.mark.parametrize(("conditions", "message"), [
    ("${runtime.newCondition({type: 'X', status: 'True'})}", "status.conditions must be a list, got string"),
    ([42], "status.conditions[0] must be a CEL expression string, got float64"),
    (["runtime.newCondition({type: 'X', status: 'True'})"], "only standalone expressions are allowed"),
    (["x-${runtime.newCondition({type: 'X', status: 'True'})}"], "only standalone expressions are allowed"),
    ([nc(type="'AppReady'", status="'True'"), nc(type="'AppReady'", status="'False'")],
     'condition type "AppReady" is declared by more than one conditions entry'),
    ([nc(type="'PrimaryReady'", status="'True'"),
      nc(type="'Ready'", status="runtime.condition(schema, 'PrimaryReady').status")],
     'runtime.condition(schema, "PrimaryReady"): custom conditions cannot reference each other'),
    ([nc(type="'X'", status="runtime.condition(schema, 'ResourcesRaedy').status")],
     'runtime.condition(schema, "ResourcesRaedy"): unknown condition type; only kro\'s built-in types'),
    ([nc(type="'X'", status="'YES'")], 'status must be one of True, False, Unknown (got "YES") in expression'),
    (["${[1].map(i, " + nc(type="'X'", status="'Yes'")[2:-1] + ")}"], "status must be one of True, False, Unknown"),
    ([nc(type="''", status="'True'")], "runtime.newCondition: type must not be empty"),
    ([nc(type="'X'", status="'True'", extra="'foo'")],
     'runtime.newCondition: unknown key "extra" (allowed: type, status, reason, message)'),
    ([nc(type="'X'", status="'True'", reason="''") .replace("reason: ''", "type: 'Y'")],
     'runtime.newCondition: duplicate key "type"'),
    (["${runtime.newCondition({'type': 'X', 'status': 'True'})}"], "keys must be bare identifiers"),
    ([nc(type="'X'")], "runtime.newCondition: 'status' is required"),
    ([nc(status="'True'")], "runtime.newCondition: 'type' is required"),
    (["${runtime.newCondition(schema.spec)}"], "runtime.newCondition: argument must be a map literal"),
    (["${schema.spec.name}"], 'condition expressions must return runtime.newCondition(...) or a list of them, '
                              'got "string"'),
    (["${[schema.spec.name]}"], "must return runtime.newCondition"),
    ([nc(type="'X'", status="nope.status")], "references unknown identifiers: [nope]"),
    ([nc(type="'X'", status="cfg.spec.x")], 'failed to type-check condition "runtime.newCondition('),
    ([nc(type="'X'", status="'True'", message="string(omit())")],
     "omit() can only be used in resource template expressions"),
    ([nc(type="'X'", status="'True'", message="nosuch(1)")], "failed to compile condition"),
])
def test_rejections_use_kros_words(conditions: Any, message: str) -> None:
    with pytest.raises(GraphError) as err:
        build_graph(rgd(conditions))
    assert message in str(err.value)


@pytest.mark.parametrize("conditions", [
    [nc(type="'X'", status="'True'"), nc(type="'Y'", status="runtime.condition(cfg, 'X').status")],
    ["${schema.spec.name == 'a' ? " + nc(type="'X'", status="'True'")[2:-1] + " : "
     + nc(type="'X'", status="'False'")[2:-1] + "}"],
    [nc(type="'Ready'", status="runtime.condition(schema, 'Ready').status")],
    [nc(type="'X'", status="runtime.condition(schema, schema.spec.name).status")],
    ["${[" + nc(type="'A'", status="'True'")[2:-1] + ", runtime.condition(cfg, 'B')]}"],
])
def test_accepted_forms(conditions: list[str]) -> None:
    """A child lookup may share an author type; a type may repeat within one entry; a built-in type may be
    overridden and still read; computed lookups and lists are left to evaluation."""
    assert len(build_graph(rgd(conditions)).conditions) == len(conditions)


@pytest.mark.parametrize(("resources", "status", "message"), [
    ([cm("cfg", "x", data={"p": "${runtime.condition(schema, 'Ready').status}"})], None,
     "runtime is only available in status.conditions expressions"),
    ([{"id": "cms", "forEach": [{"n": "${[runtime.condition(schema, 'Ready').status]}"}],
       "template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "${n}"}}}], None,
     "runtime is only available in status.conditions expressions"),
    ([{**cm("cfg", "x"), "includeWhen": ["${runtime.condition(schema, 'Ready').status == 'True'}"]}], None,
     "runtime is only available in status.conditions expressions"),
    ([{**cm("cfg", "x"), "readyWhen": ["${runtime.condition(cfg, 'Ready').status == 'True'}"]}], None,
     "references unknown identifiers: [runtime]"),
    ([cm("cfg", "x")], {"f": "${runtime.newCondition({type: 'X', status: 'True'}).status}"},
     "references unknown identifiers: [runtime]"),
])
def test_runtime_is_rejected_outside_the_conditions_block(resources: list[dict[str, Any]],
                                                          status: dict[str, Any] | None, message: str) -> None:
    spec = rgd([], status=status, resources=resources)
    with pytest.raises(GraphError) as err:
        build_graph(spec)
    assert message in str(err.value)


# -- the macro and the runtime functions -----------------------------------------------------------------------

def test_expand_quotes_only_newcondition_keys() -> None:
    text = "[1].map(i, runtime.newCondition({type: 'a:b', status: x ? 'True' : 'False', message: m.type}))"
    assert expand_new_condition(text) == ("[1].map(i, runtime.newCondition({\"type\": 'a:b', "
                                          "\"status\": x ? 'True' : 'False', \"message\": m.type}))")
    for untouched in ("x.newCondition({type: 1})", "a.runtime.newCondition({type: 1})",
                      "runtime.newCondition({type: 'X', status: 'True'}, 2)", "'runtime.newCondition({type: 1})'"):
        assert expand_new_condition(untouched) == untouched


def test_runtime_condition_lookup_rules() -> None:
    assert celenv.condition_of({}, "Ready")["type"] == ""
    assert celenv.condition_of({"status": {}}, "Ready")["status"] == ""
    found = celenv.condition_of({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": 3}]}},
                                "Ready")
    assert (found["status"], found["reason"]) == ("True", "") and celenv.is_condition(found)
    for obj, message in ((1, "obj must be an object, got int"), ({"status": 1}, "obj.status must be an object"),
                         ({"status": {"conditions": {}}}, "obj.status.conditions must be a list"),
                         ({"status": {"conditions": ["x"]}}, "unexpected condition element type string")):
        with pytest.raises(CelError, match=message):
            celenv.condition_of(obj, "Ready")


def test_new_condition_values_are_checked() -> None:
    made = celenv.new_condition({"type": "X", "status": "Unknown"})
    assert {k: made[k] for k in celenv.CONDITION_KEYS} == {"type": "X", "status": "Unknown", "reason": "",
                                                           "message": ""}
    with pytest.raises(CelError, match="reason must be a string, got int"):
        celenv.new_condition({"type": "X", "status": "True", "reason": 1})
    with pytest.raises(CelError, match="type must not be empty"):
        celenv.new_condition({"type": "", "status": "True"})
