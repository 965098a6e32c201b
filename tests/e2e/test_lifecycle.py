"""Built-in controllers on `kplane up`: garbage collection, namespace lifecycle, service accounts, services.

Driven with kubectl against a control plane started with its controllers (one simulated node).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import KUBECTL, ControlPlane, start_control_plane

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.lifecycle.example.com}
spec:
  group: lifecycle.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    plane = start_control_plane(tmp_path_factory.mktemp("kplane-lifecycle"), "--nodes", "1")
    try:
        # The CRD goes in first, so every test also covers a resource the collector found through discovery.
        plane.kubectl("apply", "-f", "-", stdin=WIDGET_CRD)
        plane.wait_for(lambda: plane.kubectl("get", "widgets", "-A", check=False).returncode == 0,
                       what="the Widget CRD to be served")
        yield plane
    finally:
        plane.down()


def names(plane: ControlPlane, kind: str, namespace: str) -> set[str]:
    items = plane.kubectl_json("get", kind, "-n", namespace)["items"]
    return {item["metadata"]["name"] for item in items}


def get(plane: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    proc = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def make_namespace(plane: ControlPlane, name: str) -> str:
    plane.kubectl("create", "namespace", name)
    return name


def make_widget(plane: ControlPlane, namespace: str, name: str) -> str:
    body = {"apiVersion": "lifecycle.example.com/v1", "kind": "Widget", "metadata": {"name": name}}
    plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    widget = get(plane, "widget", name, namespace)
    assert widget is not None
    return str(widget["metadata"]["uid"])


def make_dependent(plane: ControlPlane, namespace: str, name: str, owners: list[tuple[str, str]],
                   block: bool = False) -> None:
    refs = [{"apiVersion": "lifecycle.example.com/v1", "kind": "Widget", "name": owner, "uid": uid,
             "blockOwnerDeletion": block} for owner, uid in owners]
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": refs}}
    plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))


def test_default_service_account_and_kubernetes_service(live: ControlPlane) -> None:
    ns = make_namespace(live, "sa-check")
    live.wait_for(lambda: get(live, "serviceaccount", "default", ns), what="default ServiceAccount")
    svc = live.wait_for(lambda: get(live, "service", "kubernetes", "default"), what="kubernetes Service")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443


def test_background_deletion_removes_dependents_of_a_custom_owner(live: ControlPlane) -> None:
    ns = make_namespace(live, "gc-background")
    uid = make_widget(live, ns, "owner")
    other = make_widget(live, ns, "other")
    make_dependent(live, ns, "only-owner", [("owner", uid)])
    make_dependent(live, ns, "two-owners", [("owner", uid), ("other", other)])
    live.kubectl("delete", "widget", "owner", "-n", ns)
    live.wait_for(lambda: "only-owner" not in names(live, "configmaps", ns), what="dependent to be collected")
    survivor = live.wait_for(lambda: (cm := get(live, "configmap", "two-owners", ns)) and
                             len(cm["metadata"]["ownerReferences"]) == 1 and cm, what="dangling reference dropped")
    assert survivor["metadata"]["ownerReferences"][0]["uid"] == other


def test_dangling_reference_to_a_missing_owner_is_collected(live: ControlPlane) -> None:
    ns = make_namespace(live, "gc-dangling")
    make_dependent(live, ns, "stray", [("never-existed", "00000000-0000-0000-0000-000000000000")])
    live.wait_for(lambda: "stray" not in names(live, "configmaps", ns), what="stray dependent to be collected")


def test_foreground_deletion_waits_for_blocking_dependents(live: ControlPlane) -> None:
    ns = make_namespace(live, "gc-foreground")
    uid = make_widget(live, ns, "owner")
    make_dependent(live, ns, "blocker", [("owner", uid)], block=True)
    make_dependent(live, ns, "plain", [("owner", uid)])
    live.kubectl("delete", "widget", "owner", "-n", ns, "--cascade=foreground", "--timeout=60s")
    assert get(live, "widget", "owner", ns) is None
    assert "blocker" not in names(live, "configmaps", ns)
    live.wait_for(lambda: "plain" not in names(live, "configmaps", ns), what="non-blocking dependent deleted")


def test_orphan_deletion_keeps_dependents_without_the_reference(live: ControlPlane) -> None:
    ns = make_namespace(live, "gc-orphan")
    uid = make_widget(live, ns, "owner")
    make_dependent(live, ns, "kept", [("owner", uid)], block=True)
    live.kubectl("delete", "widget", "owner", "-n", ns, "--cascade=orphan", "--timeout=60s")
    assert get(live, "widget", "owner", ns) is None
    kept = get(live, "configmap", "kept", ns)
    assert kept is not None and not kept["metadata"].get("ownerReferences")


def test_deleting_a_deployment_removes_its_replicasets_and_pods(live: ControlPlane) -> None:
    ns = make_namespace(live, "gc-deploy")
    live.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=2")
    live.wait_for(lambda: len(names(live, "pods", ns)) == 2, timeout=60, what="two pods")
    live.kubectl("delete", "deployment", "web", "-n", ns)
    live.wait_for(lambda: not names(live, "replicasets", ns) and not names(live, "pods", ns), timeout=60,
                  what="ReplicaSets and Pods to be collected")


def test_service_gets_cluster_ip_node_port_and_endpoints(live: ControlPlane) -> None:
    ns = make_namespace(live, "svc")
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "NodePort", "selector": {"app": "web"},
                        "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}
    headless = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "peers"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 8080}]}}
    for body in (deployment, service, headless):
        live.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(body))
    svc = live.wait_for(lambda: (s := get(live, "service", "web", ns)) and s["spec"].get("clusterIP") and
                        s["spec"]["ports"][0].get("nodePort") and s, what="ClusterIP and NodePort")
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert svc["spec"]["clusterIP"] != "10.96.0.1"
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    peers = get(live, "service", "peers", ns)
    assert peers is not None and peers["spec"]["clusterIP"] == "None"

    def ready_ips() -> set[str]:
        pods = live.kubectl_json("get", "pods", "-n", ns)["items"]
        return {p["status"]["podIP"] for p in pods if p.get("status", {}).get("podIP") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}

    ips = live.wait_for(lambda: len(ip_set := ready_ips()) == 2 and ip_set, timeout=60, what="two ready pods")

    def endpoint_ips() -> set[str]:
        endpoints = get(live, "endpoints", "web", ns) or {}
        return {a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []}

    live.wait_for(lambda: endpoint_ips() == ips, what="Endpoints listing the ready pods")
    endpoints = get(live, "endpoints", "web", ns)
    assert endpoints is not None
    assert endpoints["subsets"][0]["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert {a["targetRef"]["kind"] for a in endpoints["subsets"][0]["addresses"]} == {"Pod"}
    live.wait_for(lambda: (e := get(live, "endpoints", "peers", ns)) and
                  e["metadata"]["labels"].get("service.kubernetes.io/headless") == "", what="headless Endpoints")


def test_deleting_a_namespace_empties_it_then_removes_it(live: ControlPlane) -> None:
    ns = make_namespace(live, "doomed")
    live.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=a=b")
    make_widget(live, ns, "gadget")
    live.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=1")
    live.wait_for(lambda: names(live, "pods", ns), timeout=60, what="a pod")
    live.kubectl("delete", "namespace", ns, "--timeout=90s", timeout=120)
    assert live.kubectl("get", "namespace", ns, check=False).returncode != 0


def test_controllers_command_rejects_a_missing_kubeconfig(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "kplane", "controllers", "--kubeconfig", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: kubeconfig {tmp_path / 'nope'}: no such file"]
