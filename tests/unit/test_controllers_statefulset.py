"""StatefulSet planning: ordered creation, reverse-order scale-down, Parallel policy, rolling update, status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kplane.controllers.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    ordinal_of,
    plan_statefulset,
    stateful_pod,
    statefulset_status,
    update_revision,
)

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def sts(replicas: int = 3, image: str = "pg:1", **spec: Any) -> Any:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "uid": "s-uid", "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "db-svc", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


def running(s: Any, ordinal: int, *, ready: bool = True, phase: str = "Running", deleting: bool = False) -> Any:
    pod = stateful_pod(s, ordinal)
    pod["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return pod


def names(pods: list[Any]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_ordinals_parse_only_canonical_numbers() -> None:
    assert ordinal_of("db", "db-0") == 0 and ordinal_of("db", "db-12") == 12
    assert ordinal_of("db", "db-01") is None and ordinal_of("db", "db-x") is None
    assert ordinal_of("db", "other-1") is None and ordinal_of("db", "db-") is None


def test_pod_identity() -> None:
    pod = stateful_pod(sts(), 2)
    assert pod["metadata"]["name"] == "db-2" and "generateName" not in pod["metadata"]
    labels = pod["metadata"]["labels"]
    assert labels[POD_NAME_LABEL] == "db-2" and labels[POD_INDEX_LABEL] == "2" and labels["app"] == "db"
    assert labels[REVISION_LABEL] == update_revision(sts()) and labels[REVISION_LABEL].startswith("db-")
    assert pod["spec"]["hostname"] == "db-2" and pod["spec"]["subdomain"] == "db-svc"


def test_ordered_ready_creates_one_at_a_time_after_predecessors_are_ready() -> None:
    s = sts()
    assert names(plan_statefulset(s, []).create) == ["db-0"]
    assert plan_statefulset(s, [running(s, 0, ready=False)]).create == []
    assert plan_statefulset(s, [running(s, 0, phase="Pending", ready=False)]).create == []
    assert names(plan_statefulset(s, [running(s, 0)]).create) == ["db-1"]
    assert names(plan_statefulset(s, [running(s, 0), running(s, 1)]).create) == ["db-2"]
    done = plan_statefulset(s, [running(s, i) for i in range(3)])
    assert done.create == [] and done.delete == []


def test_failed_pod_is_replaced() -> None:
    s = sts()
    plan = plan_statefulset(s, [running(s, 0, phase="Failed", ready=False)])
    assert plan.delete == ["db-0"] and plan.create == []


def test_parallel_creates_all_missing_at_once() -> None:
    s = sts(podManagementPolicy="Parallel")
    assert names(plan_statefulset(s, [running(s, 1, ready=False)]).create) == ["db-0", "db-2"]


def test_scale_down_removes_highest_ordinal_first_one_at_a_time() -> None:
    s = sts(replicas=1)
    pods = [running(s, i) for i in range(3)]
    assert plan_statefulset(s, pods).delete == ["db-2"]
    pods[2]["metadata"]["deletionTimestamp"] = "now"
    assert plan_statefulset(s, pods).delete == []  # wait for db-2 to go
    assert plan_statefulset(s, pods[:2]).delete == ["db-1"]
    parallel = sts(replicas=1, podManagementPolicy="Parallel")
    assert plan_statefulset(parallel, [running(parallel, i) for i in range(3)]).delete == ["db-2", "db-1"]


def test_rolling_update_replaces_from_the_highest_ordinal_down_to_the_partition() -> None:
    old = sts()
    new = sts(image="pg:2")
    pods = [running(old, i) for i in range(3)]
    assert plan_statefulset(new, pods).delete == ["db-2"]
    pods[2] = running(new, 2)
    assert plan_statefulset(new, pods).delete == ["db-1"]
    pods[1] = running(new, 1, ready=False)
    assert plan_statefulset(new, pods).delete == []  # wait for the replacement to be ready
    partitioned = sts(image="pg:2", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}})
    pods[1] = running(new, 1)
    assert plan_statefulset(partitioned, pods).delete == []
    on_delete = sts(image="pg:2", updateStrategy={"type": "OnDelete"})
    assert plan_statefulset(on_delete, [running(old, i) for i in range(3)]).delete == []


def test_status_tracks_revisions() -> None:
    old = sts()
    new = sts(image="pg:2")
    new["status"] = {"currentRevision": update_revision(old)}
    pods = [running(old, 0), running(old, 1), running(new, 2)]
    status = statefulset_status(new, pods, NOW)
    assert status["replicas"] == 3 and status["readyReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["currentRevision"] == update_revision(old) and status["updateRevision"] == update_revision(new)
    assert status["currentReplicas"] == 2 and status["updatedReplicas"] == 1
    done = statefulset_status(new, [running(new, i) for i in range(3)], NOW)
    assert done["currentRevision"] == done["updateRevision"] and done["currentReplicas"] == 3
    empty = statefulset_status(sts(replicas=0), [], NOW)
    assert empty["replicas"] == 0 and "readyReplicas" not in empty
