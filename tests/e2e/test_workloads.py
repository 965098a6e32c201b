"""Workload controllers against a real `kplane up`, driven by kubectl.

The controllers run in the test process (`workload_controllers`). Until `kplane up` runs the scheduler and
the node simulator itself, a small stand-in kubelet here moves pods to Running and Ready after a short
delay (and Job pods on to Succeeded), writing pods/status as a node agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from kplane.controllers.kube import as_dict
from kplane.controllers.podtemplate import is_active, is_ready
from kplane.controllers.workloads import workload_controllers
from kplane.runtime import EventHandler, Informer, SharedInformers, key_of
from kplane.runtime.client import client_from_kubeconfig
from tests.e2e.harness import ControlPlane

READY_DELAY_S = 0.15


@dataclass
class Kubelet:
    """Makes pods Running+Ready after a delay; pods of Jobs then Succeeded. Records what it saw."""

    client: AsyncClient
    informer: Informer
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    ready_order: list[str] = field(default_factory=list)
    listeners: list[Callable[[], None]] = field(default_factory=list)
    tasks: set[asyncio.Future[None]] = field(default_factory=set)

    def handler(self) -> EventHandler:
        def changed(*objs: Any) -> None:
            self.queue.put_nowait(key_of(objs[-1]))
            for listener in self.listeners:
                listener()

        def deleted(_: Any) -> None:
            for listener in self.listeners:
                listener()

        return EventHandler(on_add=changed, on_update=changed, on_delete=deleted)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            loop.call_later(READY_DELAY_S, self.schedule_step, key)

    def schedule_step(self, key: str) -> None:
        self.tasks.add(task := asyncio.ensure_future(self.step(key)))
        task.add_done_callback(self.tasks.discard)

    async def step(self, key: str) -> None:
        cached = self.informer.store.get(key)
        if cached is None:
            return
        pod = as_dict(cached)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        owners = {ref.get("kind") for ref in meta.get("ownerReferences") or []}
        if phase == "Pending":
            status = running_status(pod)
        elif phase == "Running" and "Job" in owners:
            status = {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}]}
        else:
            return
        with contextlib.suppress(Exception):
            await self.client.patch(Pod.Status, meta["name"], {"status": status}, namespace=meta["namespace"],
                                    patch_type=PatchType.MERGE)
            if status["phase"] == "Running":
                self.ready_order.append(meta["name"])


def running_status(pod: dict[str, Any]) -> dict[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        "phase": "Running",
        "podIP": "10.0.0.1",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
        "containerStatuses": [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "restartCount": 0,
             "started": True, "state": {"running": {}}}
            for c in containers
        ],
    }


@dataclass
class Cluster:
    plane: ControlPlane
    client: AsyncClient
    informers: SharedInformers
    kubelet: Kubelet

    async def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        proc = await asyncio.to_thread(self.plane.kubectl, *args, stdin=stdin, timeout=timeout)
        return proc.stdout

    async def apply(self, manifest: str) -> None:
        await self.kubectl("apply", "-f", "-", stdin=textwrap.dedent(manifest))


@pytest.fixture
async def cluster(plane: ControlPlane) -> AsyncIterator[Cluster]:
    client = client_from_kubeconfig(plane.kubeconfig)
    informers = SharedInformers(client)
    pods = informers.get(Pod)
    kubelet = Kubelet(client, pods)
    pods.add_handler(kubelet.handler())
    controllers = workload_controllers(client, informers)
    tasks = [asyncio.ensure_future(c.run()) for c in controllers]
    tasks.append(asyncio.ensure_future(kubelet.run()))
    try:
        yield Cluster(plane, client, informers, kubelet)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def deployment_yaml(image: str) -> str:
    return f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web, namespace: default}}
        spec:
          replicas: 3
          selector: {{matchLabels: {{app: web}}}}
          strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec: {{containers: [{{name: c, image: "{image}"}}]}}
        """


