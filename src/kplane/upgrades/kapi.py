"""Raw requests through a lightkube client: its TLS, credentials and base URL, our own paths and parsing.

The upgrade tool reads non-resource endpoints (``/version``, ``/readyz``, ``/metrics``, discovery) and lists
resources of any group/version, including removed ones lightkube has no model for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx2 as httpx
import orjson
from lightkube import Client
from lightkube.core.generic_client import BasicRequest


class ApiUnavailable(Exception):
    """The API answered with an error status (or not at all) for a request that cannot be done without."""


def send(client: Client, method: str, path: str, *, params: Mapping[str, str] | None = None,
         data: Any = None, timeout: float | None = None, stream: bool = False,
         headers: Mapping[str, str] | None = None) -> httpx.Response:
    generic = client._client
    request = generic.build_adapter_request(BasicRequest(
        method=method, url=path.lstrip("/"), params=dict(params or {}), data=data,
        headers=dict(headers) if headers is not None else None,
        timeout=httpx.Timeout(timeout) if timeout is not None else None))
    return generic.send(request, stream=stream)


def get_raw(client: Client, path: str, timeout: float | None = None) -> tuple[int, bytes]:
    response = send(client, "GET", path, timeout=timeout)
    return int(response.status_code), bytes(response.content)


def get_json(client: Client, path: str, params: Mapping[str, str] | None = None) -> Any:
    try:
        response = send(client, "GET", path, params=params)
    except httpx.HTTPError as err:
        raise ApiUnavailable(f"GET {path}: {err}") from None
    if response.status_code != 200:
        raise ApiUnavailable(f"GET {path}: HTTP {response.status_code}: "
                             f"{response.content[:200].decode(errors='replace')}")
    return orjson.loads(response.content)


def list_items(client: Client, path: str, page: int = 500) -> Iterator[Mapping[str, Any]]:
    """Every item of a collection, a page at a time (``limit``/``continue``)."""
    token = ""
    while True:
        params = {"limit": str(page)}
        if token:
            params["continue"] = token
        doc = get_json(client, path, params)
        yield from doc.get("items") or []
        token = (doc.get("metadata") or {}).get("continue") or ""
        if not token:
            return
