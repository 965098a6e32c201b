"""What the benchmarks share: a control plane to measure, process statistics, and the ceiling servers.

The ceiling servers run in their own process (``python -m bench._common serve KIND CERT KEY``) so that, like
kplane, they have a core of their own and the load generator never shares an event loop with them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import yaml

TICKS = os.sysconf("SC_CLK_TCK")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """An HTTPS endpoint and how to authenticate to it, as the load generator needs it."""

    host: str
    port: int
    token: str
    cafile: str
    pid: int

    def spec(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "token": self.token, "cafile": self.cafile}


def target_from_kubeconfig(data_dir: Path, pid: int) -> Target:
    """Read the server, CA and bearer token exactly as a client would, from ``<data-dir>/kubeconfig``."""
    config = yaml.safe_load((data_dir / "kubeconfig").read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    url = urlsplit(cluster["server"])
    cafile = data_dir / "bench-ca.crt"
    cafile.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    assert url.hostname is not None and url.port is not None
    return Target(url.hostname, url.port, user["token"], str(cafile), pid)


def api_request(target: Target, method: str, path: str, obj: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One request outside any measurement (setting up namespaces), with the target's CA and token."""
    context = ssl.create_default_context(cafile=target.cafile)
    conn = http.client.HTTPSConnection(target.host, target.port, context=context, timeout=30)
    try:
        conn.request(method, path, body=orjson.dumps(obj) if obj is not None else None,
                     headers={"Authorization": f"Bearer {target.token}", "Content-Type": "application/json",
                              "Accept": "application/json"})
        response = conn.getresponse()
        data = response.read()
        return response.status, orjson.loads(data) if data else None
    finally:
        conn.close()


@contextlib.contextmanager
def control_plane() -> Iterator[tuple[Target, Path]]:
    """A real ``kplane up --detach`` on a free port and a fresh data directory, stopped and removed after.

    The API server runs alone (``--no-controllers``): the figures are the server's, not shared with the garbage
    collector and the other controllers that would otherwise react to every benchmark object on the same cores.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="kplane-bench-"))
    kplane = [sys.executable, "-m", "kplane"]
    try:
        subprocess.run([*kplane, "up", "--detach", "--port", "0", "--data-dir", str(data_dir), "--no-controllers",
                        "--nodes", "0"], check=True,
                       stdout=subprocess.DEVNULL)
        pid = int((data_dir / "kplane.pid").read_text().strip())
        yield target_from_kubeconfig(data_dir, pid), data_dir
    finally:
        subprocess.run([*kplane, "down", "--data-dir", str(data_dir)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def ceiling_server(kind: str, cert: Path, key: Path, cafile: str) -> Iterator[Target]:
    """Start one of the ceiling servers below in a child process; it prints its port once listening."""
    proc = subprocess.Popen([sys.executable, "-m", "bench._common", "serve", kind, str(cert), str(key)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"ceiling server {kind} did not start")
        yield Target("127.0.0.1", int(line), "ceiling", cafile, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) from /proc, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class CpuMeter:
    """CPU a process used over a span of wall time, as a percentage of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = cpu_seconds(pid)
        self.wall = time.monotonic()

    def percent(self) -> float:
        wall = time.monotonic() - self.wall
        return 100.0 * (cpu_seconds(self.pid) - self.cpu) / wall if wall > 0 else 0.0


def content_length(head: bytes) -> int | None:
    """The Content-Length of a message head (start line and headers, without the blank line), if any."""
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return None
    end = lower.find(b"\r\n", at + 2)
    return int(lower[at + 17:end if end > 0 else len(lower)])


async def trivial_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ceiling for kplane's handlers: parses a POSTed object and answers 201 with it, or 200 for GET."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        obj = orjson.loads(body)
        obj.setdefault("metadata", {})["resourceVersion"] = "1"
        status, reply = 201, orjson.dumps(obj)
    else:
        status, reply = 200, CANNED_OBJECT
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]})
    await send({"type": "http.response.body", "body": reply})


CANNED_OBJECT = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
    "name": "c-1", "namespace": "bench", "resourceVersion": "1"}, "data": {"key": "value"}})
CANNED_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                   + str(len(CANNED_OBJECT)).encode() + b"\r\n\r\n" + CANNED_OBJECT)


class CannedProtocol(asyncio.Protocol):
    """Answers every request with the same bytes and parses only framing: the load generator's own ceiling."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            length = content_length(self.buffer[:end]) or 0
            if len(self.buffer) < end + 4 + length:
                break
            self.buffer = self.buffer[end + 4 + length:]
            answers += 1
        if answers and self.transport is not None:
            self.transport.write(CANNED_RESPONSE * answers)


async def _serve_canned(cert: str, key: str) -> None:
    from kplane.apiserver.tls_sniff import server_ssl_context

    server = await asyncio.get_running_loop().create_server(
        CannedProtocol, "127.0.0.1", 0, ssl=server_ssl_context(cert, key))
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def _serve_asgi(cert: str, key: str) -> None:
    """Serve :func:`trivial_app` exactly as ``kplane.apiserver.server.serve`` serves kplane's app."""
    import uvicorn

    from kplane.apiserver.server import bind_socket
    from kplane.apiserver.tls_sniff import server_ssl_context, sniffing_protocol

    sock = bind_socket("127.0.0.1", 0)
    protocol = sniffing_protocol(server_ssl_context(cert, key))
    config = uvicorn.Config(trivial_app, log_level="warning", lifespan="off", http=protocol, loop="none",
                            timeout_keep_alive=120, access_log=False)
    print(sock.getsockname()[1], flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


def main(argv: list[str]) -> None:
    if len(argv) != 4 or argv[0] != "serve" or argv[1] not in ("asgi", "canned"):
        raise SystemExit("usage: python -m bench._common serve asgi|canned CERT KEY")
    import uvloop

    serve = _serve_asgi if argv[1] == "asgi" else _serve_canned
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(argv[2], argv[3]))


if __name__ == "__main__":
    main(sys.argv[1:])
