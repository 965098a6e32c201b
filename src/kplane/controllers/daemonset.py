"""DaemonSet controller: one pod on every node the pod template fits, pinned there by node affinity.

As kube-controller-manager's `pkg/controller/daemon/` (daemon_controller.go: podsShouldBeOnNode,
manage, syncNodes, updateDaemonSetStatus; update.go: rollingUpdate with maxUnavailable; util: the node
affinity `metadata.name` term replacing spec.nodeName, and the tolerations every daemon pod gets).
Node eligibility checks nodeSelector and taints against tolerations (NoSchedule and NoExecute).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import DaemonSet
from lightkube.resources.core_v1 import Node, Pod

from kplane.api.tolerations import tolerates
from kplane.controllers import kube
from kplane.controllers.expectations import Expectations
from kplane.controllers.podtemplate import (
    Obj,
    deletion_rank,
    is_active,
    is_available,
    is_ready,
    is_terminating,
    labels_match,
    phase,
    pod_from_template,
    status_patch,
    template_hash,
)
from kplane.controllers.rollout import scaled_value
from kplane.runtime import Controller, Result, SharedInformers

REVISION_LABEL = "controller-revision-hash"

# pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations: daemon pods stay through these node states
DAEMON_TOLERATIONS: list[Obj] = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


@dataclass
class DaemonPlan:
    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


def fits_node(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    if not labels_match(labels, pod_spec.get("nodeSelector") or {}):
        return False
    tolerations = [*(pod_spec.get("tolerations") or []), *DAEMON_TOLERATIONS]
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return False
    return True


def node_of(pod: Mapping[str, Any]) -> str:
    """The node a daemon pod belongs to: where it runs, or where its affinity pins it."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expression in term.get("matchFields") or []:
            if expression.get("key") == "metadata.name" and expression.get("values"):
                return str(expression["values"][0])
    return ""


def daemon_pod(ds: Mapping[str, Any], node_name: str) -> Obj:
    template = (ds.get("spec") or {}).get("template") or {}
    pod = pod_from_template(template, ds, extra_labels={REVISION_LABEL: template_hash(template)})
    spec = pod["spec"]
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {
        **(affinity.get("nodeAffinity") or {}),
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
            ]
        },
    }
    present = spec.get("tolerations") or []
    spec["tolerations"] = [*present, *(t for t in DAEMON_TOLERATIONS if t not in present)]
    return pod


def plan_daemonset(ds: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
                   now: dt.datetime) -> DaemonPlan:
    spec = ds.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    eligible = {n["metadata"]["name"] for n in nodes if fits_node(pod_spec, n)}
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    plan = DaemonPlan()
    for pod in pods:
        if is_terminating(pod):
            continue
        if phase(pod) == "Failed":
            plan.delete.append(pod["metadata"]["name"])
            continue
        by_node.setdefault(node_of(pod), []).append(pod)
    for node_name, node_pods in by_node.items():
        if node_name not in eligible:
            plan.delete.extend(p["metadata"]["name"] for p in node_pods)
        elif len(node_pods) > 1:
            keep = sorted(node_pods, key=deletion_rank)[-1]
            plan.delete.extend(p["metadata"]["name"] for p in node_pods if p is not keep)
    plan.create = [daemon_pod(ds, name) for name in sorted(eligible) if not by_node.get(name)]
    plan.delete.extend(_rolling_update(ds, eligible, by_node, now))
    return plan


def _rolling_update(ds: Mapping[str, Any], eligible: set[str], by_node: Mapping[str, list[Mapping[str, Any]]],
                    now: dt.datetime) -> list[str]:
    """Delete out-of-date pods, unavailable ones first, keeping at most maxUnavailable nodes without one."""
    spec = ds.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return []
    revision = template_hash(spec.get("template") or {})
    min_ready = int(spec.get("minReadySeconds") or 0)
    budget = max(1, scaled_value((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(eligible),
                                 round_up=True))
    current = {name: by_node[name][0] for name in eligible if len(by_node.get(name) or []) == 1}
    unavailable = sum(1 for name in eligible if name not in current or not is_available(current[name], min_ready, now))
    stale = [p for p in current.values() if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision]
    result: list[str] = []
    for pod in sorted(stale, key=lambda p: is_available(p, min_ready, now)):
        if not is_available(pod, min_ready, now):
            result.append(pod["metadata"]["name"])
        elif unavailable < budget:
            result.append(pod["metadata"]["name"])
            unavailable += 1
    return result


def daemonset_status(ds: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
                     now: dt.datetime) -> Obj:
    spec = ds.get("spec") or {}
    template = spec.get("template") or {}
    eligible = {n["metadata"]["name"] for n in nodes if fits_node(template.get("spec") or {}, n)}
    revision = template_hash(template)
    min_ready = int(spec.get("minReadySeconds") or 0)
    placed: dict[str, Mapping[str, Any]] = {}
    misscheduled = set()
    for pod in pods:
        if not is_active(pod):
            continue
        node = node_of(pod)
        if node in eligible:
            placed.setdefault(node, pod)
        else:
            misscheduled.add(node)
    available = sum(1 for p in placed.values() if is_available(p, min_ready, now))
    status: Obj = {
        "desiredNumberScheduled": len(eligible),
        "currentNumberScheduled": len(placed),
        "numberMisscheduled": len(misscheduled),
        "numberReady": sum(1 for p in placed.values() if is_ready(p)),
        "numberAvailable": available,
        "numberUnavailable": len(eligible) - available,
        "updatedNumberScheduled": sum(
            1 for p in placed.values() if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision
        ),
        "observedGeneration": ds["metadata"].get("generation", 0),
    }
    optional = ("numberAvailable", "numberUnavailable", "updatedNumberScheduled", "observedGeneration")
    return {k: v for k, v in status.items() if v or k not in optional}


def daemonset_controller(client: AsyncClient, informers: SharedInformers, *, workers: int = 2) -> Controller:
    ds_informer = informers.get(DaemonSet)
    expectations = Expectations()

    async def reconcile(key: str) -> Result | None:
        cached = ds_informer.store.get(key)
        if cached is None:
            expectations.forget(key)
            return None
        ds = kube.as_dict(cached)
        meta = ds["metadata"]
        pods = kube.owned(pod_informer.store, ds)
        nodes = [kube.as_dict(n) for n in node_informer.store.list()]
        now = dt.datetime.now(dt.UTC)
        if expectations.satisfied_by(key, pods) and not meta.get("deletionTimestamp"):
            plan = plan_daemonset(ds, nodes, pods, now)
            uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
            expectations.expect(key, deleted=[uids[name] for name in plan.delete])
            await asyncio.gather(*(kube.delete(client, Pod, name, meta["namespace"]) for name in plan.delete))
            created = await asyncio.gather(*(kube.create_pod(client, pod) for pod in plan.create))
            expectations.expect(key, created=[name for name in created if name])
        body = status_patch(ds.get("status") or {}, daemonset_status(ds, nodes, pods, now))
        if body is not None:
            await kube.patch(client, DaemonSet.Status, meta["name"], meta["namespace"], {"status": body})
        return None

    controller = Controller("daemonset", client, DaemonSet, kube.skip_terminating_namespace(reconcile),
                            informers=informers, workers=workers)
    pod_informer = kube.ensure_owner_index(controller.owns(Pod))

    node_informer = controller.watches(Node, lambda _: ds_informer.store.keys())
    return controller
