"""An httpx2 transport that sends lightkube's requests over aiohttp's connection pool.

lightkube builds requests and reads responses with httpx2, whose pool (httpcore2) walks every connection it
holds twice per request and probes each idle socket for readability. A controllers process holds a watch
connection per informer (dozens, with the garbage collector's) next to the connections of its workers, so at a
few thousand requests a second the walk alone took a large share of the process's CPU, and a small keep-alive
limit turned bursts into fresh TLS handshakes. aiohttp keeps idle connections per host in a queue, so taking
one is constant time whatever else is open. (`httpx-aiohttp` does this for httpx; lightkube 1.0 uses httpx2,
whose classes it does not accept.)

Only the transport changes: authentication, redirects, URL building, content decoding and response models stay
httpx2's, and aiohttp's errors are raised as the httpx2 errors the informers and CLI already handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass

import aiohttp
import httpx2

_READ_CHUNK = 65536
"""Most bytes handed on per read of a streamed body; a watch event is yielded as soon as it arrives."""
# Headers aiohttp would add on its own; httpx2 has already set those the request should carry. (Content-Type
# would otherwise become application/octet-stream on a body sent without one.)
_NOT_OURS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")


class _Body(httpx2.AsyncByteStream):
    """A response body read as it arrives, so watch streams yield events one by one."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_READ_CHUNK):
                yield chunk
        # aiohttp's read timeout (SocketTimeoutError) is also a ClientConnectionError: it must be caught first.
        except TimeoutError as exc:
            raise httpx2.ReadTimeout("timed out reading the response") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise httpx2.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
        except aiohttp.ClientConnectionError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # A body read to its end returns the connection to the pool; one abandoned half way (a watch that is
        # stopped) closes it, as a reused connection would carry the rest of that stream.
        self._response.release()


@dataclass(frozen=True)
class Exchange:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@contextlib.contextmanager
def _as_httpx_errors(request: httpx2.Request | None) -> Iterator[None]:
    """aiohttp's errors as the httpx2 errors lightkube, the informers and the CLI handle. aiohttp's timeouts
    are ClientErrors too (ConnectionTimeoutError, SocketTimeoutError), so they are told apart first."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx2.ConnectTimeout("timed out connecting", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx2.ConnectError(str(exc), request=request) from exc
    except TimeoutError as exc:
        raise httpx2.ReadTimeout("timed out waiting for the response", request=request) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise httpx2.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientOSError as exc:
        raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx2.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """Plain HTTP/1.1 with keep-alive to the API server, TLS from `ssl_context`."""

    def __init__(self, ssl_context: ssl.SSLContext, *, max_connections: int) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the loop that sends: aiohttp sessions are bound to one event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections, limit_per_host=0,
                                             keepalive_timeout=30.0, enable_cleanup_closed=False)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False,
                                                  skip_auto_headers=_NOT_OURS,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        limits = request.extensions.get("timeout") or {}
        body = await request.aread()
        with _as_httpx_errors(request):
            response = await self._send(request.method, str(request.url), request.headers.multi_items(), body,
                                        limits.get("connect"), limits.get("read"))
        return httpx2.Response(status_code=response.status, headers=list(response.raw_headers),
                               stream=_Body(response), extensions={"http_version": b"HTTP/1.1"})

    async def exchange(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                       connect_s: float | None, read_s: float | None) -> Exchange:
        """One request whose whole response is read at once: the path :class:`kplane.runtime.client.KubeClient`
        takes for ordinary (non-watch) calls, with no httpx2 objects on the way unless the answer is an error.
        Errors are httpx2's, as from :meth:`handle_async_request`."""
        try:
            with _as_httpx_errors(None):
                response = await self._send(method, url, headers.items(), body, connect_s, read_s)
                try:
                    data = await response.read()
                finally:
                    response.release()
        except httpx2.RequestError as exc:
            # Built only on failure: callers read `exc.request` (method, URL) as they would from httpx2's own errors,
            # and its getter raises RuntimeError when none was set.
            exc.request = httpx2.Request(method, url)
            raise
        return Exchange(response.status, response.raw_headers, data)

    async def _send(self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None,
                    connect_s: float | None, read_s: float | None) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=read_s)
        return await self._open_session().request(method, url, headers=list(headers), data=body or None,
                                                   timeout=timeout, allow_redirects=False, compress=None)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Lets the SSL transports finish closing before the loop goes (aiohttp's documented graceful close).
            await asyncio.sleep(0)
