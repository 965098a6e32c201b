"""Discovery: aggregated (apidiscovery v2/v2beta1) and legacy shapes, and Accept negotiation."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.api.resources import ResourceType
from kplane.apiserver import discovery
from kplane.versions.profile import load_profile

CRDS = [
    ResourceType(
        "stable.example.com", version, "crontabs", "CronTab", True,
        short_names=("ct",), categories=("all",), subresources=("status",),
        crd_name="crontabs.stable.example.com", storage_version="v1",
    )
    for version in ("v1beta1", "v1")
]  # fmt: skip
RESOURCES = [*load_profile("1.36").resources, *CRDS]


def _item(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in doc["items"] if i["metadata"]["name"] == name)


def _resource(version_entry: dict[str, Any], plural: str) -> dict[str, Any]:
    return next(r for r in version_entry["resources"] if r["resource"] == plural)


def test_aggregated_core() -> None:
    doc = discovery.aggregated_discovery(RESOURCES, core=True)
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert [i["metadata"]["name"] for i in doc["items"]] == [""]
    (v1,) = doc["items"][0]["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    plurals = [r["resource"] for r in v1["resources"]]
    assert plurals == sorted(plurals) and "pods" in plurals and "deployments" not in plurals
    pods = _resource(v1, "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["status"] == {
        "subresource": "status",
        "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
        "verbs": ["get", "patch", "update"],
    }
    assert subs["binding"]["responseKind"]["kind"] == "Binding" and subs["binding"]["verbs"] == ["create"]
    nodes = _resource(v1, "nodes")
    assert nodes["scope"] == "Cluster" and "categories" not in nodes
    finalize = next(s for s in _resource(v1, "namespaces")["subresources"] if s["subresource"] == "finalize")
    assert finalize["verbs"] == ["update"] and finalize["responseKind"]["kind"] == "Namespace"


def test_aggregated_apps_and_crd_versions() -> None:
    doc = discovery.aggregated_discovery(RESOURCES, core=False)
    names = [i["metadata"]["name"] for i in doc["items"]]
    assert "" not in names and names[0] == "apps" and names[-1] == "stable.example.com"
    deployments = _resource(_item(doc, "apps")["versions"][0], "deployments")
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert deployments["shortNames"] == ["deploy"]
    crd = _item(doc, "stable.example.com")
    assert [v["version"] for v in crd["versions"]] == ["v1", "v1beta1"]  # preferred first
    cron = _resource(crd["versions"][1], "crontabs")
    assert cron["responseKind"] == {"group": "stable.example.com", "version": "v1beta1", "kind": "CronTab"}


def test_aggregated_v2beta1_only_changes_api_version() -> None:
    v2 = discovery.aggregated_discovery(RESOURCES, core=False)
    beta = discovery.aggregated_discovery(RESOURCES, core=False, form=discovery.V2BETA1)
    assert beta["apiVersion"] == "apidiscovery.k8s.io/v2beta1" and beta["items"] == v2["items"]


def test_legacy_api_and_groups() -> None:
    versions = discovery.api_versions("127.0.0.1:6443")
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    assert versions["serverAddressByClientCIDRs"][0]["serverAddress"] == "127.0.0.1:6443"
    groups = discovery.api_group_list(RESOURCES)
    assert groups["kind"] == "APIGroupList" and all(g["name"] for g in groups["groups"])
    cron = next(g for g in groups["groups"] if g["name"] == "stable.example.com")
    assert cron["preferredVersion"] == {"groupVersion": "stable.example.com/v1", "version": "v1"}
    assert [v["version"] for v in cron["versions"]] == ["v1", "v1beta1"]
    one = discovery.api_group(RESOURCES, "apps")
    assert one is not None and one["kind"] == "APIGroup" and one["preferredVersion"]["version"] == "v1"
    assert discovery.api_group(RESOURCES, "nope.io") is None
    assert discovery.api_group(RESOURCES, "") is None


def test_legacy_resource_list_core() -> None:
    doc = discovery.api_resource_list(RESOURCES, "", "v1")
    assert doc is not None and doc["kind"] == "APIResourceList" and doc["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    pods = by_name["pods"]
    assert pods["kind"] == "Pod" and pods["namespaced"] is True and pods["singularName"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"] and pods["storageVersionHash"]
    assert by_name["pods/status"] == {
        "name": "pods/status",
        "singularName": "",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get", "patch", "update"],
    }
    assert "namespaces/finalize" in by_name and by_name["namespaces"]["namespaced"] is False


def test_legacy_resource_list_apps_scale_names_its_group() -> None:
    doc = discovery.api_resource_list(RESOURCES, "apps", "v1")
    assert doc is not None and doc["groupVersion"] == "apps/v1"
    scale = next(r for r in doc["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def test_legacy_crd_versions_share_storage_hash() -> None:
    hashes = set()
    for version in ("v1", "v1beta1"):
        doc = discovery.api_resource_list(RESOURCES, "stable.example.com", version)
        assert doc is not None
        by_name = {r["name"]: r for r in doc["resources"]}
        assert set(by_name) == {"crontabs", "crontabs/status"}
        hashes.add(by_name["crontabs"]["storageVersionHash"])
    assert len(hashes) == 1


def test_legacy_unknown_group_version() -> None:
    assert discovery.api_resource_list(RESOURCES, "apps", "v2") is None
    assert discovery.api_resource_list([], "", "v1") is None


def test_storage_version_hash_is_stable_and_distinct() -> None:
    a = discovery.storage_version_hash("apps", "v1", "Deployment")
    assert a == discovery.storage_version_hash("apps", "v1", "Deployment")
    assert a != discovery.storage_version_hash("apps", "v1", "ReplicaSet")
    assert len(a) == 12  # base64 of 8 bytes


def test_version_priority_order() -> None:
    versions = ["v1alpha1", "v2", "v1beta1", "foo", "v1", "v1beta2", "v10"]
    assert sorted(versions, key=discovery.version_priority) == [
        "v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo",
    ]  # fmt: skip


KUBECTL_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_ACCEPT, discovery.V2),
        ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList", discovery.V2BETA1),
        ("application/json", discovery.LEGACY),
        ("*/*", discovery.LEGACY),
        (None, discovery.LEGACY),
        ("", discovery.LEGACY),
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5, application/json",
         discovery.LEGACY),
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", discovery.LEGACY),
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", None),
        ("application/yaml", None),
        ("text/html, ;;, application/json;q=abc", discovery.LEGACY),
        ("application/json;q=0", None),
    ],
)  # fmt: skip
def test_negotiate(accept: str | None, expected: discovery.DiscoveryFormat | None) -> None:
    assert discovery.negotiate(accept) == expected


def test_negotiate_without_v2beta1() -> None:
    only_beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    assert discovery.negotiate(only_beta, serve_v2beta1=False) == discovery.LEGACY
    assert discovery.V2.content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert discovery.V2.aggregated and not discovery.LEGACY.aggregated
