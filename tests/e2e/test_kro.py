"""kro end to end on a real ``kplane up --nodes 2``: upstream example RGDs applied with kubectl, unchanged.

Each example: RGD applied → Ready; instance applied → children created in dependency order → ``ACTIVE`` →
spec changed → children updated → instance deleted → children deleted dependents first. Ordering is read
from watch events: kplane's resourceVersions are one global counter, so they order events across kinds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import KUBECTL, Background, ControlPlane, start_serving_crd

EXAMPLES = Path(__file__).parents[1] / "compat" / "kro" / "examples"
WAIT_S = 60


@pytest.fixture(scope="module")
def kro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    plane = start_serving_crd(tmp_path_factory.mktemp("kro"), "resourcegraphdefinitions.kro.run", "--nodes", "2")
    yield plane
    plane.down()


def apply(plane: ControlPlane, doc: Any) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc) if not isinstance(doc, str) else doc)


def delete(plane: ControlPlane, *args: str) -> None:
    plane.kubectl("delete", *args)


def get(plane: ControlPlane, *args: str) -> Any:
    proc = plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def condition(obj: Any, kind: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def wait_rgd_ready(plane: ControlPlane, name: str) -> dict[str, Any]:
    def ready() -> Any:
        rgd = get(plane, "rgd", name)
        return rgd if condition(rgd, "Ready").get("status") == "True" else None
    return dict(plane.wait_for(ready, timeout=WAIT_S, what=f"RGD {name} Ready"))


def wait_state(plane: ControlPlane, resource: str, state: str, *ns: str) -> dict[str, Any]:
    def reached() -> Any:
        obj = get(plane, resource, *ns)
        return obj if ((obj or {}).get("status") or {}).get("state") == state else None
    return dict(plane.wait_for(reached, timeout=WAIT_S, what=f"{resource} {state}"))


def wait_gone(plane: ControlPlane, *args: str) -> None:
    plane.wait_for(lambda: plane.kubectl("get", *args, check=False).returncode != 0, timeout=WAIT_S,
                   what=f"{args} deleted")


def example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


class Watch:
    """``kubectl get KIND -w`` recording (event, name, resourceVersion) lines."""

    def __init__(self, plane: ControlPlane, kind: str) -> None:
        self.bg = Background(plane, "get", kind, "-A", "--watch-only", "--output-watch-events", "--no-headers",
                             "-o", "custom-columns=E:type,N:object.metadata.name,RV:object.metadata.resourceVersion")
        self.events: list[tuple[str, str, int]] = []

    def first(self, event: str, name: str, timeout: float = WAIT_S) -> int:
        for seen in self.events:
            if seen[:2] == (event, name):
                return seen[2]
        deadline = time.monotonic() + timeout
        while True:
            line = self.bg.next_line(lambda _: True, timeout=max(0.1, deadline - time.monotonic()))
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                self.events.append((parts[0], parts[1], int(parts[2])))
                if (parts[0], parts[1]) == (event, name):
                    return int(parts[2])

    def stop(self) -> None:
        self.bg.stop()


def test_invalid_rgd_is_not_accepted(kro: ControlPlane) -> None:
    """kro acceptance case 1: a cycle is refused with GraphAccepted=False/InvalidResourceGraph."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap"}
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "metadata": {"name": "cycle"},
                "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "Cycle", "spec": {"name": "string"}},
                         "resources": [
                             {"id": "a", "template": {**cm, "metadata": {"name": "${b.metadata.name}"}}},
                             {"id": "b", "template": {**cm, "metadata": {"name": "${a.metadata.name}"}}}]}})
    rgd = kro.wait_for(lambda: (lambda r: r if condition(r, "GraphAccepted") else None)(get(kro, "rgd", "cycle")),
                       timeout=WAIT_S, what="GraphAccepted")
    accepted = condition(rgd, "GraphAccepted")
    assert accepted["status"] == "False" and accepted["reason"] == "InvalidResourceGraph"
    assert "graph contains a cycle" in accepted["message"]
    assert rgd["status"]["state"] == "Inactive"
    assert condition(rgd, "Ready")["status"] == "False"
    delete(kro, "rgd", "cycle")


