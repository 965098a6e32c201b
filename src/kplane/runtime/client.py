"""Build the lightkube client that controllers use, from an explicit kubeconfig file.

Controllers never read ambient configuration (environment, ~/.kube/config): `kplane up` hands them
`<data-dir>/kubeconfig`, and `kplane controllers --kubeconfig FILE` names a real cluster's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.config.client_adapter import BearerAuth, ConnectionParams, verify_cluster
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core import decoders
from lightkube.core.generic_client import GenericAsyncClient, json_encode

from kplane.runtime.transport import AiohttpTransport

DEFAULT_FIELD_MANAGER = "kplane-controllers"
DEFAULT_TIMEOUT_S = 10.0
# Watches hold a connection each for minutes (one per informer: a few dozen with the garbage collector's),
# so the pool must be well above that, next to one connection per concurrent request.
MAX_CONNECTIONS = 256


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message is one line fit for a CLI error."""


def load_kubeconfig(path: str | Path, *, context: str | None = None) -> KubeConfig:
    """Read and check `path` now, so a bad file fails at start-up with a clear message."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise KubeconfigError(f"kubeconfig {path}: no such file")
    try:
        config = KubeConfig.from_file(file)
        config.get(context_name=context)
    except Exception as exc:
        raise KubeconfigError(f"kubeconfig {path}: {_describe(exc)}") from exc
    return config


def client_from_kubeconfig(
    path: str | Path,
    *,
    context: str | None = None,
    field_manager: str = DEFAULT_FIELD_MANAGER,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> AsyncClient:
    """An AsyncClient for the kubeconfig's `context` (its current context by default).

    Create it inside the event loop that will use it: httpx connection pools are bound to one loop.
    """
    config = load_kubeconfig(path, context=context)
    try:
        single = config.get(context_name=context)
        if single is None:
            raise ValueError("no context to use")
        return KubeClient(single, field_manager=field_manager, timeout=httpx2.Timeout(timeout_s),
                          transport=pooled_transport(single))
    except Exception as exc:
        raise KubeconfigError(f"kubeconfig {path}: {_describe(exc)}") from exc


class KubeClient(AsyncClient):
    """lightkube's AsyncClient whose ordinary calls (get, create, patch, replace, delete) skip httpx2.

    Controllers make several writes per pod; httpx2's request building (three pure-Python URL parses per
    request) and its send machinery cost more client CPU than the request itself. lightkube still builds
    the request (path, parameters, body) and decodes the answer into its models, and errors still come
    through lightkube as `ApiError`; only the HTTP exchange in between goes straight to the aiohttp pool.
    Lists, watches and authentication other than a bearer token or a client certificate take lightkube's
    usual path."""

    def __init__(self, config: SingleConfig, *, field_manager: str, timeout: httpx2.Timeout,
                 transport: AiohttpTransport) -> None:
        # What lightkube's own __init__ sets (a timeout and the generic client), with _DirectCalls as the
        # generic client; lightkube offers no hook to choose it. lightkube annotates `transport` as a sync
        # transport while handing it to an async httpx2 client.
        self._timeout = timeout
        params = ConnectionParams(timeout=timeout, trust_env=False, transport=cast(Any, transport))
        self._client = _DirectCalls(params, config, field_manager=field_manager, transport=transport)


class _DirectCalls(GenericAsyncClient):
    def __init__(self, params: ConnectionParams, config: SingleConfig, *, field_manager: str,
                 transport: AiohttpTransport) -> None:
        super().__init__(params, config, field_manager=field_manager)
        self._transport = transport
        self._base = str(self._client.base_url).rstrip("/") + "/"
        auth = self._client.auth
        self._direct = auth is None or isinstance(auth, BearerAuth)
        headers = {"Accept": "application/json", "User-Agent": self._client.headers.get("User-Agent", "")}
        if isinstance(auth, BearerAuth):
            signed = next(auth.sync_auth_flow(httpx2.Request("GET", self._base)))
            headers["Authorization"] = signed.headers["Authorization"]
        self._headers = headers
        default = params.timeout
        self._default_timeout = default if isinstance(default, httpx2.Timeout) else httpx2.Timeout(default)

    async def request(self, method: str, res: Any = None, obj: Any = None, name: str | None = None,
                      namespace: str | None = None, watch: bool = False, headers: dict[str, str] | None = None,
                      params: dict[str, Any] | None = None) -> Any:
        if watch or not self._direct or method == "list":
            return await super().request(method, res, obj, name, namespace, watch, headers=headers, params=params)
        br = self.prepare_request(method, res, obj, name, namespace, watch, headers=headers, params=params)
        sent = dict(self._headers)
        body = None
        if br.data is not None:
            body = json_encode(br.data)
            sent["Content-Type"] = "application/json"
        sent.update(br.headers or {})
        url = self._base + br.url + query_string(br.params)
        timeout = br.timeout or self._default_timeout
        answer = await self._transport.exchange(br.method, url, sent, body, timeout.connect, timeout.read)
        if not 200 <= answer.status < 300:
            # Rare: let lightkube turn the answer into its ApiError (or httpx2's HTTPStatusError) as it always does.
            response = httpx2.Response(answer.status, headers=list(answer.headers), content=answer.body,
                                       request=httpx2.Request(br.method, url))
            return self.handle_response(method, response, br)
        if br.response_type is None:
            return None
        return decoders.decode_object(answer.body, br.response_type)


def query_string(params: Mapping[str, Any]) -> str:
    """``?a=b&…`` as httpx2 would send `params` (booleans as true/false, None as empty, lists repeated)."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            text = "true" if item is True else "false" if item is False else "" if item is None else str(item)
            pairs.append((key, text))
    return "?" + urlencode(pairs, quote_via=quote)


def pooled_transport(config: SingleConfig) -> AiohttpTransport:
    """The TLS verification and client certificate lightkube would use, on aiohttp's connection pool
    (see `kplane.runtime.transport` for why not httpx2's)."""
    if config.user is None:
        raise ValueError("the context names no user")
    verify = verify_cluster(config.cluster, config.user, config.abs_file, trust_env=False)
    return AiohttpTransport(verify, max_connections=MAX_CONNECTIONS)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
