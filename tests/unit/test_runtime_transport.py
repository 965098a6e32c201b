"""The aiohttp-backed httpx2 transport, driven against real local servers (plain HTTP and TLS).

Nothing is mocked: an aiohttp.web server on 127.0.0.1 records what arrives (headers, bodies, which connection),
and a raw asyncio server misbehaves where aiohttp.web would not (closing half way through a body).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from lightkube import ApiError
from lightkube.resources.core_v1 import ConfigMap

from kplane.runtime.client import client_from_kubeconfig
from kplane.runtime.transport import AiohttpTransport
from tests.unit.tlscerts import Certificate, free_port, localhost_certificate, self_signed

# Long enough never to fire in a passing test, short enough that a broken one fails instead of hanging.
GUARD_S = 5.0


@dataclass
class Served:
    """What the test server saw, and the events its handlers wait on."""

    peers: list[tuple[str, int]] = field(default_factory=list)
    proceed: asyncio.Event = field(default_factory=asyncio.Event)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def connections(self) -> int:
        return len(set(self.peers))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return localhost_certificate(tmp_path_factory.mktemp("tls"))


# --- the test server ---------------------------------------------------------------------------------------------


def build_app(served: Served) -> web.Application:
    routes = web.RouteTableDef()

    @web.middleware
    async def record_peer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        served.peers.append(request.transport.get_extra_info("peername")[:2])  # type: ignore[union-attr]
        return await handler(request)

    @routes.route("*", "/echo")
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "query": request.query_string,
                "headers": [[k.decode(), v.decode()] for k, v in request.raw_headers],
                "body": body.decode(),
            },
            status=int(request.headers.get("X-Want-Status", "200")),
            headers={"X-Reply": "one", "Set-Cookie": "a=1"},
        )

    @routes.get("/multi")
    async def multi(request: web.Request) -> web.Response:
        response = web.Response(status=201, text="made")
        response.headers.add("X-Multi", "a")
        response.headers.add("X-Multi", "b")
        return response

    @routes.get("/gzip")
    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"kind": "Status"}' * 100),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    @routes.get("/watch")
    async def watch(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"type": "ADDED"}\n')
        await asyncio.wait_for(served.proceed.wait(), GUARD_S)
        await response.write(b'{"type": "MODIFIED"}\n{"type": "DELETED"}\n')
        await response.write_eof()
        return response

    @routes.get("/endless")
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for _ in range(int(GUARD_S / 0.01)):
                await response.write(b'{"type": "BOOKMARK"}\n')
                await asyncio.sleep(0.01)
        except (ConnectionError, asyncio.CancelledError):
            served.client_gone.set()
            raise
        return response

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(served.finish.wait(), GUARD_S)
        return web.Response(text="late")

    @routes.get("/stall")
    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first\n")
        await asyncio.wait_for(served.finish.wait(), GUARD_S)
        return response

    @routes.get("/api/v1/namespaces/default/configmaps/x")
    async def configmap(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return api_json(status(401, "Unauthorized", "Unauthorized"), status=401)
        return api_json(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": "default", "resourceVersion": "7"},
                "data": {"k": "v"},
            }
        )

    @routes.get("/api/v1/namespaces/default/configmaps/missing")
    async def missing(request: web.Request) -> web.Response:
        return api_json(status(404, "NotFound", 'configmaps "missing" not found'), status=404)

    @routes.get("/api/v1/namespaces/default/configmaps")
    async def watch_configmaps(request: web.Request) -> web.StreamResponse:
        assert request.query.get("watch") == "true"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for rv, name in ((8, "a"), (9, "b")):
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "resourceVersion": str(rv)}}
            await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
        await asyncio.wait_for(served.finish.wait(), GUARD_S)
        return response

    app = web.Application(middlewares=[record_peer])
    app.add_routes(routes)
    return app


def api_json(obj: object, status: int = 200) -> web.Response:
    """JSON with the bare Content-Type the API server sends: lightkube raises ApiError only for exactly that."""
    return web.Response(body=json.dumps(obj).encode(), status=status, headers={"Content-Type": "application/json"})


def status(code: int, reason: str, message: str) -> dict[str, object]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}


async def start_server(served: Served, tls: ssl.SSLContext | None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(served), handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"{'https' if tls else 'http'}://127.0.0.1:{port}"


@pytest.fixture
def served() -> Served:
    return Served()


@pytest.fixture
async def http_url(served: Served) -> AsyncIterator[str]:
    runner, url = await start_server(served, None)
    yield url
    served.finish.set()
    served.proceed.set()
    await runner.cleanup()


@pytest.fixture
async def https_url(served: Served, certificate: Certificate) -> AsyncIterator[str]:
    runner, url = await start_server(served, certificate.server_context())
    yield url
    served.finish.set()
    await runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(ssl.create_default_context(), max_connections=8)
    yield transport
    await transport.aclose()


@pytest.fixture
async def client(http_url: str, transport: AiohttpTransport) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=transport, base_url=http_url, timeout=GUARD_S) as client:
        yield client


def received_headers(response: httpx2.Response) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in response.json()["headers"]]


# --- requests and responses --------------------------------------------------------------------------------------


async def test_post_json_arrives_with_the_headers_as_given(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/echo",
        params={"fieldManager": "me"},
        json={"kind": "ConfigMap"},
        headers={"Authorization": "Bearer tok", "X-Trace": "1"},
    )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["query"] == "fieldManager=me"
    assert json.loads(echoed["body"]) == {"kind": "ConfigMap"}
    sent = [(k.lower(), v) for k, v in response.request.headers.multi_items()]
    assert received_headers(response) == sent
    assert ("authorization", "Bearer tok") in sent
    assert ("content-type", "application/json") in sent


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
async def test_other_methods_carry_their_body_and_content_type(client: httpx2.AsyncClient, method: str) -> None:
    response = await client.request(
        method, "/echo", content=b'{"data": {"k": null}}', headers={"Content-Type": "application/merge-patch+json"}
    )
    echoed = response.json()
    assert echoed["method"] == method
    assert echoed["body"] == '{"data": {"k": null}}'
    assert ("content-type", "application/merge-patch+json") in received_headers(response)


async def test_aiohttp_adds_no_headers_of_its_own(client: httpx2.AsyncClient) -> None:
    """httpx2's request is the whole request: aiohttp must not fill in User-Agent, Accept, Accept-Encoding or a
    Content-Type for a body sent without one."""
    request = client.build_request("POST", "/echo", content=b"raw bytes")
    for name in ("User-Agent", "Accept", "Accept-Encoding"):
        del request.headers[name]
    response = await client.send(request)
    received = received_headers(response)
    names = [name for name, _ in received]
    assert "user-agent" not in names
    assert "accept" not in names
    assert "accept-encoding" not in names
    assert "content-type" not in names
    assert received == [(k.lower(), v) for k, v in request.headers.multi_items()]
    assert response.json()["body"] == "raw bytes"


async def test_get_sends_no_body(client: httpx2.AsyncClient) -> None:
    response = await client.get("/echo")
    echoed = response.json()
    assert echoed["body"] == ""
    names = [name for name, _ in received_headers(response)]
    assert "content-length" not in names
    assert "transfer-encoding" not in names


async def test_status_and_headers_come_back_as_sent(client: httpx2.AsyncClient) -> None:
    response = await client.get("/echo", headers={"X-Want-Status": "409"})
    assert response.status_code == 409
    assert response.headers["X-Reply"] == "one"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.http_version == "HTTP/1.1"

    multi = await client.get("/multi")
    assert multi.status_code == 201
    assert multi.text == "made"
    assert multi.headers.get_list("X-Multi") == ["a", "b"]


async def test_aiohttp_keeps_no_cookies(client: httpx2.AsyncClient) -> None:
    """Cookies are httpx2's business: with its jar emptied, nothing may send the server's cookie back."""
    first = await client.get("/echo")
    assert first.headers["Set-Cookie"] == "a=1"
    client.cookies.clear()
    second = await client.get("/echo")
    assert "cookie" not in [name for name, _ in received_headers(second)]


async def test_gzip_body_is_decoded_by_httpx2(client: httpx2.AsyncClient) -> None:
    response = await client.get("/gzip")
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.content == b'{"kind": "Status"}' * 100
    assert int(response.headers["Content-Length"]) < len(response.content)


# --- streaming ---------------------------------------------------------------------------------------------------


async def test_chunked_stream_yields_lines_as_they_arrive(client: httpx2.AsyncClient, served: Served) -> None:
    async with client.stream("GET", "/watch") as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        lines = response.aiter_lines()
        # The server sends the rest only once the first line has been read here.
        assert await asyncio.wait_for(anext(lines), GUARD_S) == '{"type": "ADDED"}'
        served.proceed.set()
        rest = [line async for line in lines]
    assert rest == ['{"type": "MODIFIED"}', '{"type": "DELETED"}']


async def test_stopping_a_stream_half_way_closes_its_connection(client: httpx2.AsyncClient, served: Served) -> None:
    async with client.stream("GET", "/endless") as response:
        lines = response.aiter_lines()
        assert await asyncio.wait_for(anext(lines), GUARD_S) == '{"type": "BOOKMARK"}'
    await asyncio.wait_for(served.client_gone.wait(), GUARD_S)

    after = await client.get("/echo")
    assert after.status_code == 200
    # The abandoned connection still had a stream on it, so it must not have been reused.
    assert served.connections == 2


async def test_sequential_requests_reuse_one_connection(client: httpx2.AsyncClient, served: Served) -> None:
    for _ in range(5):
        assert (await client.get("/echo")).status_code == 200
    await client.post("/echo", json={"a": 1})
    async with client.stream("GET", "/gzip") as response:
        await response.aread()
    served.proceed.set()
    async with client.stream("GET", "/watch") as response:
        assert len([line async for line in response.aiter_lines()]) == 3
    await client.get("/echo")
    assert len(served.peers) == 9
    assert served.connections == 1


async def test_concurrent_requests_open_their_own_connections(client: httpx2.AsyncClient, served: Served) -> None:
    async with client.stream("GET", "/stall") as first:
        second = await client.get("/echo")
        assert second.status_code == 200
        served.finish.set()
        assert await first.aread() == b"first\n"
    assert served.connections == 2


# --- errors ------------------------------------------------------------------------------------------------------


async def test_connection_refused_is_a_connect_error(transport: AiohttpTransport) -> None:
    async with httpx2.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(httpx2.ConnectError) as caught:
            await client.get("/echo")
    assert caught.value.request.url.path == "/echo"


async def raw_server(reply: bytes) -> asyncio.Server:
    """Reads one request's head, writes `reply` and hangs up: a server that dies half way through."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="no-response"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10, id="short-body"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", id="cut-chunked"),
        pytest.param(b"not http at all\r\n\r\n", id="garbage"),
    ],
)
async def test_server_hanging_up_is_a_protocol_or_read_error(transport: AiohttpTransport, reply: bytes) -> None:
    server = await raw_server(reply)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=GUARD_S) as c:
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
                await c.get("/")
    finally:
        server.close()
        await server.wait_closed()


