"""The garbage collector's graph and decisions (pure), and the discovery parsing it relies on."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.controllers.discovery import (
    ApiResource,
    by_kind,
    parse_resource_list,
    preferred_group_versions,
    split_group_version,
)
from kplane.controllers.gc import monitorable
from kplane.controllers.ownergraph import (
    FOREGROUND,
    ORPHAN,
    Node,
    ObjectId,
    OwnerGraph,
    OwnerRef,
    OwnerState,
    blocking_dependents,
    json_patch_without_finalizer,
    json_patch_without_owners,
    node_from,
    owner_refs,
    owner_state,
    plan_dependent,
)


def ref(uid: str, *, kind: str = "ReplicaSet", name: str | None = None, block: bool = False,
        api_version: str = "apps/v1") -> OwnerRef:
    return OwnerRef(api_version=api_version, kind=kind, name=name or uid, uid=uid, block_owner_deletion=block)


def node(uid: str, *owners: OwnerRef, kind: str = "Pod", resource: str = "pods", namespace: str = "ns",
         deleting: bool = False, finalizers: tuple[str, ...] = ()) -> Node:
    return Node(uid=uid, ident=ObjectId(resource, namespace, uid), kind=kind, owners=owners, deleting=deleting,
                finalizers=finalizers)


def obj(uid: str, *, owners: list[dict[str, Any]] | None = None, finalizers: list[str] | None = None,
        deleting: bool = False, rv: str = "7") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": uid, "namespace": "ns", "uid": uid, "resourceVersion": rv}
    if owners is not None:
        meta["ownerReferences"] = owners
    if finalizers is not None:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


# --- reading objects ------------------------------------------------------------------------------

def test_node_from_reads_owners_finalizers_and_deletion() -> None:
    raw = obj("a", owners=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o1",
                            "controller": True, "blockOwnerDeletion": True}],
              finalizers=[FOREGROUND], deleting=True)
    found = node_from("configmaps", raw)
    assert found is not None
    assert found.ident == ObjectId("configmaps", "ns", "a")
    assert found.owners == (OwnerRef("apps/v1", "ReplicaSet", "rs", "o1", True, True),)
    assert found.deleting_dependents and not found.orphaning


def test_node_from_without_uid_is_none() -> None:
    assert node_from("configmaps", {"metadata": {"name": "x"}}) is None
    assert node_from("configmaps", {}) is None


def test_owner_refs_skip_garbage_entries() -> None:
    assert owner_refs({"ownerReferences": ["bogus", None, {"uid": "u"}]}) == (OwnerRef("", "", "", "u"),)
    assert owner_refs({}) == ()
    assert ref("x", api_version="v1").group == ""
    assert ref("x").group == "apps"


# --- the graph ------------------------------------------------------------------------------------

def test_graph_asks_to_verify_unknown_owners_only() -> None:
    graph = OwnerGraph()
    assert graph.upsert(node("rs", kind="ReplicaSet", resource="replicasets.apps")) == set()
    assert graph.upsert(node("p1", ref("rs"))) == set()
    assert graph.upsert(node("p2", ref("missing"))) == {"p2"}
    assert [n.uid for n in graph.dependents("rs")] == ["p1"]
    assert [n.uid for n in graph.dependents("missing")] == ["p2"]


def test_graph_removal_enqueues_dependents() -> None:
    graph = OwnerGraph()
    graph.upsert(node("rs", kind="ReplicaSet"))
    graph.upsert(node("p1", ref("rs")))
    graph.upsert(node("p2", ref("rs")))
    assert graph.remove("rs") == {"p1", "p2"}
    assert "rs" not in graph and len(graph) == 2
    assert graph.remove("rs") == set()


def test_graph_foreground_owner_is_enqueued_and_woken_by_dependents() -> None:
    graph = OwnerGraph()
    graph.upsert(node("rs", kind="ReplicaSet"))
    graph.upsert(node("p1", ref("rs", block=True)))
    assert graph.upsert(node("rs", kind="ReplicaSet", deleting=True, finalizers=(FOREGROUND,))) == {"rs"}
    # a dependent changing (or going) wakes the waiting owner
    assert graph.upsert(node("p1", ref("rs", block=False))) == {"rs"}
    assert graph.remove("p1") == {"rs"}


def test_graph_owner_reference_removed_unlinks() -> None:
    graph = OwnerGraph()
    graph.upsert(node("o"))
    graph.upsert(node("d", ref("o")))
    graph.upsert(node("d"))
    assert graph.dependents("o") == []
    assert graph.remove("o") == set()


def test_graph_orphaning_owner_is_enqueued() -> None:
    graph = OwnerGraph()
    assert graph.upsert(node("o", deleting=True, finalizers=(ORPHAN,))) == {"o"}
    assert graph.upsert(node("o2", finalizers=(ORPHAN,))) == set()  # not being deleted yet


def test_graph_forgets_a_resource_that_is_no_longer_served() -> None:
    graph = OwnerGraph()
    graph.upsert(node("w", kind="Widget", resource="widgets.example.com"))
    graph.upsert(node("cm", ref("w", kind="Widget"), resource="configmaps"))
    graph.upsert(node("w2", ref("w", kind="Widget"), kind="Widget", resource="widgets.example.com"))
    assert graph.remove_resource("widgets.example.com") == {"cm"}
    assert [n.uid for n in graph.nodes_of("configmaps")] == ["cm"]


# --- owner state ----------------------------------------------------------------------------------

def test_owner_state_checks_identity_and_namespace() -> None:
    dependent = node("p", ref("rs", name="web"))
    owner = Node("rs", ObjectId("replicasets.apps", "ns", "web"), "ReplicaSet")
    assert owner_state(owner, ref("rs", name="web"), dependent, True) is OwnerState.SOLID
    assert owner_state(None, ref("rs", name="web"), dependent, True) is None
    elsewhere = Node("rs", ObjectId("replicasets.apps", "other", "web"), "ReplicaSet")
    assert owner_state(elsewhere, ref("rs", name="web"), dependent, True) is None
    renamed = Node("rs", ObjectId("replicasets.apps", "ns", "db"), "ReplicaSet")
    assert owner_state(renamed, ref("rs", name="web"), dependent, True) is None
    waiting = Node("rs", ObjectId("replicasets.apps", "ns", "web"), "ReplicaSet", deleting=True,
                   finalizers=(FOREGROUND,))
    assert owner_state(waiting, ref("rs", name="web"), dependent, True) is OwnerState.WAITING
    cluster_owner = Node("n", ObjectId("nodes", "", "node-1"), "Node")
    assert owner_state(cluster_owner, ref("n", kind="Node", name="node-1"), dependent, False) is OwnerState.SOLID


# --- decisions for a dependent --------------------------------------------------------------------

def test_background_delete_when_every_owner_is_gone() -> None:
    dep = node("p", ref("a"), ref("b"))
    decision = plan_dependent(dep, {"a": OwnerState.DANGLING, "b": OwnerState.DANGLING}, False)
    assert decision.delete_policy == "Background" and not decision.remove_uids


def test_live_owner_keeps_dependent_and_drops_dangling_refs() -> None:
    dep = node("p", ref("a"), ref("b"), ref("c"))
    states = {"a": OwnerState.SOLID, "b": OwnerState.DANGLING, "c": OwnerState.WAITING}
    decision = plan_dependent(dep, states, False)
    assert decision.delete_policy is None and decision.remove_uids == ("b", "c")
    assert plan_dependent(dep, dict.fromkeys("abc", OwnerState.SOLID), False).nothing


def test_waiting_owner_deletes_dependent_with_dependents_in_foreground() -> None:
    dep = node("rs", ref("deploy"), kind="ReplicaSet")
    assert plan_dependent(dep, {"deploy": OwnerState.WAITING}, True).delete_policy == "Foreground"
    assert plan_dependent(dep, {"deploy": OwnerState.WAITING}, False).delete_policy == "Background"


def test_dependent_own_finalizers_choose_policy() -> None:
    orphaner = node("p", ref("a"), finalizers=(ORPHAN,))
    assert plan_dependent(orphaner, {"a": OwnerState.DANGLING}, False).delete_policy == "Orphan"
    fore = node("p", ref("a"), finalizers=(FOREGROUND,))
    assert plan_dependent(fore, {"a": OwnerState.DANGLING}, False).delete_policy == "Foreground"


def test_nothing_for_ownerless_or_deleting_objects() -> None:
    assert plan_dependent(node("p"), {}, False).nothing
    assert plan_dependent(node("p", ref("a"), deleting=True), {"a": OwnerState.DANGLING}, False).nothing


def test_missing_owner_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="no state"):
        plan_dependent(node("p", ref("a"), ref("b")), {"a": OwnerState.SOLID}, False)


def test_blocking_dependents_only_count_block_owner_deletion_to_this_owner() -> None:
    owner = node("o", deleting=True, finalizers=(FOREGROUND,))
    deps = [node("b", ref("o", block=True)), node("n", ref("o")), node("x", ref("other", block=True), ref("o"))]
    assert [d.uid for d in blocking_dependents(owner, deps)] == ["b"]
    assert blocking_dependents(owner, []) == []


# --- patches --------------------------------------------------------------------------------------

def test_finalizer_patch_is_guarded_and_keeps_others() -> None:
    ops = json_patch_without_finalizer(obj("o", finalizers=["a/b", FOREGROUND]), FOREGROUND)
    assert ops == [{"op": "test", "path": "/metadata/uid", "value": "o"},
                   {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                   {"op": "replace", "path": "/metadata/finalizers", "value": ["a/b"]}]
    assert json_patch_without_finalizer(obj("o", finalizers=["a/b"]), FOREGROUND) is None
    assert json_patch_without_finalizer(obj("o"), ORPHAN) is None


def test_owner_patch_drops_only_named_uids() -> None:
    keep = {"apiVersion": "v1", "kind": "X", "name": "k", "uid": "k", "controller": True}
    ops = json_patch_without_owners(obj("d", owners=[keep, {"uid": "gone"}]), ["gone"])
    assert ops is not None and ops[-1] == {"op": "replace", "path": "/metadata/ownerReferences", "value": [keep]}
    last = json_patch_without_owners(obj("d", owners=[{"uid": "gone"}]), ["gone"])
    assert last is not None and last[-1] == {"op": "remove", "path": "/metadata/ownerReferences"}
    assert json_patch_without_owners(obj("d", owners=[keep]), ["gone"]) is None
    assert json_patch_without_owners(obj("d"), ["gone"]) is None


# --- discovery --------------------------------------------------------------------------------------

def test_parse_resource_list_skips_subresources_and_reads_scope() -> None:
    doc = {"groupVersion": "apps/v1", "resources": [
        {"name": "deployments", "kind": "Deployment", "namespaced": True, "verbs": ["list", "watch", "delete"]},
        {"name": "deployments/scale", "kind": "Scale", "namespaced": True, "verbs": ["get"]},
        {"name": "", "kind": "Broken"},
    ]}
    [found] = parse_resource_list(doc)
    assert (found.group, found.version, found.plural, found.namespaced) == ("apps", "v1", "deployments", True)
    assert found.group_resource == "deployments.apps" and found.api_version == "apps/v1"
    core = parse_resource_list({"groupVersion": "v1", "resources": [{"name": "pods", "kind": "Pod"}]})
    assert core[0].group_resource == "pods" and core[0].api_version == "v1" and not core[0].namespaced


def test_bad_group_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="groupVersion"):
        parse_resource_list({"resources": []})
    with pytest.raises(ValueError):
        split_group_version("apps/")


def test_preferred_group_versions() -> None:
    doc = {"groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1"}], "preferredVersion": {"groupVersion": "apps/v1"}},
        {"name": "x.io", "versions": [{"groupVersion": "x.io/v2"}, {"groupVersion": "x.io/v1"}]},
        {"name": "empty", "versions": []},
    ]}
    assert preferred_group_versions(doc) == ["apps/v1", "x.io/v2"]
    assert preferred_group_versions({}) == []


def test_monitorable_needs_list_watch_delete_and_skips_events() -> None:
    def api(plural: str, group: str, *verbs: str) -> ApiResource:
        return ApiResource(group, "v1", plural.title(), plural, True, frozenset(verbs))

    assert monitorable(api("pods", "", "list", "watch", "delete"))
    assert not monitorable(api("bindings", "", "create"))
    assert not monitorable(api("events", "", "list", "watch", "delete"))
    assert not monitorable(api("events", "events.k8s.io", "list", "watch", "delete"))
    kinds = by_kind([api("widgets", "example.com", "list")])
    assert ("example.com", "Widgets") in kinds


def test_collection_state_changes_only_with_owners_deletion_or_finalizers() -> None:
    from kplane.controllers.gc import collection_state

    base = {"metadata": {"name": "p", "uid": "u", "ownerReferences": [{"uid": "o", "kind": "ReplicaSet"}]},
            "status": {"phase": "Pending"}}
    status_only = {**base, "status": {"phase": "Running"}}
    assert collection_state(base) == collection_state(status_only)
    for change in ({"ownerReferences": []}, {"deletionTimestamp": "2026-01-01T00:00:00Z"}, {"finalizers": ["x"]}):
        changed = {**base, "metadata": {**base["metadata"], **change}}
        assert collection_state(base) != collection_state(changed)
