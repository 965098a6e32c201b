"""The official ``kubernetes`` client and lightkube (sync and async) against a real ``kplane up``.

CRUD on ConfigMaps, Deployments and a custom resource; list paging and label selectors; watch resume from
a resourceVersion; and the in-stream 410 that a watch from a compacted revision gets, which each client
answers in its own way (python-k8s.md §1.6, §1.7): ``kubernetes.watch.Watch`` retries once and then raises
``ApiException(410)``; lightkube's ``on_error_retry`` restarts the watch without a resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from lightkube import AsyncClient, Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType, on_error_retry

from tests.e2e.harness import ControlPlane, start_control_plane

GROUP, VERSION, PLURAL, KIND = "e2e.kplane.dev", "v1", "widgets", "Widget"
Widget = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
COMPACTION_ENV = {"KPLANE_COMPACTION_INTERVAL": "0.2", "KPLANE_COMPACTION_KEEP": "5"}

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "listKind": f"{KIND}List"},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "default": 1},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}},
        }],
    },
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Any, what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def error_body(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


def api_client(kubeconfig: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))


def install_widget_crd(api: k8s.ApiClient) -> None:
    k8s.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    objects = k8s.CustomObjectsApi(api)

    def served() -> bool:
        try:
            objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    wait_until(served, "the Widget CRD to be served")


def make_namespace(api: k8s.ApiClient) -> str:
    name = unique("py")
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def deployment_body(name: str, replicas: int = 1) -> k8s.V1Deployment:
    labels = {"app": name}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="app", image="nginx:1.27")]),
            ),
        ),
    )


@pytest.fixture(scope="module")
def api(plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    client = api_client(plane.kubeconfig)
    install_widget_crd(client)
    yield client
    client.close()


@pytest.fixture()
def namespace(api: k8s.ApiClient) -> str:
    return make_namespace(api)


@pytest.fixture()
def light(plane: ControlPlane, api: k8s.ApiClient) -> Iterator[Client]:
    client = Client(config=KubeConfig.from_file(plane.kubeconfig), field_manager="e2e-lightkube")
    yield client
    client.close()


@pytest.fixture()
async def alight(plane: ControlPlane, api: k8s.ApiClient) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(config=KubeConfig.from_file(plane.kubeconfig), field_manager="e2e-lightkube-async")
    yield client
    await client.close()


# --- the official client -----------------------------------------------------------------------------


def test_official_configmap_crud(api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(api)
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="settings", labels={"tier": "a"}), data={"a": "1"})
    created = core.create_namespaced_config_map(namespace, body)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.namespace == namespace

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, body)
    assert exists.value.status == 409
    assert error_body(exists.value)["reason"] == "AlreadyExists"
    assert error_body(exists.value)["message"] == 'configmaps "settings" already exists'

    read = core.read_namespaced_config_map("settings", namespace)
    assert read.data == {"a": "1"} and read.metadata.resource_version == created.metadata.resource_version

    read.data["a"] = "2"
    replaced = core.replace_namespaced_config_map("settings", namespace, read)
    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    stale = core.read_namespaced_config_map("settings", namespace)
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("settings", namespace, stale)
    assert conflict.value.status == 409
    assert error_body(conflict.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "settings": the object has been modified; '
        "please apply your changes to the latest version and try again")

    patched = core.patch_namespaced_config_map("settings", namespace, {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}

    core.delete_namespaced_config_map("settings", namespace)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("settings", namespace)
    assert gone.value.status == 404
    assert error_body(gone.value)["message"] == 'configmaps "settings" not found'


def test_official_deployment_crud(api: k8s.ApiClient, namespace: str) -> None:
    apps = k8s.AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, deployment_body("web"))
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"  # defaulted by the server

    patched = apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3 and patched.metadata.generation == 2

    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 3

    names = [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
    assert names == ["web"]
    apps.delete_namespaced_deployment("web", namespace)
    assert apps.list_namespaced_deployment(namespace).items == []


def test_official_custom_objects_crud(api: k8s.ApiClient, namespace: str) -> None:
    objects = k8s.CustomObjectsApi(api)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": "w1", "labels": {"tier": "a"}}, "spec": {"color": "red"}}
    created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert created["spec"] == {"color": "red", "size": 1}  # schema default applied

    patched = objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "w1",
                                                     {"spec": {"size": 4}})
    assert patched["spec"]["size"] == 4 and patched["metadata"]["generation"] == 2

    status = objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "w1",
                                                           {"status": {"ready": True}})
    assert status["status"] == {"ready": True} and status["metadata"]["generation"] == 2

    with pytest.raises(ApiException) as invalid:
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "w1",
                                               {"spec": {"color": "green"}})
    assert invalid.value.status == 422
    assert error_body(invalid.value)["details"]["causes"][0]["field"] == "spec.color"

    listed = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, label_selector="tier=a")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["w1"]
    assert objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                 label_selector="tier=b")["items"] == []

    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "w1")
    with pytest.raises(ApiException) as gone:
        objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "w1")
    assert gone.value.status == 404
    assert error_body(gone.value)["message"] == f'{PLURAL}.{GROUP} "w1" not found'


def test_official_list_paging_is_pinned_and_selectors_filter(api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(api)
    tiers = {"cm-0": "a", "cm-1": "b", "cm-2": "c", "cm-3": "a", "cm-4": "b", "cm-5": "a", "cm-6": None}
    for name, tier in tiers.items():
        labels = {"tier": tier, "env": "prod" if name in ("cm-0", "cm-1") else "dev"} if tier else None
        core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
            name=name, labels=labels)))

    first = core.list_namespaced_config_map(namespace, limit=3)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1", "cm-2"]
    assert first.metadata._continue and first.metadata.remaining_item_count == 4
    # A write after the first page must not show up in later pages: the token pins the list's revision.
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cm-9")))
    names = [c.metadata.name for c in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
    assert names == sorted(tiers)

    def select(selector: str) -> list[str]:
        return sorted(c.metadata.name for c in core.list_namespaced_config_map(
            namespace, label_selector=selector).items)

    assert select("tier=a") == ["cm-0", "cm-3", "cm-5"]
    assert select("tier in (a,b)") == ["cm-0", "cm-1", "cm-3", "cm-4", "cm-5"]
    assert select("tier!=a") == ["cm-1", "cm-2", "cm-4", "cm-6", "cm-9"]
    assert select("!tier") == ["cm-6", "cm-9"]
    assert select("tier,env=prod") == ["cm-0", "cm-1"]
    assert select("tier notin (a,b),tier") == ["cm-2"]


def test_official_watch_resumes_after_resource_version(api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(api)
    start = core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="w"), data={"n": "0"}))
    since = start.metadata.resource_version
    core.patch_namespaced_config_map("w", namespace, {"data": {"n": "1"}})
    core.patch_namespaced_config_map("w", namespace, {"data": {"n": "2"}})
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w2")))
    core.delete_namespaced_config_map("w", namespace)
    expected = [("MODIFIED", "w", "1"), ("MODIFIED", "w", "2"), ("ADDED", "w2", None), ("DELETED", "w", "2"),
                ("ADDED", "live", None)]

    watcher = k8s_watch.Watch()
    seen: list[tuple[str, str, str | None]] = []
    versions: list[int] = []
    for event in watcher.stream(core.list_namespaced_config_map, namespace, resource_version=since,
                                timeout_seconds=20):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, (obj.data or {}).get("n")))
        versions.append(int(obj.metadata.resource_version))
        if len(seen) == 4:  # the backlog is replayed; now a live change must arrive on the same stream
            core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="live")))
        if len(seen) == len(expected):
            watcher.stop()
    assert seen == expected
    assert versions == sorted(set(versions)) and versions[0] > int(since)
    assert watcher.resource_version == str(versions[-1])


def test_official_watch_with_selector_sees_objects_leave(api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(api)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
        name="in", labels={"pick": "yes"})))
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="out")))
    core.patch_namespaced_config_map("in", namespace, {"metadata": {"labels": {"pick": "no"}}})
    watcher = k8s_watch.Watch()
    seen = []
    for event in watcher.stream(core.list_namespaced_config_map, namespace, resource_version=start,
                                label_selector="pick=yes", timeout_seconds=20):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            watcher.stop()
    assert seen == [("ADDED", "in"), ("DELETED", "in")]


# --- lightkube -----------------------------------------------------------------------------------------


def light_deployment(name: str) -> Deployment:
    labels = {"app": name}
    return Deployment(
        metadata=ObjectMeta(name=name),
        spec=DeploymentSpec(
            selector=LabelSelector(matchLabels=labels),
            template=PodTemplateSpec(metadata=ObjectMeta(labels=labels),
                                     spec=PodSpec(containers=[Container(name="app", image="nginx:1.27")])),
        ),
    )


def test_lightkube_configmap_and_deployment_crud(light: Client, namespace: str) -> None:
    created = light.create(ConfigMap(metadata=ObjectMeta(name="cfg", labels={"tier": "a"}), data={"a": "1"}),
                           namespace=namespace)
    assert created.metadata is not None and created.metadata.resourceVersion
    assert light.get(ConfigMap, "cfg", namespace=namespace).data == {"a": "1"}

    patched = light.patch(ConfigMap, "cfg", {"data": {"b": "2"}}, namespace=namespace)
    assert patched.data == {"a": "1", "b": "2"}
    merged = light.patch(ConfigMap, "cfg", {"data": {"a": None}}, namespace=namespace,
                         patch_type=PatchType.MERGE)
    assert merged.data == {"b": "2"}
    applied = light.apply(ConfigMap(metadata=ObjectMeta(name="cfg"), data={"c": "3"}), namespace=namespace,
                          force=True)
    assert applied.data == {"b": "2", "c": "3"}
    assert applied.metadata is not None and applied.metadata.managedFields
    assert {f.manager for f in applied.metadata.managedFields} >= {"e2e-lightkube"}

    with pytest.raises(ApiError) as exists:
        light.create(ConfigMap(metadata=ObjectMeta(name="cfg")), namespace=namespace)
    assert exists.value.status.code == 409 and exists.value.status.reason == "AlreadyExists"

    light.create(light_deployment("api"), namespace=namespace)
    scaled = light.patch(Deployment, "api", {"spec": {"replicas": 2}}, namespace=namespace)
    assert scaled.spec is not None and scaled.spec.replicas == 2
    assert scaled.metadata is not None and scaled.metadata.generation == 2
    assert [d.metadata.name for d in light.list(Deployment, namespace=namespace) if d.metadata] == ["api"]

    light.delete(Deployment, "api", namespace=namespace)
    light.delete(ConfigMap, "cfg", namespace=namespace)
    with pytest.raises(ApiError) as gone:
        light.get(ConfigMap, "cfg", namespace=namespace)
    assert gone.value.status.code == 404 and gone.value.status.message == 'configmaps "cfg" not found'


def test_lightkube_generic_resource_crud(light: Client, namespace: str) -> None:
    created = light.create(Widget(metadata=ObjectMeta(name="g1", labels={"tier": "a"}), spec={"color": "blue"}),
                           namespace=namespace)
    assert created.spec == {"color": "blue", "size": 1}
    patched = light.patch(Widget, "g1", {"spec": {"size": 5}}, namespace=namespace, patch_type=PatchType.MERGE)
    assert patched.spec["size"] == 5
    status = light.patch(Widget.Status, "g1", {"status": {"ready": True}}, namespace=namespace,
                         patch_type=PatchType.MERGE)
    assert status.status == {"ready": True}
    names = [w.metadata.name for w in light.list(Widget, namespace=namespace, labels={"tier": "a"}) if w.metadata]
    assert names == ["g1"]
    light.delete(Widget, "g1", namespace=namespace)
    assert list(light.list(Widget, namespace=namespace)) == []


def test_lightkube_chunked_list_and_label_selectors(light: Client, namespace: str) -> None:
    for i in range(5):
        light.create(ConfigMap(metadata=ObjectMeta(name=f"c{i}", labels={"parity": "even" if i % 2 == 0 else "odd"})),
                     namespace=namespace)
    everything = light.list(ConfigMap, namespace=namespace, chunk_size=2)
    assert [c.metadata.name for c in everything if c.metadata] == ["c0", "c1", "c2", "c3", "c4"]
    assert everything.resourceVersion
    even = light.list(ConfigMap, namespace=namespace, labels={"parity": "even"}, chunk_size=1)
    assert [c.metadata.name for c in even if c.metadata] == ["c0", "c2", "c4"]
    from lightkube.operators import in_, not_in

    odd = light.list(ConfigMap, namespace=namespace, labels={"parity": not_in(["even"])})
    assert [c.metadata.name for c in odd if c.metadata] == ["c1", "c3"]
    both = light.list(ConfigMap, namespace=namespace, labels={"parity": in_(["even", "odd"])})
    assert len(list(both)) == 5


def test_lightkube_watch_resumes_after_resource_version(light: Client, namespace: str) -> None:
    first = light.create(ConfigMap(metadata=ObjectMeta(name="a")), namespace=namespace)
    assert first.metadata is not None
    light.create(ConfigMap(metadata=ObjectMeta(name="b")), namespace=namespace)
    light.patch(ConfigMap, "a", {"data": {"k": "v"}}, namespace=namespace)
    light.delete(ConfigMap, "b", namespace=namespace)
    seen = []
    for kind, obj in light.watch(ConfigMap, namespace=namespace, resource_version=first.metadata.resourceVersion):
        assert obj.metadata is not None
        seen.append((kind, obj.metadata.name))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


async def test_lightkube_async_crud_and_watch(alight: AsyncClient, namespace: str) -> None:
    created = await alight.create(ConfigMap(metadata=ObjectMeta(name="x"), data={"a": "1"}), namespace=namespace)
    assert created.metadata is not None
    since = created.metadata.resourceVersion
    await alight.patch(ConfigMap, "x", {"data": {"a": "2"}}, namespace=namespace)
    await alight.create(Widget(metadata=ObjectMeta(name="aw"), spec={"size": 2}), namespace=namespace)
    widget = await alight.get(Widget, "aw", namespace=namespace)
    assert widget.spec == {"size": 2}
    names = [c.metadata.name async for c in alight.list(ConfigMap, namespace=namespace, chunk_size=1) if c.metadata]
    assert names == ["x"]
    await alight.delete(ConfigMap, "x", namespace=namespace)

    seen = []
    async for kind, obj in alight.watch(ConfigMap, namespace=namespace, resource_version=since):
        seen.append((kind, obj.metadata.name, (obj.data or {}).get("a")))
        if len(seen) == 2:
            break
    assert seen == [("MODIFIED", "x", "2"), ("DELETED", "x", "2")]
    await alight.delete(Widget, "aw", namespace=namespace)


# --- 410: a watch from a compacted revision ------------------------------------------------------------


@pytest.fixture(scope="module")
def compacting_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane that compacts every 0.2 s down to the last 5 revisions."""
    control_plane = start_control_plane(tmp_path_factory.mktemp("kplane-compacting"), "--no-controllers",
                                        "--nodes", "0", env=COMPACTION_ENV)
    yield control_plane
    control_plane.down()