def test_webapp_end_to_end(kro: ControlPlane) -> None:
    (rgd_doc,) = example("webapp-rg.yaml")
    apply(kro, rgd_doc)
    rgd = wait_rgd_ready(kro, "webapp.kro.run")
    assert rgd["status"]["state"] == "Active"
    assert rgd["status"]["topologicalOrder"] == ["deployment", "service", "ingress"]
    assert rgd["status"]["resources"] == [
        {"id": "service", "dependencies": [{"id": "deployment"}]},
        {"id": "ingress", "dependencies": [{"id": "deployment"}, {"id": "service"}]}]
    assert {c["type"] for c in rgd["status"]["conditions"]} >= {"GraphAccepted", "KindReady", "ControllerReady"}
    deployments, services, ingresses = Watch(kro, "deployments"), Watch(kro, "services"), Watch(kro, "ingresses")
    try:
        apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "WebApp", "metadata": {"name": "web"},
                    "spec": {"name": "web", "replicas": 2, "ingress": {"enabled": True}}})
        inst = wait_state(kro, "webapp", "ACTIVE", "web")
        assert condition(inst, "Ready")["status"] == "True"
        assert inst["status"]["availableReplicas"] == 2
        assert "kro.run/finalizer" in inst["metadata"]["finalizers"]
        set_id = inst["metadata"]["labels"]["applyset.kubernetes.io/id"]
        annotations = inst["metadata"]["annotations"]
        assert annotations["applyset.kubernetes.io/contains-group-kinds"] == \
            "Deployment.apps,Ingress.networking.k8s.io,Service"
        assert deployments.first("ADDED", "web") < services.first("ADDED", "web") < ingresses.first("ADDED", "web")
        ingress = get(kro, "ingress", "web")
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "web", "port": {"number": 80}}
        assert ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "alb"
        assert ingress["metadata"]["annotations"]["internal.kro.run/apply-order"] == "3"
        assert "url" not in inst["status"], "no load balancer has written the Ingress status"
        svc = get(kro, "service", "web")
        labels = svc["metadata"]["labels"]
        assert labels["applyset.kubernetes.io/part-of"] == set_id
        assert labels["kro.run/node-id"] == "service" and labels["kro.run/instance-kind"] == "WebApp"
        assert labels["kro.run/instance-name"] == "web" and labels["kro.run/instance-namespace"] == "default"
        assert labels["kro.run/instance-id"] == inst["metadata"]["uid"]
        assert svc["metadata"]["annotations"]["internal.kro.run/apply-order"] == "2"
        assert "ownerReferences" not in svc["metadata"]
        managers = {m["manager"] for m in get(kro, "deployment", "web", "--show-managed-fields")["metadata"]
                    ["managedFields"]}
        assert "kro.run/applyset" in managers

        # Drift: a managed field changed by someone else is put back by the next reconcile.
        kro.kubectl("scale", "deployment", "web", "--replicas=5")
        kro.kubectl("label", "service", "web", "kro.run/node-id=tampered", "--overwrite")
        kro.wait_for(lambda: get(kro, "deployment", "web")["spec"]["replicas"] == 2, timeout=WAIT_S,
                     what="replicas restored")
        kro.wait_for(lambda: get(kro, "service", "web")["metadata"]["labels"]["kro.run/node-id"] == "service",
                     timeout=WAIT_S, what="label restored")

        kro.kubectl("patch", "webapp", "web", "--type", "merge", "-p",
                    '{"spec": {"replicas": 3, "image": "nginx:1.27", "service": {"enabled": false}}}')
        kro.wait_for(lambda: (get(kro, "deployment", "web") or {}).get("spec", {}).get("replicas") == 3,
                     timeout=WAIT_S, what="replicas updated")
        deployment = get(kro, "deployment", "web")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
        wait_gone(kro, "service", "web")
        wait_gone(kro, "ingress", "web")
        kro.wait_for(lambda: (wait_state(kro, "webapp", "ACTIVE", "web")["status"].get("availableReplicas") == 3),
                     timeout=WAIT_S, what="3 available")

        kro.kubectl("patch", "webapp", "web", "--type", "merge", "-p", '{"spec": {"service": {"enabled": true}}}')
        kro.wait_for(lambda: get(kro, "service", "web"), timeout=WAIT_S, what="service back")
        kro.wait_for(lambda: get(kro, "ingress", "web"), timeout=WAIT_S, what="ingress back")
        kro.kubectl("patch", "service", "web", "--type", "merge", "-p",
                    '{"metadata": {"finalizers": ["e2e.kplane.dev/hold"]}}')
        delete(kro, "webapp", "web", "--wait=false")
        wait_state(kro, "webapp", "DELETING", "web")
        kro.wait_for(lambda: (get(kro, "service", "web") or {}).get("metadata", {}).get("deletionTimestamp"),
                     timeout=WAIT_S, what="service terminating")
        time.sleep(2)
        assert get(kro, "deployment", "web") is not None, "a dependency went before its dependent"
        kro.kubectl("patch", "service", "web", "--type", "merge", "-p", '{"metadata": {"finalizers": null}}')
        wait_gone(kro, "webapp", "web")
        assert get(kro, "deployment", "web") is None
        assert ingresses.first("DELETED", "web") < services.first("DELETED", "web") \
            < deployments.first("DELETED", "web")
    finally:
        deployments.stop()
        services.stop()
        ingresses.stop()


