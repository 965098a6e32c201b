"""ReplicaSet planning (create/delete counts and victims) and status, plus slow-start creation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from kplane.controllers import replicaset
from kplane.controllers.replicaset import (
    BURST_REPLICAS,
    create_in_batches,
    pending_availability,
    plan_replicas,
    replicaset_status,
)

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def pod(name: str, *, phase: str = "Running", ready: bool = True, labels: dict[str, str] | None = None,
        node: str | None = "n1", deleting: bool = False, since: str = "2024-12-31T23:59:59Z") -> Any:
    meta: dict[str, Any] = {"name": name, "labels": labels if labels is not None else {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}]}}


def rs(replicas: int = 3, min_ready: int = 0) -> Any:
    return {"metadata": {"name": "web-x", "namespace": "d", "uid": "u", "generation": 4},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}}}


def test_plan_creates_the_missing_active_pods() -> None:
    pods = [pod("a"), pod("done", phase="Succeeded"), pod("going", deleting=True)]
    assert plan_replicas(3, pods).create == 2
    assert plan_replicas(3, pods).delete == []
    assert plan_replicas(1, [pod("a")]).create == 0
    assert plan_replicas(BURST_REPLICAS + 10, []).create == BURST_REPLICAS
    assert plan_replicas(-1, [pod("a")]).delete[0]["metadata"]["name"] == "a"


def test_plan_deletes_surplus_not_ready_and_unscheduled_first() -> None:
    pods = [pod("ready1"), pod("unscheduled", phase="Pending", ready=False, node=None), pod("ready2"),
            pod("not-ready", ready=False)]
    plan = plan_replicas(2, pods)
    assert plan.create == 0
    assert [p["metadata"]["name"] for p in plan.delete] == ["unscheduled", "not-ready"]


def test_status_counts_active_pods() -> None:
    pods = [pod("a", labels={"app": "web", "tier": "fe"}), pod("b"), pod("c", ready=False),
            pod("d", phase="Failed"), pod("e", deleting=True)]
    status = replicaset_status(rs(), pods, NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
                      "observedGeneration": 4}
    assert replicaset_status(rs(), [], NOW) == {"replicas": 0, "observedGeneration": 4}


def test_min_ready_seconds_delays_availability_and_asks_for_a_recheck() -> None:
    pods = [pod("a", since="2024-12-31T23:59:58Z")]
    status = replicaset_status(rs(min_ready=10), pods, NOW)
    assert status["readyReplicas"] == 1 and "availableReplicas" not in status
    assert pending_availability(rs(min_ready=10), pods, NOW)
    assert not pending_availability(rs(), pods, NOW)


async def test_slow_start_stops_at_the_first_failing_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def fake_create(_client: Any, body: Any) -> str:
        calls.append(body["metadata"]["generateName"])
        if len(calls) == 3:
            raise ApiError(status=Status(code=403, message="exceeded quota"))
        return f"p{len(calls)}"

    monkeypatch.setattr(replicaset.kube, "create_pod", fake_create)
    pods = [{"metadata": {"generateName": f"g{i}-"}} for i in range(10)]
    created, failure = await create_in_batches(None, pods)  # type: ignore[arg-type]
    assert len(calls) == 3  # batch 1, then batch 2 (which failed): nothing more
    assert created == ["p1", "p2"]
    assert isinstance(failure, ApiError)
    calls.clear()
    created, failure = await create_in_batches(None, pods[:7])  # type: ignore[arg-type]
    assert failure is not None and created == ["p1", "p2"]