@pytest.fixture()
def compacted(compacting_plane: ControlPlane) -> Iterator[tuple[k8s.ApiClient, str, str]]:
    """A namespace with a few ConfigMaps and a resourceVersion from before the last compaction."""
    client = api_client(compacting_plane.kubeconfig)
    namespace = make_namespace(client)
    core = k8s.CoreV1Api(client)
    old = core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="old")))
    for i in range(12):
        core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=f"cm-{i}")))
    since = old.metadata.resource_version

    def compacted_past_since() -> bool:
        try:
            core.list_namespaced_config_map(namespace, resource_version=since, resource_version_match="Exact")
        except ApiException as err:
            if err.status == 410:
                return True
            raise
        return False

    wait_until(compacted_past_since, f"compaction past revision {since}")
    yield client, namespace, since
    client.close()


async def test_concurrent_unconditional_patches_of_one_object_all_succeed(alight: AsyncClient,
                                                                             namespace: str) -> None:
    """Patches without a resourceVersion never conflict with each other: the server applies them one after
    the other (upstream's GuaranteedUpdate), however many race for the same object."""
    await alight.create(ConfigMap(metadata=ObjectMeta(name="raced", namespace=namespace), data={}))
    await asyncio.gather(*(
        alight.patch(ConfigMap, "raced", {"data": {f"k{i}": str(i)}}, namespace=namespace,
                     patch_type=PatchType.MERGE) for i in range(40)))
    final = await alight.get(ConfigMap, "raced", namespace=namespace)
    assert final.data == {f"k{i}": str(i) for i in range(40)}