def test_applyset_conflict(kro: ControlPlane) -> None:
    """kro acceptance case 32: a second instance rendering the same child is refused."""
    (rgd_doc,) = example("webapp-rg.yaml")
    apply(kro, rgd_doc)
    wait_rgd_ready(kro, "webapp.kro.run")
    spec = {"name": "shared", "replicas": 1, "service": {"enabled": False}}
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "WebApp", "metadata": {"name": "first"}, "spec": spec})
    wait_state(kro, "webapp", "ACTIVE", "first")
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "WebApp", "metadata": {"name": "second"}, "spec": spec})
    second = wait_state(kro, "webapp", "ERROR", "second")
    assert "resource belongs to a different ApplySet" in condition(second, "ResourcesReady")["message"]
    owner = get(kro, "deployment", "shared")["metadata"]["labels"]["kro.run/instance-name"]
    assert owner == "first"
    delete(kro, "webapp", "second", "first")
    wait_gone(kro, "deployment", "shared")


def test_suspended_instance_is_left_alone(kro: ControlPlane) -> None:
    (rgd_doc,) = example("webapp-rg.yaml")
    apply(kro, rgd_doc)
    wait_rgd_ready(kro, "webapp.kro.run")
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "WebApp", "metadata": {"name": "paused"},
                "spec": {"name": "paused", "replicas": 1}})
    wait_state(kro, "webapp", "ACTIVE", "paused")
    kro.kubectl("annotate", "webapp", "paused", "kro.run/reconcile=suspended")
    kro.kubectl("patch", "webapp", "paused", "--type", "merge", "-p", '{"spec": {"replicas": 2}}')
    kro.wait_for(lambda: condition(get(kro, "webapp", "paused"), "ResourcesReady").get("reason")
                 == "ReconciliationSuspended", timeout=WAIT_S, what="suspended")
    assert get(kro, "deployment", "paused")["spec"]["replicas"] == 1
    kro.kubectl("annotate", "webapp", "paused", "kro.run/reconcile-")
    kro.wait_for(lambda: get(kro, "deployment", "paused")["spec"]["replicas"] == 2, timeout=WAIT_S,
                 what="resumed")
    delete(kro, "webapp", "paused")
    wait_gone(kro, "deployment", "paused")


def _drop_rgd(plane: ControlPlane, name: str, crd: str) -> None:
    delete(plane, "rgd", name)
    delete(plane, "crd", crd)
    wait_gone(plane, "crd", crd)


