"""Pod status a simulated kubelet would report, rendered purely from the pod and a little context.

The shapes follow what the kubelet writes (pkg/kubelet/status/generate.go for conditions,
pkg/kubelet/kubelet_pods.go `generateAPIPodStatus` for container statuses): conditions
PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled; app container statuses sorted
by name, init container statuses in spec order; terminated containers carry exit code, reason and times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

TEMPLATE_READY = "ready"
TEMPLATE_SUCCEEDED = "succeeded"
TEMPLATE_FAILED = "failed"
TEMPLATE_RESTARTED = "restarted"
RUNTIME = "kplane"
CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True)
class StatusContext:
    now: str  # RFC 3339, seconds precision
    host_ip: str
    pod_ip: str | None = None


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _container_id(pod: Obj, name: str, restarts: int = 0) -> str:
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    return f"{RUNTIME}://{_digest(uid, name, str(restarts))}"


def _image_id(image: str) -> str:
    return f"{image}@sha256:{_digest(image)}"


def _conditions(pod: Obj, wanted: Sequence[tuple[str, str, str | None]], now: str) -> list[dict[str, Any]]:
    """Set the named conditions, keeping others (readiness gates, DisruptionTarget) and keeping
    `lastTransitionTime` when a condition's status does not change."""
    existing = list((pod.get("status") or {}).get("conditions") or [])
    by_type = {c.get("type"): c for c in existing}
    rendered: dict[str, dict[str, Any]] = {}
    for kind, status, reason in wanted:
        old = by_type.get(kind) or {}
        condition: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == status else now,
        }
        if reason:
            condition["reason"] = reason
        rendered[kind] = condition
    others = [c for c in existing if c.get("type") not in rendered]
    return [rendered[kind] for kind, _, _ in wanted] + others


def _spec_containers(pod: Obj, field: str) -> list[Obj]:
    return list((pod.get("spec") or {}).get(field) or [])


def _old_statuses(pod: Obj, field: str) -> dict[str, Obj]:
    return {str(s.get("name")): s for s in (pod.get("status") or {}).get(field) or []}


def _running_since(old: Obj, fallback: str) -> str:
    running = (old.get("state") or {}).get("running") or {}
    return str(running.get("startedAt") or fallback)


def _app_statuses(pod: Obj, make: Callable[[Obj, Obj], dict[str, Any]]) -> list[dict[str, Any]]:
    old = _old_statuses(pod, "containerStatuses")
    statuses = [make(c, old.get(str(c.get("name"))) or {}) for c in _spec_containers(pod, "containers")]
    return sorted(statuses, key=lambda s: str(s["name"]))


def _base(container: Obj, pod: Obj, restarts: int) -> dict[str, Any]:
    image = str(container.get("image") or "")
    return {
        "name": container.get("name"),
        "image": image,
        "imageID": _image_id(image),
        "containerID": _container_id(pod, str(container.get("name")), restarts),
        "restartCount": restarts,
    }


def _init_statuses(pod: Obj, ctx: StatusContext) -> list[dict[str, Any]]:
    statuses = []
    for container in _spec_containers(pod, "initContainers"):
        status = _base(container, pod, 0)
        if container.get("restartPolicy") == "Always":  # a sidecar keeps running
            status.update(ready=True, started=True, state={"running": {"startedAt": ctx.now}}, lastState={})
        else:
            terminated = {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": ctx.now,
                "finishedAt": ctx.now,
                "containerID": status["containerID"],
            }
            status.update(ready=True, started=False, state={"terminated": terminated}, lastState={})
        statuses.append(status)
    return statuses


def ready_status(pod: Obj, ctx: StatusContext) -> dict[str, Any]:
    """Pending → Running: every container started and ready, IPs assigned."""
    if not ctx.pod_ip:
        raise ValueError("the ready template needs a pod IP")
    status_now = pod.get("status") or {}

    def running(container: Obj, old: Obj) -> dict[str, Any]:
        restarts = int(old.get("restartCount") or 0)
        status = _base(container, pod, restarts)
        status.update(
            ready=True,
            started=True,
            lastState=old.get("lastState") or {},
            state={"running": {"startedAt": _running_since(old, ctx.now)}},
        )
        return status

    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": _conditions(pod, [(kind, "True", None) for kind in CONDITION_ORDER], ctx.now),
        "hostIP": ctx.host_ip,
        "hostIPs": [{"ip": ctx.host_ip}],
        "podIP": ctx.pod_ip,
        "podIPs": [{"ip": ctx.pod_ip}],
        "startTime": status_now.get("startTime") or ctx.now,
        "containerStatuses": _app_statuses(pod, running),
    }
    if _spec_containers(pod, "initContainers"):
        status["initContainerStatuses"] = _init_statuses(pod, ctx)
    return status


def _finished(pod: Obj, ctx: StatusContext, phase: str, exit_code: int, reason: str) -> dict[str, Any]:
    pod_reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
    finished = [
        ("PodReadyToStartContainers", "False", None),
        ("Initialized", "True", pod_reason),
        ("Ready", "False", pod_reason),
        ("ContainersReady", "False", pod_reason),
        ("PodScheduled", "True", None),
    ]

    def terminated(container: Obj, old: Obj) -> dict[str, Any]:
        restarts = int(old.get("restartCount") or 0)
        status = _base(container, pod, restarts)
        state = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": _running_since(old, ctx.now),
            "finishedAt": ctx.now,
            "containerID": status["containerID"],
        }
        status.update(ready=False, started=False, state={"terminated": state}, lastState=old.get("lastState") or {})
        return status

    return {
        "phase": phase,
        "conditions": _conditions(pod, finished, ctx.now),
        "containerStatuses": _app_statuses(pod, terminated),
    }


def succeeded_status(pod: Obj, ctx: StatusContext) -> dict[str, Any]:
    """Running → Succeeded: every container exited 0."""
    return _finished(pod, ctx, "Succeeded", 0, "Completed")


def failed_status(pod: Obj, ctx: StatusContext) -> dict[str, Any]:
    """Running → Failed: every container exited 1."""
    return _finished(pod, ctx, "Failed", 1, "Error")


def restarted_status(pod: Obj, ctx: StatusContext) -> dict[str, Any]:
    """Every container crashed (exit 1) and was started again: restartCount + 1, lastState terminated."""

    def restarted(container: Obj, old: Obj) -> dict[str, Any]:
        restarts = int(old.get("restartCount") or 0)
        last = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": _running_since(old, ctx.now),
                "finishedAt": ctx.now,
                "containerID": _container_id(pod, str(container.get("name")), restarts),
            }
        }
        status = _base(container, pod, restarts + 1)
        status.update(ready=True, started=True, state={"running": {"startedAt": ctx.now}}, lastState=last)
        return status

    return {"containerStatuses": _app_statuses(pod, restarted)}


STATUS_TEMPLATES: Mapping[str, Callable[[Obj, StatusContext], dict[str, Any]]] = {
    TEMPLATE_READY: ready_status,
    TEMPLATE_SUCCEEDED: succeeded_status,
    TEMPLATE_FAILED: failed_status,
    TEMPLATE_RESTARTED: restarted_status,
}
NEEDS_POD_IP = frozenset({TEMPLATE_READY})


def render_status(
    template: str | None, literal: Mapping[str, Any] | None, pod: Obj, ctx: StatusContext
) -> dict[str, Any]:
    """The status fields a stage sets: its template's output with the stage's literal fields over it."""
    status = STATUS_TEMPLATES[template](pod, ctx) if template is not None else {}
    status.update(literal or {})
    return status
