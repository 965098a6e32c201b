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
import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx2

# A watch may stay silent for minutes between events (bookmarks come every minute or so); a read timeout
# of None leaves it to the server's timeoutSeconds, as httpx2 does when lightkube passes read=None.
_READ_CHUNK = 65536
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
        session = self._open_session()
        limits = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.get("connect"), sock_read=limits.get("read"))
        body = await request.aread()
        try:
            response = await session.request(
                request.method, str(request.url), headers=request.headers.multi_items(), data=body or None,
                timeout=timeout, allow_redirects=False, compress=None)
        # aiohttp's timeouts are ClientErrors too (ConnectionTimeoutError, SocketTimeoutError), so they go first.
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx2.ConnectTimeout("timed out connecting", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx2.ConnectError(str(exc), request=request) from exc
        except TimeoutError as exc:
            raise httpx2.ReadTimeout("timed out waiting for the response", request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx2.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx2.Response(status_code=response.status, headers=list(response.raw_headers),
                               stream=_Body(response), extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Lets the SSL transports finish closing before the loop goes (aiohttp's documented graceful close).
            await asyncio.sleep(0)
