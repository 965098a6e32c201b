"""Template hashing, owned-pod construction and pod state predicates."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kplane.controllers.expectations import Expectations
from kplane.controllers.podtemplate import (
    deletion_rank,
    fnv32a,
    is_active,
    is_available,
    pod_from_template,
    safe_encode,
    set_condition,
    status_patch,
    template_hash,
)

OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_fnv32a_known_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_template_hash_is_stable_short_and_key_order_free() -> None:
    reordered = {"spec": TEMPLATE["spec"], "metadata": {"annotations": {"a": "b"}, "labels": {"app": "web"}}}
    value = template_hash(TEMPLATE)
    assert value == template_hash(reordered)
    assert 1 <= len(value) <= 10 and set(value) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert value != template_hash({**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}})
    assert template_hash(TEMPLATE, 1) != value and template_hash(TEMPLATE, 0) == value


def test_safe_encode_avoids_vowels() -> None:
    assert not set(safe_encode("0123456789")) & set("aeiou013")


def test_pod_from_template_sets_owner_labels_and_generate_name() -> None:
    pod = pod_from_template(TEMPLATE, OWNER, extra_labels={"x": "y"})
    meta = pod["metadata"]
    assert meta["generateName"] == "web-abc-" and "name" not in meta and meta["namespace"] == "ns"
    assert meta["labels"] == {"app": "web", "x": "y"} and meta["annotations"] == {"a": "b"}
    assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                        "uid": "u1", "controller": True, "blockOwnerDeletion": True}]
    pod["spec"]["containers"][0]["image"] = "changed"
    assert TEMPLATE["spec"]["containers"][0]["image"] == "nginx"  # type: ignore[index]
    named = pod_from_template(TEMPLATE, OWNER, name="db-0")
    assert named["metadata"]["name"] == "db-0" and "generateName" not in named["metadata"]
    long_owner = {**OWNER, "metadata": {**OWNER["metadata"], "name": "x" * 80}}  # type: ignore[dict-item]
    assert len(pod_from_template(TEMPLATE, long_owner)["metadata"]["generateName"]) == 58


def pod(name: str, phase: str = "Running", ready: bool = True, node: str | None = "n1", created: str = "",
        ready_since: str | None = None, deleting: bool = False) -> Any:
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   **({"lastTransitionTime": ready_since} if ready_since else {})}]
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions}}


def test_active_excludes_finished_and_deleting_pods() -> None:
    assert is_active(pod("a"))
    assert is_active({"metadata": {}})  # no status yet: pending
    assert not is_active(pod("a", phase="Succeeded")) and not is_active(pod("a", phase="Failed"))
    assert not is_active(pod("a", deleting=True))


def test_available_needs_min_ready_seconds() -> None:
    assert is_available(pod("a"), 0, NOW)
    assert not is_available(pod("a", ready=False), 0, NOW)
    assert not is_available(pod("a"), 5, NOW)  # no transition time: unknown, not available
    assert is_available(pod("a", ready_since="2024-12-31T23:59:50Z"), 5, NOW)
    assert not is_available(pod("a", ready_since="2024-12-31T23:59:58Z"), 5, NOW)
    assert not is_available(pod("a", ready_since="garbage"), 5, NOW)


def test_deletion_order_prefers_unscheduled_then_pending_then_not_ready_then_newest() -> None:
    pods = [
        pod("ready-old", created="2025-01-01T00:00:00Z"),
        pod("ready-new", created="2025-01-02T00:00:00Z"),
        pod("not-ready", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", phase="Pending", ready=False, node=None),
    ]
    assert [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)] == [
        "unscheduled", "pending", "not-ready", "ready-new", "ready-old"]


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    first = set_condition([], {"type": "Available", "status": "True", "reason": "R"}, "t1")
    assert first == [{"type": "Available", "status": "True", "reason": "R", "lastTransitionTime": "t1"}]
    same = set_condition(first, {"type": "Available", "status": "True", "reason": "R2"}, "t2")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "R2"
    flipped = set_condition(same, {"type": "Available", "status": "False", "reason": "R3"}, "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"
    other = set_condition(flipped, {"type": "Progressing", "status": "True"}, "t4")
    assert [c["type"] for c in other] == ["Available", "Progressing"]


def test_status_patch_nulls_dropped_fields_and_skips_no_ops() -> None:
    assert status_patch({"replicas": 1}, {"replicas": 1}) is None
    assert status_patch({"replicas": 1, "readyReplicas": 1}, {"replicas": 2}) == {"replicas": 2, "readyReplicas": None}
    assert status_patch({}, {"replicas": 0}) == {"replicas": 0}


@pytest.mark.parametrize("timeout_passed", [False, True])
def test_expectations_wait_for_the_cache_to_show_writes(timeout_passed: bool) -> None:
    clock = [0.0]
    expectations = Expectations(timeout_s=10, clock=lambda: clock[0])
    assert expectations.satisfied("k", [], [])
    expectations.expect("k", created=["p1", "p2"], deleted=["u9"])
    assert not expectations.satisfied("k", ["p1"], ["u9"])
    if timeout_passed:
        clock[0] = 11
        assert expectations.satisfied("k", [], ["u9"])
        return
    assert not expectations.satisfied("k", ["p2"], ["u9"])
    assert expectations.satisfied("k", [], [])  # p1, p2 seen earlier; u9 gone now
    expectations.expect("k", created=["p3"])
    expectations.forget("k")
    assert expectations.satisfied("k", [], [])