async def test_stream_cut_while_reading_lines_is_a_protocol_or_read_error(transport: AiohttpTransport) -> None:
    server = await raw_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n")
    port = server.sockets[0].getsockname()[1]
    try:
        client = httpx2.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=GUARD_S)
        async with client, client.stream("GET", "/") as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "line1"
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
                await anext(lines)
    finally:
        server.close()
        await server.wait_closed()


async def test_waiting_too_long_for_the_response_is_a_read_timeout(client: httpx2.AsyncClient) -> None:
    with pytest.raises(httpx2.ReadTimeout):
        await client.get("/slow", timeout=httpx2.Timeout(GUARD_S, read=0.2))


async def test_waiting_too_long_inside_the_body_is_a_read_timeout(client: httpx2.AsyncClient) -> None:
    async with client.stream("GET", "/stall", timeout=httpx2.Timeout(GUARD_S, read=0.2)) as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "first"
        with pytest.raises(httpx2.ReadTimeout):
            await anext(lines)


async def test_connection_works_after_a_timeout(client: httpx2.AsyncClient) -> None:
    with pytest.raises(httpx2.ReadTimeout):
        await client.get("/slow", timeout=httpx2.Timeout(GUARD_S, read=0.2))
    assert (await client.get("/echo")).status_code == 200


