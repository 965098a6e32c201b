"""List+watch one resource type into a shared cache and fan changes out to handlers.

The loop follows client-go's reflector (k8s.io/client-go/tools/cache/reflector.go): list once, then watch
from the list's resourceVersion with `allowWatchBookmarks=true`; when a watch breaks (timeout, server
restart, network error) resume from the last resourceVersion seen (events and bookmarks both advance it);
only a `410 Gone`/`Expired` forces a relist. A relist is diffed against the cache so handlers see exactly
the adds, updates and deletes they missed, and an object whose resourceVersion is unchanged is not
delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import AsyncClient
from lightkube.core import resource as lkres
from lightkube.core.exceptions import ApiError
from lightkube.core.generic_client import ALL_NS
from lightkube.core.selector import build_selector
from lightkube.types import on_error_raise

from kplane.runtime.objects import is_newer, key_of, resource_version_of
from kplane.runtime.store import IndexFunc, Store
from kplane.runtime.tasks import cancel_and_wait
from kplane.runtime.workqueue import backoff_delay

log = logging.getLogger(__name__)

# client-go's reflector picks a watch timeout between 5 and 10 minutes; a fixed 5 is close enough.
DEFAULT_WATCH_TIMEOUT_S = 300
DEFAULT_LIST_CHUNK = 500


@dataclass
class EventHandler:
    """Callbacks run synchronously on the informer's task: keep them quick (enqueue a key, nothing more)."""

    on_add: Callable[[Any], None] | None = None
    on_update: Callable[[Any, Any], None] | None = None
    on_delete: Callable[[Any], None] | None = None


def is_gone(exc: BaseException) -> bool:
    """Whether `exc` is the 410 that means "your resourceVersion is too old, list again".

    The status can arrive as the HTTP status of the watch request or as an ERROR event inside the stream.
    """
    if isinstance(exc, ApiError) and exc.status is not None:
        return exc.status.code == 410
    if isinstance(exc, httpx2.HTTPStatusError):
        try:
            return exc.response.status_code == 410
        except RuntimeError:
            return False
    return False


def _is_namespaced(resource: type) -> bool:
    return issubclass(resource, lkres.NamespacedResource)


