"""Namespace lifecycle decisions (pure): what to delete, the deletion conditions, the finalize body."""

from __future__ import annotations

from typing import Any

from kplane.controllers.discovery import ApiResource
from kplane.controllers.namespace import (
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    DISCOVERY_FAILURE,
    FINALIZERS_REMAINING,
    Leftovers,
    deletable,
    deletion_conditions,
    finalized,
    merge_conditions,
    needs_finalizing,
)
from kplane.controllers.serviceaccount import is_active, namespace_of_managed, service_account


def api(plural: str, group: str = "", *verbs: str, namespaced: bool = True) -> ApiResource:
    return ApiResource(group, "v1", plural.title(), plural, namespaced, frozenset(verbs))


def ns(*, deleting: bool = True, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "uid": "u", "resourceVersion": "3"}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"finalizers": ["kubernetes"] if finalizers is None else finalizers},
            "status": {"phase": "Terminating" if deleting else "Active"}}


def test_deletable_needs_namespaced_list_and_delete() -> None:
    resources = [api("pods", "", "list", "delete", "deletecollection"), api("bindings", "", "create"),
                 api("nodes", "", "list", "delete", namespaced=False), api("widgets", "example.com", "list", "delete"),
                 api("reviews", "x.io", "list")]
    assert [r.plural for r in deletable(resources)] == ["pods", "widgets"]


def test_needs_finalizing() -> None:
    assert needs_finalizing(ns())
    assert not needs_finalizing(ns(deleting=False))
    assert not needs_finalizing(ns(finalizers=["example.com/other"]))
    assert not needs_finalizing({})


def test_finalize_body_keeps_other_finalizers() -> None:
    body = finalized(ns(finalizers=["kubernetes", "example.com/keep"]))
    assert body["spec"]["finalizers"] == ["example.com/keep"]
    assert body["metadata"]["name"] == "x" and body["kind"] == "Namespace"
    assert finalized({"metadata": {"name": "y"}})["spec"] == {"finalizers": []}


def test_conditions_when_all_is_well() -> None:
    conditions = deletion_conditions(Leftovers())
    assert all(status == "False" for status, _, _ in conditions.values())
    assert conditions[CONTENT_REMAINING] == ("False", "ContentRemoved", "All content successfully removed")
    assert Leftovers().done


def test_conditions_report_what_remains() -> None:
    left = Leftovers()
    left.add(api("configmaps"), [{"metadata": {"finalizers": ["example/test"]}}])
    left.add(api("widgets", "example.com"), [{"metadata": {}}, {"metadata": {"finalizers": ["example/test"]}}])
    left.add(api("secrets"), [])
    left.errors.append("pods: boom")
    left.discovery_error = "Discovery failed for some groups: x"
    conditions = deletion_conditions(left)
    assert conditions[CONTENT_REMAINING] == (
        "True", "SomeResourcesRemain",
        "Some resources are remaining: configmaps. has 1 resource instances, widgets.example.com has 2 resource "
        "instances")
    assert conditions[FINALIZERS_REMAINING] == (
        "True", "SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: example/test in 2 "
        "resource instances")
    assert conditions[CONTENT_FAILURE][0:2] == ("True", "ContentDeletionFailed")
    assert conditions[DISCOVERY_FAILURE][0:2] == ("True", "DiscoveryFailed")
    assert not left.done


def test_merge_conditions_keeps_transition_time_of_unchanged_status() -> None:
    wanted = deletion_conditions(Leftovers())
    first = merge_conditions([{"type": "Other", "status": "True"}], wanted, "T1")
    assert {c["type"] for c in first} == {"Other", *wanted}
    left = Leftovers(counts={"pods.": 1})
    second = merge_conditions(first, deletion_conditions(left), "T2")
    by_type = {c["type"]: c for c in second}
    assert by_type[CONTENT_REMAINING]["lastTransitionTime"] == "T2"
    assert by_type[DISCOVERY_FAILURE]["lastTransitionTime"] == "T1"


def test_service_account_helpers() -> None:
    assert is_active(ns(deleting=False)) and not is_active(ns())
    assert not is_active({"metadata": {}, "status": {"phase": "Terminating"}})
    assert service_account("team") == {"apiVersion": "v1", "kind": "ServiceAccount",
                                       "metadata": {"name": "default", "namespace": "team"}}
    assert namespace_of_managed({"metadata": {"name": "default", "namespace": "a"}}) == ["a"]
    assert namespace_of_managed({"metadata": {"name": "builder", "namespace": "a"}}) == []
