"""Pure parts of the node simulator: stage parsing and matching, delays, rendered pod status, node config."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kplane.sim import default_stages
from kplane.sim.nodes import (
    default_node_configs,
    heartbeat_conditions,
    lease_object,
    node_configs_from_yaml,
    node_object,
)
from kplane.sim.podagent import PodIPs
from kplane.sim.podstatus import STATUS_TEMPLATES, StatusContext, render_status
from kplane.sim.stages import (
    Delay,
    FinalizerChange,
    Selector,
    Stage,
    load_stages,
    match_stage,
    parse_duration,
    parse_path,
    path_values,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CTX = StatusContext(now="2025-01-02T03:04:05Z", host_ip="172.18.0.2", pod_ip="10.244.0.2")


def pod(phase: str | None = "Pending", **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7", **meta},
        "spec": {"nodeName": "n0", "containers": [{"name": "b", "image": "busybox"}, {"name": "a", "image": "nginx"}]},
        "status": {},
    }
    if phase is not None:
        obj["status"]["phase"] = phase
    return obj


def stage_named(obj: dict[str, Any]) -> str | None:
    found = match_stage(obj, default_stages())
    return found.name if found is not None else None


# --- field paths and selectors ----------------------------------------------------------------------


def test_parse_path_handles_quotes_and_fan_out() -> None:
    assert parse_path('.metadata.annotations["kplane.io/x"]') == ("metadata", "annotations", "kplane.io/x")
    steps = parse_path(".metadata.ownerReferences.[].kind")
    assert path_values({"metadata": {"ownerReferences": [{"kind": "Job"}, {"kind": "X"}, None]}}, steps) == [
        "Job",
        "X",
    ]
    assert path_values({"metadata": {}}, steps) == []
    assert path_values({"status": {"podIP": None}}, parse_path(".status.podIP")) == []


@pytest.mark.parametrize("bad", ["status.phase", ".", ".status..phase", '.a["unterminated]', ".a b"])
def test_parse_path_rejects_malformed_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_path(bad)


def test_selector_matches_labels_annotations_and_expressions() -> None:
    selector = Selector.of({
        "matchLabels": {"app": "web"},
        "matchAnnotations": {"note": "yes"},
        "matchExpressions": [
            {"key": ".status.phase", "operator": "In", "values": ["Running"]},
            {"key": "tier", "operator": "NotIn", "values": ["db"]},
            {"key": ".spec.hostNetwork", "operator": "NotIn", "values": [True]},
        ],
    })
    obj = pod("Running", labels={"app": "web"}, annotations={"note": "yes"})
    assert selector.matches(obj)
    assert not selector.matches({**obj, "status": {"phase": "Pending"}})
    obj["spec"]["hostNetwork"] = True
    assert not selector.matches(obj)
    assert not selector.matches(pod("Running", labels={"app": "web", "tier": "db"}, annotations={"note": "yes"}))
    assert not selector.matches(pod("Running", labels={"app": "web"}))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"matchExpressions": [{"key": ".a", "operator": "Equals", "values": ["x"]}]}, "operator"),
        ({"matchExpressions": [{"key": ".a", "operator": "In"}]}, "needs values"),
        ({"matchExpressions": [{"key": ".a", "operator": "Exists", "values": ["x"]}]}, "takes no values"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "key is required"),
        ({"matchExpressions": {"key": ".a"}}, "must be a list"),
        ({"matchLabels": ["a"]}, "matchLabels"),
        ("app=web", "selector must be an object"),
    ],
)
def test_selector_rejects_bad_input(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Selector.of(raw)


# --- delays -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25), ("2", 2.0), ("1h", 3600)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5 s", "-1", "1d", "s", "nan"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_delay_with_jitter_and_duration_from() -> None:
    fixed = Delay.of({"durationMilliseconds": 1000, "jitterDurationMilliseconds": 3000})
    assert fixed.seconds({}, NOW, lambda: 0.0) == 1.0
    assert fixed.seconds({}, NOW, lambda: 0.5) == 2.0
    source = Delay.of({"durationMilliseconds": 100, "durationFrom": {"expressionFrom": '.metadata.annotations["d"]'}})
    assert source.seconds(pod(annotations={"d": "3s"}), NOW, random.random) == 3.0
    later = (NOW + timedelta(seconds=7)).isoformat().replace("+00:00", "Z")
    assert source.seconds(pod(annotations={"d": later}), NOW, random.random) == 7.0
    earlier = (NOW - timedelta(seconds=7)).isoformat()
    assert source.seconds(pod(annotations={"d": earlier}), NOW, random.random) == 0.0
    # unreadable or missing values fall back to the fixed duration, as kwok does
    assert source.seconds(pod(annotations={"d": "soon"}), NOW, random.random) == 0.1
    assert source.seconds(pod(), NOW, random.random) == 0.1


@pytest.mark.parametrize(
    "raw",
    [
        {"durationMilliseconds": -1},
        {"durationMilliseconds": "5s"},
        {"durationMilliseconds": 100, "jitterDurationMilliseconds": 50},
        {"durationFrom": 5},
        [],
    ],
)
def test_delay_rejects_bad_input(raw: Any) -> None:
    with pytest.raises(ValueError):
        Delay.of(raw)


# --- stage objects ----------------------------------------------------------------------------------


def stage_object(name: str = "s", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"selector": {}, "next": {"delete": True}, **spec}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"spec": {"next": {}}}, "metadata.name"),
        ({"metadata": {"name": "s"}}, "spec is required"),
        (stage_object(next={"statusTemplate": "exploded"}), "stage s: next.statusTemplate"),
        (stage_object(next={"delete": "yes"}), "next.delete"),
        (stage_object(next={"event": {"type": "Info", "reason": "X"}}), "Normal or Warning"),
        (stage_object(next={"event": {"type": "Normal"}}), "reason is required"),
        (stage_object(next={"finalizers": {"add": [""]}}), "finalizers.add"),
        (stage_object(next=None), "next must be an object"),
    ],
)
def test_stage_rejects_bad_objects(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Stage.of(raw, STATUS_TEMPLATES)


def test_load_stages_rejects_duplicate_names() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        load_stages([stage_object("a"), stage_object("a")], STATUS_TEMPLATES)


def test_first_matching_stage_wins() -> None:
    stages = load_stages([stage_object("first"), stage_object("second")], STATUS_TEMPLATES)
    assert match_stage({}, stages) is stages[0]
    assert match_stage({}, []) is None


def test_finalizer_change() -> None:
    assert FinalizerChange(add=("b", "c"), remove=("a",)).apply(["a", "b"]) == ["b", "c"]
    assert FinalizerChange(add=("x",), empty=True).apply(["a", "b"]) == ["x"]


# --- default stages ---------------------------------------------------------------------------------


def test_default_stages_pick_the_next_step() -> None:
    assert stage_named(pod("Pending")) == "pod-ready"
    assert stage_named(pod(None)) == "pod-ready"
    running = pod("Running")
    running["status"]["podIP"] = "10.244.0.2"
    assert stage_named(running) is None
    job = {**running, "metadata": {**running["metadata"], "ownerReferences": [{"kind": "Job", "name": "j"}]}}
    assert stage_named(job) == "pod-complete"
    timed = {**running, "metadata": {**running["metadata"], "annotations": {"kplane.io/complete-after": "5s"}}}
    assert stage_named(timed) == "pod-complete-after"
    failing = {**running, "metadata": {**running["metadata"], "annotations": {"kplane.io/fail-after": "1s"}}}
    assert stage_named(failing) == "pod-fail"
    restarting = {**running, "metadata": {**running["metadata"], "annotations": {"kplane.io/restart-after": "1s"}}}
    assert stage_named(restarting) == "pod-restart"
    deleting = {**job, "metadata": {**job["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z"}}
    assert stage_named(deleting) == "pod-delete"
    done = pod("Succeeded")
    assert stage_named(done) is None


# --- rendered status --------------------------------------------------------------------------------


def test_ready_status() -> None:
    obj = pod("Pending")
    obj["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    obj["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        {"type": "example.com/gate", "status": "False"},
    ]
    status = render_status("ready", None, obj, CTX)
    assert status["phase"] == "Running"
    assert (status["podIP"], status["hostIP"]) == ("10.244.0.2", "172.18.0.2")
    assert status["podIPs"] == [{"ip": "10.244.0.2"}]
    types = [c["type"] for c in status["conditions"]]
    assert types == ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled",
                     "example.com/gate"]
    scheduled = status["conditions"][4]
    assert scheduled["lastTransitionTime"] == "2020-01-01T00:00:00Z"  # unchanged status keeps its time
    assert status["conditions"][2]["lastTransitionTime"] == CTX.now
    names = [c["name"] for c in status["containerStatuses"]]
    assert names == ["a", "b"]
    first = status["containerStatuses"][0]
    assert first["ready"] and first["started"] and first["state"] == {"running": {"startedAt": CTX.now}}
    assert first["containerID"].startswith("kplane://")
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_ready_needs_a_pod_ip() -> None:
    with pytest.raises(ValueError, match="pod IP"):
        render_status("ready", None, pod(), StatusContext(now=CTX.now, host_ip="h"))


def test_finished_and_restarted_status() -> None:
    running = render_status("ready", None, pod(), CTX)
    obj = {**pod("Running"), "status": running}
    done = render_status("succeeded", None, obj, StatusContext(now="2025-01-02T03:05:00Z", host_ip="h"))
    assert done["phase"] == "Succeeded"
    terminated = done["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {**terminated, "exitCode": 0, "reason": "Completed", "startedAt": CTX.now,
                          "finishedAt": "2025-01-02T03:05:00Z"}
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    failed = render_status("failed", {"reason": "Evicted"}, obj, CTX)
    assert failed["phase"] == "Failed" and failed["reason"] == "Evicted"
    assert failed["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    restarted = render_status("restarted", None, obj, StatusContext(now="2025-01-02T03:06:00Z", host_ip="h"))
    again = render_status("restarted", None, {**obj, "status": restarted}, CTX)
    assert [s["restartCount"] for s in again["containerStatuses"]] == [2, 2]
    assert again["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    assert "phase" not in restarted


def test_literal_status_without_template() -> None:
    assert render_status(None, {"phase": "Unknown"}, pod(), CTX) == {"phase": "Unknown"}


def test_pod_ips_come_from_the_node_cidr_and_are_reused() -> None:
    ips = PodIPs("10.0.0.0/30")
    assert ips.allocate("a") == "10.0.0.2"
    with pytest.raises(RuntimeError, match="exhausted"):
        ips.allocate("b")
    ips.release("a")
    assert ips.allocate("b") == "10.0.0.2"
    ips = PodIPs("10.0.1.0/24")
    ips.take("old", "10.0.1.2")
    assert ips.allocate("new") == "10.0.1.3"


# --- node config ------------------------------------------------------------------------------------


def test_default_nodes_and_their_objects() -> None:
    configs = default_node_configs(2)
    assert [c.name for c in configs] == ["kplane-node-0", "kplane-node-1"]
    assert configs[1].cidr == "10.244.1.0/24" and configs[1].internal_ip == "172.18.0.3"
    obj = node_object(configs[0], "v1.36.0", "2025-01-02T03:04:05Z")
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == "kplane-node-0"
    assert obj["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert obj["status"]["allocatable"] == {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    assert obj["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.0"
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert obj["spec"]["podCIDR"] == "10.244.0.0/24" and "taints" not in obj["spec"]
    lease = lease_object(configs[0], "uid-1", "2025-01-02T03:04:05.000000Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    beat = heartbeat_conditions(obj["status"]["conditions"], "2025-01-02T03:05:00Z")
    assert all(c["lastHeartbeatTime"] == "2025-01-02T03:05:00Z" for c in beat)
    assert all(c["lastTransitionTime"] == "2025-01-02T03:04:05Z" for c in beat)
    with pytest.raises(ValueError):
        default_node_configs(-1)


def test_nodes_yaml() -> None:
    configs = node_configs_from_yaml("""
