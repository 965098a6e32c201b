"""KubeClient's direct path (lightkube builds and decodes, aiohttp carries) against a real local TLS server.

Nothing is mocked: an aiohttp.web server on 127.0.0.1 answers like an API server from replies queued by each
test and records exactly what arrived (raw path and query, headers, body, which connection, client certificate).
Lists and watches still go through httpx2; the headers httpx2 adds (Accept-Encoding) tell the two paths apart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from lightkube import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.operators import in_, not_equal
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.types import CascadeType, PatchType

from kplane.runtime.client import DEFAULT_FIELD_MANAGER, KubeClient, client_from_kubeconfig, query_string
from tests.unit.tlscerts import Certificate, free_port, localhost_certificate, self_signed

# Long enough never to fire in a passing test, short enough that a broken one fails instead of hanging.
GUARD_S = 5.0
TOKEN = "s3cret"
CM_PATH = "/api/v1/namespaces/default/configmaps"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: tuple[str, int]
    client_cn: str | None

    def header_names(self) -> set[str]:
        return {name.lower() for name, _ in self.headers}

    def header(self, name: str) -> str:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) == 1, f"{name}: {values}"
        return values[0]

    def pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True, strict_parsing=bool(self.query))


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str | None = "application/json"


@dataclass
class ApiServer:
    """Answers each request with the next queued reply (a 599 if none is queued, so a test cannot pass by
    accident); `?watch=true` streams `events`; a path ending in /slow waits for `release`."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def reply(self, obj: object, status: int = 200) -> None:
        self.replies.append(Reply(status, json.dumps(obj).encode()))

    @property
    def connections(self) -> int:
        return len({s.peer for s in self.seen})


def configmap_json(name: str, rv: str = "7", data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv, "uid": f"uid-{name}"},
        "data": data or {"k": "v"},
    }


def status_json(code: int, reason: str, message: str, status: str = "Failure") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status, "message": message,
            "reason": reason, "code": code}


def _client_cn(request: web.Request) -> str | None:
    cert = request.transport.get_extra_info("peercert") if request.transport else None
    if not cert:
        return None
    return next((v for rdn in cert["subject"] for k, v in rdn if k == "commonName"), None)