def test_cel_functions(kro: ControlPlane) -> None:
    (rgd_doc,) = example("cel-functions-rg.yaml")
    apply(kro, rgd_doc)
    wait_rgd_ready(kro, "somethings.kro.run")
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "Something", "metadata": {"name": "cel"},
                "spec": {"name": "cel"}})
    wait_state(kro, "something", "ACTIVE", "cel")
    # No readyWhen: ACTIVE once the children exist; the projected field appears once its data does.
    kro.wait_for(lambda: get(kro, "something", "cel")["status"].get("availableReplicas") == 10, timeout=WAIT_S,
                 what="availableReplicas projected")
    env = {e["name"]: e["value"] for e in get(kro, "deployment", "cel")["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    assert env["FULL_DNS_NAME"] == "a.b.c.d.example.com" and env["DNS_FIRST_PART"] == "a"
    assert env["DNS_PARTIALS"] == "a" and env["LISTS_SUM"] == "600"
    assert env["JSON_UNMARSHAL_EXAMPLE"] == "exampleJSONValue" and env["QUANTITY_COMPARISON"] == "small"
    assert json.loads(env["JSON_MARSHAL_EXAMPLE"]) == {"name": "cel"}
    assert len(env["RANDOM_SEEDED_STRING"]) == 10
    labels = get(kro, "service", "cel")["metadata"]["labels"]
    assert labels["partials"] == "a.b.c" and labels["first_part"] == "a"
    kro.kubectl("patch", "something", "cel", "--type", "merge", "-p", '{"spec": {"fullDNSName": "x.y.example.com"}}')
    kro.wait_for(lambda: get(kro, "service", "cel")["metadata"]["labels"]["partials"] == "x.y.example",
                 timeout=WAIT_S, what="labels updated")
    delete(kro, "something", "cel")
    assert get(kro, "deployment", "cel") is None and get(kro, "service", "cel") is None
    _drop_rgd(kro, "somethings.kro.run", "somethings.kro.run")


def test_defaults(kro: ControlPlane) -> None:
    (rgd_doc,) = example("defaults-rg.yaml")
    apply(kro, rgd_doc)
    rgd = wait_rgd_ready(kro, "somethings.kro.run")
    assert rgd["status"].get("topologicalOrder", []) == []
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "Something", "metadata": {"name": "dflt"},
                "spec": {"name": "d", "required": 1}})
    inst = wait_state(kro, "something", "ACTIVE", "dflt")
    assert inst["spec"]["elements"] == ["a", "b", "c", "d"] and inst["spec"]["config"]["field2"] == 200
    refused = kro.kubectl("apply", "-f", "-", check=False, stdin=yaml.safe_dump(
        {"apiVersion": "kro.run/v1alpha1", "kind": "Something", "metadata": {"name": "bad"}, "spec": {"name": "x"}}))
    assert refused.returncode != 0 and "required" in refused.stderr
    delete(kro, "something", "dflt")
    _drop_rgd(kro, "somethings.kro.run", "somethings.kro.run")


def test_printer_columns(kro: ControlPlane) -> None:
    (rgd_doc,) = example("additionalPrinterColumns-rg.yaml")
    apply(kro, rgd_doc)
    wait_rgd_ready(kro, "application")
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "Application", "metadata": {"name": "cols"},
                "spec": {"name": "cols"}})
    wait_state(kro, "application", "ACTIVE", "cols")
    kro.wait_for(lambda: get(kro, "application", "cols")["status"].get("availableReplicas") == 3, timeout=WAIT_S,
                 what="availableReplicas projected")
    table = kro.kubectl("get", "application", "cols").stdout.splitlines()
    assert table[0].split() == ["NAME", "AVAILABLE", "REPLICAS", "IMAGE", "ENABLED", "INGRESS"]
    assert table[1].split() == ["cols", "3", "nginx", "false"]
    kro.kubectl("patch", "application", "cols", "--type", "merge", "-p", '{"spec": {"image": "nginx:1.27"}}')
    kro.wait_for(lambda: get(kro, "deployment", "cols")["spec"]["template"]["spec"]["containers"][0]["image"]
                 == "nginx:1.27", timeout=WAIT_S, what="image updated")
    delete(kro, "application", "cols")
    assert get(kro, "deployment", "cols") is None


