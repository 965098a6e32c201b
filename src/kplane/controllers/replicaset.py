"""ReplicaSet controller: keep `spec.replicas` active pods, and report what they are doing.

As kube-controller-manager's `pkg/controller/replicaset/replica_set.go` (manageReplicas, slow-start
batches, getPodsToDelete) and `replica_set_utils.go` (calculateStatus): pods are named `<rs>-<random>`,
carry a controller reference with blockOwnerDeletion, and surplus pods are deleted not-ready first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Pod

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
    pod_from_template,
    status_patch,
)
from kplane.runtime import Controller, Result, SharedInformers

# upstream caps one sync's creates and deletes at 500 (BurstReplicas)
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1


@dataclass
class ReplicaPlan:
    create: int = 0
    delete: list[Obj] = field(default_factory=list)


def plan_replicas(desired: int, pods: Sequence[Mapping[str, Any]]) -> ReplicaPlan:
    """How many pods to create, or which to delete, to reach `desired` active pods."""
    active = [pod for pod in pods if is_active(pod)]
    diff = len(active) - max(desired, 0)
    if diff < 0:
        return ReplicaPlan(create=min(-diff, BURST_REPLICAS))
    if diff > 0:
        ranked = sorted(active, key=deletion_rank)
        return ReplicaPlan(delete=[dict(pod) for pod in ranked[: min(diff, BURST_REPLICAS)]])
    return ReplicaPlan()


def replicaset_status(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime) -> Obj:
    """calculateStatus: counts over active pods; zero counts are omitted as the Go types do."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    active = [pod for pod in pods if is_active(pod)]
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(
            1 for pod in active if labels_match((pod.get("metadata") or {}).get("labels") or {}, template_labels)
        ),
        "readyReplicas": sum(1 for pod in active if is_ready(pod)),
        "availableReplicas": sum(1 for pod in active if is_available(pod, min_ready, now)),
        "observedGeneration": (rs.get("metadata") or {}).get("generation", 0),
    }
    status = {key: value for key, value in status.items() if value or key == "replicas"}
    conditions = (rs.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status


def pending_availability(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime) -> bool:
    """Some pod is ready but not yet available: a timed recheck is needed, no event will come."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    return min_ready > 0 and any(is_ready(p) and not is_available(p, min_ready, now) for p in pods if is_active(p))


async def create_in_batches(client: AsyncClient, pods: Sequence[Obj]) -> tuple[list[str], BaseException | None]:
    """Slow start: batches of 1, 2, 4, ... so a failing create (quota, validation) fails fast and cheaply.

    Returns the names created and the first failure, which stopped the batches.
    """
    created: list[str] = []
    batch = SLOW_START_INITIAL_BATCH
    index = 0
    while index < len(pods):
        chunk = pods[index : index + batch]
        results = await asyncio.gather(*(kube.create_pod(client, pod) for pod in chunk), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        created.extend(r for r in results if isinstance(r, str))
        if failure is not None:
            return created, failure
        index += len(chunk)
        batch *= 2
    return created, None


def replicaset_controller(client: AsyncClient, informers: SharedInformers, *, workers: int = 4) -> Controller:
    rs_informer = informers.get(ReplicaSet)
    expectations = Expectations()

    async def reconcile(key: str) -> Result | None:
        cached = rs_informer.store.get(key)
        if cached is None:
            expectations.forget(key)
            return None
        rs = kube.as_dict(cached)
        meta = rs["metadata"]
        pods = kube.owned(pod_informer.store, rs)
        if expectations.satisfied_by(key, pods) and not is_terminating(rs):
            plan = plan_replicas(int((rs.get("spec") or {}).get("replicas", 1)), pods)
            if plan.create:
                template = (rs.get("spec") or {}).get("template") or {}
                new_pods = [pod_from_template(template, rs) for _ in range(plan.create)]
                created, failure = await create_in_batches(client, new_pods)
                expectations.expect(key, created=created)
                if failure is not None:
                    raise failure
            if plan.delete:
                expectations.expect(key, deleted=[p["metadata"]["uid"] for p in plan.delete])
                await asyncio.gather(
                    *(kube.delete(client, Pod, p["metadata"]["name"], meta["namespace"]) for p in plan.delete)
                )
        now = dt.datetime.now(dt.UTC)
        body = status_patch(rs.get("status") or {}, replicaset_status(rs, pods, now))
        if body is not None:
            await kube.patch(client, ReplicaSet.Status, meta["name"], meta["namespace"], {"status": body})
        return Result(requeue_after=1.0) if pending_availability(rs, pods, now) else None

    controller = Controller("replicaset", client, ReplicaSet, kube.skip_terminating_namespace(reconcile),
                            informers=informers, workers=workers)
    pod_informer = kube.ensure_owner_index(controller.owns(Pod))
    return controller
