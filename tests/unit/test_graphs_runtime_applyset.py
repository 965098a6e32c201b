"""ApplySet metadata, deletion waves and status patches of the kro runtime (pure parts)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from kplane.graphs import applyset as aps
from kplane.graphs import build_graph

CM = {"apiVersion": "v1", "kind": "ConfigMap"}


def rgd(resources: list[dict[str, Any]], name: str = "demo") -> dict[str, Any]:
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "metadata": {"name": name},
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "Demo", "spec": {"name": "string"}},
                     "resources": resources}}


def chain() -> dict[str, Any]:
    """cm → deploy-like (a ConfigMap naming cm) → svc (naming both)."""
    return rgd([
        {"id": "cm", "template": {**CM, "metadata": {"name": "${schema.spec.name}"}}},
        {"id": "mid", "template": {**CM, "metadata": {"name": "${cm.metadata.name}-mid"}}},
        {"id": "leaf", "template": {**CM, "metadata": {"name": "${mid.metadata.name}-${cm.metadata.name}"}}},
        {"id": "alone", "template": {**CM, "metadata": {"name": "${schema.spec.name}-alone"}}},
    ])


INSTANCE = {"apiVersion": "kro.run/v1alpha1", "kind": "Demo",
            "metadata": {"name": "i", "namespace": "ns", "uid": "u-1"}, "spec": {"name": "x"}}


def test_applyset_id_follows_kep_3659() -> None:
    digest = hashlib.sha256(b"i.ns.Demo.kro.run").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    assert aps.applyset_id("i", "ns", "Demo", "kro.run") == expected
    assert "=" not in expected and "+" not in expected and "/" not in expected
    assert aps.applyset_id("i", "other", "Demo", "kro.run") != expected


def test_apply_orders_delete_dependents_first() -> None:
    orders = aps.apply_orders(build_graph(chain()))
    assert orders["leaf"] > orders["mid"] > orders["cm"]
    assert orders["alone"] == orders["leaf"], "a node nothing depends on is a leaf"


def test_child_labels_and_annotation() -> None:
    graph = build_graph(chain())
    obj = {**CM, "metadata": {"name": "x", "namespace": "ns", "labels": {"mine": "1"},
                              "annotations": {"a": "b"}}}
    out = aps.child_object(graph, INSTANCE, "cm", obj, 3)
    labels = out["metadata"]["labels"]
    assert labels["mine"] == "1"
    assert labels[aps.PART_OF] == aps.instance_applyset_id(graph, INSTANCE)
    assert labels[aps.NODE_ID] == "cm" and labels[aps.INSTANCE_ID] == "u-1"
    assert labels[aps.INSTANCE_NAMESPACE] == "ns" and labels[aps.INSTANCE_KIND] == "Demo"
    assert labels[aps.INSTANCE_GROUP] == "kro.run" and labels[aps.INSTANCE_VERSION] == "v1alpha1"
    assert labels[aps.MANAGED_BY] == "kro" and labels[aps.OWNED] == "true"
    assert aps.COLLECTION_INDEX not in labels and aps.RGD_NAME not in labels
    assert out["metadata"]["annotations"] == {"a": "b", aps.APPLY_ORDER: "3"}
    assert obj["metadata"]["labels"] == {"mine": "1"}, "the rendered object is not modified"
    item = aps.child_object(graph, INSTANCE, "cm", obj, 1, index=2, size=4)
    assert item["metadata"]["labels"][aps.COLLECTION_INDEX] == "2"
    assert item["metadata"]["labels"][aps.COLLECTION_SIZE] == "4"


def test_cluster_scoped_instance_has_no_namespace_label() -> None:
    graph = build_graph(chain())
    inst = {**INSTANCE, "metadata": {"name": "i", "uid": "u"}}
    labels = aps.child_object(graph, inst, "cm", {**CM, "metadata": {"name": "x"}}, 1)["metadata"]["labels"]
    assert aps.INSTANCE_NAMESPACE not in labels


def test_instance_management() -> None:
    graph = build_graph(chain())
    assert aps.needs_management(graph, "rgd-uid", INSTANCE)
    labels = aps.instance_labels(graph, "rgd-uid", INSTANCE)
    assert labels[aps.RGD_ID] == "rgd-uid" and labels[aps.RGD_NAME] == "demo"
    managed = {**INSTANCE, "metadata": {**INSTANCE["metadata"], "labels": labels, "finalizers": [aps.FINALIZER]}}
    assert not aps.needs_management(graph, "rgd-uid", managed)
    assert aps.needs_management(graph, "new-uid", managed), "a recreated RGD relabels its instances"
    no_finalizer = {**managed, "metadata": {**managed["metadata"], "finalizers": []}}
    assert aps.needs_management(graph, "rgd-uid", no_finalizer)


@pytest.mark.parametrize(("value", "suspended"), [
    ("suspended", True), ("Suspended", True), ("disabled", True), ("DISABLED", True), ("", False),
    ("enabled", False), ("suspend", False)])
def test_suspension_annotation(value: str, suspended: bool) -> None:
    inst = {"metadata": {"annotations": {aps.RECONCILE: value}}}
    assert aps.is_suspended(inst) is suspended
    assert not aps.is_suspended({"metadata": {}})


def test_group_kinds() -> None:
    assert aps.group_kind("apps/v1", "Deployment") == "Deployment.apps"
    assert aps.group_kind("v1", "ConfigMap") == "ConfigMap"
    assert aps.split_group_kind("Deployment.apps") == ("apps", "Deployment")
    assert aps.split_group_kind("Ingress.networking.k8s.io") == ("networking.k8s.io", "Ingress")
    assert aps.split_group_kind("ConfigMap") == ("", "ConfigMap")
    assert aps.parse_list("") == [] and aps.parse_list(None) == []
    assert aps.parse_list("a,,b") == ["a", "b"]


def test_parent_annotations_grow_then_shrink() -> None:
    inst = {"metadata": {"namespace": "ns", "annotations": {aps.GROUP_KINDS: "Service", aps.NAMESPACES: "x"}}}
    grown = aps.parent_annotations(inst, ["Deployment.apps"], ["ns", "other", ""], keep_existing=True)
    assert grown[aps.GROUP_KINDS] == "Deployment.apps,Service"
    assert grown[aps.NAMESPACES] == "other,x", "the instance's own namespace is not additional"
    assert grown[aps.TOOLING].startswith("kro/v")
    shrunk = aps.parent_annotations(inst, ["Deployment.apps"], ["ns"], keep_existing=False)
    assert shrunk[aps.GROUP_KINDS] == "Deployment.apps" and shrunk[aps.NAMESPACES] == ""
    assert aps.annotations_differ(inst, shrunk)
    assert not aps.annotations_differ({"metadata": {"annotations": shrunk}}, shrunk)


@pytest.mark.parametrize(("annotation", "order"), [("3", 3), ("0", 0), ("", -1), ("x", -1), ("-2", -1)])
def test_apply_order_of(annotation: str, order: int) -> None:
    assert aps.apply_order_of({"metadata": {"annotations": {aps.APPLY_ORDER: annotation}}}) == order
    assert aps.apply_order_of({"metadata": {}}) == -1


def test_belongs_elsewhere() -> None:
    mine = {"metadata": {"labels": {aps.PART_OF: "set-a"}}}
    assert not aps.belongs_elsewhere(None, "set-a")
    assert not aps.belongs_elsewhere(mine, "set-a")
    assert aps.belongs_elsewhere(mine, "set-b")
    assert not aps.belongs_elsewhere({"metadata": {"labels": {}}}, "set-b"), "unlabelled objects are adopted"


def test_merge_patch() -> None:
    old = {"state": "IN_PROGRESS", "url": "x", "nested": {"a": 1, "b": 2}, "list": [1, 2]}
    new = {"state": "ACTIVE", "nested": {"a": 1}, "list": [1], "extra": {"k": "v"}}
    patch = aps.merge_patch(old, new)
    assert patch == {"state": "ACTIVE", "url": None, "nested": {"b": None}, "list": [1], "extra": {"k": "v"}}
    assert aps.merge_patch(new, new) == {}
    assert aps.merge_patch("scalar", {"a": 1}) == {"a": 1}