def test_saas_multi_tenant_chain(kro: ControlPlane) -> None:
    """Three RGDs composed: a Tenant is a TenantEnvironment (Namespace, ResourceQuota, NetworkPolicy) plus a
    TenantApplication (Deployment, Service), each an instance of another RGD; a spec change flows down the
    chain, and deleting the Tenant deletes it bottom up (every instance waits for its own children)."""
    for name in ("saas-multi-tenant-tenant-environment-rgd.yaml", "saas-multi-tenant-tenant-application-rgd.yaml",
                 "saas-multi-tenant-tenant-rgd.yaml"):
        (doc,) = example(name)
        apply(kro, doc)
    for name in ("tenantenvironment.kro.run", "tenantapplication.kro.run"):
        wait_rgd_ready(kro, name)
    tenant_rgd = wait_rgd_ready(kro, "tenant.kro.run")
    assert tenant_rgd["status"]["topologicalOrder"] == ["tenantEnvironment", "tenantApplication"]
    watches = {kind: Watch(kro, kind) for kind in ("tenants", "tenantapplications", "tenantenvironments",
                                                    "deployments", "resourcequotas", "networkpolicies")}
    try:
        apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
                    "spec": {"tenantId": "acme"}})
        tenant = wait_state(kro, "tenant", "ACTIVE", "acme")
        assert condition(tenant, "Ready")["status"] == "True"
        assert tenant["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"] == \
            "TenantApplication.kro.run,TenantEnvironment.kro.run"
        env = wait_state(kro, "tenantenvironment", "ACTIVE", "acme")
        app = wait_state(kro, "tenantapplication", "ACTIVE", "acme")
        for child in (env, app):
            labels = child["metadata"]["labels"]
            assert labels["kro.run/instance-kind"] == "Tenant" and labels["kro.run/instance-name"] == "acme"
            assert labels["applyset.kubernetes.io/part-of"] == tenant["metadata"]["labels"][
                "applyset.kubernetes.io/id"]
        assert env["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"] == \
            "Namespace,NetworkPolicy.networking.k8s.io,ResourceQuota"
        quota = get(kro, "resourcequota", "acme-quota", "-n", "acme")
        assert quota["spec"]["hard"]["limits.memory"] == "2Gi"
        assert quota["metadata"]["labels"]["kro.run/instance-kind"] == "TenantEnvironment"
        policy = get(kro, "networkpolicy", "acme-isolation", "-n", "acme")
        assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]
        assert get(kro, "namespace", "acme")["metadata"]["labels"]["kro.run/instance-name"] == "acme"
        deployment = get(kro, "deployment", "acme-deployment", "-n", "acme")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
        assert deployment["spec"]["replicas"] == 2
        assert get(kro, "service", "acme-service", "-n", "acme")["metadata"]["labels"]["saas/tenant"] == "true"

        kro.kubectl("patch", "tenant", "acme", "--type", "merge", "-p",
                    '{"spec": {"replicas": 3, "image": "nginx:2"}}')
        kro.wait_for(lambda: get(kro, "deployment", "acme-deployment", "-n", "acme")["spec"]["template"]["spec"]
                     ["containers"][0]["image"] == "nginx:2", timeout=WAIT_S, what="image propagated down the chain")
        assert get(kro, "tenantapplication", "acme")["spec"] == {"tenantId": "acme", "image": "nginx:2",
                                                                  "replicas": 3}
        assert get(kro, "deployment", "acme-deployment", "-n", "acme")["spec"]["replicas"] == 3
        wait_state(kro, "tenant", "ACTIVE", "acme")

        delete(kro, "tenant", "acme", "--wait=false")
        wait_gone(kro, "tenant", "acme")
        assert get(kro, "tenantapplication", "acme") is None and get(kro, "tenantenvironment", "acme") is None
        # Each instance goes only once its own children are gone: the chain is deleted bottom up.
        assert watches["deployments"].first("DELETED", "acme-deployment") < watches["tenantapplications"].first(
            "DELETED", "acme") < watches["tenants"].first("DELETED", "acme")
        assert watches["resourcequotas"].first("DELETED", "acme-quota") < watches["tenantenvironments"].first(
            "DELETED", "acme") < watches["tenants"].first("DELETED", "acme")
        assert watches["networkpolicies"].first("DELETED", "acme-isolation") < watches["tenantenvironments"].first(
            "DELETED", "acme")
        wait_gone(kro, "namespace", "acme")
    finally:
        for watch in watches.values():
            watch.stop()


def test_deleting_an_rgd_stops_its_controller(kro: ControlPlane) -> None:
    (rgd_doc,) = example("additionalPrinterColumns-rg.yaml")
    apply(kro, rgd_doc)
    wait_rgd_ready(kro, "application")
    delete(kro, "rgd", "application")
    assert get(kro, "crd", "applications.kro.run") is not None, "kro keeps the CRD unless told otherwise"
    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "Application", "metadata": {"name": "orphan"},
                "spec": {"name": "orphan"}})
    time.sleep(3)
    assert get(kro, "deployment", "orphan") is None
    assert "status" not in get(kro, "application", "orphan")
    delete(kro, "application", "orphan")
