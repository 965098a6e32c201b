"""StatefulSet controller: pods `<name>-0 … <name>-N-1` with stable identity, created and removed in order.

As kube-controller-manager's `pkg/controller/statefulset/stateful_set_control.go` (updateStatefulSet: create
missing ordinals, wait for each to be Running and Ready under OrderedReady, delete condemned ordinals
highest first, roll updates from the highest ordinal down to the partition) and `stateful_set_utils.go`
(pod identity labels, revision label). Revisions are named `<name>-<hash>` like upstream's
ControllerRevisions, though no ControllerRevision objects are written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Pod

from kplane.controllers import kube
from kplane.controllers.podtemplate import (
    Obj,
    is_available,
    is_ready,
    is_terminating,
    phase,
    pod_from_template,
    status_patch,
    template_hash,
)
from kplane.runtime import Controller, Result, SharedInformers

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclass
class StatefulPlan:
    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


def ordinal_of(set_name: str, pod_name: str) -> int | None:
    prefix = f"{set_name}-"
    if not pod_name.startswith(prefix):
        return None
    rest = pod_name[len(prefix) :]
    return int(rest) if rest.isdigit() and (rest == "0" or not rest.startswith("0")) else None


def update_revision(sts: Mapping[str, Any]) -> str:
    template = (sts.get("spec") or {}).get("template") or {}
    return f"{sts['metadata']['name']}-{template_hash(template)}"


def revision_of(pod: Mapping[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL, ""))


def stateful_pod(sts: Mapping[str, Any], ordinal: int) -> Obj:
    """The pod for one ordinal: its identity labels, hostname and the set's headless-service subdomain."""
    spec = sts.get("spec") or {}
    name = f"{sts['metadata']['name']}-{ordinal}"
    labels = {REVISION_LABEL: update_revision(sts), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
    pod = pod_from_template(spec.get("template") or {}, sts, name=name, extra_labels=labels)
    pod["spec"]["hostname"] = name
    if spec.get("serviceName"):
        pod["spec"]["subdomain"] = spec["serviceName"]
    return pod


def _running_and_ready(pod: Mapping[str, Any]) -> bool:
    return phase(pod) == "Running" and is_ready(pod) and not is_terminating(pod)


def plan_statefulset(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> StatefulPlan:
    """One sync's creates and deletes (never both an ordered create and an ordered delete)."""
    spec = sts.get("spec") or {}
    set_name = sts["metadata"]["name"]
    desired = int(spec.get("replicas", 1))
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    by_ordinal: dict[int, Mapping[str, Any]] = {}
    for pod in pods:
        ordinal = ordinal_of(set_name, pod["metadata"]["name"])
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    plan = StatefulPlan()
    for ordinal in range(desired):
        found = by_ordinal.get(ordinal)
        if found is None:
            plan.create.append(stateful_pod(sts, ordinal))
            if ordered:
                return plan
            continue
        if phase(found) in ("Failed", "Succeeded") and not is_terminating(found):
            plan.delete.append(found["metadata"]["name"])
            if ordered:
                return plan
            continue
        if ordered and not _running_and_ready(found):
            return plan
    if plan.create or plan.delete:
        return plan
    condemned = sorted((o for o in by_ordinal if o >= desired), reverse=True)
    for ordinal in condemned:
        pod = by_ordinal[ordinal]
        if is_terminating(pod):
            if ordered:
                return plan
            continue
        plan.delete.append(pod["metadata"]["name"])
        if ordered:
            return plan
    if plan.delete or any(is_terminating(by_ordinal[o]) for o in condemned):
        return plan
    return _rolling_update(sts, by_ordinal, desired)


def _rolling_update(sts: Mapping[str, Any], by_ordinal: Mapping[int, Mapping[str, Any]], desired: int) -> StatefulPlan:
    """Replace one stale pod at a time, highest ordinal first, down to the partition; wait while any is unready."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return StatefulPlan()
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    revision = update_revision(sts)
    if any(not _running_and_ready(by_ordinal[o]) for o in range(desired) if o in by_ordinal):
        return StatefulPlan()
    for ordinal in range(desired - 1, partition - 1, -1):
        pod = by_ordinal.get(ordinal)
        if pod is not None and revision_of(pod) != revision:
            return StatefulPlan(delete=[pod["metadata"]["name"]])
    return StatefulPlan()


def statefulset_status(sts: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime) -> Obj:
    spec = sts.get("spec") or {}
    set_name = sts["metadata"]["name"]
    mine = [p for p in pods if ordinal_of(set_name, p["metadata"]["name"]) is not None and not is_terminating(p)]
    update = update_revision(sts)
    old = sts.get("status") or {}
    current = str(old.get("currentRevision") or update)
    updated = sum(1 for p in mine if revision_of(p) == update)
    desired = int(spec.get("replicas", 1))
    if updated == desired == len(mine) and all(_running_and_ready(p) for p in mine):
        current = update
    min_ready = int(spec.get("minReadySeconds") or 0)
    status: Obj = {
        "observedGeneration": sts["metadata"].get("generation", 0),
        "replicas": len(mine),
        "readyReplicas": sum(1 for p in mine if is_ready(p)),
        "currentReplicas": sum(1 for p in mine if revision_of(p) == current),
        "updatedReplicas": updated,
        "availableReplicas": sum(1 for p in mine if is_available(p, min_ready, now)),
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": int(old.get("collisionCount") or 0),
    }
    keep = ("replicas", "availableReplicas", "collisionCount")
    return {k: v for k, v in status.items() if v or k in keep}


def statefulset_controller(client: AsyncClient, informers: SharedInformers, *, workers: int = 2) -> Controller:
    sts_informer = informers.get(StatefulSet)

    async def reconcile(key: str) -> Result | None:
        cached = sts_informer.store.get(key)
        if cached is None:
            return None
        sts = kube.as_dict(cached)
        meta = sts["metadata"]
        pods = kube.owned(pod_informer.store, sts)
        if not meta.get("deletionTimestamp"):
            plan = plan_statefulset(sts, pods)
            for pod in plan.create:
                await kube.create_pod(client, pod)
            for name in plan.delete:
                await kube.delete(client, Pod, name, meta["namespace"])
        body = status_patch(sts.get("status") or {}, statefulset_status(sts, pods, dt.datetime.now(dt.UTC)))
        if body is not None:
            await kube.patch(client, StatefulSet.Status, meta["name"], meta["namespace"], {"status": body})
        return None

    controller = Controller("statefulset", client, StatefulSet, kube.skip_terminating_namespace(reconcile),
                            informers=informers, workers=workers)
    pod_informer = kube.ensure_owner_index(controller.owns(Pod))
    return controller
