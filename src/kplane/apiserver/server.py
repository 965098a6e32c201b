"""Assembling and running the embedded API server: store, registry, CRD serving, HTTPS, bootstrap.

``kplane up`` calls :func:`serve`. The server writes ``<data-dir>/kubeconfig`` that kubectl and the Python
clients use as is, and keeps its CA, token and database in the data directory so that a restart finds
the same state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from kplane.api import status
from kplane.api.resources import ResourceType
from kplane.api.schema import Schema
from kplane.apiserver.admission import Admission
from kplane.apiserver.app import ApiApp
from kplane.apiserver.context import RequestContext
from kplane.apiserver.crds import CrdServing
from kplane.apiserver.handlers import ResourceService
from kplane.apiserver.metrics import ServerMetrics
from kplane.apiserver.registry import Registry
from kplane.apiserver.request import ApiPath, Query
from kplane.apiserver.tls import CertPaths, ensure_certificates
from kplane.apiserver.tls_sniff import server_ssl_context, sniffing_protocol
from kplane.apiserver.tokens import ServiceAccountTokens
from kplane.storage import Store
from kplane.versions.builtin_schemas import schema_for_kind
from kplane.versions.profile import VersionProfile, load_profile

log = logging.getLogger("kplane.apiserver")
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
COMPACTION_INTERVAL = 300.0
COMPACTION_KEEP = 10000
GIL_SWITCH_INTERVAL = 0.001
"""Seconds the busy event loop may keep the GIL from the store's writer thread (Python's default is 5 ms).
Every group commit needs the GIL back after SQLite's fsync: with the loop busy, a commit measured a median
5.9 ms at the default and under 1 ms at a shorter interval, and acknowledgements wait for it."""


def compaction_settings(environ: Mapping[str, str]) -> tuple[float, int]:
    """The compaction period (s) and kept window (revisions). ``KPLANE_COMPACTION_INTERVAL`` and
    ``KPLANE_COMPACTION_KEEP`` override them so that tests can reach compacted revisions (410) in seconds."""
    try:
        interval = float(environ.get("KPLANE_COMPACTION_INTERVAL") or COMPACTION_INTERVAL)
        keep = int(environ.get("KPLANE_COMPACTION_KEEP") or COMPACTION_KEEP)
    except ValueError:
        raise ValueError("KPLANE_COMPACTION_INTERVAL must be a number and KPLANE_COMPACTION_KEEP an integer") from None
    if interval <= 0 or keep < 0:
        raise ValueError("KPLANE_COMPACTION_INTERVAL must be positive and KPLANE_COMPACTION_KEEP not negative")
    return interval, keep


@dataclass(frozen=True)
class ServerOptions:
    data_dir: Path
    port: int = 6443
    host: str = "127.0.0.1"
    kube_version: str = "1.36"
    synchronous: str = "FULL"
    # KEP-4330 flags, as given on the command line (None: upstream's defaults); per start, never persisted.
    emulated_version: str | None = None
    min_compatibility_version: str | None = None
    feature_gates: str = ""


def read_or_create_token(data_dir: Path) -> str:
    path = data_dir / "token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def kubeconfig(server: str, ca_pem: bytes, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kplane", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "kplane-admin", "user": {"token": token}}],
        "contexts": [{"name": "kplane", "context": {"cluster": "kplane", "user": "kplane-admin",
                                                    "namespace": "default"}}],
        "current-context": "kplane",
        "preferences": {},
    }


def write_kubeconfig(data_dir: Path, host: str, port: int, certs: CertPaths, token: str) -> Path:
    path = data_dir / "kubeconfig"
    config = kubeconfig(f"https://{host}:{port}", certs.ca_cert.read_bytes(), token)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.replace(tmp, path)
    return path


class ControlPlaneServer:
    """The API server's parts wired together; :meth:`start` opens the store and serves nothing yet."""

    def __init__(self, options: ServerOptions, profile: VersionProfile) -> None:
        self.options = options
        self.profile = profile
        self.registry = Registry(profile.resources)
        self.store: Store | None = None
        self.crds: CrdServing | None = None
        self.app: ApiApp | None = None
        self._compactor: asyncio.Task[None] | None = None
        self.compaction_interval, self.compaction_keep = compaction_settings(os.environ)

    def _builtin_schema(self, rtype: ResourceType) -> Schema | None:
        # A binary still holds the types of APIs it stopped serving; the schema tables do not, so an API
        # served again by emulation (e.g. flowcontrol v1beta3 at 1.31) takes its schema from the emulated level.
        for minor in dict.fromkeys((self.profile.minor, self.profile.emulated)):
            try:
                return schema_for_kind(minor, rtype.group, rtype.version, rtype.kind)
            except (LookupError, ValueError):
                continue
        return None

    async def start(self) -> ApiApp:
        data_dir = self.options.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await Store.open(data_dir / "kplane.db", synchronous=self.options.synchronous)
        self.crds = CrdServing(self.store, self.registry)
        admission = Admission(self._builtin_schema, self.crds.crd)
        service = ResourceService(self.store, self.registry, admission)
        await self.crds.start()
        await self._bootstrap(service)
        token = read_or_create_token(data_dir)
        version_info = self.profile.version_info()
        metrics = ServerMetrics(self.profile.gates, version_info)
        accounts = self.registry.resolve("", "v1", "serviceaccounts")
        store = self.store

        def service_account(namespace: str, name: str) -> dict[str, Any] | None:
            return store.get(accounts.key(namespace, name)) if accounts is not None else None

        tokens = ServiceAccountTokens(data_dir / "pki" / "sa.key", service_account)
        self.app = ApiApp(service=service, registry=self.registry, profile=self.profile, token=token,
                          metrics=metrics, version_info=version_info, crd_schemas=self.crds.schemas,
                          tokens=tokens)
        self._compactor = asyncio.create_task(self._compact_forever(), name="compaction")
        return self.app

    async def _bootstrap(self, service: ResourceService) -> None:
        ns_type = self.registry.resolve("", "v1", "namespaces")
        assert ns_type is not None and self.store is not None
        for name in BOOTSTRAP_NAMESPACES:
            if self.store.get(ns_type.key(None, name)) is not None:
                continue
            ctx = RequestContext(method="POST", path=ApiPath("", "v1", "namespaces"), rtype=ns_type,
                                 query=Query({"fieldManager": "kplane-apiserver"}), headers={},
                                 user_agent="kplane-apiserver")
            with contextlib.suppress(status.StatusError):
                await service.create(ctx, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    async def _compact_forever(self) -> None:
        while True:
            await asyncio.sleep(self.compaction_interval)
            if self.store is not None and self.store.revision > self.compaction_keep:
                try:
                    await self.store.compact(self.compaction_keep)
                except Exception:
                    log.exception("compaction failed")

    async def stop(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
        if self.crds is not None:
            await self.crds.stop()
        if self.store is not None:
            await self.store.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving so that a busy port is reported at once, in one line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server with a hook that runs when shutdown begins, before connections are closed.

    ``kplane up`` stops its controllers there, so they leave while the API still answers instead of
    logging a storm of broken watches.
    """

    def __init__(self, config: uvicorn.Config, app: ApiApp,
                 before_shutdown: Callable[[], Awaitable[None]] | None) -> None:
        super().__init__(config)
        self._app = app
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            await self._before_shutdown()
        self._app.stopping.set()
        self._abort_idle_connections()
        await super().shutdown(sockets)

    def _abort_idle_connections(self) -> None:
        """Idle keep-alive connections are dropped at once: a polite TLS close waits for the peer's
        close_notify and would hold a restart for the whole graceful-shutdown timeout."""
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()


async def serve(options: ServerOptions, *, ready: asyncio.Event | None = None,
                before_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run the API server until cancelled or signalled; writes the kubeconfig once listening."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    profile = load_profile(options.kube_version, options.emulated_version, options.min_compatibility_version,
                           options.feature_gates)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    certs = ensure_certificates(options.data_dir)
    sock = bind_socket(options.host, options.port)
    port = sock.getsockname()[1]
    server = ControlPlaneServer(options, profile)
    app = await server.start()
    protocol = sniffing_protocol(server_ssl_context(str(certs.cert), str(certs.key)))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", http=protocol, loop="none",
                            timeout_keep_alive=120, access_log=False, timeout_graceful_shutdown=1,
                            # Nothing reads the client address, so X-Forwarded-* parsing is a wasted layer per request.
                            proxy_headers=False)
    uv = _Server(config, app, before_shutdown)
    assert server.store is not None
    write_kubeconfig(options.data_dir, options.host, port, certs, read_or_create_token(options.data_dir))
    if ready is not None:
        ready.set()
    try:
        await uv.serve(sockets=[sock])
    finally:
        await server.stop()
        sock.close()
