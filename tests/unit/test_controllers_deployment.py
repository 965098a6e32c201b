"""Deployment planning: new ReplicaSet naming and revisions, rollout steps, history cleanup and status."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from kplane.controllers.deployment import (
    REVISION,
    find_new_rs,
    history_to_delete,
    new_replicaset,
    plan_deployment,
)
from kplane.controllers.podtemplate import POD_TEMPLATE_HASH_LABEL, template_hash

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def deployment(image: str = "nginx:1", replicas: int = 3, **spec: Any) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": image}]}},
            **spec,
        },
    }


def as_cluster_rs(rs: Any, replicas: int, available: int, created: str = "2025-01-01T00:00:00Z") -> Any:
    rs = copy.deepcopy(rs)
    rs["metadata"]["creationTimestamp"] = created
    rs["spec"]["replicas"] = replicas
    rs["status"] = {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}
    return rs


def test_first_sync_creates_the_hashed_replica_set_with_revision_one() -> None:
    d = deployment()
    plan = plan_deployment(d, [], NOW)
    rs = plan.create
    assert rs is not None
    pod_hash = template_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == pod_hash
    assert rs["spec"]["replicas"] == 3  # nothing old: the surge room is the whole Deployment
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    assert plan.annotations == {REVISION: "1"}
    progressing = next(c for c in plan.status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetCreated"
    assert progressing["message"] == f'Created new replica set "web-{pod_hash}"'
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # input untouched


def test_collision_count_changes_the_name() -> None:
    d = deployment()
    d["status"] = {"collisionCount": 1}
    assert new_replicaset(d, 1, 1)["metadata"]["name"] != new_replicaset(deployment(), 1, 1)["metadata"]["name"]


def test_complete_rollout_reports_available_and_successfully_progressed() -> None:
    d = deployment()
    rs = as_cluster_rs(new_replicaset(d, 3, 1), 3, 3)
    d["metadata"]["annotations"] = {REVISION: "1"}
    plan = plan_deployment(d, [rs], NOW)
    assert plan.create is None and plan.scale == {} and plan.delete == [] and plan.annotations == {}
    status = plan.status
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                   "availableReplicas")} == {"observedGeneration": 2, "replicas": 3,
                                                             "updatedReplicas": 3, "readyReplicas": 3,
                                                             "availableReplicas": 3}
    assert "unavailableReplicas" not in status
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Available"]["status"], conditions["Available"]["reason"],
            conditions["Available"]["message"]) == ("True", "MinimumReplicasAvailable",
                                                    "Deployment has minimum availability.")
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conditions["Progressing"]["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'


def test_image_change_creates_revision_two_within_surge_then_steps() -> None:
    old_d = deployment()
    old_rs = as_cluster_rs(new_replicaset(old_d, 3, 1), 3, 3)
    d = deployment("nginx:2")
    plan = plan_deployment(d, [old_rs], NOW)
    assert plan.create is not None and plan.create["spec"]["replicas"] == 1  # maxSurge 1
    assert plan.create["metadata"]["annotations"][REVISION] == "2" and plan.annotations == {REVISION: "2"}
    new_rs = as_cluster_rs(plan.create, 1, 0, created="2025-01-01T01:00:00Z")
    assert plan_deployment(d, [old_rs, new_rs], NOW).scale == {}  # maxUnavailable 0: wait for the new pod
    new_rs = as_cluster_rs(plan.create, 1, 1, created="2025-01-01T01:00:00Z")
    step = plan_deployment(d, [old_rs, new_rs], NOW)
    assert step.scale == {old_rs["metadata"]["name"]: 2}
    progressing = next(c for c in step.status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "ReplicaSetUpdated"
    assert "unavailableReplicas" not in step.status and step.status["updatedReplicas"] == 1


def test_progress_deadline_exceeded_when_nothing_moves() -> None:
    d = deployment("nginx:2")
    old_rs = as_cluster_rs(new_replicaset(deployment(), 3, 1), 3, 3)
    new_rs = as_cluster_rs(new_replicaset(d, 1, 2), 1, 0, created="2025-01-01T01:00:00Z")
    d["status"] = {"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "readyReplicas": 3, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "m",
         "lastUpdateTime": "2025-01-01T11:00:00Z", "lastTransitionTime": "2025-01-01T11:00:00Z"}]}
    plan = plan_deployment(d, [old_rs, new_rs], NOW)
    progressing = next(c for c in plan.status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed out progressing.'


def test_paused_deployment_does_not_roll_but_scales() -> None:
    d = deployment("nginx:2", paused=True)
    old_rs = as_cluster_rs(new_replicaset(deployment(), 3, 1), 3, 3)
    plan = plan_deployment(d, [old_rs], NOW)
    assert plan.create is None and plan.scale == {}
    progressing = next(c for c in plan.status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown", "DeploymentPaused", "Deployment is paused")
    scaled = deployment(paused=True, replicas=5)
    rs = as_cluster_rs(new_replicaset(scaled, 3, 1), 3, 3)
    assert plan_deployment(scaled, [rs], NOW).scale == {rs["metadata"]["name"]: 5}


def test_recreate_scales_old_to_zero_first() -> None:
    d = deployment("nginx:2", strategy={"type": "Recreate"})
    old_rs = as_cluster_rs(new_replicaset(deployment(), 3, 1), 3, 3)
    plan = plan_deployment(d, [old_rs], NOW)
    assert plan.create is not None and plan.create["spec"]["replicas"] == 0
    assert plan.create["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "3"
    available = next(c for c in plan.status["conditions"] if c["type"] == "Available")
    assert available["status"] == "True"  # Recreate allows no unavailability; all 3 old pods still serve


def test_unavailable_deployment_reports_minimum_replicas_unavailable() -> None:
    d = deployment()
    rs = as_cluster_rs(new_replicaset(d, 3, 1), 3, 1)
    plan = plan_deployment(d, [rs], NOW)
    available = next(c for c in plan.status["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert plan.status["unavailableReplicas"] == 2


def test_find_new_rs_ignores_the_hash_label() -> None:
    d = deployment()
    rs = as_cluster_rs(new_replicaset(d, 3, 1), 3, 3)
    rs["metadata"]["name"] = "renamed"
    assert find_new_rs(deployment("other"), [rs]) is None
    assert find_new_rs(d, [rs]) is rs


def test_history_limit_deletes_only_empty_oldest_revisions() -> None:
    def rs(name: str, revision: int, replicas: int = 0) -> Any:
        return {"metadata": {"name": name, "annotations": {REVISION: str(revision)}},
                "spec": {"replicas": replicas}, "status": {"replicas": replicas}}

    old = [rs("r3", 3), rs("r1", 1), rs("r2", 2, replicas=1), rs("r4", 4)]
    assert history_to_delete(old, 2) == ["r1", "r3"]
    assert history_to_delete(old, 10) == []
    assert history_to_delete(old, 0) == ["r1", "r3", "r4"]  # r2 still has pods


def test_rollback_to_an_old_template_bumps_its_revision() -> None:
    d = deployment()
    back = as_cluster_rs(new_replicaset(d, 0, 1), 0, 0)
    current = as_cluster_rs(new_replicaset(deployment("nginx:2"), 3, 2), 3, 3, created="2025-01-01T01:00:00Z")
    plan = plan_deployment(d, [back, current], NOW)
    assert plan.annotate[back["metadata"]["name"]][REVISION] == "3"
    assert plan.annotations == {REVISION: "3"}
    assert plan.scale == {back["metadata"]["name"]: 1}
