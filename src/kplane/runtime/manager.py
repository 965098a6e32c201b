"""Run many controllers against one client, optionally only while holding a leader Lease.

`add_dynamic` covers resources that appear at run time: the manager watches CustomResourceDefinitions and,
when one reports the `Established` condition (the API server's signal that the new resource is served,
apiextensions-apiserver `pkg/controller/establish`), asks a factory for a controller for that kind and
starts it; it stops the controller when the CRD goes away or is no longer established.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from kplane.runtime.controller import Controller, Reconcile
from kplane.runtime.informer import EventHandler, SharedInformers
from kplane.runtime.leader import LeaderElectionConfig, LeaderElector
from kplane.runtime.objects import name_of

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0


@dataclass(frozen=True)
class DiscoveredResource:
    """A served custom resource, with the lightkube class to list, watch and write it."""

    crd_name: str
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    resource: type


ControllerFactory = Callable[[DiscoveredResource], "Controller | None"]


def is_established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status is not None else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def served_version(crd: Any) -> str | None:
    """The version to watch: the storage version if it is served, else the first served one."""
    served = [v for v in crd.spec.versions or [] if v.served]
    for version in served:
        if version.storage:
            return str(version.name)
    return str(served[0].name) if served else None


def discover(crd: Any) -> DiscoveredResource | None:
    """The resource an established CRD serves, or None while it is not (yet) usable."""
    if crd.metadata is not None and crd.metadata.deletionTimestamp is not None:
        return None
    version = served_version(crd)
    if version is None or not is_established(crd):
        return None
    names = crd.spec.names
    namespaced = crd.spec.scope == "Namespaced"
    create = create_namespaced_resource if namespaced else create_global_resource
    resource = create(crd.spec.group, version, names.kind, names.plural)
    return DiscoveredResource(
        crd_name=name_of(crd),
        group=crd.spec.group,
        version=version,
        kind=names.kind,
        plural=names.plural,
        namespaced=namespaced,
        resource=resource,
    )


class Manager:
    def __init__(
        self,
        client: AsyncClient,
        *,
        leader_election: LeaderElectionConfig | None = None,
        informers: SharedInformers | None = None,
    ) -> None:
        self.client = client
        self.informers = informers if informers is not None else SharedInformers(client)
        self.elector = LeaderElector(client, leader_election) if leader_election is not None else None
        self._controllers: list[Controller] = []
        self._factories: list[ControllerFactory] = []
        self._dynamic: dict[str, tuple[DiscoveredResource, list[asyncio.Task[None]]]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def add(self, controller: Controller) -> Controller:
        self._controllers.append(controller)
        return controller

    def controller(self, name: str, resource: type, reconcile: Reconcile, **options: Any) -> Controller:
        """Create a controller that shares this manager's informers, and add it."""
        controller = Controller(name, self.client, resource, reconcile, informers=self.informers, **options)
        return self.add(controller)

    def add_dynamic(self, factory: ControllerFactory) -> None:
        """Call `factory` for each CRD that becomes established; a returned controller runs until it goes."""
        self._factories.append(factory)

    def dynamic_resources(self) -> list[DiscoveredResource]:
        return [found for found, _ in self._dynamic.values()]

    async def run(self) -> None:
        """Run until cancelled; with leader election, controllers run only while this process leads."""
        if self.elector is None:
            await self._run_controllers()
        else:
            await self.elector.run(self._run_controllers)

    async def _run_controllers(self) -> None:
        tasks = [asyncio.ensure_future(self._supervise(c)) for c in self._controllers]
        crd_informer = None
        handler = None
        if self._factories:
            crd_informer = self.informers.get(CustomResourceDefinition)
            handler = crd_informer.add_handler(
                EventHandler(
                    on_add=self._crd_changed,
                    on_update=lambda _, new: self._crd_changed(new),
                    on_delete=lambda crd: self._stop_dynamic(name_of(crd)),
                )
            )
            crd_informer.start()
        try:
            await asyncio.gather(*tasks)
            await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()
            if crd_informer is not None and handler is not None:
                crd_informer.remove_handler(handler)
                await crd_informer.stop()
            for name in list(self._dynamic):
                self._stop_dynamic(name)
            await asyncio.gather(*tasks, *self._stopping, return_exceptions=True)
            self._stopping.clear()

    def _crd_changed(self, crd: Any) -> None:
        name = name_of(crd)
        try:
            found = discover(crd)
        except Exception as exc:
            log.warning("CRD %s cannot be served by a controller: %s", name, exc)
            found = None
        running = self._dynamic.get(name)
        if running is not None and running[0] == found:
            return
        self._stop_dynamic(name)
        if found is None:
            return
        tasks: list[asyncio.Task[None]] = []
        for factory in self._factories:
            controller = factory(found)
            if controller is not None:
                log.info("starting %r for %s.%s/%s", controller, found.plural, found.group, found.version)
                tasks.append(asyncio.ensure_future(self._supervise(controller)))
        self._dynamic[name] = (found, tasks)

    def _stop_dynamic(self, crd_name: str) -> None:
        running = self._dynamic.pop(crd_name, None)
        if running is None:
            return
        log.info("stopping controllers for CRD %s", crd_name)
        for task in running[1]:
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _supervise(self, controller: Controller) -> None:
        """Keep a controller running: a crash is logged and the controller restarted, never the manager."""
        while True:
            try:
                await controller.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%r crashed; restarting", controller)
            await asyncio.sleep(RESTART_DELAY_S)