async def test_deployment_becomes_available_and_rolls_out_within_bounds(cluster: Cluster) -> None:
    await cluster.apply(deployment_yaml("nginx:1.0"))
    out = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in out
    deploy = await cluster.kubectl("get", "deployment/web", "-o", "json")
    status = json.loads(deploy)["status"]
    assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 3
    available = next(c for c in status["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"

    rs_informer = cluster.informers.get(ReplicaSet, namespace="default")
    rs_informer.start()
    await rs_informer.wait_synced()
    surge_seen: list[int] = []
    ready_seen: list[int] = []

    def sample() -> None:
        rss = [as_dict(rs) for rs in rs_informer.store.list() if rs.metadata.name.startswith("web-")]
        surge_seen.append(sum(int(rs["spec"].get("replicas", 0)) for rs in rss))
        pods = [as_dict(p) for p in cluster.kubelet.informer.store.list()]
        web = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == "web" and is_active(p)]
        ready_seen.append(sum(1 for p in web if is_ready(p)))

    rs_informer.add_handler(EventHandler(on_update=lambda *_: sample(), on_add=lambda _: sample()))
    cluster.kubelet.listeners.append(sample)
    try:
        await cluster.kubectl("set", "image", "deployment/web", "c=nginx:2.0")
        out = await cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        assert "successfully rolled out" in out
    finally:
        cluster.kubelet.listeners.remove(sample)
        await rs_informer.stop()
    assert max(surge_seen) == 3 + 1, surge_seen  # the surge was used, never exceeded
    assert min(ready_seen) == 3 - 1, ready_seen  # one pod unavailable at a time, never more

    rss = json.loads(await cluster.kubectl("get", "rs", "-l", "app=web", "-o", "json"))["items"]
    by_revision = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs for rs in rss}
    assert set(by_revision) == {"1", "2"}
    assert by_revision["2"]["spec"]["replicas"] == 3 and by_revision["1"]["spec"]["replicas"] == 0
    assert by_revision["2"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"
    new_hash = by_revision["2"]["metadata"]["labels"]["pod-template-hash"]
    assert by_revision["2"]["metadata"]["name"] == f"web-{new_hash}"
    pods = json.loads(await cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert len(pods) == 3
    for pod in pods:
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet", f"web-{new_hash}", True, True)
        assert pod["metadata"]["name"].startswith(f"web-{new_hash}-")


async def test_job_completes(cluster: Cluster) -> None:
    await cluster.apply("""
        apiVersion: batch/v1
        kind: Job
        metadata: {name: pi, namespace: default}
        spec:
          completions: 3
          parallelism: 2
          template:
            spec:
              restartPolicy: Never
              containers: [{name: pi, image: perl}]
        """)
    await cluster.kubectl("wait", "--for=condition=complete", "job/pi", "--timeout=30s")
    job = json.loads(await cluster.kubectl("get", "job/pi", "-o", "json"))
    status = job["status"]
    assert status["succeeded"] == 3 and status.get("active", 0) == 0
    assert status["startTime"] and status["completionTime"]
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"SuccessCriteriaMet": "True", "Complete": "True"}
    pods = json.loads(await cluster.kubectl("get", "pods", "-l", "batch.kubernetes.io/job-name=pi",
                                                          "-o", "json"))["items"]
    assert len(pods) == 3
    assert all(p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"] for p in pods)


async def test_statefulset_comes_up_in_order(cluster: Cluster) -> None:
    await cluster.apply("""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db, namespace: default}
        spec:
          replicas: 3
          serviceName: db
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec: {containers: [{name: db, image: postgres}]}
        """)
    out = await cluster.kubectl("rollout", "status", "statefulset/db", "--timeout=30s")
    assert "roll out complete" in out or "partitioned roll out complete" in out
    started = [name for name in cluster.kubelet.ready_order if name.startswith("db-")]
    assert started == ["db-0", "db-1", "db-2"]
    sts = json.loads(await cluster.kubectl("get", "statefulset/db", "-o", "json"))
    status = sts["status"]
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"]) == (3, 3, 3)
    assert status["currentRevision"] == status["updateRevision"]

    await cluster.kubectl("scale", "statefulset/db", "--replicas=1")
    await asyncio.wait_for(_until(lambda: sorted(
        p.metadata.name for p in cluster.kubelet.informer.store.list() if p.metadata.name.startswith("db-")
    ) == ["db-0"]), 30)


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.05)


async def test_daemonset_runs_one_pod_per_eligible_node(cluster: Cluster) -> None:
    await cluster.apply("""
        apiVersion: v1
        kind: Node
        metadata: {name: ds-worker-1, labels: {role: worker}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: ds-worker-2, labels: {role: worker}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: ds-tainted, labels: {role: worker}}
        spec: {taints: [{key: dedicated, value: db, effect: NoSchedule}]}
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent, namespace: default}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              nodeSelector: {role: worker}
              containers: [{name: agent, image: busybox}]
        """)
    out = await cluster.kubectl("rollout", "status", "daemonset/agent", "--timeout=30s")
    assert "successfully rolled out" in out
    ds = json.loads(await cluster.kubectl("get", "daemonset/agent", "-o", "json"))
    status = ds["status"]
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberReady"],
            status["updatedNumberScheduled"]) == (2, 2, 2, 2)
    pods = json.loads(await cluster.kubectl("get", "pods", "-l", "app=agent", "-o", "json"))["items"]
    pinned = sorted(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0] for p in pods)
    assert pinned == ["ds-worker-1", "ds-worker-2"]
