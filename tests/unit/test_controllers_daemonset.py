"""DaemonSet planning: node eligibility (selector, taints), pinning by node affinity, rolling update, status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kplane.controllers.daemonset import (
    REVISION_LABEL,
    daemon_pod,
    daemonset_status,
    fits_node,
    node_of,
    plan_daemonset,
    tolerates,
)

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def ds(image: str = "agent:1", **pod_spec: Any) -> Any:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 3},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": image}], **pod_spec}}}}


def node(name: str, labels: dict[str, str] | None = None, taints: list[Any] | None = None) -> Any:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def placed(d: Any, node_name: str, *, ready: bool = True, phase: str = "Running", name: str | None = None) -> Any:
    pod = daemon_pod(d, node_name)
    pod["metadata"]["name"] = name or f"agent-{node_name}"
    pod["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return pod


def test_toleration_matching() -> None:
    taint = {"key": "gpu", "value": "yes", "effect": "NoSchedule"}
    assert tolerates({"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}, taint)
    assert tolerates({"key": "gpu", "value": "yes"}, taint)  # default operator Equal, any effect
    assert tolerates({"key": "gpu", "operator": "Exists"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": "gpu", "value": "no"}, taint)
    assert not tolerates({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, taint)
    assert not tolerates({"key": "", "operator": "Equal"}, taint)


def test_node_eligibility_checks_selector_and_taints() -> None:
    spec = {"nodeSelector": {"disk": "ssd"}}
    assert fits_node(spec, node("a", {"disk": "ssd"}))
    assert not fits_node(spec, node("b", {"disk": "hdd"}))
    tainted = node("c", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert not fits_node({}, tainted)
    assert fits_node({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}, tainted)
    assert fits_node({}, node("d", taints=[{"key": "x", "effect": "PreferNoSchedule"}]))
    # the tolerations every daemon pod gets: unschedulable and not-ready nodes still run it
    assert fits_node({}, node("e", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]))


def test_daemon_pod_is_pinned_by_required_node_affinity() -> None:
    pod = daemon_pod(ds(tolerations=[{"key": "a", "operator": "Exists"}]), "node-1")
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]
    assert "nodeName" not in pod["spec"] and node_of(pod) == "node-1"
    assert pod["spec"]["tolerations"][0] == {"key": "a", "operator": "Exists"}
    assert pod["metadata"]["generateName"] == "agent-" and pod["metadata"]["labels"][REVISION_LABEL]
    assert node_of({"spec": {"nodeName": "n9"}}) == "n9" and node_of({"spec": {}}) == ""


def test_plan_creates_on_eligible_nodes_and_removes_misplaced_and_duplicate_pods() -> None:
    d = ds(nodeSelector={"role": "worker"})
    nodes = [node("w1", {"role": "worker"}), node("w2", {"role": "worker"}), node("cp", {"role": "control"})]
    plan = plan_daemonset(d, nodes, [placed(d, "w1"), placed(d, "cp"), placed(d, "w1", ready=False, name="dup")],
                          NOW)
    assert [node_of(p) for p in plan.create] == ["w2"]
    assert sorted(plan.delete) == ["agent-cp", "dup"]
    failed = plan_daemonset(d, nodes[:1], [placed(d, "w1", phase="Failed")], NOW)
    assert failed.delete == ["agent-w1"] and [node_of(p) for p in failed.create] == ["w1"]


def test_rolling_update_respects_max_unavailable() -> None:
    old = ds()
    new = ds("agent:2")
    nodes = [node(f"n{i}") for i in range(3)]
    pods = [placed(old, f"n{i}") for i in range(3)]
    assert len(plan_daemonset(new, nodes, pods, NOW).delete) == 1  # default maxUnavailable 1
    pods[0] = placed(old, "n0", ready=False)
    assert plan_daemonset(new, nodes, pods, NOW).delete == ["agent-n0"]  # the unavailable one, nothing else
    two = ds("agent:2")  # 50% of 3 nodes rounds up to 2
    two["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}
    assert len(plan_daemonset(two, nodes, [placed(old, f"n{i}") for i in range(3)], NOW).delete) == 2
    on_delete = ds("agent:2")
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert plan_daemonset(on_delete, nodes, [placed(old, f"n{i}") for i in range(3)], NOW).delete == []


def test_status() -> None:
    d = ds(nodeSelector={"role": "worker"})
    nodes = [node("w1", {"role": "worker"}), node("w2", {"role": "worker"}), node("cp")]
    status = daemonset_status(d, nodes, [placed(d, "w1"), placed(d, "cp"), placed(ds("agent:0"), "w2", ready=False)],
                              NOW)
    assert status == {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 1,
                      "numberReady": 1, "numberAvailable": 1, "numberUnavailable": 1, "updatedNumberScheduled": 1,
                      "observedGeneration": 3}
    empty = daemonset_status(d, [], [], NOW)
    assert empty == {"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0,
                     "numberReady": 0, "observedGeneration": 3}
