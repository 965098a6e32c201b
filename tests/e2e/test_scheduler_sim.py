"""The scheduler and the node simulator against a real `kplane up --no-controllers`.

Until `kplane up` runs them itself, both run inside the test process as ordinary API clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Event, Namespace, Node, Pod
from prometheus_client import CollectorRegistry

from kplane.runtime.client import client_from_kubeconfig
from kplane.scheduler import run_scheduler
from kplane.sim import node_configs_from_yaml, run_node_simulator
from tests.e2e.harness import ControlPlane

NODES_YAML = """
apiVersion: v1
kind: Node
metadata: {name: sim-a, labels: {zone: a, disk: ssd}}
status: {capacity: {cpu: "4", memory: 8Gi, pods: "20"}}
---
apiVersion: v1
kind: Node
metadata: {name: sim-b, labels: {zone: b}}
spec: {taints: [{key: dedicated, value: gpu, effect: NoSchedule}]}
status: {capacity: {cpu: "4", memory: 8Gi, pods: "20"}}
---
apiVersion: v1
kind: Node
metadata: {name: sim-c, labels: {zone: c}}
spec: {podCIDR: 10.99.0.0/24}
status: {capacity: {cpu: "2", memory: 4Gi, pods: "20"}}
"""


@dataclass
class Cluster:
    client: AsyncClient
    namespace: str
    registry: CollectorRegistry

    def scheduler_errors(self) -> float:
        """Failed reconciles: a binding that worked but raised would still place pods, so count them."""
        value = self.registry.get_sample_value("controller_runtime_reconcile_errors_total", {"controller": "scheduler"})
        return value or 0.0

    async def pod(self, name: str, **spec: Any) -> Pod:
        meta = spec.pop("metadata", {})
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, **meta},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
        }
        return await self.client.create(Pod.from_dict(body))  # type: ignore[no-any-return]

    async def get(self, name: str) -> Pod:
        return await self.client.get(Pod, name, namespace=self.namespace)

    async def until(self, name: str, check: Callable[[Pod], bool], timeout: float = 30.0) -> Pod:
        async def poll() -> Pod:
            while True:
                pod = await self.get(name)
                if check(pod):
                    return pod
                await asyncio.sleep(0.1)

        return await asyncio.wait_for(poll(), timeout)


def node_of(pod: Pod) -> str | None:
    return pod.spec.nodeName if pod.spec is not None else None


def phase_of(pod: Pod) -> str | None:
    return pod.status.phase if pod.status is not None else None


def condition(pod: Pod, kind: str) -> Any:
    for c in (pod.status.conditions if pod.status is not None else None) or []:
        if c.type == kind:
            return c
    return None


@pytest.fixture
async def cluster(plane: ControlPlane) -> AsyncIterator[Cluster]:
    client = client_from_kubeconfig(plane.kubeconfig)
    namespace = f"sched-{uuid.uuid4().hex[:8]}"
    await client.create(Namespace.from_dict({"metadata": {"name": namespace}}))
    nodes = node_configs_from_yaml(NODES_YAML)
    registry = CollectorRegistry()
    tasks = [
        asyncio.ensure_future(run_scheduler(client, registry=registry)),
        asyncio.ensure_future(run_node_simulator(client, nodes, lease_renew_s=0.5, status_refresh_s=1.0)),
    ]
    try:
        yield Cluster(client, namespace, registry)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await client.aclose()


async def test_pod_runs_and_is_ready_on_a_simulated_node(cluster: Cluster) -> None:
    await cluster.pod("web", nodeSelector={"zone": "c"})
    pod = await cluster.until("web", lambda p: phase_of(p) == "Running")
    assert node_of(pod) == "sim-c"
    assert condition(pod, "Ready").status == "True"
    assert condition(pod, "PodScheduled").status == "True"
    assert ipaddress.ip_address(pod.status.podIP) in ipaddress.ip_network("10.99.0.0/24")
    assert pod.status.hostIP
    [status] = pod.status.containerStatuses
    assert status.ready and status.started and status.state.running.startedAt is not None
    assert cluster.scheduler_errors() == 0


async def test_placement_honours_selector_taints_and_resources(cluster: Cluster) -> None:
    await cluster.pod("ssd", nodeSelector={"disk": "ssd"})
    toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}
    await cluster.pod("tolerant", tolerations=[toleration], affinity=affinity)
    big = [{"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "3"}}}]
    await cluster.pod("big", containers=big)
    assert node_of(await cluster.until("ssd", node_of)) == "sim-a"
    assert node_of(await cluster.until("tolerant", node_of)) == "sim-b"
    assert node_of(await cluster.until("big", node_of)) == "sim-a"

    await cluster.pod("big2", containers=big)
    waiting = await cluster.until("big2", lambda p: condition(p, "PodScheduled") is not None)
    scheduled = condition(waiting, "PodScheduled")
    assert node_of(waiting) is None
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert scheduled.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. preemption: 0/3 nodes "
        "are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    )
    events = [e async for e in cluster.client.list(Event, namespace=cluster.namespace)]
    failed = [e for e in events if e.involvedObject.name == "big2" and e.reason == "FailedScheduling"]
    assert failed and failed[0].type == "Warning" and failed[0].message == scheduled.message

    await cluster.client.delete(Pod, "big", namespace=cluster.namespace)
    moved = await cluster.until("big2", lambda p: node_of(p) is not None)
    assert node_of(moved) == "sim-a"
    assert cluster.scheduler_errors() == 0


async def test_job_pod_and_annotated_pod_complete(cluster: Cluster) -> None:
    job = await cluster.client.create(Job.from_dict({
        "metadata": {"name": "once", "namespace": cluster.namespace},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "app", "image": "busybox:1.36"}]}}},
    }))
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "once", "uid": job.metadata.uid, "controller": True}
    await cluster.pod("once-abcde", restartPolicy="Never", metadata={"ownerReferences": [owner]})
    await cluster.pod("timed", restartPolicy="Never", metadata={"annotations": {"kplane.io/complete-after": "1s"}})
    for name in ("once-abcde", "timed"):
        pod = await cluster.until(name, lambda p: phase_of(p) == "Succeeded")
        [status] = pod.status.containerStatuses
        assert status.state.terminated.exitCode == 0 and status.state.terminated.reason == "Completed"
        assert condition(pod, "Ready").status == "False"


async def test_failed_pod_and_deleted_pod(cluster: Cluster) -> None:
    await cluster.pod("crash", restartPolicy="Never", metadata={"annotations": {"kplane.io/fail-after": "0s"}})
    pod = await cluster.until("crash", lambda p: phase_of(p) == "Failed")
    assert pod.status.containerStatuses[0].state.terminated.exitCode == 1

    await cluster.pod("doomed")
    await cluster.until("doomed", lambda p: phase_of(p) == "Running")
    await cluster.client.delete(Pod, "doomed", namespace=cluster.namespace)

    async def gone() -> None:
        names = {"doomed"}
        while names:
            names = {p.metadata.name async for p in cluster.client.list(Pod, namespace=cluster.namespace)} & names
            await asyncio.sleep(0.1)

    await asyncio.wait_for(gone(), 30)


async def test_nodes_are_ready_and_leases_renewed(cluster: Cluster, plane: ControlPlane) -> None:
    async def node_ready() -> Node:
        while True:
            with contextlib.suppress(Exception):
                node = await cluster.client.get(Node, "sim-b")
                if condition(node, "Ready") is not None:
                    return node
            await asyncio.sleep(0.1)

    node = await asyncio.wait_for(node_ready(), 30)
    assert condition(node, "Ready").status == "True"
    assert condition(node, "MemoryPressure").status == "False"
    assert node.spec.taints[0].key == "dedicated"
    assert node.metadata.labels["kubernetes.io/hostname"] == "sim-b"
    server = plane.kubectl_json("version")["serverVersion"]
    assert node.status.nodeInfo.kubeletVersion.startswith(f"v{server['major']}.{server['minor']}.")
    assert node.status.allocatable["cpu"] == "4"

    first = await cluster.client.get(Lease, "sim-b", namespace="kube-node-lease")
    assert first.spec.holderIdentity == "sim-b" and first.spec.leaseDurationSeconds == 40

    async def renewed() -> None:
        while True:
            lease = await cluster.client.get(Lease, "sim-b", namespace="kube-node-lease")
            if lease.spec.renewTime > first.spec.renewTime:
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(renewed(), 10)