def build_app(server: ApiServer) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        path, _, query = request.raw_path.partition("?")
        peer = request.transport.get_extra_info("peername")[:2] if request.transport else ("", 0)
        headers = [(k.decode(), v.decode()) for k, v in request.raw_headers]
        server.seen.append(Seen(request.method, path, query, headers, await request.read(), peer, _client_cn(request)))
        if request.query.get("watch") == "true":
            return await stream_events(request, server.events)
        if path.endswith("/slow"):
            await asyncio.wait_for(server.release.wait(), GUARD_S)
        reply = server.replies.pop(0) if server.replies else Reply(599, b"no reply queued", "text/plain")
        headers_out = {"Content-Type": reply.content_type} if reply.content_type else {}
        return web.Response(status=reply.status, body=reply.body, headers=headers_out)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def stream_events(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for event in events:
        await response.write(json.dumps(event).encode() + b"\n")
    await response.write_eof()
    return response


# --- certificates and kubeconfigs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCert:
    cert_pem: bytes
    key_pem: bytes


def client_certificate(common_name: str) -> ClientCert:
    """A self-signed client certificate the server trusts directly, as a kubeconfig's client-certificate-data."""
    cert, key_pem = self_signed(common_name)
    return ClientCert(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, user: dict[str, str]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kplane",
        "clusters": [{"name": "kplane", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "kplane", "context": {"cluster": "kplane", "user": "admin", "namespace": "default"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return localhost_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def client_cert() -> ClientCert:
    return client_certificate("system:kplane-controllers")


async def start(server: ApiServer, tls: ssl.SSLContext) -> web.AppRunner:
    runner = web.AppRunner(build_app(server), handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    server.url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    return runner


@pytest.fixture
async def server(certificate: Certificate, client_cert: ClientCert) -> AsyncIterator[ApiServer]:
    tls = certificate.server_context()
    # Asks for a client certificate without requiring one, as kube-apiserver does with --client-ca-file.
    tls.verify_mode = ssl.CERT_OPTIONAL
    tls.load_verify_locations(cadata=client_cert.cert_pem.decode())
    api = ApiServer()
    runner = await start(api, tls)
    yield api
    api.release.set()
    await runner.cleanup()


MakeClient = Callable[..., Awaitable[KubeClient]]


@pytest.fixture
async def make_client(tmp_path: Path, certificate: Certificate) -> AsyncIterator[MakeClient]:
    made: list[KubeClient] = []

    async def make(server_url: str, *, user: dict[str, str] | None = None, timeout_s: float = GUARD_S) -> KubeClient:
        path = write_kubeconfig(tmp_path / f"kubeconfig{len(made)}", server_url, certificate.cert_pem,
                                {"token": TOKEN} if user is None else user)
        client = client_from_kubeconfig(path, timeout_s=timeout_s)
        assert isinstance(client, KubeClient)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
async def kube(server: ApiServer, make_client: MakeClient) -> KubeClient:
    return await make_client(server.url)


def assert_direct(seen: Seen, *, body: bool) -> None:
    """The headers of the direct path, and only those: aiohttp adds Host and Content-Length (0 on a DELETE without
    a body, which an API server reads as no DeleteOptions), nothing else."""
    expected = {"host", "accept", "user-agent", "authorization"}
    if body:
        expected |= {"content-type", "content-length"}
    elif seen.method == "DELETE":
        expected.add("content-length")
        assert seen.header("Content-Length") == "0"
    assert seen.header_names() == expected
    assert seen.header("Authorization") == f"Bearer {TOKEN}"
    assert seen.header("Accept") == "application/json"
    assert seen.header("User-Agent").startswith("python-httpx")


# --- the direct path: requests and decoded answers ----------------------------------------------------------------


async def test_get(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("x", rv="42", data={"a": "1"}))
    got = await kube.get(ConfigMap, "x")
    assert isinstance(got, ConfigMap)
    assert got.metadata is not None
    assert (got.metadata.name, got.metadata.resourceVersion, got.metadata.uid) == ("x", "42", "uid-x")
    assert got.data == {"a": "1"}
    [seen] = server.seen
    assert (seen.method, seen.path, seen.query, seen.body) == ("GET", f"{CM_PATH}/x", "", b"")
    assert_direct(seen, body=False)


async def test_get_in_another_namespace_and_cluster_scoped(kube: KubeClient, server: ApiServer) -> None:
    server.reply({**configmap_json("x"), "metadata": {"name": "x", "namespace": "other"}})
    server.reply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    assert (await kube.get(ConfigMap, "x", namespace="other")).metadata.namespace == "other"  # type: ignore[union-attr]
    ns = await kube.get(Namespace, "other")
    assert isinstance(ns, Namespace)
    assert [s.path for s in server.seen] == ["/api/v1/namespaces/other/configmaps/x", "/api/v1/namespaces/other"]


async def test_create(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("new", rv="1", data={"k": "v"}), status=201)
    obj = ConfigMap(metadata=ObjectMeta(name="new"), data={"k": "v"})
    created = await kube.create(obj)
    assert isinstance(created, ConfigMap)
    assert created.metadata is not None and created.metadata.resourceVersion == "1"
    [seen] = server.seen
    assert (seen.method, seen.path, seen.query) == ("POST", CM_PATH, f"fieldManager={DEFAULT_FIELD_MANAGER}")
    assert_direct(seen, body=True)
    assert seen.header("Content-Type") == "application/json"
    assert seen.header("Content-Length") == str(len(seen.body))
    # lightkube fills in apiVersion and kind.
    assert json.loads(seen.body) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"},
                                     "data": {"k": "v"}}


async def test_create_with_field_manager_and_dry_run(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("new"), status=201)
    await kube.create(ConfigMap(metadata=ObjectMeta(name="new", namespace="ns1")), field_manager="me", dry_run=True)
    [seen] = server.seen
    assert seen.path == "/api/v1/namespaces/ns1/configmaps"
    assert seen.pairs() == [("fieldManager", "me"), ("dryRun", "All")]
    assert seen.query == "fieldManager=me&dryRun=All"


@pytest.mark.parametrize(
    ("patch_type", "patch", "content_type"),
    [
        pytest.param(PatchType.MERGE, {"data": {"k": None}}, "application/merge-patch+json", id="merge"),
        pytest.param(PatchType.STRATEGIC, {"metadata": {"labels": {"a": "b"}}},
                     "application/strategic-merge-patch+json", id="strategic"),
        pytest.param(PatchType.JSON, [{"op": "replace", "path": "/data/k", "value": "w"}],
                     "application/json-patch+json", id="json"),
    ],
)
async def test_patch_types(kube: KubeClient, server: ApiServer, patch_type: PatchType, patch: Any,
                           content_type: str) -> None:
    server.reply(configmap_json("x", rv="8", data={"k": "w"}))
    patched = await kube.patch(ConfigMap, "x", patch, patch_type=patch_type)
    assert isinstance(patched, ConfigMap)
    assert patched.data == {"k": "w"}
    [seen] = server.seen
    assert (seen.method, seen.path, seen.query) == ("PATCH", f"{CM_PATH}/x", f"fieldManager={DEFAULT_FIELD_MANAGER}")
    assert_direct(seen, body=True)
    assert seen.header("Content-Type") == content_type
    assert json.loads(seen.body) == patch


@pytest.mark.parametrize(
    ("kwargs", "query"),
    [
        pytest.param({}, f"fieldManager={DEFAULT_FIELD_MANAGER}", id="defaults"),
        pytest.param({"field_manager": "mine"}, "fieldManager=mine", id="field-manager"),
        pytest.param({"force": True}, f"force=true&fieldManager={DEFAULT_FIELD_MANAGER}", id="force"),
        pytest.param({"force": True, "dry_run": True, "field_manager": "mine"},
                     "force=true&fieldManager=mine&dryRun=All", id="all"),
    ],
)
async def test_server_side_apply_parameters(kube: KubeClient, server: ApiServer, kwargs: dict[str, Any],
                                            query: str) -> None:
    server.reply(configmap_json("x"))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}
    await kube.patch(ConfigMap, "x", body, patch_type=PatchType.APPLY, **kwargs)
    [seen] = server.seen
    assert seen.query == query
    assert seen.header("Content-Type") == "application/apply-patch+yaml"
    assert json.loads(seen.body) == body


async def test_force_is_dropped_for_other_patch_types(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("x"))
    await kube.patch(ConfigMap, "x", {"data": {}}, patch_type=PatchType.MERGE, force=True, dry_run=True)
    assert server.seen[0].query == f"dryRun=All&fieldManager={DEFAULT_FIELD_MANAGER}"


async def test_replace(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("x", rv="9", data={"k": "new"}))
    obj = ConfigMap(metadata=ObjectMeta(name="x", resourceVersion="8"), data={"k": "new"})
    replaced = await kube.replace(obj, dry_run=True)
    assert replaced.metadata is not None and replaced.metadata.resourceVersion == "9"
    [seen] = server.seen
    assert (seen.method, seen.path) == ("PUT", f"{CM_PATH}/x")
    assert seen.query == f"dryRun=All&fieldManager={DEFAULT_FIELD_MANAGER}"
    assert_direct(seen, body=True)
    assert seen.header("Content-Type") == "application/json"
    assert json.loads(seen.body)["metadata"] == {"name": "x", "resourceVersion": "8"}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(status_json(200, "", "", status="Success"), id="status"),
        pytest.param(configmap_json("x"), id="object-with-finalizers-pending"),
    ],
)
async def test_delete_returns_none(kube: KubeClient, server: ApiServer, answer: dict[str, Any]) -> None:
    server.reply(answer)
    # lightkube annotates delete as returning nothing; that is what is checked here.
    assert await kube.delete(ConfigMap, "x") is None  # type: ignore[func-returns-value]
    [seen] = server.seen
    assert (seen.method, seen.path, seen.query, seen.body) == ("DELETE", f"{CM_PATH}/x", "", b"")
    assert_direct(seen, body=False)


async def test_delete_parameters(kube: KubeClient, server: ApiServer) -> None:
    server.reply(status_json(200, "", "", status="Success"))
    await kube.delete(ConfigMap, "x", grace_period=0, cascade=CascadeType.FOREGROUND, dry_run=True)
    assert server.seen[0].query == "gracePeriodSeconds=0&propagationPolicy=Foreground&dryRun=All"


async def test_path_prefix_in_the_server_url_is_kept(server: ApiServer, make_client: MakeClient) -> None:
    kube = await make_client(server.url + "/prefix")
    server.reply(configmap_json("x"))
    server.reply(configmap_json("x"))
    server.reply({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"}, "items": []})
    await kube.get(ConfigMap, "x")
    await kube.patch(ConfigMap, "x", {"data": {}})
    assert [item async for item in kube.list(ConfigMap)] == []
    assert [s.path for s in server.seen] == [f"/prefix{CM_PATH}/x"] * 2 + [f"/prefix{CM_PATH}"]


async def test_sequential_direct_calls_reuse_one_connection(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("x"))
    server.reply(configmap_json("x"), status=201)
    server.reply(status_json(404, "NotFound", 'configmaps "y" not found'), status=404)
    server.reply(configmap_json("x"))
    server.reply(configmap_json("x"))
    server.reply(status_json(200, "", "", status="Success"))
    await kube.get(ConfigMap, "x")
    await kube.create(ConfigMap(metadata=ObjectMeta(name="x")))
    with pytest.raises(ApiError):
        await kube.get(ConfigMap, "y")
    await kube.patch(ConfigMap, "x", {"data": {}})
    await kube.replace(ConfigMap(metadata=ObjectMeta(name="x")))
    await kube.delete(ConfigMap, "x")
    assert len(server.seen) == 6
    assert server.connections == 1


# --- errors ---------------------------------------------------------------------------------------------------------


async def test_not_found(kube: KubeClient, server: ApiServer) -> None:
    server.reply(status_json(404, "NotFound", 'configmaps "x" not found'), status=404)
    with pytest.raises(ApiError) as caught:
        await kube.get(ConfigMap, "x")
    assert (caught.value.status.code, caught.value.status.reason) == (404, "NotFound")
    assert caught.value.status.message == 'configmaps "x" not found'
    assert str(caught.value) == 'configmaps "x" not found'
    assert caught.value.response.status_code == 404
    assert caught.value.request.url.path == f"{CM_PATH}/x"


async def test_already_exists(kube: KubeClient, server: ApiServer) -> None:
    server.reply(status_json(409, "AlreadyExists", 'configmaps "x" already exists'), status=409)
    with pytest.raises(ApiError) as caught:
        await kube.create(ConfigMap(metadata=ObjectMeta(name="x")))
    assert (caught.value.status.code, caught.value.status.reason) == (409, "AlreadyExists")
    assert caught.value.status.message == 'configmaps "x" already exists'


async def test_conflict_on_replace(kube: KubeClient, server: ApiServer) -> None:
    message = ('Operation cannot be fulfilled on configmaps "x": the object has been modified; '
               "please apply your changes to the latest version and try again")
    server.reply(status_json(409, "Conflict", message), status=409)
    with pytest.raises(ApiError) as caught:
        await kube.replace(ConfigMap(metadata=ObjectMeta(name="x", resourceVersion="1")))
    assert (caught.value.status.code, caught.value.status.reason, caught.value.status.message) == (
        409, "Conflict", message)


async def test_invalid_carries_its_causes(kube: KubeClient, server: ApiServer) -> None:
    message = 'ConfigMap "x" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of ...'
    invalid = status_json(422, "Invalid", message)
    invalid["details"] = {"name": "x", "kind": "configmaps",
                          "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value", "field": "data[a b]"}]}
    server.reply(invalid, status=422)
    with pytest.raises(ApiError) as caught:
        await kube.patch(ConfigMap, "x", {"data": {"a b": "1"}}, patch_type=PatchType.MERGE)
    status = caught.value.status
    assert (status.code, status.reason, status.message) == (422, "Invalid", message)
    assert status.details is not None and status.details.causes is not None
    assert [c.field for c in status.details.causes] == ["data[a b]"]


async def test_server_error_without_json_is_an_http_status_error(kube: KubeClient, server: ApiServer) -> None:
    """lightkube makes an ApiError only of a bare application/json answer; anything else stays httpx2's."""
    server.replies.append(Reply(500, b"upstream broke", "text/plain"))
    with pytest.raises(httpx2.HTTPStatusError) as caught:
        await kube.get(ConfigMap, "x")
    assert not isinstance(caught.value, ApiError)
    assert caught.value.response.status_code == 500
    assert caught.value.response.text == "upstream broke"


async def test_status_json_with_a_charset_is_not_an_api_error(kube: KubeClient, server: ApiServer) -> None:
    """The same as lightkube's own path: it compares the Content-Type exactly."""
    server.replies.append(Reply(503, json.dumps(status_json(503, "ServiceUnavailable", "x")).encode(),
                                "application/json; charset=utf-8"))
    with pytest.raises(httpx2.HTTPStatusError) as caught:
        await kube.delete(ConfigMap, "x")
    assert not isinstance(caught.value, ApiError)
    assert caught.value.response.status_code == 503


async def test_connection_refused(make_client: MakeClient) -> None:
    kube = await make_client(f"https://127.0.0.1:{free_port()}")
    with pytest.raises(httpx2.ConnectError) as caught:
        await kube.get(ConfigMap, "x")
    assert caught.value.request.method == "GET"
    assert caught.value.request.url.path == f"{CM_PATH}/x"


async def test_read_timeout(server: ApiServer, make_client: MakeClient) -> None:
    kube = await make_client(server.url, timeout_s=0.2)
    with pytest.raises(httpx2.ReadTimeout) as caught:
        await kube.get(ConfigMap, "slow")
    assert caught.value.request.url.path == f"{CM_PATH}/slow"
    # The client is still usable afterwards.
    server.reply(configmap_json("x"))
    assert (await kube.get(ConfigMap, "x")).data == {"k": "v"}


async def test_undecodable_success_body_fails_loudly(kube: KubeClient, server: ApiServer) -> None:
    server.replies.append(Reply(200, b"<html>proxy page</html>", "text/html"))
    with pytest.raises(Exception, match=r"(?i)json"):
        await kube.get(ConfigMap, "x")


# --- lists and watches go through httpx2 on the same client -------------------------------------------------------


async def test_list_and_watch_take_httpx2(kube: KubeClient, server: ApiServer) -> None:
    server.reply({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
                  "items": [configmap_json("a"), configmap_json("b")]})
    server.reply(configmap_json("a"))
    server.events.extend({"type": "ADDED", "object": configmap_json(n, rv)} for n, rv in (("c", "11"), ("d", "12")))

    listed = kube.list(ConfigMap, labels={"app": "web"})
    assert [cm.metadata.name async for cm in listed] == ["a", "b"]  # type: ignore[union-attr]
    assert listed.resourceVersion == "10"
    await kube.get(ConfigMap, "a")
    seen_events: list[tuple[str, str | None]] = []
    async for event, obj in kube.watch(ConfigMap, resource_version="10"):
        seen_events.append((event, obj.metadata.name if obj.metadata else None))
        if len(seen_events) == 2:
            break
    assert seen_events == [("ADDED", "c"), ("ADDED", "d")]

    listing, direct, watching = server.seen
    assert (listing.path, listing.pairs()) == (CM_PATH, [("labelSelector", "app=web")])
    assert (watching.path, dict(watching.pairs())) == (CM_PATH, {"watch": "true", "resourceVersion": "10"})
    for through_httpx2 in (listing, watching):
        assert "accept-encoding" in through_httpx2.header_names()
        assert through_httpx2.header("Authorization") == f"Bearer {TOKEN}"
    assert "accept-encoding" not in direct.header_names()
    # Both paths identify themselves alike.
    assert direct.header("User-Agent") == listing.header("User-Agent")
    # One pool: the direct get reused the list's connection.
    assert listing.peer == direct.peer


async def test_list_selector_escaping_matches_query_string(kube: KubeClient, server: ApiServer) -> None:
    server.reply({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {}, "items": []})
    labels: dict[str, Any] = {"app": in_(["a", "b"]), "tier": not_equal("x y")}
    assert [cm async for cm in kube.list(ConfigMap, labels=labels)] == []
    selector = dict(server.seen[0].pairs())["labelSelector"]
    assert selector == "app in (a,b),tier!=x y"
    assert parse_qsl(query_string({"labelSelector": selector})[1:]) == [("labelSelector", selector)]


# --- other authentication -----------------------------------------------------------------------------------------


async def test_client_certificate_without_token_takes_the_direct_path(
    server: ApiServer, make_client: MakeClient, client_cert: ClientCert
) -> None:
    user = {"client-certificate-data": b64(client_cert.cert_pem), "client-key-data": b64(client_cert.key_pem)}
    kube = await make_client(server.url, user=user)
    server.reply(configmap_json("x"))
    server.reply(configmap_json("x"))
    await kube.get(ConfigMap, "x")
    await kube.patch(ConfigMap, "x", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
    for seen in server.seen:
        assert seen.client_cn == "system:kplane-controllers"
        assert "authorization" not in seen.header_names()
        assert "accept-encoding" not in seen.header_names()
    assert server.connections == 1


async def test_token_requests_carry_no_client_certificate(kube: KubeClient, server: ApiServer) -> None:
    server.reply(configmap_json("x"))
    await kube.get(ConfigMap, "x")
    assert server.seen[0].client_cn is None


async def test_basic_auth_takes_httpx2(server: ApiServer, make_client: MakeClient) -> None:
    kube = await make_client(server.url, user={"username": "ann", "password": "pw"})
    server.reply(configmap_json("x"))
    assert (await kube.get(ConfigMap, "x")).data == {"k": "v"}
    [seen] = server.seen
    assert seen.header("Authorization") == "Basic " + b64(b"ann:pw")
    assert "accept-encoding" in seen.header_names()


async def test_token_file_takes_httpx2(server: ApiServer, make_client: MakeClient, tmp_path: Path) -> None:
    """A token file may be rotated, so it is read by lightkube's own auth, not fixed at start-up."""
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    kube = await make_client(server.url, user={"tokenFile": str(token_file)})
    server.reply(configmap_json("x"))
    await kube.get(ConfigMap, "x")
    assert server.seen[0].header("Authorization") == "Bearer from-file"
    assert "accept-encoding" in server.seen[0].header_names()


# --- query_string -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, "", id="empty"),
        pytest.param({"watch": True, "allowWatchBookmarks": False}, "?watch=true&allowWatchBookmarks=false",
                     id="bools"),
        pytest.param({"limit": 500, "timeoutSeconds": 0}, "?limit=500&timeoutSeconds=0", id="ints"),
        pytest.param({"continue": None}, "?continue=", id="none"),
        pytest.param({"dryRun": ["All", "x"], "a": ("1",)}, "?dryRun=All&dryRun=x&a=1", id="lists-repeated"),
        pytest.param({"labelSelector": "app in (a,b),tier!=x y"},
                     "?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Dx%20y", id="selector"),
        pytest.param({"fieldSelector": "metadata.name=a+b&c#d/%41"},
                     "?fieldSelector=metadata.name%3Da%2Bb%26c%23d%2F%2541", id="reserved"),
        pytest.param({"fieldManager": "kubectl-client-side-apply"}, "?fieldManager=kubectl-client-side-apply",
                     id="unreserved-kept"),
        pytest.param({"x": "é✓"}, "?x=%C3%A9%E2%9C%93", id="utf8"),
    ],
)
def test_query_string(params: dict[str, Any], expected: str) -> None:
    assert query_string(params) == expected


def test_query_string_of_only_empty_lists_has_no_pairs() -> None:
    assert parse_qsl(query_string({"a": []}).lstrip("?")) == []


_values = st.one_of(st.text(), st.booleans(), st.none(), st.integers(), st.lists(st.text(), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1), _values, max_size=4))
def test_query_string_decodes_as_httpx2s_does(params: dict[str, Any]) -> None:
    """Whatever the encoding details (%20 or +), a server must read the same pairs from both."""
    ours = parse_qsl(query_string(params).lstrip("?"), keep_blank_values=True)
    theirs = parse_qsl(httpx2.Request("GET", "https://h/p", params=params).url.query.decode(), keep_blank_values=True)
    assert ours == theirs
