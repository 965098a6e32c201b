"""TLS on the API port, with Go's answer for clients that speak plain HTTP to it.

kube-apiserver (Go's net/http) replies ``400 Bad Request`` with "Client sent an HTTP request to an HTTPS
server." when the first bytes of a connection are not a TLS handshake; a plain TLS listener would just
drop the connection, which clients report as a confusing EOF. So the listener peeks at the first record:
a handshake (content type 0x16) continues as TLS, anything else gets Go's answer.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any, cast

from kplane.apiserver.coalesce import CoalescingHttpProtocol

try:
    import uvloop
    import uvloop.loop as uvloop_impl
except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
    uvloop = None  # type: ignore[assignment]

TLS_HANDSHAKE = 0x16
SNIFF_BUFFER_BYTES = 16384  # one TLS record; a longer ClientHello goes on to the TLS protocol unread
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def sniffing_protocol(context: ssl.SSLContext) -> type[asyncio.Protocol]:
    """A uvicorn ``http`` protocol class that serves HTTPS through ``context`` and rejects plain HTTP.

    It reads the first bytes into its own buffer (a buffered protocol, so that on uvloop the transport's
    read path stays the buffered one the TLS protocol uses) and then hands the connection and those bytes
    to the event loop's own TLS protocol: uvloop's compiled one where the loop is uvloop's (a good deal
    cheaper per record than asyncio's pure-Python ``sslproto``), else asyncio's."""

    class SniffingProtocol(asyncio.BufferedProtocol):
        def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                     _loop: asyncio.AbstractEventLoop | None = None) -> None:
            self._config = config
            self._server_state = server_state
            self._app_state = app_state
            self._loop = _loop or asyncio.get_event_loop()
            self._transport: Any = None
            self._first = bytearray(SNIFF_BUFFER_BYTES)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = transport

        def get_buffer(self, sizehint: int) -> bytearray:
            return self._first

        def buffer_updated(self, nbytes: int) -> None:
            transport = self._transport
            assert transport is not None
            data = bytes(self._first[:nbytes])
            if not data:
                return
            if data[0] != TLS_HANDSHAKE:
                transport.write(PLAIN_HTTP_ANSWER)
                transport.close()
                return
            inner = CoalescingHttpProtocol(config=self._config, server_state=self._server_state,
                                           app_state=self._app_state, _loop=self._loop)
            tls = _tls_protocol(self._loop, inner, context)
            transport.set_protocol(tls)
            tls.connection_made(transport)
            _feed(tls, data)

        def eof_received(self) -> bool | None:
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            self._transport = None

    return cast("type[asyncio.Protocol]", SniffingProtocol)  # uvicorn takes any protocol class


def _tls_protocol(loop: asyncio.AbstractEventLoop, app: asyncio.BaseProtocol,
                  context: ssl.SSLContext) -> Any:
    if uvloop is not None and isinstance(loop, uvloop.Loop):
        return uvloop_impl.SSLProtocol(loop, app, context, None, server_side=True)  # type: ignore[attr-defined]
    return sslproto.SSLProtocol(loop, app, context, None, server_side=True)  # type: ignore[arg-type]


def _feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand bytes already read to a buffered protocol, as the event loop would have."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]
