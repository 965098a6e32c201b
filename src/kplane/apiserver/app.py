"""The ASGI application: authentication, routing to discovery/OpenAPI/health/resources, and errors.

A raw ASGI callable rather than a web framework: Kubernetes URLs are parsed against the live registry
(CRDs appear at run time), responses are mostly pre-encoded JSON, and watches stream. Every failure leaves
as a ``Status`` body; nothing raised inside a handler reaches the client as a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kplane.api import status
from kplane.apiserver import codec, discovery
from kplane.apiserver.context import RequestContext, Response
from kplane.apiserver.handlers import ResourceService
from kplane.apiserver.metrics import ServerMetrics
from kplane.apiserver.openapi_cache import CrdSchemas, OpenAPICache
from kplane.apiserver.registry import Registry
from kplane.apiserver.request import Query, parse_resource_path, split_path
from kplane.apiserver.scale import ScaleService
from kplane.apiserver.tokens import ServiceAccountTokens
from kplane.apiserver.watch import serve_watch
from kplane.versions.profile import VersionProfile

log = logging.getLogger("kplane.apiserver")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version"}
VERB_METHODS = {"get": "get", "list": "list", "create": "create", "update": "update", "patch": "patch",
                "delete": "delete", "deletecollection": "delete_collection"}
"""The ResourceService method serving each verb, looked up per request instead of a dict built per request."""
VERB_BY_METHOD = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def warning_header(text: str) -> bytes:
    """A ``Warning`` header value (RFC 7234 §5.5) as apimachinery's ``NewWarningHeader`` writes it: code 299,
    agent ``-``, the text as a quoted-string, so quotes and backslashes in it are escaped (``unknown field
    "spec.x"`` must not end the string early, or clients drop the warning)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'.encode()


