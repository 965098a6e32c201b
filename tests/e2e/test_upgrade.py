"""`kplane upgrade` end to end on a real `kplane up`.

The full cycle: a 1.35 control plane holding a CRD, custom resources, Deployments and Secrets is planned,
taken through step 1 (1.36 binary emulating 1.35), written to during the soak, rolled back to the 1.35 binary
(every object, including those written during the soak, still intact), upgraded again through step 3, after
which rollback is refused. And `plan` on a 1.31 cluster finds objects written through an API that 1.32
removes (flowcontrol v1beta3, served again by emulation rules at 1.31), the same in manifests, and skewed kubelets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import KUBECTL, ControlPlane, start_control_plane

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
"""

FLOWSCHEMA = """
apiVersion: flowcontrol.apiserver.k8s.io/v1beta3
kind: FlowSchema
metadata: {name: legacy-clients}
spec:
  priorityLevelConfiguration: {name: global-default}
  matchingPrecedence: 5000
"""


def _widget(name: str, size: int) -> str:
    return (f"apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{size: {size}, color: blue}}\n")


def _deployment(name: str, replicas: int) -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {{containers: [{{name: c, image: 'nginx:1.27'}}]}}\n")


def _upgrade(plane: ControlPlane, *args: str, code: int = 0) -> dict[str, Any]:
    proc = plane.kplane("upgrade", *args, "-o", "json", check=False, timeout=240)
    assert proc.returncode == code, f"exit {proc.returncode}:\n{proc.stderr}\n{proc.stdout[-3000:]}"
    return dict(json.loads(proc.stdout))


def _version(plane: ControlPlane) -> tuple[str, str, str]:
    info = json.loads(plane.kubectl("get", "--raw", "/version").stdout)
    return info["minor"], info["emulationMinor"], info["minCompatibilityMinor"]


def _snapshot(plane: ControlPlane) -> dict[str, Any]:
    """What must survive: identity, content and labels of every object of the kinds under test."""
    out: dict[str, Any] = {}
    for resource in ("widgets.example.com", "deployments.apps", "secrets", "configmaps",
                     "customresourcedefinitions.apiextensions.k8s.io"):
        for item in plane.kubectl_json("get", resource, "-A")["items"]:
            meta = item["metadata"]
            key = f"{resource}/{meta.get('namespace', '')}/{meta['name']}"
            if key.endswith("/kplane-upgrade-probe"):
                continue  # the soak checks' own marker
            out[key] = {"uid": meta["uid"], "labels": meta.get("labels"), "spec": item.get("spec"),
                        "data": item.get("data")}
    return out


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Any:
    control_plane = start_control_plane(tmp_path_factory.mktemp("upgrade"), "--kube-version", "1.35",
                                        "--nodes", "1")
    yield control_plane
    control_plane.down()


def test_full_cycle_with_rollback_during_soak(plane: ControlPlane) -> None:
    plane.kubectl("apply", "-f", "-", stdin=CRD)
    plane.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    plane.kubectl("apply", "-f", "-", stdin="---\n".join([_widget("w1", 1), _widget("w2", 2),
                                                             _deployment("web", 2), _deployment("api", 1)]))
    for n in range(3):
        plane.kubectl("create", "secret", "generic", f"s{n}", f"--from-literal=key=value-{n}")
    plane.kubectl("create", "configmap", "settings", "--from-literal=mode=old")

    plan = _upgrade(plane, "plan", "--to", "1.36", "--kubeconfig", str(plane.kubeconfig))
    assert plan["ok"] and plan["current"]["binary"] == "1.35"
    assert [s["name"] for s in plan["steps"]] == ["step1", "step2", "step3", "step4"]

    step1 = _upgrade(plane, "apply", "--to", "1.36", "--data-dir", str(plane.data_dir), "--through", "step1")
    assert step1["status"] == "done", step1
    assert [s["step"] for s in step1["steps"]] == ["step1"]
    assert {c["name"] for c in step1["steps"][0]["checks"]} == {
        "readiness", "api-error-rate", "objects-readable", "watch-survives-restart"}
    assert _version(plane) == ("36", "35", "34")

    # the soak: new and changed objects, written by the 1.36 binary emulating 1.35
    plane.kubectl("apply", "-f", "-", stdin=_widget("w3", 3))
    plane.kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"spec": {"size": 10}}')
    plane.kubectl("scale", "deployment", "web", "--replicas=3")
    plane.kubectl("label", "deployment", "api", "tier=backend")
    plane.kubectl("create", "secret", "generic", "soak-secret", "--from-literal=key=written-during-soak")
    plane.kubectl("patch", "secret", "s0", "--type=merge", "-p", '{"stringData": {"key": "changed"}}')
    plane.kubectl("delete", "configmap", "settings")
    before = _snapshot(plane)

    rollback = _upgrade(plane, "rollback", "--data-dir", str(plane.data_dir))
    assert rollback["status"] == "done", rollback
    assert _version(plane) == ("35", "35", "34")
    assert _snapshot(plane) == before
    assert before["widgets.example.com/default/w1"]["spec"]["size"] == 10
    assert before["deployments.apps/default/web"]["spec"]["replicas"] == 3
    assert "secrets/default/soak-secret" in before and "configmaps/default/settings" not in before
    assert plane.kubectl("get", "secret", "s0", "-o", "jsonpath={.data.key}").stdout == "Y2hhbmdlZA=="
    state = json.loads((plane.data_dir / "upgrade-state.json").read_text())
    assert state["phase"] == "rolled-back" and state["from_binary"] == 35

    again = _upgrade(plane, "apply", "--to", "1.36", "--data-dir", str(plane.data_dir))
    assert again["status"] == "done", again
    assert [s["step"] for s in again["steps"]] == ["step1", "step3"]
    assert _version(plane) == ("36", "36", "35")
    assert _snapshot(plane) == before

    refused = _upgrade(plane, "rollback", "--data-dir", str(plane.data_dir), code=3)
    assert refused["status"] == "refused"
    assert "already emulates 1.36" in refused["message"]
    assert _version(plane) == ("36", "36", "35")


