"""Job controller: run pods until `completions` succeed, at most `parallelism` at a time, or give up.

As kube-controller-manager's `pkg/controller/job/job_controller.go` (syncJob, manageJob, the backoff limit
and active deadline checks, the terminal conditions). Since 1.31 the controller first adds the interim
condition (SuccessCriteriaMet or FailureTarget) and the terminal one (Complete or Failed) only once no
pod is active. Pods carry `batch.kubernetes.io/controller-uid` and `batch.kubernetes.io/job-name` (and
the legacy unprefixed labels), as the API server puts them on a Job's template.
Counts of finished pods are read from the pods themselves; the pod-tracking finalizer is not used.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from kplane.controllers import kube
from kplane.controllers.expectations import Expectations
from kplane.controllers.podtemplate import (
    Obj,
    deletion_rank,
    format_time,
    is_active,
    is_ready,
    is_terminating,
    parse_time,
    phase,
    pod_from_template,
    set_condition,
    status_patch,
)
from kplane.runtime import Controller, Result, SharedInformers

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


@dataclass
class JobPlan:
    create: int = 0
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def job_labels(job: Mapping[str, Any]) -> dict[str, str]:
    meta = job["metadata"]
    return {
        CONTROLLER_UID: meta["uid"],
        JOB_NAME: meta["name"],
        LEGACY_CONTROLLER_UID: meta["uid"],
        LEGACY_JOB_NAME: meta["name"],
    }


def job_pod(job: Mapping[str, Any]) -> Obj:
    return pod_from_template((job.get("spec") or {}).get("template") or {}, job, extra_labels=job_labels(job))


def _true(conditions: Sequence[Mapping[str, Any]], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def is_finished(job: Mapping[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return _true(conditions, "Complete") or _true(conditions, "Failed")


def _condition(kind: str, reason: tuple[str, str], now: str) -> Obj:
    return {"type": kind, "status": "True", "lastProbeTime": now, "reason": reason[0], "message": reason[1]}


def plan_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: dt.datetime) -> JobPlan:
    """One sync of a Job: the pods to start or stop, and the status to write."""
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    stamp = format_time(now)
    active = [p for p in pods if is_active(p)]
    succeeded = max(int(old.get("succeeded") or 0), sum(1 for p in pods if phase(p) == "Succeeded"))
    failed = max(int(old.get("failed") or 0), sum(1 for p in pods if phase(p) == "Failed"))
    conditions: list[Obj] = [dict(c) for c in old.get("conditions") or []]
    plan = JobPlan()
    start = old.get("startTime") or (None if spec.get("suspend") else stamp)
    completions = spec.get("completions")
    parallelism = int(spec["parallelism"]) if spec.get("parallelism") is not None else 1

    ending = _ending(spec, old, conditions, succeeded, failed, len(active), start, now)
    if ending is not None:
        interim, final, reason = ending
        if not _true(conditions, interim) and not _true(conditions, final):
            conditions = set_condition(conditions, _condition(interim, reason, stamp), stamp)
        plan.delete = [dict(p) for p in active]
        if not active and not _true(conditions, final):
            conditions = set_condition(conditions, _condition(final, reason, stamp), stamp)
    elif spec.get("suspend"):
        plan.delete = [dict(p) for p in active]
    else:
        if completions is None:
            want = 0 if succeeded else parallelism
        else:
            want = min(parallelism, max(0, int(completions) - succeeded))
        if len(active) < want:
            plan.create = want - len(active)
        elif len(active) > want and completions is not None:
            plan.delete = [dict(p) for p in sorted(active, key=deletion_rank)[: len(active) - want]]

    status: Obj = {
        "active": len(active),
        "succeeded": succeeded,
        "failed": failed,
        "ready": sum(1 for p in active if is_ready(p)),
        "terminating": sum(1 for p in pods if is_terminating(p) and phase(p) not in ("Succeeded", "Failed")),
        "uncountedTerminatedPods": {},
    }
    status = {k: v for k, v in status.items() if v or k in ("ready", "terminating", "uncountedTerminatedPods")}
    if start:
        status["startTime"] = start
    if _true(conditions, "Complete"):
        status["completionTime"] = old.get("completionTime") or stamp
    if conditions:
        status["conditions"] = conditions
    plan.status = status
    return plan


def _ending(
    spec: Mapping[str, Any],
    old: Mapping[str, Any],
    conditions: Sequence[Mapping[str, Any]],
    succeeded: int,
    failed: int,
    active: int,
    start: str | None,
    now: dt.datetime,
) -> tuple[str, str, tuple[str, str]] | None:
    """(interim condition, terminal condition, reason) once the Job has succeeded or failed, else None."""
    for condition in conditions:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("SuccessCriteriaMet", "Complete"):
            return ("SuccessCriteriaMet", "Complete", (condition.get("reason", ""), condition.get("message", "")))
        if condition.get("type") in ("FailureTarget", "Failed"):
            return ("FailureTarget", "Failed", (condition.get("reason", ""), condition.get("message", "")))
    backoff_limit = spec.get("backoffLimit")
    if failed > (int(backoff_limit) if backoff_limit is not None else 6):
        return ("FailureTarget", "Failed", BACKOFF_LIMIT_EXCEEDED)
    deadline = spec.get("activeDeadlineSeconds")
    started = parse_time(start)
    if deadline is not None and started is not None and started + dt.timedelta(seconds=int(deadline)) <= now:
        return ("FailureTarget", "Failed", DEADLINE_EXCEEDED)
    completions = spec.get("completions")
    done = succeeded >= int(completions) if completions is not None else succeeded > 0 and active == 0
    if done:
        return ("SuccessCriteriaMet", "Complete", COMPLETIONS_REACHED)
    return None


def job_controller(client: AsyncClient, informers: SharedInformers, *, workers: int = 2) -> Controller:
    job_informer = informers.get(Job)
    expectations = Expectations()

    async def reconcile(key: str) -> Result | None:
        cached = job_informer.store.get(key)
        if cached is None:
            expectations.forget(key)
            return None
        job = kube.as_dict(cached)
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        pods = kube.owned(pod_informer.store, job)
        if not expectations.satisfied_by(key, pods):
            return None
        now = dt.datetime.now(dt.UTC)
        plan = plan_job(job, pods, now)
        if plan.delete:
            expectations.expect(key, deleted=[p["metadata"]["uid"] for p in plan.delete])
            await asyncio.gather(
                *(kube.delete(client, Pod, p["metadata"]["name"], meta["namespace"]) for p in plan.delete)
            )
        if plan.create:
            created = await asyncio.gather(*(kube.create_pod(client, job_pod(job)) for _ in range(plan.create)))
            expectations.expect(key, created=[name for name in created if name])
        body = status_patch(job.get("status") or {}, plan.status)
        if body is not None:
            await kube.patch(client, Job.Status, meta["name"], meta["namespace"], {"status": body})
        return _deadline_recheck(job, plan.status, now)

    controller = Controller("job", client, Job, kube.skip_terminating_namespace(reconcile),
                            informers=informers, workers=workers)
    pod_informer = kube.ensure_owner_index(controller.owns(Pod))
    return controller


def _deadline_recheck(job: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime) -> Result | None:
    """activeDeadlineSeconds passes without any event: come back when it does."""
    deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
    started = parse_time(status.get("startTime"))
    if deadline is None or started is None or is_finished({"status": status}):
        return None
    remaining = (started + dt.timedelta(seconds=int(deadline)) - now).total_seconds()
    return Result(requeue_after=max(remaining, 0.1))
