"""Conditions, node and instance states, RGD status and the pure helpers of the kro controllers."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.graphs import build_graph, render
from kplane.graphs import conditions as cond
from kplane.graphs.controller import graph_crd, is_established, ownership_error, rgd_status
from kplane.graphs.instance import applicable, clean_pass
from kplane.graphs.kinds import Kinds, crd_kinds
from kplane.graphs.rgdcrd import RGD_CRD_NAME, rgd_crd

CM = {"apiVersion": "v1", "kind": "ConfigMap"}
INSTANCE = {"apiVersion": "kro.run/v1alpha1", "kind": "Demo",
            "metadata": {"name": "i", "namespace": "ns", "uid": "u"}, "spec": {"name": "x", "on": True}}


def rgd() -> dict[str, Any]:
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "metadata": {"name": "demo"},
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "Demo",
                                "spec": {"name": "string", "on": "boolean | default=true"},
                                "status": {"first": "${first.data.v}"}},
                     "resources": [
                         {"id": "first", "template": {**CM, "metadata": {"name": "${schema.spec.name}"},
                                                      "data": {"v": "1"}},
                          "readyWhen": ["${first.data.v == '1'}"]},
                         {"id": "second", "template": {**CM, "metadata": {"name": "${first.metadata.name}-2"}}},
                         {"id": "maybe", "includeWhen": ["${schema.spec.on}"],
                          "template": {**CM, "metadata": {"name": "${schema.spec.name}-m"}}}]}}


def observed_first(v: str = "1") -> dict[str, Any]:
    return {**CM, "metadata": {"name": "x", "namespace": "ns"}, "data": {"v": v}}


def test_nothing_observed_gates_dependents() -> None:
    graph = build_graph(rgd())
    result = render(graph, INSTANCE, {})
    assert applicable(result.resources["first"]) and applicable(result.resources["maybe"])
    assert not applicable(result.resources["second"]), "second waits for first"
    states = cond.node_states(result, {"first": None, "maybe": None})
    assert states["second"] == cond.NODE_IN_PROGRESS
    assert cond.instance_state(states) == cond.IN_PROGRESS
    ready = cond.resources_condition(result, states, {})
    assert (ready.status, ready.reason) == ("False", "NotReady")
    assert "second" in ready.message
    assert not clean_pass(result, {"first": None, "maybe": None}), "no prune while a node is pending"


def test_all_synced_is_active_and_clean() -> None:
    graph = build_graph(rgd())
    first = observed_first()
    observed = {"first": first, "second": {**CM, "metadata": {"name": "x-2"}},
                "maybe": {**CM, "metadata": {"name": "x-m"}}}
    result = render(graph, INSTANCE, observed)
    applied: dict[str, str | None] = {"first": None, "second": None, "maybe": None}
    states = cond.node_states(result, applied)
    assert set(states.values()) == {cond.SYNCED}
    assert cond.instance_state(states) == cond.INSTANCE_ACTIVE
    assert cond.resources_condition(result, states, applied).reason == "AllResourcesReady"
    assert clean_pass(result, applied)
    assert not clean_pass(result, {**applied, "second": "boom"}), "no prune after a failed apply"
    assert result.status == {"first": "1"}


def test_readiness_and_errors() -> None:
    graph = build_graph(rgd())
    result = render(graph, INSTANCE, {"first": observed_first("0")})
    states = cond.node_states(result, {"first": None})
    assert states["first"] == cond.WAITING
    assert "awaiting resource readiness" in cond.resources_condition(result, states, {"first": None}).message \
        or "waiting for unresolved resource" in cond.resources_condition(result, states, {"first": None}).message
    failed = cond.node_states(result, {"first": "denied", "maybe": None})
    assert failed["first"] == cond.NODE_ERROR and cond.instance_state(failed) == cond.ERROR
    message = cond.resources_condition(result, failed, {"first": "denied"}).message
    assert message.startswith("resource reconciliation failed: ") and "first: denied" in message


def test_include_when_false_is_skipped() -> None:
    graph = build_graph(rgd())
    off = {**INSTANCE, "spec": {"name": "x", "on": False}}
    result = render(graph, off, {"first": observed_first(), "second": {**CM, "metadata": {"name": "x-2"}}})
    states = cond.node_states(result, {"first": None, "second": None})
    assert states["maybe"] == cond.SKIPPED
    assert cond.instance_state(states) == cond.INSTANCE_ACTIVE
    assert clean_pass(result, {"first": None, "second": None}), "a skipped node does not block pruning"


def test_root_ready_and_transition_times() -> None:
    parts = [cond.managed(), cond.resolved(),
             cond.Condition(cond.RESOURCES_READY, "False", "NotReady", "waiting")]
    rooted = cond.with_root(parts, cond.INSTANCE_CONDITIONS)
    assert rooted[-1] == cond.Condition(cond.READY, "False", "NotReady", "waiting")
    assert cond.with_root(parts[:2], cond.INSTANCE_CONDITIONS)[-1].status == "Unknown"
    old = cond.render_conditions(rooted, None, 1, "T1")
    assert all(c["lastTransitionTime"] == "T1" and c["observedGeneration"] == 1 for c in old)
    done = cond.with_root([*parts[:2], cond.Condition(cond.RESOURCES_READY, "True", "AllResourcesReady", "")],
                          cond.INSTANCE_CONDITIONS)
    new = {c["type"]: c for c in cond.render_conditions(done, old, 2, "T2")}
    assert new[cond.INSTANCE_MANAGED]["lastTransitionTime"] == "T1", "unchanged status keeps its time"
    assert new[cond.RESOURCES_READY]["lastTransitionTime"] == "T2"
    assert new[cond.READY]["status"] == "True"


def test_instance_status_is_rebuilt() -> None:
    graph = build_graph(rgd())
    result = render(graph, INSTANCE, {})
    old = {"first": "stale", "state": "ACTIVE"}
    status = cond.instance_status(result, [cond.managed()], cond.IN_PROGRESS, old, 1, "T")
    assert "first" not in status, "a field whose data is gone disappears"
    assert status["state"] == cond.IN_PROGRESS
    deleting = cond.instance_status(None, [cond.managed(), cond.resolved(), cond.under_deletion(2)],
                                    cond.DELETING, {"first": "kept"}, 1, "T")
    assert deleting["state"] == cond.DELETING and deleting["first"] == "kept"
    ready = {c["type"]: c for c in deleting["conditions"]}[cond.RESOURCES_READY]
    assert (ready["status"], ready["reason"]) == ("Unknown", "UnderDeletion")
    assert cond.same_status(deleting, dict(deleting)) and not cond.same_status(None, deleting)


def test_rgd_status() -> None:
    graph = build_graph(rgd())
    status = rgd_status(graph, [cond.accepted(), cond.kind_ready("Demo"), cond.controller_running()], None)
    assert status["state"] == cond.ACTIVE
    assert status["topologicalOrder"] == ["first", "second", "maybe"]
    assert status["resources"] == [{"id": "second", "dependencies": [{"id": "first"}]}]
    types = [c["type"] for c in status["conditions"]]
    assert types == ["GraphAccepted", "KindReady", "ControllerReady", "Ready"]
    assert status["conditions"][1]["message"] == "kind Demo has been accepted and ready"
    bad = rgd_status(None, [cond.invalid("graph contains a cycle: a -> b -> a")], status)
    assert bad["state"] == cond.INACTIVE
    assert bad["conditions"][0]["reason"] == "InvalidResourceGraph"
    assert bad["conditions"][-1]["status"] == "False"
    assert bad["topologicalOrder"] == status["topologicalOrder"], "the last good order stays"


def test_crd_ownership() -> None:
    assert ownership_error(None, "demo") is None
    mine = {"metadata": {"name": "demos.kro.run", "labels": {"kro.run/owned": "true",
                                                             "kro.run/resource-graph-definition-name": "demo"}}}
    assert ownership_error(mine, "demo") is None
    assert "owned by another ResourceGraphDefinition" in str(ownership_error(mine, "other"))
    foreign = {"metadata": {"name": "demos.kro.run", "labels": {}}}
    assert "not owned by KRO" in str(ownership_error(foreign, "demo"))
    crd = graph_crd(build_graph(rgd()), "uid-1")
    assert crd["metadata"]["labels"]["kro.run/resource-graph-definition-id"] == "uid-1"
    assert crd["metadata"]["labels"]["kro.run/owned"] == "true"
    assert is_established({"status": {"conditions": [{"type": "Established", "status": "True"}]}})
    assert not is_established({"status": {"conditions": [{"type": "Established", "status": "False"}]}})
    assert not is_established({})


def test_kinds() -> None:
    crd = build_graph(rgd()).crd
    (served,) = crd_kinds(crd)
    assert (served.group, served.version, served.kind, served.plural, served.namespaced) == (
        "kro.run", "v1alpha1", "Demo", "demos", True)
    kinds = Kinds(36, lambda: [crd])
    assert kinds.lookup("apps/v1", "Deployment") is not None
    assert kinds.lookup("v1", "Namespace").namespaced is False  # type: ignore[union-attr]
    assert kinds.lookup("kro.run/v1alpha1", "Demo") == served
    assert kinds.lookup("kro.run/v1", "Demo") is None
    assert kinds.preferred("kro.run", "Demo") == served
    assert kinds.preferred("apps", "Deployment").version == "v1"  # type: ignore[union-attr]
    assert kinds.preferred("nope", "Nothing") is None
    assert kinds.schemas()("kro.run", "v1alpha1", "Demo") is not None


@pytest.mark.parametrize("path", [("kind",), ("apiVersion",)])
def test_rgd_crd(path: tuple[str, ...]) -> None:
    crd = rgd_crd()
    assert crd["metadata"]["name"] == RGD_CRD_NAME
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["shortNames"] == ["rgd"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["APIVERSION", "KIND", "STATE", "READY", "TOPOLOGICALORDER", "AGE"]
    field = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["schema"]["properties"][path[0]]
    assert field["pattern"] and field["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
