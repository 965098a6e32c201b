"""`run_node_simulator`: simulated nodes plus the pod agent, as one component `kplane up` starts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lightkube import AsyncClient

from kplane.runtime import SharedInformers
from kplane.sim.heartbeat import NodeHeartbeat, server_version
from kplane.sim.nodes import LEASE_RENEW_S, STATUS_REFRESH_S, NodeConfig
from kplane.sim.podagent import PodAgent
from kplane.sim.podstatus import STATUS_TEMPLATES
from kplane.sim.stages import Stage, default_stage_objects, load_stages


def default_stages() -> list[Stage]:
    return load_stages(default_stage_objects(), STATUS_TEMPLATES)


async def run_node_simulator(
    client: AsyncClient,
    nodes: list[NodeConfig],
    stages: Sequence[Stage] | None = None,
    *,
    informers: SharedInformers | None = None,
    kubelet_version: str | None = None,
    lease_renew_s: float = LEASE_RENEW_S,
    status_refresh_s: float = STATUS_REFRESH_S,
) -> None:
    """Register `nodes`, keep them Ready, and move their pods through `stages` (default: `default_stages()`)
    until cancelled. Registration errors propagate; later API errors are logged and retried."""
    version = kubelet_version or await server_version(client)
    heartbeat = NodeHeartbeat(client, nodes, version, lease_renew_s=lease_renew_s, status_refresh_s=status_refresh_s)
    await heartbeat.register_all()
    agent = PodAgent(client, nodes, default_stages() if stages is None else stages, informers=informers)
    await asyncio.gather(heartbeat.run(), agent.run())