apiVersion: v1
kind: List
items:
- metadata: {name: gpu-0, labels: {accel: h100}}
  spec: {taints: [{key: gpu, value: "true", effect: NoSchedule}], podCIDR: 10.9.0.0/24}
  status:
    capacity: {cpu: 64, memory: 512Gi, pods: 110, nvidia.com/gpu: 8}
    allocatable: {cpu: 63}
    addresses: [{type: InternalIP, address: 192.168.1.5}]
---
kind: Node
metadata: {name: plain}
""")
    gpu, plain = configs
    obj = node_object(gpu, "v1.36.0", "t")
    assert obj["status"]["allocatable"] == {"cpu": "63", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    assert obj["metadata"]["labels"]["accel"] == "h100"
    assert obj["spec"]["taints"] == [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]
    assert gpu.cidr == "10.9.0.0/24" and gpu.internal_ip == "192.168.1.5"
    assert plain.capacity["cpu"] == "32" and plain.index == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata: {name: Bad_Name}", "DNS subdomain"),
        ("kind: Pod\nmetadata: {name: a}", "kind must be Node"),
        ("metadata: {name: a}\nspec: {taints: [{key: k, effect: Sometimes}]}", "effect"),
        ("metadata: {name: a}\nspec: {taints: [{effect: NoSchedule}]}", "key is required"),
        ("metadata: {name: a}\nspec: {podCIDR: 10.0.0.0/33}", "podCIDR"),
        ("metadata: {name: a}\nmetadata: [", "not valid YAML"),
        ("metadata: {name: a}\n---\nmetadata: {name: a}", "defined twice"),
        ("- a", "expected an object"),
        ("metadata: {name: a, labels: [x]}", "metadata.labels"),
    ],
)
def test_nodes_yaml_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        node_configs_from_yaml(text)