# --- TLS -----------------------------------------------------------------------------------------------------------


async def test_tls_with_a_trusted_certificate(https_url: str, certificate: Certificate, served: Served) -> None:
    transport = AiohttpTransport(certificate.client_context(), max_connections=4)
    async with httpx2.AsyncClient(transport=transport, base_url=https_url, timeout=GUARD_S) as client:
        first = await client.post("/echo", json={"x": 1})
        second = await client.get("/gzip")
    assert json.loads(first.json()["body"]) == {"x": 1}
    assert second.content.startswith(b'{"kind": "Status"}')
    assert served.connections == 1


async def test_tls_with_an_untrusted_certificate_is_a_connect_error(https_url: str, served: Served) -> None:
    transport = AiohttpTransport(ssl.create_default_context(), max_connections=4)
    async with httpx2.AsyncClient(transport=transport, base_url=https_url, timeout=GUARD_S) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get("/echo")
    assert served.peers == []


async def test_tls_for_a_name_the_certificate_does_not_hold(https_url: str, certificate: Certificate) -> None:
    transport = AiohttpTransport(certificate.client_context(), max_connections=4)
    wrong_name = https_url.replace("127.0.0.1", "127.0.0.2")
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=wrong_name, timeout=GUARD_S) as client:
            with pytest.raises(httpx2.ConnectError):
                await client.get("/echo")
    finally:
        await transport.aclose()