async def test_delete_racing_patches_of_the_same_object_succeeds(alight: AsyncClient, namespace: str) -> None:
    """A DELETE that meets in-flight writes to its object (a controller's status update, say) is applied
    after them, not refused with 409."""
    meta = ObjectMeta(name="doomed", namespace=namespace, finalizers=["e2e.kplane.io/hold"])
    await alight.create(ConfigMap(metadata=meta, data={}))
    patches = [alight.patch(ConfigMap, "doomed", {"data": {f"k{i}": "v"}}, namespace=namespace,
                            patch_type=PatchType.MERGE) for i in range(60)]
    await asyncio.gather(*patches[:30], alight.delete(ConfigMap, "doomed", namespace=namespace), *patches[30:])
    held = await alight.get(ConfigMap, "doomed", namespace=namespace)
    assert held.metadata is not None and held.metadata.deletionTimestamp is not None
    await alight.patch(ConfigMap, "doomed", {"metadata": {"finalizers": None}}, namespace=namespace,
                       patch_type=PatchType.MERGE)


def test_watch_from_compacted_revision_gets_in_stream_410(compacted: tuple[k8s.ApiClient, str, str]) -> None:
    client, namespace, since = compacted
    response = k8s.CoreV1Api(client).list_namespaced_config_map(
        namespace, watch=True, resource_version=since, _preload_content=False, _request_timeout=30)
    try:
        assert response.status == 200
        lines = [line for line in response.data.splitlines() if line.strip()]
    finally:
        response.release_conn()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {since} (")


def test_official_watch_raises_410_then_relist_and_rewatch(compacted: tuple[k8s.ApiClient, str, str]) -> None:
    client, namespace, since = compacted
    core = k8s.CoreV1Api(client)
    with pytest.raises(ApiException) as expired:
        for _ in k8s_watch.Watch().stream(core.list_namespaced_config_map, namespace, resource_version=since,
                                          _request_timeout=30):
            pytest.fail("no event may arrive from a compacted revision")
    assert expired.value.status == 410
    assert "Expired" in str(expired.value.reason)

    relisted = core.list_namespaced_config_map(namespace)
    assert sorted(c.metadata.name for c in relisted.items) == sorted(["old", *(f"cm-{i}" for i in range(12))])
    core.patch_namespaced_config_map("old", namespace, {"data": {"after": "relist"}})
    watcher = k8s_watch.Watch()
    for event in watcher.stream(core.list_namespaced_config_map, namespace,
                                resource_version=relisted.metadata.resource_version, timeout_seconds=20):
        assert (event["type"], event["object"].metadata.name) == ("MODIFIED", "old")
        assert event["object"].data == {"after": "relist"}
        watcher.stop()
    assert watcher.resource_version is not None


def test_lightkube_watch_on_error_retry_relists(compacting_plane: ControlPlane,
                                                compacted: tuple[k8s.ApiClient, str, str]) -> None:
    _, namespace, since = compacted
    expected = {"old", *(f"cm-{i}" for i in range(12))}
    with Client(config=KubeConfig.from_file(compacting_plane.kubeconfig), field_manager="e2e") as light:
        with pytest.raises(ApiError) as expired:
            next(iter(light.watch(ConfigMap, namespace=namespace, resource_version=since)))
        assert expired.value.status.code == 410 and expired.value.status.reason == "Expired"

        added: set[str] = set()
        stream = light.watch(ConfigMap, namespace=namespace, resource_version=since, on_error=on_error_retry)
        for kind, obj in stream:
            assert obj.metadata is not None and obj.metadata.name
            if kind == "ADDED":
                added.add(obj.metadata.name)
            if added == expected:
                break
        light.patch(ConfigMap, "cm-3", {"data": {"k": "v"}}, namespace=namespace)
        kind, obj = next(iter(stream))
        assert (kind, obj.metadata.name if obj.metadata else None) == ("MODIFIED", "cm-3")
