"""Non-resource endpoints and watch details over real HTTPS: health, version, metrics, discovery, OpenAPI, bookmarks."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.e2e.harness import ControlPlane

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


@pytest.fixture(scope="module")
def client(plane: ControlPlane) -> Iterator[httpx.Client]:
    server, ca_pem, token = plane.credentials()
    with httpx.Client(base_url=server, verify=ssl.create_default_context(cadata=ca_pem),
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_endpoints_answer_ok_without_a_token(plane: ControlPlane, path: str) -> None:
    server, ca_pem, _ = plane.credentials()
    response = httpx.get(server + path, verify=ssl.create_default_context(cadata=ca_pem))
    assert response.status_code == 200
    assert response.text == "ok"


def test_version(client: httpx.Client) -> None:
    info = client.get("/version").json()
    assert info["major"] == "1"
    assert info["gitVersion"] == f"v1.{info['minor']}.0"
    assert {"emulationMinor", "minCompatibilityMinor"} <= set(info)


def test_metrics_count_requests(client: httpx.Client) -> None:
    client.get("/api/v1/namespaces")
    text = client.get("/metrics").text
    assert 'apiserver_request_total{code="200",resource="namespaces",verb="list"}' in text
    assert "kubernetes_feature_enabled{" in text


def test_aggregated_and_legacy_discovery(client: httpx.Client) -> None:
    aggregated = client.get("/apis", headers={"Accept": AGGREGATED})
    assert aggregated.headers["content-type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    groups = {item["metadata"]["name"] for item in aggregated.json()["items"]}
    assert {"apps", "batch", "coordination.k8s.io", "apiextensions.k8s.io"} <= groups
    legacy = client.get("/apis/apps/v1", headers={"Accept": "application/json"}).json()
    assert legacy["kind"] == "APIResourceList"
    assert "deployments/status" in {r["name"] for r in legacy["resources"]}


def test_crd_appears_in_discovery_and_openapi(client: httpx.Client) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.endpoints.kplane.dev"},
        "spec": {"group": "endpoints.kplane.dev", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object",
                     "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]},
    }
    created = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if client.get("/apis/endpoints.kplane.dev/v1").status_code == 200:
            break
        time.sleep(0.05)
    resources = client.get("/apis/endpoints.kplane.dev/v1").json()["resources"]
    assert [r["name"] for r in resources] == ["gadgets"]
    root = client.get("/openapi/v3").json()["paths"]
    assert "apis/endpoints.kplane.dev/v1" in root
    doc = client.get("/" + root["apis/endpoints.kplane.dev/v1"]["serverRelativeURL"].lstrip("/")).json()
    schema = doc["components"]["schemas"]["dev.kplane.endpoints.v1.Gadget"]
    assert schema["properties"]["spec"]["properties"]["size"]["type"] == "integer"


def test_builtin_openapi_document(client: httpx.Client) -> None:
    root = client.get("/openapi/v3").json()["paths"]
    doc = client.get(root["apis/apps/v1"]["serverRelativeURL"]).json()
    deployment = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def test_watch_sends_a_bookmark_before_its_timeout(client: httpx.Client) -> None:
    listed = client.get("/api/v1/namespaces/default/configmaps").json()
    rv = listed["metadata"]["resourceVersion"]
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
    with client.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events, "the watch ended without any event"
    assert events[-1]["type"] == "BOOKMARK"
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_watch_without_bookmarks_sends_none(client: httpx.Client) -> None:
    rv = client.get("/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"]
    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "1"}
    with client.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert all(e["type"] != "BOOKMARK" for e in events)


def test_send_initial_events_requires_not_older_than(client: httpx.Client) -> None:
    response = client.get("/api/v1/namespaces/default/configmaps",
                          params={"watch": "1", "sendInitialEvents": "true"})
    assert response.status_code == 422
    assert response.json()["reason"] == "Invalid"