# --- closing -------------------------------------------------------------------------------------------------------


async def test_closing_twice_and_before_use_is_fine(http_url: str) -> None:
    unused = AiohttpTransport(ssl.create_default_context(), max_connections=1)
    await unused.aclose()
    await unused.aclose()

    transport = AiohttpTransport(ssl.create_default_context(), max_connections=1)
    async with httpx2.AsyncClient(transport=transport, base_url=http_url) as client:
        assert (await client.get("/echo")).status_code == 200
    await transport.aclose()
    await transport.aclose()


# --- through lightkube ---------------------------------------------------------------------------------------------


def write_kubeconfig(path: Path, server: str, ca_pem: bytes) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kplane",
        "clusters": [
            {
                "name": "kplane",
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": "admin", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "kplane", "context": {"cluster": "kplane", "user": "admin", "namespace": "default"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_lightkube_client_reads_and_watches_over_tls(
    tmp_path: Path, https_url: str, certificate: Certificate
) -> None:
    client = client_from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig", https_url, certificate.cert_pem))
    try:
        configmap = await client.get(ConfigMap, "x")
        assert configmap.metadata is not None
        assert configmap.metadata.resourceVersion == "7"
        assert configmap.data == {"k": "v"}

        with pytest.raises(ApiError) as caught:
            await client.get(ConfigMap, "missing")
        assert caught.value.status.code == 404
        assert caught.value.status.reason == "NotFound"
        assert caught.value.status.message == 'configmaps "missing" not found'

        seen: list[tuple[str, str]] = []
        async for event, obj in client.watch(ConfigMap, namespace="default"):
            assert obj.metadata is not None and obj.metadata.name is not None
            seen.append((event, obj.metadata.name))
            if len(seen) == 2:
                break
        assert seen == [("ADDED", "a"), ("ADDED", "b")]
    finally:
        await client.close()


async def test_lightkube_client_with_an_untrusted_server_fails_to_connect(
    tmp_path: Path, https_url: str, certificate: Certificate
) -> None:
    stranger, _ = self_signed("someone-else")
    ca_pem = stranger.public_bytes(serialization.Encoding.PEM)
    client = client_from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig", https_url, ca_pem))
    try:
        with pytest.raises(httpx2.ConnectError):
            await client.get(ConfigMap, "x")
    finally:
        await client.close()
