"""The workload controllers as one set, sharing informers (one Pod cache for all of them)."""

from __future__ import annotations

from lightkube import AsyncClient

from kplane.controllers.daemonset import daemonset_controller
from kplane.controllers.deployment import deployment_controller
from kplane.controllers.job import job_controller
from kplane.controllers.replicaset import replicaset_controller
from kplane.controllers.statefulset import statefulset_controller
from kplane.runtime import Controller, SharedInformers


def workload_controllers(
    client: AsyncClient, informers: SharedInformers | None = None, *, workers: int = 4
) -> list[Controller]:
    """Deployment, ReplicaSet, StatefulSet, DaemonSet and Job controllers, ready for `Manager.add` or `run`.

    Pass the Manager's `informers` so that other controllers watching pods share the same cache.
    """
    shared = informers if informers is not None else SharedInformers(client)
    return [
        deployment_controller(client, shared, workers=workers),
        replicaset_controller(client, shared, workers=workers),
        statefulset_controller(client, shared, workers=max(1, workers // 2)),
        daemonset_controller(client, shared, workers=max(1, workers // 2)),
        job_controller(client, shared, workers=max(1, workers // 2)),
    ]
