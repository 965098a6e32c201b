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
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TLS_HANDSHAKE = 0x16
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def sniffing_protocol(context: ssl.SSLContext) -> type[asyncio.Protocol]:
    """A uvicorn ``http`` protocol class that serves HTTPS through ``context`` and rejects plain HTTP."""

    class SniffingProtocol(asyncio.Protocol):
        def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                     _loop: asyncio.AbstractEventLoop | None = None) -> None:
            self._config = config
            self._server_state = server_state
            self._app_state = app_state
            self._loop = _loop or asyncio.get_event_loop()
            self._transport: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = transport

        def data_received(self, data: bytes) -> None:
            transport = self._transport
            assert transport is not None
            if data[0] != TLS_HANDSHAKE:
                transport.write(PLAIN_HTTP_ANSWER)
                transport.close()
                return
            inner = HttpToolsProtocol(config=self._config, server_state=self._server_state,
                                      app_state=self._app_state, _loop=self._loop)
            tls = sslproto.SSLProtocol(self._loop, inner, context, None, server_side=True)  # type: ignore[arg-type]
            transport.set_protocol(tls)
            tls.connection_made(transport)
            _feed(tls, data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._transport = None

    return SniffingProtocol


def _feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand bytes already read to a buffered protocol, as the event loop would have."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]