class Informer:
    def __init__(
        self,
        client: AsyncClient,
        resource: type,
        *,
        namespace: str | None = None,
        labels: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        chunk_size: int = DEFAULT_LIST_CHUNK,
        watch_timeout_s: int = DEFAULT_WATCH_TIMEOUT_S,
        retry_base_s: float = 0.2,
        retry_cap_s: float = 30.0,
    ) -> None:
        if namespace is not None and not _is_namespaced(resource):
            raise ValueError(f"{resource.__name__} is cluster-scoped; it takes no namespace")
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.store = Store(indexers)
        self.chunk_size = chunk_size
        self.watch_timeout_s = watch_timeout_s
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._handlers: list[EventHandler] = []
        self._rv: str | None = None
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self._failures = 0

    def __repr__(self) -> str:
        return f"Informer({self.resource.__name__}, namespace={self.namespace!r})"

    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion observed (from a list, an event or a bookmark)."""
        return self._rv

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def add_handler(self, handler: EventHandler) -> EventHandler:
        """Register `handler`; if the cache is already filled it first sees every cached object as an add."""
        self._handlers.append(handler)
        if self.has_synced() and handler.on_add is not None:
            for obj in self.store.list():
                self._call(handler.on_add, obj)
        return handler

    def remove_handler(self, handler: EventHandler) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    def start(self) -> None:
        """Take a reference; the first one starts the list+watch task."""
        self._users += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=repr(self))

    async def stop(self) -> None:
        """Drop a reference; the last one stops the task and empties the cache (a later start relists)."""
        self._users = max(0, self._users - 1)
        if self._users or self._task is None:
            return
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.store.clear()
        self._rv = None
        self._synced.clear()

    async def run(self) -> None:
        """List and watch until cancelled, surviving errors with capped exponential backoff."""
        while True:
            try:
                if self._rv is None or not self.has_synced():
                    await self._relist()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                gone = is_gone(exc)
                if gone:
                    log.info("%r: resourceVersion %s expired, relisting", self, self._rv)
                    self._rv = None
                else:
                    log.warning("%r: list/watch failed, retrying from %s: %s", self, self._rv, exc)
                self._failures += 1
                if gone and self._failures == 1:
                    continue
                await asyncio.sleep(backoff_delay(self.retry_base_s, self.retry_cap_s, self._failures - 1))

    async def _relist(self) -> None:
        items: Any = self.client.list(
            self.resource,
            namespace=self._namespace_arg(),
            chunk_size=self.chunk_size,
            labels=self.labels,
            fields=self.fields,
        )
        fresh: dict[str, Any] = {}
        async for obj in items:
            fresh[key_of(obj)] = obj
        try:
            list_rv: str | None = items.resourceVersion
        except Exception:
            list_rv = None
        for key in self.store:
            if key not in fresh:
                gone = self.store.delete(key)
                self._dispatch_delete(gone)
        for obj in fresh.values():
            self._apply(obj)
        self._rv = list_rv
        self._failures = 0
        self._synced.set()

    async def _watch(self) -> None:
        stream = self._watch_stream()
        async with contextlib.aclosing(stream):
            async for event_type, obj in stream:
                self._failures = 0
                if event_type in ("ADDED", "MODIFIED"):
                    self._apply(obj)
                elif event_type == "DELETED":
                    gone = self.store.delete(key_of(obj))
                    if gone is not None:
                        self._dispatch_delete(obj)
                rv = resource_version_of(obj)
                if rv:
                    self._rv = rv

    def _watch_stream(self) -> AsyncGenerator[tuple[str, Any], None]:
        """lightkube's watch plus `allowWatchBookmarks`, which its public `watch()` cannot request.

        This builds the request through lightkube's own request builder and watch driver (which also
        reconnects from the last version when the server closes a stream normally), so no HTTP is done here.
        """
        params: dict[str, Any] = {
            "resourceVersion": self._rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.watch_timeout_s,
            "labelSelector": build_selector(self.labels) if self.labels else None,
            "fieldSelector": build_selector(self.fields, for_fields=True) if self.fields else None,
        }
        generic = self.client._client
        request = generic.prepare_request(
            "list", res=self.resource, namespace=self._namespace_arg(), watch=True, params=params
        )
        stream: AsyncGenerator[tuple[str, Any], None] = generic.watch(request, on_error=on_error_raise)
        return stream

    def _namespace_arg(self) -> str | None:
        if not _is_namespaced(self.resource):
            return None
        return self.namespace if self.namespace is not None else ALL_NS

    def _apply(self, obj: Any) -> None:
        old = self.store.get(key_of(obj))
        if old is not None and not is_newer(resource_version_of(obj), resource_version_of(old)):
            return
        self.store.put(obj)
        for handler in list(self._handlers):
            if old is None and handler.on_add is not None:
                self._call(handler.on_add, obj)
            elif old is not None and handler.on_update is not None:
                self._call(handler.on_update, old, obj)

    def _dispatch_delete(self, obj: Any) -> None:
        for handler in list(self._handlers):
            if handler.on_delete is not None:
                self._call(handler.on_delete, obj)

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        try:
            func(*args)
        except Exception:
            log.exception("%r: event handler failed", self)


class SharedInformers:
    """One informer per (resource, namespace, selectors), so controllers watching the same thing share it."""

    def __init__(self, client: AsyncClient, **informer_options: Any) -> None:
        self.client = client
        self._options = informer_options
        self._informers: dict[tuple[type, str | None, str, str], Informer] = {}

    def get(
        self,
        resource: type,
        *,
        namespace: str | None = None,
        labels: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> Informer:
        selectors = (repr(sorted((labels or {}).items())), repr(sorted((fields or {}).items())))
        key = (resource, namespace, *selectors)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client, resource, namespace=namespace, labels=labels, fields=fields, **self._options
            )
            self._informers[key] = informer
        return informer

    def informers(self) -> Iterable[Informer]:
        return list(self._informers.values())
