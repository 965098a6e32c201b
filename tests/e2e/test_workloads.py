"""Workloads on a real `kplane up --nodes 3`: its own controllers, scheduler and simulated nodes, driven by kubectl.

The test process only watches (pods and ReplicaSets, through the controller runtime's informers) to check
what must hold while a rollout or a StatefulSet start-up is under way; everything that acts is `kplane up`.
One of the three nodes is tainted (through `nodes.yaml`), so the DaemonSet case has a node to leave out.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Pod

from kplane.runtime import EventHandler, Informer
from kplane.runtime.client import client_from_kubeconfig
from tests.e2e.harness import KUBECTL, ControlPlane, start_control_plane

NODES = ("kplane-node-0", "kplane-node-1", "kplane-node-2")
TAINTED = NODES[2]
NODES_YAML = "\n---\n".join(
    [f"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}" for name in NODES[:2]]
    + [f"apiVersion: v1\nkind: Node\nmetadata: {{name: {TAINTED}}}\n"
       "spec: {taints: [{key: dedicated, value: db, effect: NoSchedule}]}"]
)
WAIT = "--timeout=60s"  # the machine may be loaded: generous, and never a measure of speed
KUBECTL_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    base = tmp_path_factory.mktemp("kplane-workloads")
    (base / "data").mkdir()
    (base / "data" / "nodes.yaml").write_text(NODES_YAML)
    plane = start_control_plane(base, "--nodes", "3")
    try:
        plane.wait_for(lambda: ready_nodes(plane) == set(NODES), timeout=60, what="three Ready nodes")
        yield plane
    finally:
        plane.down()


def ready_nodes(plane: ControlPlane) -> set[str]:
    """Nodes whose Ready condition is True (a node is registered first, its status posted next)."""
    return {n["metadata"]["name"] for n in plane.kubectl_json("get", "nodes")["items"] if is_ready(n)}


@pytest.fixture(scope="module", autouse=True)
def no_tracebacks(live: ControlPlane) -> Iterator[None]:
    """Everything these workloads do is routine: the controllers must not log a traceback for any of it."""
    yield
    log = live.data_dir / "controllers.log"
    text = log.read_text() if log.exists() else ""
    assert "Traceback" not in text, text[text.index("Traceback") - 2000:][:6000]


def as_dict(obj: Any) -> dict[str, Any]:
    return dict(obj) if isinstance(obj, Mapping) else obj.to_dict()


def is_ready(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_active(pod: Mapping[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")


@dataclass
class Watch:
    """An informer in the test process whose events are offered, in watch order, to `listeners`."""

    informer: Informer
    listeners: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)

    def handler(self) -> EventHandler:
        def tell(kind: str, obj: Any) -> None:
            for listener in self.listeners:
                listener(kind, as_dict(obj))

        return EventHandler(on_add=lambda obj: tell("ADDED", obj), on_update=lambda _, obj: tell("MODIFIED", obj),
                            on_delete=lambda obj: tell("DELETED", obj))

    def objects(self) -> list[dict[str, Any]]:
        return [as_dict(obj) for obj in self.informer.store.list()]


@dataclass
class Cluster:
    plane: ControlPlane
    pods: Watch
    replicasets: Watch

    async def kubectl(self, *args: str, stdin: str | None = None) -> str:
        proc = await asyncio.to_thread(self.plane.kubectl, *args, stdin=stdin, timeout=KUBECTL_TIMEOUT)
        return proc.stdout

    async def json(self, *args: str) -> Any:
        return json.loads(await self.kubectl(*args, "-o", "json"))

    async def apply(self, manifest: str, namespace: str = "default") -> None:
        await self.kubectl("apply", "-n", namespace, "-f", "-", stdin=textwrap.dedent(manifest))

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = 60) -> None:
        await asyncio.to_thread(self.plane.wait_for, predicate, timeout, 0.2, what)


@pytest.fixture
async def cluster(live: ControlPlane) -> AsyncIterator[Cluster]:
    client: AsyncClient = client_from_kubeconfig(live.kubeconfig)
    watches = [Watch(Informer(client, Pod, namespace="default")),
               Watch(Informer(client, ReplicaSet, namespace="default"))]
    for watch in watches:
        watch.informer.add_handler(watch.handler())
        watch.informer.start()
    try:
        for watch in watches:
            await asyncio.wait_for(watch.informer.wait_synced(), 60)
        yield Cluster(live, *watches)
    finally:
        for watch in watches:
            await watch.informer.stop()
        await client.close()


def deployment_yaml(name: str, image: str) -> str:
    return f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: 3
          selector: {{matchLabels: {{app: {name}}}}}
          strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec: {{containers: [{{name: c, image: "{image}"}}]}}
        """