@pytest.fixture(scope="module")
def old_plane(tmp_path_factory: pytest.TempPathFactory) -> Any:
    control_plane = start_control_plane(tmp_path_factory.mktemp("upgrade-old"), "--kube-version", "1.31",
                                        "--no-controllers", "--nodes", "0")
    yield control_plane
    control_plane.down()


def _node(plane: ControlPlane, name: str, kubelet: str) -> None:
    plane.kubectl("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n")
    info = {field: "x" for field in ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                                     "containerRuntimeVersion", "kubeProxyVersion")}
    info.update(operatingSystem="linux", architecture="amd64", kubeletVersion=kubelet)
    plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"nodeInfo": info}}))


def test_plan_finds_removed_apis_and_skewed_kubelets(old_plane: ControlPlane, tmp_path: Path) -> None:
    old_plane.kubectl("apply", "-f", "-", stdin=FLOWSCHEMA)
    _node(old_plane, "too-old", "v1.27.3")
    _node(old_plane, "too-new", "v1.33.0")
    _node(old_plane, "fine", "v1.31.2")
    manifests = tmp_path / "manifests"
    (manifests / "nested").mkdir(parents=True)
    (manifests / "app.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n---\n" + FLOWSCHEMA)
    (manifests / "nested" / "ingress.yaml").write_text(
        "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n")

    plan = _upgrade(old_plane, "plan", "--to", "1.32", "--kubeconfig", str(old_plane.kubeconfig),
                    "-f", str(manifests), code=3)
    messages = [b["message"] for b in plan["blockers"]]
    assert ("cluster: FlowSchema legacy-clients uses flowcontrol.apiserver.k8s.io/v1beta3, removed in 1.32; use "
            "flowcontrol.apiserver.k8s.io/v1") in messages
    assert f"{manifests / 'app.yaml'}: FlowSchema legacy-clients uses flowcontrol.apiserver.k8s.io/v1beta3, " \
           "removed in 1.32; use flowcontrol.apiserver.k8s.io/v1" in messages
    assert any("Ingress shop/web uses extensions/v1beta1, removed in 1.22" in m for m in messages)
    skew = sorted(m.split(":")[0] for m in messages if m.startswith("node "))
    assert skew == ["node too-new", "node too-old"]
    assert plan["ok"] is False and plan["steps"][0]["name"] == "step1"

    text = old_plane.kplane("upgrade", "plan", "--to", "1.32", "--kubeconfig", str(old_plane.kubeconfig),
                            check=False)
    assert text.returncode == 3
    assert text.stdout.index("Blockers") < text.stdout.index("Steps")

    blocked = _upgrade(old_plane, "apply", "--to", "1.32", "--data-dir", str(old_plane.data_dir), code=3)
    assert blocked["status"] == "blocked" and blocked["steps"] == []
    assert not (old_plane.data_dir / "upgrade-state.json").exists()
    assert _version_minor(old_plane) == "31"


def _version_minor(plane: ControlPlane) -> str:
    return str(json.loads(plane.kubectl("get", "--raw", "/version").stdout)["minor"])
