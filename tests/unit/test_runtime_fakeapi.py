"""An in-memory stand-in for the slice of lightkube's AsyncClient the informer uses (list and watch).

It keeps an event history so a watch can resume from a resourceVersion, answers 410 for versions older
than its compaction point, and can drop every open watch as a server restart would. Imported by the
other runtime unit tests; it holds no tests itself.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import Status

from kplane.runtime.objects import key_of

Widget = create_namespaced_resource("test.kplane.dev", "v1", "Widget", "widgets")


def gone() -> ApiError:
    return ApiError(status=Status(code=410, reason="Expired", message="too old resource version"))


class _Disconnect:
    pass


@dataclass
class FakeList:
    items: list[Any]
    rv: str

    @property
    def resourceVersion(self) -> str:
        return self.rv

    async def __aiter__(self) -> AsyncIterator[Any]:
        for item in self.items:
            yield item


@dataclass
class WatchCall:
    resource: type
    params: dict[str, Any]


@dataclass
class FakeApi:
    rv: int = 100
    objects: dict[type, dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[type, int, str, Any]] = field(default_factory=list)
    compacted: int = 0
    list_calls: list[type] = field(default_factory=list)
    watch_calls: list[WatchCall] = field(default_factory=list)
    watchers: list[tuple[type, asyncio.Queue[Any]]] = field(default_factory=list)
    fail_lists: int = 0

    def client(self) -> FakeClient:
        return FakeClient(self)

    def _emit(self, resource: type, event: str, obj: Any) -> Any:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((resource, self.rv, event, obj))
        for watched, queue in self.watchers:
            if watched is resource:
                queue.put_nowait((event, copy.deepcopy(obj)))
        return obj

    def put(self, resource: type, obj: Any) -> Any:
        store = self.objects.setdefault(resource, {})
        event = "MODIFIED" if key_of(obj) in store else "ADDED"
        stored = self._emit(resource, event, obj)
        store[key_of(stored)] = stored
        return stored

    def delete(self, resource: type, key: str) -> None:
        obj = self.objects[resource].pop(key)
        self._emit(resource, "DELETED", obj)

    def bookmark(self, resource: type) -> None:
        self.rv += 1
        for watched, queue in self.watchers:
            if watched is resource:
                queue.put_nowait(("BOOKMARK", resource({"metadata": {"resourceVersion": str(self.rv)}})))

    def compact(self) -> None:
        """Forget all history, so resuming from any earlier version gets 410."""
        self.compacted = self.rv
        self.history.clear()

    def restart(self) -> None:
        """Drop every open watch, as a server going away would."""
        for _, queue in self.watchers:
            queue.put_nowait(_Disconnect())

    async def list(self, resource: type) -> FakeList:
        self.list_calls.append(resource)
        if self.fail_lists:
            self.fail_lists -= 1
            raise httpx2.ConnectError("connection refused")
        items = [resource(copy.deepcopy(o)) for o in self.objects.get(resource, {}).values()]
        return FakeList(items, str(self.rv))

    async def watch(self, resource: type, params: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        self.watch_calls.append(WatchCall(resource, dict(params)))
        since = int(params["resourceVersion"])
        if since < self.compacted:
            raise gone()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        entry = (resource, queue)
        self.watchers.append(entry)
        try:
            for res, rv, event, obj in list(self.history):
                if res is resource and rv > since:
                    yield event, resource(copy.deepcopy(obj))
            while True:
                item = await queue.get()
                if isinstance(item, _Disconnect):
                    raise httpx2.RemoteProtocolError("peer closed connection")
                event, obj = item
                yield event, obj if isinstance(obj, resource) else resource(obj)
        finally:
            self.watchers.remove(entry)


class _FakeGeneric:
    def __init__(self, api: FakeApi) -> None:
        self.api = api

    def prepare_request(self, method: str, **kwargs: Any) -> WatchCall:
        assert method == "list" and kwargs["watch"] is True
        params = {k: v for k, v in kwargs["params"].items() if v is not None}
        return WatchCall(kwargs["res"], params)

    def watch(self, request: WatchCall, on_error: Any) -> AsyncIterator[tuple[str, Any]]:
        return self.api.watch(request.resource, request.params)


class _ListResult:
    """Mimics lightkube's ListAsyncIterable: an async iterable with resourceVersion after iteration."""

    def __init__(self, api: FakeApi, resource: type) -> None:
        self._api = api
        self._resource = resource
        self.resourceVersion = ""

    async def __aiter__(self) -> AsyncIterator[Any]:
        result = await self._api.list(self._resource)
        self.resourceVersion = result.rv
        async for item in result:
            yield item


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self._client = _FakeGeneric(api)

    def list(self, resource: type, **kwargs: Any) -> _ListResult:
        return _ListResult(self.api, resource)


def widget(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": dict(spec)}


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll `predicate` until true; the timeout only guards against a hang, it asserts nothing about speed."""

    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), timeout)
