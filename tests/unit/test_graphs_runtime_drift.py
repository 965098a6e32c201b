"""When the instance controller may skip re-applying a child, and when it must apply (drift correction)."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.graphs import drift
from kplane.graphs.kinds import Kind, Kinds, served_minor

BODY: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 2}}


def response(rv: str, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {**BODY, "metadata": {**BODY["metadata"], "resourceVersion": rv, "uid": "u",
                                                "generation": 1, "managedFields": [{"manager": "kro.run/applyset"}]}}
    obj.update(changes)
    return obj


LAST = drift.Applied.of(BODY, response("10"))


def test_shape_ignores_key_order_status_and_bookkeeping() -> None:
    assert drift.digest({"a": 1, "b": {"c": 2, "d": 3}}) == drift.digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert drift.digest({"a": [1, 2]}) != drift.digest({"a": [2, 1]})
    moved = response("99", status={"x": 1})
    moved["metadata"]["managedFields"] = []
    assert drift.shape(moved) == drift.shape(response("10"))
    assert drift.shape(response("10", spec={"replicas": 3})) != drift.shape(response("10"))


def test_same_version_is_still_applied() -> None:
    live = response("10")
    assert drift.still_applied(LAST, BODY, live, "10") is live


def test_status_and_fields_of_other_writers_do_not_reapply() -> None:
    live = response("12", status={"availableReplicas": 2})
    live["metadata"]["managedFields"] = [{"manager": "kro.run/applyset"}, {"manager": "deployment-controller"}]
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    live["metadata"]["labels"] = {"a": "1", "added-by": "someone"}
    live["spec"] = {"replicas": 2, "strategy": {"type": "RollingUpdate"}}
    assert drift.still_applied(LAST, BODY, live, "12") is live


def test_reflects() -> None:
    assert drift.reflects({"a": {"b": [{"c": 1, "d": 2}]}, "e": 3}, {"a": {"b": [{"c": 1}]}})
    assert not drift.reflects({"a": {"b": [{"c": 1}, {"c": 2}]}}, {"a": {"b": [{"c": 1}]}}), "an item was added"
    assert not drift.reflects({"a": {"b": [{"c": 2}]}}, {"a": {"b": [{"c": 1}]}})
    assert not drift.reflects({"a": {}}, {"a": {"b": None}}), "the server drops nulls: not comparable"
    assert not drift.reflects({"a": 1}, {"a": True}) and not drift.reflects({"a": "1"}, {"a": 1})
    assert not drift.reflects({"a": [1]}, {"a": {"x": 1}}) and not drift.reflects({"a": {"x": 1}}, {"a": [1]})


def test_a_body_the_server_rewrote_is_compared_by_shape() -> None:
    body = {**BODY, "spec": {"replicas": 2, "selector": None}}
    last = drift.Applied.of(body, response("10"))
    assert not last.reflected
    assert drift.still_applied(last, body, response("11", status={"ready": 1}), "11") is not None
    assert drift.still_applied(last, body, response("11", spec={"replicas": 5}), "11") is None


def _scaled(obj: dict[str, Any]) -> None:
    obj["spec"] = {"replicas": 5}


def _relabelled(obj: dict[str, Any]) -> None:
    obj["metadata"]["labels"] = {"a": "tampered"}


def _unlabelled(obj: dict[str, Any]) -> None:
    del obj["metadata"]["labels"]


def _terminating(obj: dict[str, Any]) -> None:
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("change", [_scaled, _relabelled, _unlabelled, _terminating])
def test_a_change_by_anyone_else_means_apply_again(change: Any) -> None:
    live = response("12")
    change(live)
    assert drift.still_applied(LAST, BODY, live, "12") is None


def test_a_new_body_or_no_memory_means_apply() -> None:
    live = response("10")
    assert drift.still_applied(None, BODY, live, "10") is None
    assert drift.still_applied(LAST, {**BODY, "spec": {"replicas": 3}}, live, "10") is None


def test_a_cache_behind_the_apply_is_not_drift() -> None:
    older = response("8", spec={"replicas": 1})
    assert drift.still_applied(LAST, BODY, older, "9") is LAST.obj
    assert drift.still_applied(LAST, BODY, None, "9") is LAST.obj, "the cache has not seen the create yet"


def test_a_child_gone_from_an_up_to_date_cache_is_applied_again() -> None:
    assert drift.still_applied(LAST, BODY, None, "10") is None
    assert drift.still_applied(LAST, BODY, None, "11") is None
    assert drift.still_applied(LAST, BODY, None, None) is None


def test_opaque_resource_versions_are_never_taken_as_older() -> None:
    assert not drift.behind("abc", "10") and not drift.behind("9", "abc") and not drift.behind("", "10")
    assert drift.behind("9", "10") and not drift.behind("10", "10") and not drift.behind("11", "10")
    other = response("xyz", spec={"replicas": 1})
    assert drift.still_applied(drift.Applied.of(BODY, response("abc")), BODY, other, "xyz") is None
    assert drift.still_applied(drift.Applied.of(BODY, response("abc")), BODY, None, "xyz") is None


@pytest.mark.parametrize(("info", "minor"), [
    ({"major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "34"}, 34),
    ({"major": "1", "minor": "33"}, 33),
    ({"major": "1", "minor": "31+"}, 31),
    ({"major": "1", "minor": ""}, None),
    ({}, None),
    ({"major": "1", "minor": "7"}, None),
    ({"major": "1", "minor": "x", "emulationMinor": "y"}, None),
])
def test_served_minor(info: dict[str, Any], minor: int | None) -> None:
    assert served_minor(info) == minor


def test_kinds_follow_the_served_level_and_stay_dict_backed() -> None:
    kinds = Kinds(36, list)
    ingress = kinds.lookup("networking.k8s.io/v1", "Ingress")
    quota = kinds.lookup("v1", "ResourceQuota")
    assert ingress is not None and ingress.plural == "ingresses" and ingress.namespaced
    assert quota is not None and quota.namespaced and kinds.preferred("", "Namespace") is not None
    assert kinds.lookup("networking.k8s.io/v1", "NoSuchKind") is None
    assert issubclass(ingress.resource, dict), "kro reads its caches as plain dicts"
    crd_kind = Kind("example.com", "v1", "Widget", "widgets", True)
    assert issubclass(crd_kind.resource, dict)
