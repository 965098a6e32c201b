"""Register simulated nodes and keep them alive: Lease renewals and periodic Ready heartbeats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from kplane.sim.nodes import (
    LEASE_RENEW_S,
    NODE_LEASE_NAMESPACE,
    STATUS_REFRESH_S,
    NodeConfig,
    heartbeat_conditions,
    lease_object,
    node_object,
)

log = logging.getLogger(__name__)

FALLBACK_KUBELET_VERSION = "v1.36.0"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime) -> str:
    """metav1.MicroTime, the format of `Lease.spec.renewTime`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def server_version(client: AsyncClient) -> str:
    """The API server's gitVersion (GET /version, through lightkube's own connection), so simulated kubelets
    report the server's minor as real ones do; a fixed version if it cannot be read."""
    try:
        response = await client._client._client.get("/version")
        response.raise_for_status()
        return str(response.json()["gitVersion"])
    except Exception as exc:
        log.warning("cannot read the server version, nodes report %s: %s", FALLBACK_KUBELET_VERSION, exc)
        return FALLBACK_KUBELET_VERSION


def _code(exc: ApiError) -> int:
    return int(exc.status.code or 0)


class NodeHeartbeat:
    def __init__(
        self,
        client: AsyncClient,
        nodes: Sequence[NodeConfig],
        kubelet_version: str,
        *,
        lease_renew_s: float = LEASE_RENEW_S,
        status_refresh_s: float = STATUS_REFRESH_S,
    ) -> None:
        self.client = client
        self.nodes = list(nodes)
        self.kubelet_version = kubelet_version
        self.lease_renew_s = lease_renew_s
        self.status_refresh_s = status_refresh_s
        self._conditions: dict[str, list[dict[str, Any]]] = {}
        self._uids: dict[str, str] = {}

    async def register_all(self) -> None:
        await asyncio.gather(*(self.register(config) for config in self.nodes))

    async def register(self, config: NodeConfig) -> None:
        """Create the Node (or bring an existing one back to its config) and its Lease."""
        now = datetime.now(UTC)
        wanted = node_object(config, self.kubelet_version, rfc3339(now))
        status = wanted.pop("status")
        try:
            node = await self.client.create(cast(Node, Node.from_dict(wanted)))
        except ApiError as exc:
            if _code(exc) != 409:
                raise
            spec = {k: wanted["spec"].get(k) for k in ("taints", "unschedulable")}
            node = await self.client.patch(
                Node, config.name, {"metadata": wanted["metadata"], "spec": spec}, patch_type=PatchType.MERGE
            )
        self._uids[config.name] = str(node.metadata.uid if node.metadata is not None else "")
        await self.client.patch(Node.Status, config.name, {"status": status}, patch_type=PatchType.MERGE)
        self._conditions[config.name] = status["conditions"]
        await self.renew_lease(config, now)

    async def renew_lease(self, config: NodeConfig, now: datetime) -> None:
        renew = micro_time(now)
        try:
            await self.client.patch(
                Lease,
                config.name,
                {"spec": {"holderIdentity": config.name, "renewTime": renew}},
                namespace=NODE_LEASE_NAMESPACE,
                patch_type=PatchType.MERGE,
            )
        except ApiError as exc:
            if _code(exc) != 404:
                raise
            lease = cast(Lease, Lease.from_dict(lease_object(config, self._uids.get(config.name, ""), renew)))
            await self.client.create(lease)

    async def refresh_status(self, config: NodeConfig, now: datetime) -> None:
        conditions = heartbeat_conditions(self._conditions.get(config.name) or [], rfc3339(now))
        await self.client.patch(
            Node.Status, config.name, {"status": {"conditions": conditions}}, patch_type=PatchType.MERGE
        )
        self._conditions[config.name] = conditions

    async def beat(self, config: NodeConfig, *, status: bool) -> None:
        """One heartbeat for one node; a node deleted behind our back is registered again."""
        now = datetime.now(UTC)
        try:
            await self.renew_lease(config, now)
            if status:
                await self.refresh_status(config, now)
        except ApiError as exc:
            if _code(exc) != 404:
                raise
            await self.register(config)

    async def run(self) -> None:
        """Renew every lease each `lease_renew_s`, and refresh node status each `status_refresh_s`."""
        loop = asyncio.get_running_loop()
        last_status = loop.time()
        while True:
            await asyncio.sleep(self.lease_renew_s)
            status = loop.time() - last_status >= self.status_refresh_s
            if status:
                last_status = loop.time()
            results = await asyncio.gather(
                *(self.beat(config, status=status) for config in self.nodes), return_exceptions=True
            )
            for config, result in zip(self.nodes, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("heartbeat for node %s failed: %s", config.name, result)
