"""The built-in controllers as one set, sharing one client and one informer cache.

Most are `Controller`s for a `Manager`; the garbage collector (many resources, one queue keyed by uid)
and the `kubernetes` Service bootstrap are plain long-running coroutines. The scheduler and the node
simulator are other packages, assembled beside these by the `kplane controllers` command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lightkube import AsyncClient

from kplane.controllers.gc import GarbageCollector
from kplane.controllers.namespace import namespace_controller
from kplane.controllers.resourceclaim import run_dra_components
from kplane.controllers.service import ServiceRanges, ensure_kubernetes_service, service_controllers
from kplane.controllers.serviceaccount import serviceaccount_controller
from kplane.controllers.workloads import workload_controllers
from kplane.runtime import Controller, SharedInformers

Runnable = Callable[[], Awaitable[None]]


@dataclass
class BuiltinSet:
    controllers: list[Controller] = field(default_factory=list)
    runnables: list[Runnable] = field(default_factory=list)


def builtin_controllers(
    client: AsyncClient,
    informers: SharedInformers,
    *,
    ranges: ServiceRanges | None = None,
) -> BuiltinSet:
    """Namespace lifecycle, garbage collector, service accounts, services and endpoints, and workloads."""
    ranges = ranges or ServiceRanges()
    collector = GarbageCollector(client, informers=informers)

    async def bootstrap() -> None:
        await ensure_kubernetes_service(client, ranges)

    async def dra() -> None:
        await run_dra_components(client, informers)

    return BuiltinSet(
        controllers=[
            namespace_controller(client, informers),
            serviceaccount_controller(client, informers),
            *service_controllers(client, informers, ranges),
            *workload_controllers(client, informers),
        ],
        runnables=[collector.run, bootstrap, dra],
    )
