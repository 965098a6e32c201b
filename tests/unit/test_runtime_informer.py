"""Informer: list then watch, resume after disconnects, relist with a diff after 410, handler fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from lightkube.resources.core_v1 import Node

from kplane.runtime.informer import EventHandler, Informer, SharedInformers, is_gone
from kplane.runtime.objects import key_of, resource_version_of
from kplane.runtime.store import index_by_field
from tests.unit.test_runtime_fakeapi import FakeApi, Widget, gone, until, widget


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def handler(self) -> EventHandler:
        return EventHandler(
            on_add=lambda o: self.events.append(("add", key_of(o), resource_version_of(o))),
            on_update=lambda old, new: self.events.append(("update", key_of(new), resource_version_of(new))),
            on_delete=lambda o: self.events.append(("delete", key_of(o), resource_version_of(o))),
        )


def make_informer(api: FakeApi, **kwargs: Any) -> Informer:
    return Informer(api.client(), Widget, retry_base_s=0.001, retry_cap_s=0.01, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def running() -> AsyncIterator[tuple[FakeApi, Informer, Recorder]]:
    api = FakeApi()
    api.put(Widget, widget("a"))
    api.put(Widget, widget("b"))
    informer = make_informer(api)
    recorder = Recorder()
    informer.add_handler(recorder.handler())
    informer.start()
    await asyncio.wait_for(informer.wait_synced(), 5)
    await until(lambda: bool(api.watchers))
    yield api, informer, recorder
    await informer.stop()


async def test_initial_list_fills_cache_and_watch_starts_from_list_version(running: Any) -> None:
    api, informer, recorder = running
    assert informer.has_synced()
    assert sorted(informer.store.keys()) == ["default/a", "default/b"]
    assert sorted(e[:2] for e in recorder.events) == [("add", "default/a"), ("add", "default/b")]
    (call,) = api.watch_calls
    assert call.params["resourceVersion"] == "102"
    assert call.params["allowWatchBookmarks"] == "true"
    assert "timeoutSeconds" in call.params


async def test_watch_events_reach_cache_and_handlers(running: Any) -> None:
    api, informer, recorder = running
    recorder.events.clear()
    api.put(Widget, widget("c"))
    api.put(Widget, widget("a", size=2))
    api.delete(Widget, "default/b")
    await until(lambda: len(recorder.events) == 3)
    assert recorder.events == [
        ("add", "default/c", "103"),
        ("update", "default/a", "104"),
        ("delete", "default/b", "105"),
    ]
    assert sorted(informer.store.keys()) == ["default/a", "default/c"]
    assert informer.store.get("default/a")["spec"] == {"size": 2}
    assert informer.resource_version == "105"


async def test_bookmark_advances_version_without_events(running: Any) -> None:
    api, informer, recorder = running
    recorder.events.clear()
    api.bookmark(Widget)
    await until(lambda: informer.resource_version == "103")
    assert recorder.events == []


async def test_disconnect_resumes_from_last_version_without_relist_or_repeats(running: Any) -> None:
    api, informer, recorder = running
    api.put(Widget, widget("c"))
    await until(lambda: "default/c" in informer.store)
    recorder.events.clear()
    api.restart()
    api.put(Widget, widget("d"))
    await until(lambda: len(api.watch_calls) == 2 and "default/d" in informer.store)
    assert api.list_calls == [Widget]
    assert api.watch_calls[1].params["resourceVersion"] == "103"
    assert recorder.events == [("add", "default/d", "104")]


async def test_expired_version_relists_and_delivers_only_the_difference(running: Any) -> None:
    api, informer, recorder = running
    recorder.events.clear()
    api.restart()
    # While the watch is down: one update, one delete, one add, then history is compacted away.
    api.put(Widget, widget("a", size=9))
    api.delete(Widget, "default/b")
    api.put(Widget, widget("c"))
    api.compact()
    await until(lambda: len(api.list_calls) == 2 and len(recorder.events) == 3)
    assert sorted(recorder.events) == [
        ("add", "default/c", "105"),
        ("delete", "default/b", "102"),
        ("update", "default/a", "103"),
    ]
    assert sorted(informer.store.keys()) == ["default/a", "default/c"]
    await until(lambda: len(api.watchers) == 1)
    assert api.watch_calls[-1].params["resourceVersion"] == "105"


async def test_repeated_or_stale_events_are_ignored(running: Any) -> None:
    _, informer, recorder = running
    recorder.events.clear()
    stale = informer.store.get("default/a")
    informer._apply(Widget(dict(stale)))  # type: ignore[call-overload]
    old = Widget({"metadata": {"name": "a", "namespace": "default", "resourceVersion": "1"}})  # type: ignore[call-overload]
    informer._apply(old)
    assert recorder.events == []


async def test_handler_errors_do_not_stop_the_informer(running: Any) -> None:
    api, informer, recorder = running

    def explode(obj: Any) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(EventHandler(on_add=explode))
    recorder.events.clear()
    api.put(Widget, widget("z"))
    await until(lambda: ("add", "default/z", "103") in recorder.events)


async def test_late_handler_sees_cached_objects_as_adds(running: Any) -> None:
    _, informer, _ = running
    late = Recorder()
    handler = informer.add_handler(late.handler())
    assert sorted(e[1] for e in late.events) == ["default/a", "default/b"]
    informer.remove_handler(handler)
    informer.remove_handler(handler)


async def test_list_failures_are_retried() -> None:
    api = FakeApi()
    api.put(Widget, widget("a"))
    api.fail_lists = 2
    informer = make_informer(api)
    informer.start()
    await asyncio.wait_for(informer.wait_synced(), 5)
    assert len(api.list_calls) == 3
    await informer.stop()


async def test_stop_is_reference_counted_and_clears_cache() -> None:
    api = FakeApi()
    api.put(Widget, widget("a"))
    informer = make_informer(api, indexers={"size": index_by_field("spec", "size")})
    informer.start()
    informer.start()
    await asyncio.wait_for(informer.wait_synced(), 5)
    await informer.stop()
    assert informer.has_synced()
    await informer.stop()
    assert not informer.has_synced()
    assert len(informer.store) == 0
    assert informer.resource_version is None
    await informer.stop()


def test_cluster_scoped_resource_takes_no_namespace() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        Informer(FakeApi().client(), Node, namespace="ns")  # type: ignore[arg-type]


def test_is_gone_recognises_410_only() -> None:
    assert is_gone(gone())
    request = httpx2.Request("GET", "https://x")
    for code, expected in [(410, True), (500, False), (404, False)]:
        response = httpx2.Response(code, request=request)
        assert is_gone(httpx2.HTTPStatusError("x", request=request, response=response)) is expected
    assert not is_gone(httpx2.ConnectError("refused"))
    assert not is_gone(ValueError("410"))


def test_shared_informers_are_shared_per_selection() -> None:
    shared = SharedInformers(FakeApi().client())  # type: ignore[arg-type]
    assert shared.get(Widget) is shared.get(Widget)
    assert shared.get(Widget, namespace="a") is not shared.get(Widget)
    assert shared.get(Widget, labels={"x": "1"}) is shared.get(Widget, labels={"x": "1"})
    assert len(list(shared.informers())) == 3