class ApiApp:
    """Routes one HTTP request; owns nothing but references to the server's parts."""

    def __init__(self, *, service: ResourceService, registry: Registry, profile: VersionProfile,
                 token: str, metrics: ServerMetrics, version_info: dict[str, Any],
                 crd_schemas: CrdSchemas, tokens: ServiceAccountTokens | None = None) -> None:
        self.service = service
        self.registry = registry
        self.profile = profile
        self.token = token.encode()
        self.metrics = metrics
        self.version_info = version_info
        self.openapi = OpenAPICache(registry, profile.minor, crd_schemas)
        self.scale = ScaleService(service)
        self.ready = True
        self.stopping = asyncio.Event()
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        verb, resource, code = "unknown", "", 500
        try:
            if not self._authenticated(scope["path"], headers):
                raise status.StatusError(401, "Unauthorized", "Unauthorized")
            result = await self._route(scope, headers, receive, send)
            if result is None:  # streamed (watch)
                verb, resource, code = "watch", "", 200
                return
            response, verb, resource = result
            code = response.status
            await self._send(send, response)
        except status.StatusError as err:
            code = err.code
            await self._send(send, Response(err.code, err.to_status()))
        except Exception as err:  # the last line of defence: a Status, never a traceback
            log.exception("internal error serving %s %s", scope.get("method"), scope.get("path"))
            code = 500
            await self._send(send, Response(500, status.internal(str(err) or type(err).__name__).to_status()))
        finally:
            self.metrics.observe(verb, resource, code, time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authenticated(self, path: str, headers: dict[str, str]) -> bool:
        if path.rstrip("/") in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return True
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return False
        presented = auth[7:].strip()
        if hmac.compare_digest(presented.encode(), self.token):
            return True
        return self.tokens is not None and self.tokens.authenticate(presented) is not None

    async def _send(self, send: Send, response: Response) -> None:
        body = response.raw if response.raw is not None else orjson.dumps(response.body)
        headers = [(b"content-type", response.content_type.encode()),
                   (b"content-length", str(len(body)).encode()), *response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > codec.MAX_REQUEST_BYTES:
                raise codec.too_large(codec.MAX_REQUEST_BYTES)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _route(self, scope: Scope, headers: dict[str, str], receive: Receive,
                     send: Send) -> tuple[Response, str, str] | None:
        method = scope["method"]
        path = scope["path"]
        parts = split_path(path)
        if not parts:
            return Response(200, {"paths": sorted(self._root_paths())}), "get", "/"
        head = parts[0]
        if head in ("healthz", "livez", "readyz"):
            ok = self.ready or head == "livez"
            return Response(200 if ok else 500, raw=b"ok" if ok else b"not ready", content_type="text/plain"), \
                "get", head
        if head == "version" and len(parts) == 1:
            return Response(200, self.version_info), "get", "version"
        if head == "metrics" and len(parts) == 1:
            body, ctype = self.metrics.render()
            return Response(200, raw=body, content_type=ctype), "get", "metrics"
        if head == "openapi":
            return self.openapi.serve(parts, Query.parse(scope.get("query_string", b""))), "get", "openapi"
        if head in ("api", "apis"):
            if method != "GET" and len(parts) <= 3 and not self._is_resource_path(parts):
                raise status.method_not_allowed()
            found = self._discovery(parts, headers.get("accept", ""))
            if found is not None:
                return found, "get", "discovery"
            return await self._resource(scope, parts, headers, receive, send)
        raise status.StatusError(404, "NotFound", "the server could not find the requested resource")

    def _root_paths(self) -> list[str]:
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/metrics", "/openapi/v3", "/version"]
        for group, version in self.registry.group_versions():
            if group:
                paths += [f"/apis/{group}", f"/apis/{group}/{version}"]
        return sorted(set(paths))

    def _is_resource_path(self, parts: list[str]) -> bool:
        return (parts[0] == "api" and len(parts) >= 3) or (parts[0] == "apis" and len(parts) >= 4)

    def _discovery(self, parts: list[str], accept: str) -> Response | None:
        resources = self.registry.all()
        if parts in (["api"], ["apis"]):
            form = discovery.negotiate(accept)
            if form is None:
                raise status.StatusError(406, "NotAcceptable", "only the following media types are accepted: "
                                         "application/json, application/yaml, application/vnd.kubernetes.protobuf")
            if form.aggregated:
                body = discovery.aggregated_discovery(resources, core=parts == ["api"], form=form)
                return Response(200, body, content_type=form.content_type)
            if parts == ["api"]:
                return Response(200, discovery.api_versions())
            return Response(200, discovery.api_group_list(resources))
        if parts[0] == "api" and len(parts) == 2:
            found = discovery.api_resource_list(resources, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            found = discovery.api_group(resources, parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            found = discovery.api_resource_list(resources, parts[1], parts[2])
        else:
            return None
        if found is None:
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        return Response(200, found)

    async def _resource(self, scope: Scope, parts: list[str], headers: dict[str, str], receive: Receive,
                        send: Send) -> tuple[Response, str, str] | None:
        path = parse_resource_path(parts, self.registry.is_namespaced)
        if path is None or not path.plural:
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        rtype = self.registry.resolve(path.group, path.version, path.plural)
        if rtype is None:
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        if rtype.namespaced and path.namespace is None and path.name:
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        method = scope["method"]
        query = Query.parse(scope.get("query_string", b""))
        body = b"" if method == "GET" else await self._read_body(receive)
        ctx = RequestContext(method=method, path=path, rtype=rtype, query=query, headers=headers, body=body,
                             user_agent=headers.get("user-agent", ""))
        verb = self._verb(ctx)
        self._check_subresource(ctx, verb)
        if verb == "watch":
            await serve_watch(self.service, ctx, send, receive, stopping=self.stopping)
            return None
        handler = getattr(self.service, VERB_METHODS[verb])
        if path.subresource == "binding":
            handler = self.service.bind
        if path.subresource == "token":
            handler = self._token_request
        if path.subresource == "scale":
            handler = {"get": self.scale.get, "update": self.scale.update, "patch": self.scale.patch}[verb]
        response = await handler(ctx)
        if ctx.warnings:
            response.headers.extend((b"warning", warning_header(w)) for w in ctx.warnings)
        return response, verb, rtype.plural

    async def _token_request(self, ctx: RequestContext) -> Response:
        if self.tokens is None:
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        account = self.service._current(ctx)
        request = codec.decode_object(ctx.body, ctx.content_type)
        return Response(201, self.tokens.issue(ctx.path.namespace or "", account, request))

    @staticmethod
    def _verb(ctx: RequestContext) -> str:
        method = ctx.method
        collection = not ctx.path.name
        if method == "GET":
            if ctx.query.flag("watch"):
                return "watch"
            return "list" if collection else "get"
        if method == "POST":
            if not collection and ctx.path.subresource not in ("binding", "token"):
                raise status.method_not_allowed()
            return "create"
        if method == "DELETE":
            return "deletecollection" if collection else "delete"
        if method in ("PUT", "PATCH"):
            if collection:
                raise status.method_not_allowed()
            return "update" if method == "PUT" else "patch"
        raise status.method_not_allowed()

    @staticmethod
    def _check_subresource(ctx: RequestContext, verb: str) -> None:
        sub = ctx.path.subresource
        if not sub:
            if verb not in ctx.rtype.verbs and not (verb == "watch" and "list" in ctx.rtype.verbs):
                raise status.method_not_allowed()
            return
        if sub not in ctx.rtype.subresources or sub not in ("status", "scale", "finalize", "binding", "token"):
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        if sub in ("binding", "token"):
            if verb != "create":
                raise status.method_not_allowed()
            return
        if verb not in ("get", "update", "patch"):
            raise status.method_not_allowed()
        if sub == "finalize" and verb != "update":
            raise status.method_not_allowed()
