"""kplane.storage watches: replay, live events, prefixes, slow watchers, compaction, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kplane.storage import CompactedError, Event, FutureRevisionError, Store, Watch


def obj(name: str, **data: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "db.sqlite", watch_window=50)
    yield s
    await s.close()


async def take(watch: Watch, n: int) -> list[Event]:
    return [await asyncio.wait_for(anext(watch), 5) for _ in range(n)]


async def test_replay_then_live_in_order(store: Store) -> None:
    await store.create("/r/a", obj("a"))
    await store.create("/r/b", obj("b"))
    await store.update("/r/a", obj("a", v=2))
    watch = store.watch("/r/", 1)
    events = await take(watch, 2)
    assert [(e.type, e.key, e.revision) for e in events] == [("ADDED", "/r/b", 2), ("MODIFIED", "/r/a", 3)]
    assert events[1].prev is not None and events[1].prev["metadata"]["resourceVersion"] == "1"
    assert events[0].prev is None
    deleted = await store.delete("/r/b")
    [event] = await take(watch, 1)
    assert (event.type, event.revision, event.obj) == ("DELETED", 4, deleted)
    assert event.prev is not None and event.prev["metadata"]["resourceVersion"] == "2"
    watch.close()


async def test_watch_filters_by_prefix(store: Store) -> None:
    watch = store.watch("/r/ns1/", 0)
    await store.create("/r/ns10/a", obj("a"))
    await store.create("/r/ns1/b", obj("b"))
    await store.create("/q/ns1/c", obj("c"))
    await store.create("/r/ns1/d", obj("d"))
    assert [e.key for e in await take(watch, 2)] == ["/r/ns1/b", "/r/ns1/d"]
    watch.close()


async def test_no_gaps_or_duplicates_while_writes_continue(store: Store) -> None:
    for i in range(10):
        await store.create(f"/r/{i}", obj(str(i)))
    writers = asyncio.gather(*(store.update(f"/r/{i % 10}", obj("x", i=i)) for i in range(30)))
    watch = store.watch("/r/", 5)
    events = await take(watch, 35)
    await writers
    assert [e.revision for e in events] == list(range(6, 41))
    watch.close()


async def test_many_watchers_see_the_same_sequence(store: Store) -> None:
    watches = [store.watch("/r/", 0) for _ in range(5)]
    await asyncio.gather(*(store.create(f"/r/{i}", obj(str(i))) for i in range(20)))
    sequences = [[e.revision for e in await take(w, 20)] for w in watches]
    assert all(seq == list(range(1, 21)) for seq in sequences)


async def test_slow_watcher_is_ended_without_blocking_writers(store: Store) -> None:
    slow = store.watch("/r/", 0)
    fast = store.watch("/r/", 0)
    for i in range(60):  # more than the window of 50
        await store.create(f"/r/{i}", obj(str(i)))
        await take(fast, 1)
    with pytest.raises(CompactedError):
        await anext(slow)
    with pytest.raises(StopAsyncIteration):
        await anext(slow)
    assert store.revision == 60
    await store.create("/r/more", obj("more"))
    assert (await take(fast, 1))[0].key == "/r/more"
    fast.close()


async def test_watch_outside_window(store: Store) -> None:
    for i in range(60):
        await store.create(f"/r/{i}", obj(str(i)))
    with pytest.raises(CompactedError) as info:
        store.watch("/r/", 5)
    assert info.value.compacted_revision == 10
    watch = store.watch("/r/", 10)
    assert (await take(watch, 1))[0].revision == 11
    with pytest.raises(FutureRevisionError):
        store.watch("/r/", 61)
    watch.close()


async def test_watch_after_compaction(store: Store) -> None:
    for i in range(10):
        await store.create(f"/r/{i}", obj(str(i)))
    running = store.watch("/r/", 0)
    await store.compact(keep=4)
    with pytest.raises(CompactedError) as info:
        store.watch("/r/", 5)
    assert info.value.compacted_revision == 6
    assert [e.revision for e in await take(store.watch("/r/", 6), 4)] == [7, 8, 9, 10]
    assert len(await take(running, 10)) == 10  # already queued events survive


async def test_close_ends_watches(tmp_path: Path) -> None:
    s = await Store.open(tmp_path / "db.sqlite")
    watch = s.watch("/r/", 0)
    waiting = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    await s.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_watch_close_stops_iteration(store: Store) -> None:
    watch = store.watch("/r/", 0)
    await store.create("/r/a", obj("a"))
    watch.close()
    assert [e.key async for e in watch] == ["/r/a"]
    await store.create("/r/b", obj("b"))
    assert [e async for e in watch] == []


async def test_watch_resumes_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    s = await Store.open(path)
    await s.create("/r/a", obj("a"))
    await s.update("/r/a", obj("a", v=2))
    await s.delete("/r/a")
    await s.create("/r/a", obj("a", v=3))
    await s.close()
    s = await Store.open(path)
    events = await take(s.watch("/r/", 0), 4)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED", "ADDED"]
    assert [e.revision for e in events] == [1, 2, 3, 4]
    assert events[1].prev == events[0].obj
    assert events[2].obj["metadata"]["resourceVersion"] == "3" and events[2].prev == events[1].obj
    assert events[3].prev is None
    await s.close()
    s = await Store.open(path, watch_window=2)
    with pytest.raises(CompactedError):
        s.watch("/r/", 1)
    assert [e.revision for e in await take(s.watch("/r/", 2), 2)] == [3, 4]
    await s.close()