def labelled(objects: list[dict[str, Any]], app: str) -> list[dict[str, Any]]:
    return [o for o in objects if (o["metadata"].get("labels") or {}).get("app") == app]


async def test_deployment_becomes_available_and_rolls_out_within_bounds(cluster: Cluster) -> None:
    await cluster.apply(deployment_yaml("web", "nginx:1.0"))
    out = await cluster.kubectl("rollout", "status", "deployment/web", WAIT)
    assert 'deployment "web" successfully rolled out' in out
    status = (await cluster.json("get", "deployment/web"))["status"]
    assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 3
    available = next(c for c in status["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    pods = (await cluster.json("get", "pods", "-l", "app=web"))["items"]
    assert len(pods) == 3 and all(p["spec"]["nodeName"] in NODES and is_ready(p) for p in pods)

    # Each cache is one watch stream applied in order, so every sample is a state the cluster really had.
    replicas_seen: list[int] = []
    ready_seen: list[int] = []

    def sample_replicasets(_kind: str, _obj: dict[str, Any]) -> None:
        replicas_seen.append(sum(int(rs["spec"].get("replicas", 0))
                                 for rs in labelled(cluster.replicasets.objects(), "web")))

    def sample_pods(_kind: str, _obj: dict[str, Any]) -> None:
        ready_seen.append(sum(1 for p in labelled(cluster.pods.objects(), "web") if is_active(p) and is_ready(p)))

    cluster.replicasets.listeners.append(sample_replicasets)
    cluster.pods.listeners.append(sample_pods)
    await cluster.kubectl("set", "image", "deployment/web", "c=nginx:2.0")
    out = await cluster.kubectl("rollout", "status", "deployment/web", WAIT)
    assert "successfully rolled out" in out
    assert replicas_seen and ready_seen
    assert max(replicas_seen) == 3 + 1, replicas_seen  # maxSurge 1: the surge was used, never exceeded
    assert min(ready_seen) >= 3 - 1, ready_seen  # maxUnavailable: 1

    rss = (await cluster.json("get", "rs", "-l", "app=web"))["items"]
    by_revision = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs for rs in rss}
    assert set(by_revision) == {"1", "2"}
    assert by_revision["2"]["spec"]["replicas"] == 3 and by_revision["1"]["spec"]["replicas"] == 0
    assert by_revision["2"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"
    new_hash = by_revision["2"]["metadata"]["labels"]["pod-template-hash"]
    assert by_revision["2"]["metadata"]["name"] == f"web-{new_hash}"
    await cluster.until(lambda: len(labelled(cluster.pods.objects(), "web")) == 3, "old pods to go")
    pods = (await cluster.json("get", "pods", "-l", "app=web"))["items"]
    assert len(pods) == 3
    for pod in pods:
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet", f"web-{new_hash}", True, True)
        assert pod["metadata"]["name"].startswith(f"web-{new_hash}-")
        assert pod["spec"]["containers"][0]["image"] == "nginx:2.0" and is_ready(pod)


async def test_job_completes(cluster: Cluster) -> None:
    await cluster.apply("""
        apiVersion: batch/v1
        kind: Job
        metadata: {name: pi}
        spec:
          completions: 3
          parallelism: 2
          template:
            spec:
              restartPolicy: Never
              containers: [{name: pi, image: perl}]
        """)
    await cluster.kubectl("wait", "--for=condition=complete", "job/pi", WAIT)
    job = await cluster.json("get", "job/pi")
    status = job["status"]
    assert status["succeeded"] == 3 and status.get("active", 0) == 0
    assert status["startTime"] and status["completionTime"]
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"SuccessCriteriaMet": "True", "Complete": "True"}
    pods = (await cluster.json("get", "pods", "-l", "batch.kubernetes.io/job-name=pi"))["items"]
    assert len(pods) == 3
    assert all(p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"] for p in pods)
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)


async def test_statefulset_comes_up_in_order(cluster: Cluster) -> None:
    created_while: dict[str, set[str]] = {}  # pod → the db pods that were Ready when it first appeared
    ready: set[str] = set()

    def record(kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if not name.startswith("db-"):
            return
        if kind == "ADDED":
            created_while.setdefault(name, set(ready))
        if kind != "DELETED" and is_active(pod) and is_ready(pod):
            ready.add(name)
        else:
            ready.discard(name)

    cluster.pods.listeners.append(record)
    await cluster.apply("""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db}
        spec:
          replicas: 3
          serviceName: db
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec: {containers: [{name: db, image: postgres}]}
        """)
    out = await cluster.kubectl("rollout", "status", "statefulset/db", WAIT)
    assert "roll out complete" in out
    assert created_while == {"db-0": set(), "db-1": {"db-0"}, "db-2": {"db-0", "db-1"}}, created_while
    status = (await cluster.json("get", "statefulset/db"))["status"]
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"]) == (3, 3, 3)
    assert status["currentRevision"] == status["updateRevision"]

    await cluster.kubectl("scale", "statefulset/db", "--replicas=1")
    await cluster.until(lambda: sorted(p["metadata"]["name"] for p in labelled(cluster.pods.objects(), "db"))
                        == ["db-0"], "the StatefulSet to scale down to db-0")


async def test_daemonset_runs_one_pod_per_eligible_node(cluster: Cluster) -> None:
    await cluster.apply("""
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec: {containers: [{name: agent, image: busybox}]}
        """)
    out = await cluster.kubectl("rollout", "status", "daemonset/agent", WAIT)
    assert "successfully rolled out" in out
    status = (await cluster.json("get", "daemonset/agent"))["status"]
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberReady"],
            status["updatedNumberScheduled"]) == (2, 2, 2, 2)
    pods = (await cluster.json("get", "pods", "-l", "app=agent"))["items"]
    pinned = sorted(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0] for p in pods)
    assert pinned == sorted(set(NODES) - {TAINTED})
    assert sorted(p["spec"]["nodeName"] for p in pods) == pinned
    assert all(is_ready(p) for p in pods)


