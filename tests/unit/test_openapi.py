"""OpenAPI v3: root, built-in and CRD group-version documents, the kubectl-facing details, caching."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kplane.api.resources import ResourceType
from kplane.api.schema import Schema
from kplane.apiserver import openapi
from kplane.versions.profile import load_profile

REF = "#/components/schemas/"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CRON = [
    ResourceType(
        "stable.example.com", version, "crontabs", "CronTab", True,
        subresources=("status", "scale"), crd_name="crontabs.stable.example.com",
    )
    for version in ("v1", "v1beta1")
]  # fmt: skip
CLUSTER_CRD = ResourceType("example.com", "v1", "gadgets", "Gadget", False, crd_name="gadgets.example.com")
RESOURCES = [*load_profile("1.36").resources, *CRON, CLUSTER_CRD]
CRON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A cron tab.",
    "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
        "spec": {
            "type": "object",
            "properties": {"cronSpec": {"type": "string"}, "replicas": {"type": "integer"}},
        },
    },
}
CRD_SCHEMAS = {("stable.example.com", "v1", "CronTab"): CRON_SCHEMA}


def _doc(path: str) -> dict[str, Any]:
    return openapi.openapi_group_version(path, RESOURCES, "1.36", CRD_SCHEMAS)


def _refs(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            out.add(node["$ref"])
        for value in node.values():
            out |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            out |= _refs(item)
    return out


def test_root_lists_every_group_version_with_hash() -> None:
    root = openapi.openapi_root(RESOURCES, lambda path: f"H({path})")
    assert root["paths"]["api/v1"] == {"serverRelativeURL": "/openapi/v3/api/v1?hash=H(api/v1)"}
    assert "apis/apps/v1" in root["paths"] and "apis/stable.example.com/v1beta1" in root["paths"]
    assert "apis/apps" not in root["paths"]


def test_apps_document_has_deployment_with_gvk_and_object_meta() -> None:
    doc = _doc("apis/apps/v1")
    assert doc["openapi"].startswith("3.0")
    schemas = doc["components"]["schemas"]
    assert schemas[DEPLOYMENT]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    assert OBJECT_META in schemas and "io.k8s.api.core.v1.PodTemplateSpec" in schemas
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    # Every reference resolves inside the document (kubectl explain deployment.spec.template needs this).
    assert {r.removeprefix(REF) for r in _refs(doc)} <= set(schemas)
    template = Schema(schemas[DEPLOYMENT], schemas).field("spec").field("template")  # type: ignore[union-attr]
    assert template is not None and template.field("spec") is not None


def test_patch_operations_carry_gvk_and_field_validation() -> None:
    doc = _doc("apis/apps/v1")
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    assert patch["x-kubernetes-action"] == "patch"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    content = patch["requestBody"]["content"]
    assert "application/apply-patch+yaml" in content and "application/strategic-merge-patch+json" in content
    assert set(item) >= {"get", "put", "patch", "delete", "parameters"}
    assert patch["operationId"] == "patchAppsV1NamespacedDeployment"
    collection = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert set(collection) >= {"get", "post", "delete"}
    assert collection["get"]["operationId"] == "listAppsV1NamespacedDeployment"
    assert "/apis/apps/v1/deployments" in doc["paths"]
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "v1.Scale"
    )


def test_core_document_cluster_and_namespaced_forms() -> None:
    doc = _doc("api/v1")
    paths = doc["paths"]
    assert "/api/v1/nodes/{name}" in paths and "/api/v1/nodes/{name}/status" in paths
    assert "/api/v1/namespaces/{namespace}/pods/{name}/binding" in paths
    namespaces = paths["/api/v1/namespaces"]
    assert "delete" not in namespaces  # namespaces have no deletecollection
    assert paths["/api/v1/namespaces/{name}"]["patch"]["operationId"] == "patchCoreV1Namespace"
    assert "io.k8s.api.core.v1.Pod" in doc["components"]["schemas"]


def test_crd_document_from_schema() -> None:
    doc = _doc("apis/stable.example.com/v1")
    schemas = doc["components"]["schemas"]
    cron = schemas["com.example.stable.v1.CronTab"]
    assert cron["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert cron["properties"]["metadata"]["$ref"] == REF + OBJECT_META
    assert cron["properties"]["apiVersion"]["type"] == "string" and cron["description"] == "A cron tab."
    assert cron["properties"]["spec"] == CRON_SCHEMA["properties"]["spec"]
    listing = schemas["com.example.stable.v1.CronTabList"]
    assert listing["properties"]["items"]["items"]["$ref"] == REF + "com.example.stable.v1.CronTab"
    assert OBJECT_META in schemas and "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta" in schemas
    patch = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status" in doc["paths"]
    assert {r.removeprefix(REF) for r in _refs(doc)} <= set(schemas)
    assert (
        "metadata" in CRON_SCHEMA["properties"] and "apiVersion" not in CRON_SCHEMA["properties"]
    )  # untouched


def test_crd_without_schema_and_cluster_scope() -> None:
    beta = _doc("apis/stable.example.com/v1beta1")["components"]["schemas"][
        "com.example.stable.v1beta1.CronTab"
    ]
    assert beta["x-kubernetes-preserve-unknown-fields"] is True and beta["type"] == "object"
    gadgets = _doc("apis/example.com/v1")
    assert "/apis/example.com/v1/gadgets/{name}" in gadgets["paths"]
    assert not any("{namespace}" in p for p in gadgets["paths"])


@pytest.mark.parametrize("bad", ["apis/apps", "api", "apis//v1", "foo/v1", "apis/a/b/c", ""])
def test_malformed_group_version_path(bad: str) -> None:
    with pytest.raises(ValueError, match="group-version path"):
        openapi.openapi_group_version(bad, RESOURCES, "1.36", {})


def test_unserved_group_version() -> None:
    with pytest.raises(LookupError):
        openapi.openapi_group_version("apis/apps/v2", RESOURCES, "1.36", {})


def test_document_is_json_and_deterministic() -> None:
    a = orjson.dumps(_doc("apis/batch/v1"))
    assert a == orjson.dumps(_doc("apis/batch/v1"))


def test_cache_reuses_and_invalidates_by_content() -> None:
    docs = openapi.OpenAPIDocuments("1.36")
    first = docs.document("apis/stable.example.com/v1", RESOURCES, CRD_SCHEMAS)
    assert docs.document("apis/stable.example.com/v1", RESOURCES, CRD_SCHEMAS) is first
    changed = {("stable.example.com", "v1", "CronTab"): {**CRON_SCHEMA, "description": "changed"}}
    second = docs.document("apis/stable.example.com/v1", RESOURCES, changed)
    assert second.hash != first.hash and b"changed" in second.body
    apps = docs.document("apis/apps/v1", RESOURCES, CRD_SCHEMAS)
    assert docs.document("apis/apps/v1", RESOURCES, changed) is apps  # other groups' CRDs don't matter
    root = docs.root(RESOURCES, CRD_SCHEMAS)
    assert root["paths"]["apis/apps/v1"]["serverRelativeURL"].endswith("?hash=" + apps.hash)
    assert len(apps.hash) == 128 and apps.hash == openapi.content_hash(apps.body)


def test_cache_is_bounded() -> None:
    docs = openapi.OpenAPIDocuments("1.36", max_entries=2)
    for description in ("a", "b", "c"):
        schemas = {("stable.example.com", "v1", "CronTab"): {"type": "object", "description": description}}
        docs.document("apis/stable.example.com/v1", RESOURCES, schemas)
    assert len(docs._docs) == 2
