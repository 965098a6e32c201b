"""The scheduler controller: place each pending pod with `placement.choose_node` and bind it.

Pods it owns are those naming `default-scheduler` (the API default) with no `spec.nodeName`. A placement is
counted in the `ClusterView` before the binding is sent, so pods placed back to back see each other. When a
pod fits nowhere it gets what kube-scheduler writes (pkg/scheduler/schedule_one.go `handleSchedulingFailure`):
a `Warning FailedScheduling` Event and the condition `PodScheduled=False, reason=Unschedulable` through
pods/status. It is tried again when a node appears or changes in a way that matters (labels, spec,
allocatable), when a bound pod goes away or finishes, and at the latest after `RETRY_UNSCHEDULABLE_S`
(upstream flushes its unschedulable queue after 5 minutes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, Pod
from lightkube.types import PatchType
from prometheus_client import CollectorRegistry

from kplane.runtime import Controller, EventHandler, Result, SharedInformers, key_of, split_key
from kplane.runtime.errors import is_namespace_terminating
from kplane.scheduler.dra import DraPlugin, ReserveError, Wait
from kplane.scheduler.events import EventRecorder
from kplane.scheduler.placement import DEFAULT_FILTERS, Filter, PodInfo, choose_node
from kplane.scheduler.resources import pod_requests
from kplane.scheduler.view import ClusterView

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
CONTROLLER_NAME = "scheduler"
REASON_FAILED_SCHEDULING = "FailedScheduling"
REASON_UNSCHEDULABLE = "Unschedulable"  # core/v1 PodReasonUnschedulable
RETRY_UNSCHEDULABLE_S = 300.0
# Pods scheduled at once. Placement itself runs one pod at a time (it never awaits), so this bounds the binding
# cycles in flight, each a few sequential API writes that wait for a durable commit; upstream runs every binding
# cycle in a goroutine of its own, without a bound.
DEFAULT_WORKERS = 64
RESTART_DELAY_S = 1.0


def is_pending_for(pod: Any, scheduler_name: str) -> bool:
    """Whether `pod` waits for this scheduler: unbound, not being deleted, naming it."""
    spec = pod.spec
    if spec is None or spec.nodeName:
        return False
    if pod.metadata is not None and pod.metadata.deletionTimestamp is not None:
        return False
    return (spec.schedulerName or SCHEDULER_NAME) == scheduler_name


def unschedulable_condition(message: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": REASON_UNSCHEDULABLE,
        "message": message,
        "lastProbeTime": None,
        "lastTransitionTime": now.isoformat().replace("+00:00", "Z"),
    }


def has_condition(pod: Any, message: str) -> bool:
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return any(
        c.type == "PodScheduled" and c.status == "False" and c.reason == REASON_UNSCHEDULABLE and c.message == message
        for c in conditions
    )


def node_changed_for_scheduling(old: Any, new: Any) -> bool:
    """Heartbeats rewrite node status all the time; only labels, spec and allocatable change placements."""
    old_alloc = old.status.allocatable if old.status is not None else None
    new_alloc = new.status.allocatable if new.status is not None else None
    return bool(old.metadata.labels != new.metadata.labels or old.spec != new.spec or old_alloc != new_alloc)


class Scheduler:
    def __init__(
        self,
        client: AsyncClient,
        *,
        scheduler_name: str = SCHEDULER_NAME,
        informers: SharedInformers | None = None,
        filters: Sequence[Filter] = DEFAULT_FILTERS,
        workers: int = DEFAULT_WORKERS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.filters = tuple(filters)
        self.view = ClusterView()
        self.events = EventRecorder(client, scheduler_name)
        self._unschedulable: set[str] = set()
        self._next_start = 0
        """Where the next placement starts filtering (upstream's nextStartNodeIndex)."""
        self.controller = Controller(
            CONTROLLER_NAME,
            client,
            Pod,
            self.reconcile,
            workers=workers,
            informers=informers,
            backoff_base_s=1.0,
            backoff_cap_s=10.0,
            registry=registry,
        )
        node_informer = self.controller.watches(Node, lambda _: [])
        self.dra = DraPlugin(client, self.controller.informers, self._retry_unschedulable, on_claim=self._retry_pod)
        self._handlers = [
            (self.controller.informer, EventHandler(self._pod_added, self._pod_updated, self._pod_deleted)),
            (node_informer, EventHandler(self._node_added, self._node_updated, self._node_deleted)),
        ]

    async def run(self) -> None:
        """Schedule until cancelled; the view is rebuilt from the informers' lists on every (re)start."""
        while True:
            self.view.clear()
            self._unschedulable.clear()
            for informer, handler in self._handlers:
                informer.add_handler(handler)
            try:
                await self.controller.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler crashed; restarting")
            finally:
                for informer, handler in self._handlers:
                    informer.remove_handler(handler)
            await asyncio.sleep(RESTART_DELAY_S)

    # --- informer events: keep the view current, and retry pods that did not fit ----------------------

    def _pod_added(self, pod: Any) -> None:
        if self._observe(pod):
            self._retry_unschedulable()

    def _pod_updated(self, _old: Any, new: Any) -> None:
        self._pod_added(new)

    def _pod_deleted(self, pod: Any) -> None:
        key = key_of(pod)
        self._unschedulable.discard(key)
        self.events.forget(*split_key(key))
        if self.view.release(key):
            self._retry_unschedulable()

    def _observe(self, pod: Any) -> bool:
        spec, status = pod.spec, pod.status
        return self.view.observe(
            key_of(pod),
            spec.nodeName if spec is not None else None,
            status.phase if status is not None else None,
            lambda: pod_requests(pod.to_dict()),
        )

    def _node_added(self, node: Any) -> None:
        self.view.set_node(node.to_dict())
        self._retry_unschedulable()

    def _node_updated(self, old: Any, new: Any) -> None:
        if node_changed_for_scheduling(old, new):
            self._node_added(new)

    def _node_deleted(self, node: Any) -> None:
        self.view.remove_node(node.metadata.name)

    def _retry_unschedulable(self) -> None:
        for key in list(self._unschedulable):
            self.controller.enqueue(key)

    def _retry_pod(self, key: str) -> None:
        """A change that concerns one pod only (e.g. its generated ResourceClaim appeared) retries just it."""
        if key in self._unschedulable:
            self.controller.enqueue(key)

    # --- reconcile -------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        pod = self.controller.get(key)
        if pod is None or not is_pending_for(pod, self.scheduler_name):
            self._unschedulable.discard(key)
            return None
        if self.view.is_placed(key):
            return None  # assumed: its binding is in flight or not yet seen by the watch
        try:
            info = PodInfo.of(pod.to_dict())
        except ValueError as exc:
            await self._unschedulable_pod(key, pod, str(exc))
            return None
        claims = await self.dra.prepare(info.pod)
        if isinstance(claims, Wait):
            self._unschedulable.add(key)
            if claims.event:
                await self._unschedulable_pod(key, pod, claims.message)
            return None
        filters = self.filters if claims is None else (*self.filters, claims.filter)
        nodes = self.view.node_infos()
        result = choose_node(info, nodes, filters=filters, start=self._next_start)
        self._next_start = (self._next_start + result.processed) % max(len(nodes), 1)
        if result.node is None:
            await self._unschedulable_pod(key, pod, result.message)
            return Result(requeue_after=RETRY_UNSCHEDULABLE_S)
        self._unschedulable.discard(key)
        self.view.assume(key, result.node, info.requests)
        planned = [] if claims is None else self.dra.reserve(claims, result.node)
        try:
            if claims is not None:
                await self.dra.prebind(claims, planned)
            await self._bind(key, result.node)
        except ReserveError as exc:
            self.view.release(key)
            self.dra.unreserve(planned)
            log.info("not binding %s: %s", key, exc)
            return Result(requeue=True)
        except ApiError as exc:
            self.view.release(key)
            self.dra.unreserve(planned)
            # The pod went or changed, or its namespace is being deleted (and the pod with it): nothing to do.
            if exc.status.code in (404, 409) or is_namespace_terminating(exc):
                log.info("not binding %s: %s", key, exc.status.message)
                return None
            raise
        except BaseException:
            self.view.release(key)
            self.dra.unreserve(planned)
            raise
        log.debug("bound %s to %s", key, result.node)
        return None

    async def _bind(self, key: str, node: str) -> None:
        """POST pods/binding. The API server answers with a `Status`, which lightkube's `create` would try
        to read as a Binding and fail on, so this sends the request through lightkube's request builder
        and only checks the HTTP status (errors still raise `ApiError`)."""
        namespace, name = split_key(key)
        binding = Pod.Binding(
            metadata=ObjectMeta(name=name, namespace=namespace),
            target=ObjectReference(apiVersion="v1", kind="Node", name=node),
        )
        generic = self.client._client
        request = dataclasses.replace(
            generic.prepare_request("post", obj=binding, name=name, namespace=namespace), response_type=None
        )
        response = await generic.send(generic.build_adapter_request(request))
        generic.handle_response("post", response, request)

    async def _unschedulable_pod(self, key: str, pod: Any, message: str) -> None:
        self._unschedulable.add(key)
        namespace, name = split_key(key)
        log.info("cannot schedule %s: %s", key, message)
        involved = ObjectReference(
            apiVersion="v1",
            kind="Pod",
            namespace=namespace,
            name=name,
            uid=pod.metadata.uid,
            resourceVersion=pod.metadata.resourceVersion,
        )
        await self.events.record(involved, "Warning", REASON_FAILED_SCHEDULING, message)
        if has_condition(pod, message):
            return
        condition = unschedulable_condition(message, datetime.now(UTC).replace(microsecond=0))
        try:
            await self.client.patch(
                Pod.Status,
                name,
                {"status": {"conditions": [condition]}},
                namespace=namespace,
                patch_type=PatchType.STRATEGIC,
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise


async def run_scheduler(
    client: AsyncClient,
    *,
    informers: SharedInformers | None = None,
    workers: int = DEFAULT_WORKERS,
    registry: CollectorRegistry | None = None,
) -> None:
    """Run the default scheduler until cancelled (what `kplane up` starts)."""
    await Scheduler(client, informers=informers, workers=workers, registry=registry).run()