async def test_deleting_a_deployment_removes_its_replicasets_and_pods(cluster: Cluster) -> None:
    await cluster.apply(deployment_yaml("gone", "nginx:1.0"))
    await cluster.kubectl("rollout", "status", "deployment/gone", WAIT)
    assert len(labelled(cluster.replicasets.objects(), "gone")) == 1
    assert len(labelled(cluster.pods.objects(), "gone")) == 3
    await cluster.kubectl("delete", "deployment", "gone", WAIT)
    await cluster.until(lambda: not labelled(cluster.replicasets.objects(), "gone")
                        and not labelled(cluster.pods.objects(), "gone"), "the ReplicaSet and its Pods to go")
    left = await cluster.json("get", "rs,pods", "-l", "app=gone")
    assert left["items"] == []


async def test_deleting_a_namespace_empties_it(cluster: Cluster) -> None:
    await cluster.kubectl("create", "namespace", "doomed")
    await cluster.apply(deployment_yaml("app", "nginx:1.0"), namespace="doomed")
    await cluster.apply("""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db}
        spec:
          replicas: 2
          serviceName: db
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec: {containers: [{name: db, image: postgres}]}
        """, namespace="doomed")
    await cluster.kubectl("rollout", "status", "-n", "doomed", "deployment/app", WAIT)
    await cluster.kubectl("rollout", "status", "-n", "doomed", "statefulset/db", WAIT)
    await cluster.kubectl("delete", "namespace", "doomed", "--timeout=90s")
    proc = await asyncio.to_thread(cluster.plane.kubectl, "get", "namespace", "doomed", check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr
    for kind in ("pods", "replicasets", "deployments", "statefulsets", "serviceaccounts"):
        listed = await cluster.json("get", kind, "-n", "doomed")
        assert listed["items"] == [], kind


def test_nodes_file_in_data_dir_is_used(live: ControlPlane) -> None:
    taints = {n["metadata"]["name"]: n["spec"].get("taints") for n in live.kubectl_json("get", "nodes")["items"]}
    assert taints == {NODES[0]: None, NODES[1]: None,
                      TAINTED: [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}
