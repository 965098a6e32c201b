"""A controller: informers feed keys into a work queue, N workers call a plain async reconcile function.

The shape is controller-runtime's (sigs.k8s.io/controller-runtime/pkg/internal/controller/controller.go):
the primary resource's own changes enqueue its key; changes to secondary resources are mapped to primary
keys (by owner reference, or by any function); reconcile is level-based and returns an optional `Result`
asking to be requeued. Errors are retried with per-key exponential backoff; success forgets the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.core import resource as lkres
from prometheus_client import CollectorRegistry

from kplane.runtime.informer import EventHandler, Informer, SharedInformers
from kplane.runtime.metrics import (
    RESULT_ERROR,
    RESULT_REQUEUE,
    RESULT_REQUEUE_AFTER,
    RESULT_SUCCESS,
    metrics_for,
)
from kplane.runtime.objects import key_of, make_key, namespace_of, owner_references_of
from kplane.runtime.workqueue import (
    DEFAULT_BASE_DELAY,
    DEFAULT_MAX_DELAY,
    ExponentialBackoff,
    WorkQueue,
    run_workers,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What reconcile asks for next: nothing (None or `Result()`), a backoff retry, or a timed requeue."""

    requeue: bool = False
    requeue_after: float | None = None


Reconcile = Callable[[str], Awaitable[Result | None]]
KeyMapper = Callable[[Any], Iterable[str]]


def api_group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def enqueue_owner(owner_kind: str, owner_group: str = "", *, owner_namespaced: bool = True) -> KeyMapper:
    """Map a dependent to the key of its controlling owner of the given kind (ownerReference controller=true).

    Owners live in the dependent's namespace, or are cluster-scoped (then the key is the bare name).
    """

    def mapper(obj: Any) -> list[str]:
        namespace = namespace_of(obj) if owner_namespaced else ""
        return [
            make_key(namespace, ref.name)
            for ref in owner_references_of(obj)
            if ref.controller and ref.kind == owner_kind and api_group_of(ref.api_version) == owner_group
        ]

    return mapper


def _enqueue_handler(enqueue: Callable[[str], None], mapper: KeyMapper) -> EventHandler:
    def on_add(obj: Any) -> None:
        for key in mapper(obj):
            enqueue(key)

    def on_update(old: Any, new: Any) -> None:
        for key in {*mapper(old), *mapper(new)}:
            enqueue(key)

    return EventHandler(on_add=on_add, on_update=on_update, on_delete=on_add)


class Controller:
    def __init__(
        self,
        name: str,
        client: AsyncClient,
        resource: type,
        reconcile: Reconcile,
        *,
        workers: int = 1,
        namespace: str | None = None,
        labels: dict[str, Any] | None = None,
        informers: SharedInformers | None = None,
        backoff_base_s: float = DEFAULT_BASE_DELAY,
        backoff_cap_s: float = DEFAULT_MAX_DELAY,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"controller {name!r}: workers must be at least 1, got {workers}")
        ExponentialBackoff[str](backoff_base_s, backoff_cap_s)  # validate now rather than at run time
        self.name = name
        self.client = client
        self.resource = resource
        self.reconcile = reconcile
        self.workers = workers
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.informers = informers if informers is not None else SharedInformers(client)
        self.informer = self.informers.get(resource, namespace=namespace, labels=labels)
        self._watches: list[tuple[Informer, KeyMapper]] = [(self.informer, lambda obj: [key_of(obj)])]
        self._queue: WorkQueue[str] | None = None
        self._metrics = metrics_for(registry)

    def __repr__(self) -> str:
        return f"Controller({self.name!r})"

    def watches(
        self,
        resource: type,
        mapper: KeyMapper,
        *,
        namespace: str | None = None,
        labels: dict[str, Any] | None = None,
    ) -> Informer:
        """Also reconcile, on changes to `resource`, the primary keys `mapper` returns. Call before `run`."""
        informer = self.informers.get(resource, namespace=namespace, labels=labels)
        self._watches.append((informer, mapper))
        return informer

    def owns(self, resource: type, *, namespace: str | None = None) -> Informer:
        """Reconcile the controlling owner (of this controller's kind) when a dependent changes."""
        info = lkres.api_info(self.resource).resource
        mapper = enqueue_owner(
            info.kind, info.group, owner_namespaced=issubclass(self.resource, lkres.NamespacedResource)
        )
        return self.watches(resource, mapper, namespace=namespace)

    def get(self, key: str) -> Any | None:
        """The primary object for `key` from the cache, or None once it is gone."""
        return self.informer.store.get(key)

    def enqueue(self, key: str) -> None:
        if self._queue is not None:
            self._queue.add(key)

    async def run(self) -> None:
        """Run until cancelled; cancelling also cancels reconciles in flight. May be run again afterwards."""
        queue: WorkQueue[str] = WorkQueue(ExponentialBackoff(self.backoff_base_s, self.backoff_cap_s))
        self._queue = queue
        self._metrics.queue_depth.labels(self.name).set_function(lambda: len(queue))
        registered = [
            (informer, informer.add_handler(_enqueue_handler(queue.add, mapper)))
            for informer, mapper in self._watches
        ]
        informers = list(dict.fromkeys(informer for informer, _ in self._watches))
        for informer in informers:
            informer.start()
        try:
            await asyncio.gather(*(informer.wait_synced() for informer in informers))
            log.info("%r: caches synced, starting %d workers", self, self.workers)
            await run_workers(queue, self.workers, lambda key: self._process(queue, key))
        finally:
            queue.shut_down()
            self._queue = None
            self._metrics.queue_depth.labels(self.name).set_function(lambda: 0)
            for informer, handler in registered:
                informer.remove_handler(handler)
            for informer in informers:
                with contextlib.suppress(Exception):
                    await informer.stop()

    async def _process(self, queue: WorkQueue[str], key: str) -> None:
        started = time.perf_counter()
        try:
            result = await self.reconcile(key)
        except Exception:
            log.exception("%r: reconcile %s failed", self, key)
            self._metrics.reconcile_errors.labels(self.name).inc()
            self._count(RESULT_ERROR)
            queue.add_rate_limited(key)
            return
        finally:
            self._metrics.reconcile_time.labels(self.name).observe(time.perf_counter() - started)
        if result is not None and result.requeue_after is not None and result.requeue_after > 0:
            queue.forget(key)
            queue.add_after(key, result.requeue_after)
            self._count(RESULT_REQUEUE_AFTER)
        elif result is not None and result.requeue:
            queue.add_rate_limited(key)
            self._count(RESULT_REQUEUE)
        else:
            queue.forget(key)
            self._count(RESULT_SUCCESS)

    def _count(self, result: str) -> None:
        self._metrics.reconcile_total.labels(self.name, result).inc()
