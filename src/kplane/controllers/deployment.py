"""Deployment controller: roll ReplicaSets named `<deployment>-<pod-template-hash>` towards the template.

As kube-controller-manager's `pkg/controller/deployment/` (sync.go: getNewReplicaSet, cleanupDeployment,
calculateStatus, syncRolloutStatus; rolling.go; recreate.go; progress.go) and
`pkg/controller/deployment/util/deployment_util.go` (revision and replica annotations, condition reasons
and messages). `kubectl rollout status` reads observedGeneration, updatedReplicas, replicas,
availableReplicas and the Progressing condition's ProgressDeadlineExceeded reason.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment, ReplicaSet

from kplane.controllers import kube
from kplane.controllers.podtemplate import (
    POD_TEMPLATE_HASH_LABEL,
    Obj,
    controller_ref,
    format_time,
    parse_time,
    set_condition,
    status_patch,
    template_hash,
)
from kplane.controllers.rollout import RS, max_unavailable, recreate_step, rolling_params, rolling_step
from kplane.runtime import Controller, Result, SharedInformers

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


@dataclass
class DeploymentPlan:
    create: Obj | None = None
    scale: dict[str, int] = field(default_factory=dict)
    annotate: dict[str, dict[str, str]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    status: Obj = field(default_factory=dict)


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def revision_of(rs: Mapping[str, Any]) -> int:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def without_hash(template: Mapping[str, Any]) -> Obj:
    """A ReplicaSet's template as the Deployment wrote it (EqualIgnoreHash)."""
    result = copy.deepcopy(dict(template))
    labels = (result.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return result


def find_new_rs(deployment: Mapping[str, Any], rss: Sequence[Obj]) -> Obj | None:
    """The ReplicaSet running the current template: same template, or the name the current hash gives."""
    template = _spec(deployment).get("template") or {}
    wanted = f"{_name(deployment)}-{template_hash(template, _status(deployment).get('collisionCount'))}"
    for rs in sorted(rss, key=lambda r: str(r["metadata"].get("creationTimestamp", ""))):
        if without_hash(_spec(rs).get("template") or {}) == template or _name(rs) == wanted:
            return rs
    return None


def new_replicaset(deployment: Mapping[str, Any], replicas: int, revision: int) -> Obj:
    """The ReplicaSet for the current template, labelled and selected by its pod-template-hash."""
    spec = _spec(deployment)
    template = copy.deepcopy(dict(spec.get("template") or {}))
    pod_hash = template_hash(template, _status(deployment).get("collisionCount"))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
    selector = copy.deepcopy(dict(spec.get("selector") or {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
    rs_spec: Obj = {"replicas": replicas, "selector": selector, "template": template}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{_name(deployment)}-{pod_hash}",
            "namespace": deployment["metadata"].get("namespace", ""),
            "labels": dict(tmeta["labels"]),
            "annotations": replica_annotations(deployment, revision),
            "ownerReferences": [controller_ref(deployment)],
        },
        "spec": rs_spec,
    }


def replica_annotations(deployment: Mapping[str, Any], revision: int) -> dict[str, str]:
    desired = int(_spec(deployment).get("replicas", 1))
    surge = rolling_params(deployment)[0] if _strategy(deployment) == "RollingUpdate" else 0
    return {REVISION: str(revision), DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(desired + surge)}


def _strategy(deployment: Mapping[str, Any]) -> str:
    return str((_spec(deployment).get("strategy") or {}).get("type") or "RollingUpdate")


def _rs_view(rs: Mapping[str, Any], replicas: int | None = None) -> RS:
    count = int(_spec(rs).get("replicas", 0)) if replicas is None else replicas
    return RS(_name(rs), count, int(_status(rs).get("availableReplicas", 0)))


def history_to_delete(old: Sequence[Obj], limit: int) -> list[str]:
    """Old ReplicaSets past revisionHistoryLimit: only empty ones, oldest revision first (cleanupDeployment)."""
    empty = [rs for rs in old if not _spec(rs).get("replicas") and not _status(rs).get("replicas")]
    surplus = len(old) - max(limit, 0)
    if surplus <= 0:
        return []
    empty.sort(key=lambda rs: (revision_of(rs), str(rs["metadata"].get("creationTimestamp", ""))))
    return [_name(rs) for rs in empty[:surplus]]


def plan_deployment(deployment: Mapping[str, Any], rss: Sequence[Obj], now: dt.datetime) -> DeploymentPlan:
    """Everything one sync does, as data: create, resize, annotate and delete ReplicaSets, and the status."""
    spec = _spec(deployment)
    desired = int(spec.get("replicas", 1))
    paused = bool(spec.get("paused"))
    plan = DeploymentPlan()
    new = find_new_rs(deployment, rss)
    old = sorted(
        (rs for rs in rss if rs is not new), key=lambda r: str(r["metadata"].get("creationTimestamp", ""))
    )
    max_old = max((revision_of(rs) for rs in old), default=0)
    sizes = {_name(rs): int(_spec(rs).get("replicas", 0)) for rs in rss}
    if new is None and not paused:
        views = [_rs_view(rs) for rs in old]
        initial = 0
        if _strategy(deployment) == "RollingUpdate":
            initial = rolling_step(deployment, RS("", 0), views).get("", 0)
        elif not any(v.replicas for v in views) and not any(_status(rs).get("replicas") for rs in old):
            initial = desired
        plan.create = new_replicaset(deployment, initial, max_old + 1)
        new_name = _name(plan.create)
        plan.annotations = {REVISION: str(max_old + 1)}
        sizes[new_name] = initial
    elif new is not None:
        new_name = _name(new)
        revision = revision_of(new) if revision_of(new) > max_old else max_old + 1
        wanted = replica_annotations(deployment, revision)
        for rs in [new, *old]:
            current = (rs["metadata"].get("annotations") or {})
            want = wanted if rs is new else {DESIRED_REPLICAS: wanted[DESIRED_REPLICAS],
                                             MAX_REPLICAS: wanted[MAX_REPLICAS], REVISION: current.get(REVISION, "")}
            want = {k: v for k, v in want.items() if v}
            if any(current.get(k) != v for k, v in want.items()):
                plan.annotate[_name(rs)] = want
        plan.annotations = {REVISION: str(revision)}
        if paused:
            if not any(sizes[_name(rs)] for rs in old) and sizes[new_name] != desired:
                plan.scale[new_name] = desired
        elif _strategy(deployment) == "Recreate":
            running = any(_status(rs).get("replicas") for rs in old)
            plan.scale = recreate_step(deployment, _rs_view(new), [_rs_view(rs) for rs in old], running)
        else:
            plan.scale = rolling_step(deployment, _rs_view(new), [_rs_view(rs) for rs in old])
        sizes.update(plan.scale)
        complete = sizes[new_name] == desired and not any(sizes[_name(rs)] for rs in old)
        if complete:
            plan.delete = history_to_delete(old, int(spec.get("revisionHistoryLimit", 10)))
    else:
        new_name = ""
    plan.status = deployment_status(deployment, rss, new, new_name, sizes, now)
    if (deployment["metadata"].get("annotations") or {}).get(REVISION) == plan.annotations.get(REVISION):
        plan.annotations = {}
    return plan


def deployment_status(
    deployment: Mapping[str, Any],
    rss: Sequence[Obj],
    new: Obj | None,
    new_name: str,
    sizes: Mapping[str, int],
    now: dt.datetime,
) -> Obj:
    """calculateStatus plus the Available and Progressing conditions (syncRolloutStatus)."""
    spec = _spec(deployment)
    old_status = _status(deployment)
    desired = int(spec.get("replicas", 1))
    available = sum(int(_status(rs).get("availableReplicas", 0)) for rs in rss)
    counts: Obj = {
        "observedGeneration": deployment["metadata"].get("generation", 0),
        "replicas": sum(int(_status(rs).get("replicas", 0)) for rs in rss),
        "updatedReplicas": int(_status(new).get("replicas", 0)) if new is not None else 0,
        "readyReplicas": sum(int(_status(rs).get("readyReplicas", 0)) for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, sum(sizes.values()) - available),
    }
    status: Obj = {k: v for k, v in counts.items() if v}
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    stamp = format_time(now)
    conditions = [dict(c) for c in old_status.get("conditions") or []]
    if available >= desired - max_unavailable(deployment):
        wanted = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        wanted = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    conditions = set_condition(conditions, _condition("Available", *wanted, stamp), stamp)
    progressing = _progressing(deployment, counts, new_name, new is None, now)
    if progressing is not None:
        conditions = set_condition(conditions, _condition("Progressing", *progressing, stamp), stamp)
        if progressing[1] == "ReplicaSetUpdated" and _made_progress(old_status, counts):
            conditions = [
                {**c, "lastUpdateTime": stamp} if c.get("type") == "Progressing" else c for c in conditions
            ]
    status["conditions"] = conditions
    return status


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": status, "lastUpdateTime": now, "reason": reason, "message": message}


def _made_progress(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """DeploymentProgressing: more updated, ready or available pods, or fewer old ones."""
    def get(status: Mapping[str, Any], key: str) -> int:
        return int(status.get(key, 0) or 0)

    old_pods = get(old, "replicas") - get(old, "updatedReplicas")
    new_pods = get(new, "replicas") - get(new, "updatedReplicas")
    return (
        get(new, "updatedReplicas") > get(old, "updatedReplicas")
        or new_pods < old_pods
        or get(new, "readyReplicas") > get(old, "readyReplicas")
        or get(new, "availableReplicas") > get(old, "availableReplicas")
    )


def _progressing(
    deployment: Mapping[str, Any], counts: Mapping[str, int], new_name: str, creating: bool, now: dt.datetime
) -> tuple[str, str, str] | None:
    spec = _spec(deployment)
    if spec.get("paused"):
        return ("Unknown", "DeploymentPaused", "Deployment is paused")
    if not new_name:
        return None
    desired = int(spec.get("replicas", 1))
    if creating:
        return ("True", "NewReplicaSetCreated", f'Created new replica set "{new_name}"')
    updated, total, available = counts["updatedReplicas"], counts["replicas"], counts["availableReplicas"]
    if updated == desired and total == desired and available >= desired:
        return ("True", "NewReplicaSetAvailable", f'ReplicaSet "{new_name}" has successfully progressed.')
    current = next((c for c in _status(deployment).get("conditions") or [] if c.get("type") == "Progressing"), None)
    deadline = spec.get("progressDeadlineSeconds")
    if current is not None and deadline is not None and current.get("reason") != "NewReplicaSetAvailable":
        since = parse_time(current.get("lastUpdateTime"))
        if since is not None and since + dt.timedelta(seconds=int(deadline)) < now:
            return ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{new_name}" has timed out progressing.')
    return ("True", "ReplicaSetUpdated", f'ReplicaSet "{new_name}" is progressing.')


def deployment_controller(client: AsyncClient, informers: SharedInformers, *, workers: int = 4) -> Controller:
    deploy_informer = informers.get(Deployment)

    async def reconcile(key: str) -> Result | None:
        cached = deploy_informer.store.get(key)
        if cached is None:
            return None
        deployment = kube.as_dict(cached)
        meta = deployment["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        namespace, name = meta["namespace"], meta["name"]
        rss = kube.owned(rs_informer.store, deployment)
        now = dt.datetime.now(dt.UTC)
        plan = plan_deployment(deployment, rss, now)
        if plan.create is not None and await kube.create(client, ReplicaSet, plan.create) is None:
            return await _name_taken(client, deployment, _name(plan.create))
        for rs_name, wanted in plan.annotate.items():
            await kube.patch(client, ReplicaSet, rs_name, namespace, {"metadata": {"annotations": wanted}})
        for rs_name, replicas in plan.scale.items():
            await kube.patch(client, ReplicaSet, rs_name, namespace, {"spec": {"replicas": replicas}})
        for rs_name in plan.delete:
            await kube.delete(client, ReplicaSet, rs_name, namespace)
        if plan.annotations:
            await kube.patch(client, Deployment, name, namespace, {"metadata": {"annotations": plan.annotations}})
        body = status_patch(_status(deployment), plan.status)
        if body is not None:
            await kube.patch(client, Deployment.Status, name, namespace, {"status": body})
        return _recheck(deployment, plan.status)

    async def _name_taken(client: AsyncClient, deployment: Obj, rs_name: str) -> Result | None:
        """The new ReplicaSet's name exists: ours but not cached yet (wait), or someone else's (collision)."""
        meta = deployment["metadata"]
        try:
            existing = kube.as_dict(await client.get(ReplicaSet, rs_name, namespace=meta["namespace"]))
        except ApiError as exc:
            if kube.is_status(exc, 404):
                return Result(requeue=True)
            raise
        refs = existing["metadata"].get("ownerReferences") or []
        if not any(ref.get("uid") == meta["uid"] and ref.get("controller") for ref in refs):
            count = int(_status(deployment).get("collisionCount") or 0) + 1
            await kube.patch(client, Deployment.Status, meta["name"], meta["namespace"],
                             {"status": {"collisionCount": count}})
        return Result(requeue=True)

    controller = Controller("deployment", client, Deployment, kube.skip_terminating_namespace(reconcile),
                            informers=informers, workers=workers)
    rs_informer = kube.ensure_owner_index(controller.owns(ReplicaSet))
    return controller


def _recheck(deployment: Mapping[str, Any], status: Mapping[str, Any]) -> Result | None:
    """While a rollout is in progress, look again before its progress deadline can pass unnoticed."""
    deadline = _spec(deployment).get("progressDeadlineSeconds")
    progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if deadline is None or progressing is None or progressing.get("reason") != "ReplicaSetUpdated":
        return None
    return Result(requeue_after=float(deadline) + 1.0)
