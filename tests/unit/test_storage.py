"""kplane.storage: CRUD, compare-and-swap, group commit, lists and snapshots, compaction, reopen."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kplane.storage import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
    StoreError,
)


def obj(name: str, **data: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def rv(o: dict[str, Any]) -> int:
    return int(o["metadata"]["resourceVersion"])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "db.sqlite")
    yield s
    await s.close()


async def test_create_get_and_stamped_copy(store: Store) -> None:
    mine = obj("a", x=1)
    created = await store.create("/r/a", mine)
    assert rv(created) == 1 == store.revision
    assert "resourceVersion" not in mine["metadata"]
    mine["data"]["x"] = 2
    assert store.get("/r/a") == created
    assert created["data"] == {"x": 1}
    assert store.get("/r/missing") is None


async def test_create_overwrites_caller_resource_version(store: Store) -> None:
    created = await store.create("/r/a", {"metadata": {"name": "a", "resourceVersion": "77"}})
    assert created["metadata"]["resourceVersion"] == "1"


async def test_object_without_metadata_gets_one(store: Store) -> None:
    created = await store.create("/r/a", {"spec": 1})
    assert created == {"spec": 1, "metadata": {"resourceVersion": "1"}}


async def test_create_existing_key_fails_and_consumes_no_revision(store: Store) -> None:
    await store.create("/r/a", obj("a"))
    with pytest.raises(KeyExistsError) as info:
        await store.create("/r/a", obj("a"))
    assert info.value.key == "/r/a"
    assert store.revision == 1
    assert rv(await store.create("/r/b", obj("b"))) == 2


async def test_update_and_compare_and_swap(store: Store) -> None:
    first = await store.create("/r/a", obj("a", v=1))
    second = await store.update("/r/a", obj("a", v=2), expected_revision=rv(first))
    assert rv(second) == 2 and second["data"] == {"v": 2}
    with pytest.raises(RevisionConflictError) as info:
        await store.update("/r/a", obj("a", v=3), expected_revision=rv(first))
    assert info.value.current_revision == 2
    assert store.get("/r/a") == second
    third = await store.update("/r/a", obj("a", v=3))
    assert rv(third) == 3


async def test_update_or_delete_missing_key(store: Store) -> None:
    with pytest.raises(KeyNotFoundError):
        await store.update("/r/a", obj("a"))
    with pytest.raises(KeyNotFoundError):
        await store.update("/r/a", obj("a"), expected_revision=1)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/r/a")
    assert store.revision == 0


async def test_delete_returns_last_object_at_deletion_revision(store: Store) -> None:
    created = await store.create("/r/a", obj("a", v=1))
    with pytest.raises(RevisionConflictError):
        await store.delete("/r/a", expected_revision=rv(created) + 5)
    await store.create("/r/b", obj("b"))
    gone = await store.delete("/r/a", expected_revision=rv(created))
    assert rv(gone) == 3 and gone["data"] == {"v": 1}
    assert store.get("/r/a") is None
    with pytest.raises(KeyNotFoundError):
        await store.delete("/r/a")


async def test_recreate_after_delete(store: Store) -> None:
    await store.create("/r/a", obj("a", v=1))
    await store.delete("/r/a")
    again = await store.create("/r/a", obj("a", v=2))
    assert rv(again) == 3
    await store.delete("/r/a")
    assert rv(await store.create("/r/a", obj("a", v=3))) == 5


async def test_concurrent_cas_exactly_one_wins(store: Store) -> None:
    base = await store.create("/r/a", obj("a"))
    results = await asyncio.gather(
        *(store.update("/r/a", obj("a", w=i), expected_revision=rv(base)) for i in range(10)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, RevisionConflictError) for r in results if not isinstance(r, dict))
    assert store.get("/r/a") == winners[0]


async def test_concurrent_deletes_exactly_one_wins(store: Store) -> None:
    await store.create("/r/a", obj("a"))
    results = await asyncio.gather(*(store.delete("/r/a") for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, KeyNotFoundError) for r in results) == 4


async def test_500_concurrent_creates_get_contiguous_revisions(store: Store) -> None:
    created = await asyncio.gather(*(store.create(f"/r/{i:03}", obj(str(i))) for i in range(500)))
    assert sorted(rv(c) for c in created) == list(range(1, 501))
    assert store.revision == 500
    assert len(store.list("/r/").items) == 500


async def test_bad_input(store: Store, tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        await store.create("/r/a", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.create("/r/a", {"metadata": "x"})
    with pytest.raises(TypeError):
        await store.create("/r/a", {"metadata": {}, "bad": {1, 2}})
    with pytest.raises(ValueError):
        await store.create("", obj("a"))
    with pytest.raises(ValueError):
        await store.update("/r/a", obj("a"), expected_revision=0)
    with pytest.raises(ValueError):
        store.list("/r/", limit=0)
    with pytest.raises(ValueError):
        store.list("/r/", revision=-1)
    with pytest.raises(ValueError):
        await store.compact(keep=-1)
    with pytest.raises(ValueError):
        await Store.open(tmp_path / "other.sqlite", synchronous="OFF")
    with pytest.raises(ValueError):
        await Store.open(tmp_path / "other.sqlite", watch_window=0)
    assert store.revision == 0


async def test_second_open_of_same_file_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="already open"):
        await Store.open(tmp_path / "db.sqlite")


async def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    s = await Store.open(tmp_path / "db.sqlite")
    await s.create("/r/a", obj("a"))
    await s.close()
    await s.close()
    with pytest.raises(StoreError, match="closed"):
        await s.create("/r/b", obj("b"))
    with pytest.raises(StoreError, match="closed"):
        s.watch("/r/", 0)


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    s = await Store.open(tmp_path / "db.sqlite")
    pending = [asyncio.ensure_future(s.create(f"/r/{i}", obj(str(i)))) for i in range(50)]
    await asyncio.sleep(0)
    await s.close()
    assert all(p.done() and not p.exception() for p in pending)
    s = await Store.open(tmp_path / "db.sqlite")
    assert s.revision == 50
    await s.close()


# --- lists -----------------------------------------------------------------------------------


async def fill(store: Store, names: list[str], prefix: str = "/r/") -> None:
    for name in names:
        await store.create(prefix + name, obj(name, n=name))


async def test_list_prefix_is_exact_and_sorted(store: Store) -> None:
    await fill(store, ["c", "a", "b"])
    await fill(store, ["z"], prefix="/rr/")
    await fill(store, ["q"], prefix="/r")
    result = store.list("/r/")
    assert [o["metadata"]["name"] for o in result.items] == ["a", "b", "c"]
    assert result.revision == 5 and result.continue_key is None and result.remaining == 0
    assert len(store.list("").items) == 5
    assert store.list("/nothing/").items == []


async def test_list_paging(store: Store) -> None:
    await fill(store, [f"{i:02}" for i in range(7)])
    page = store.list("/r/", limit=3)
    assert [o["metadata"]["name"] for o in page.items] == ["00", "01", "02"]
    assert page.continue_key == "/r/02" and page.remaining == 4
    page = store.list("/r/", limit=3, start_after=page.continue_key)
    assert [o["metadata"]["name"] for o in page.items] == ["03", "04", "05"]
    assert page.remaining == 1
    page = store.list("/r/", limit=3, start_after=page.continue_key)
    assert [o["metadata"]["name"] for o in page.items] == ["06"]
    assert page.continue_key is None and page.remaining == 0
    exact = store.list("/r/", limit=7)
    assert exact.continue_key is None and len(exact.items) == 7


async def test_list_predicate_filters_before_limit(store: Store) -> None:
    await fill(store, [f"{i:02}" for i in range(10)])

    def even(o: dict[str, Any]) -> bool:
        return int(o["metadata"]["name"]) % 2 == 0

    page = store.list("/r/", limit=2, predicate=even)
    assert [o["metadata"]["name"] for o in page.items] == ["00", "02"]
    assert page.continue_key == "/r/02" and page.remaining == 0
    page = store.list("/r/", limit=3, predicate=even, start_after="/r/02")
    assert [o["metadata"]["name"] for o in page.items] == ["04", "06", "08"]
    assert page.continue_key is None


async def test_list_snapshot_at_old_revision(store: Store) -> None:
    await fill(store, ["a", "b", "c"])
    at3 = store.revision
    await store.update("/r/a", obj("a", n="changed"))
    await store.delete("/r/b")
    await fill(store, ["d"])
    old = store.list("/r/", revision=at3)
    assert old.revision == 3
    assert [(o["metadata"]["name"], o["data"]["n"], rv(o)) for o in old.items] == [
        ("a", "a", 1),
        ("b", "b", 2),
        ("c", "c", 3),
    ]
    page = store.list("/r/", revision=at3, limit=2)
    assert len(page.items) == 2 and page.continue_key == "/r/b" and page.remaining == 1
    page = store.list("/r/", revision=at3, limit=2, start_after="/r/b")
    assert [o["metadata"]["name"] for o in page.items] == ["c"] and page.continue_key is None
    filtered = store.list("/r/", revision=at3, limit=1, predicate=lambda o: o["data"]["n"] != "a")
    assert [o["metadata"]["name"] for o in filtered.items] == ["b"] and filtered.remaining == 0
    assert store.list("/r/", revision=0).items == []
    assert [o["data"]["n"] for o in store.list("/r/").items] == ["changed", "c", "d"]


async def test_list_future_revision(store: Store) -> None:
    await fill(store, ["a"])
    with pytest.raises(FutureRevisionError) as info:
        store.list("/r/", revision=2)
    assert info.value.current_revision == 1


# --- compaction ------------------------------------------------------------------------------


def rows_in(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM log").fetchone()[0])


async def test_compaction_drops_history_and_answers_compacted(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    s = await Store.open(path)
    await fill(s, ["a", "b"])
    for i in range(5):
        await s.update("/r/a", obj("a", i=i))
    await s.delete("/r/b")  # revision 8
    assert rows_in(path) == 8
    assert await s.compact(keep=0) == 8
    assert s.compacted_revision == 8
    assert rows_in(path) == 1  # only /r/a's latest row
    with pytest.raises(CompactedError) as info:
        s.list("/r/", revision=7)
    assert info.value.compacted_revision == 8
    with pytest.raises(CompactedError):
        s.watch("/r/", 7)
    assert [o["metadata"]["name"] for o in s.list("/r/").items] == ["a"]
    assert await s.compact(keep=0) == 8  # nothing newer to compact
    await s.close()


async def test_compaction_keeps_recent_revisions(store: Store) -> None:
    await fill(store, ["a"])
    for i in range(20):
        await store.update("/r/a", obj("a", i=i))
    assert await store.compact(keep=5) == 16
    assert store.list("/r/", revision=16).items[0]["data"] == {"i": 14}
    with pytest.raises(CompactedError):
        store.list("/r/", revision=15)


def model_history(ops: list[tuple[str, str, int]]) -> list[dict[str, int]]:
    """State after each revision for a list of (kind, key, value) that all succeeded."""
    state: dict[str, int] = {}
    history = [dict(state)]
    for kind, key, value in ops:
        if kind == "delete":
            del state[key]
        else:
            state[key] = value
        history.append(dict(state))
    return history


async def test_random_history_snapshots_survive_compaction_and_reopen(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "db.sqlite"
    s = await Store.open(path)
    done: list[tuple[str, str, int]] = []
    for value in range(400):
        key = f"/r/{rng.randrange(12)}"
        kind = "delete" if s.get(key) is not None and rng.random() < 0.3 else "put"
        if kind == "delete":
            await s.delete(key)
        elif s.get(key) is None:
            await s.create(key, {"metadata": {"name": key}, "v": value})
        else:
            await s.update(key, {"metadata": {"name": key}, "v": value})
        done.append((kind, key, value))
    history = model_history(done)

    def snapshot(store: Store, revision: int) -> dict[str, int]:
        items = store.list("/r/", revision=revision).items
        assert [o["metadata"]["name"] for o in items] == sorted(history[revision])
        return {o["metadata"]["name"]: o["v"] for o in items}

    for revision in range(0, 401, 9):
        assert snapshot(s, revision) == history[revision]
    assert await s.compact(keep=150) == 250
    for revision in range(250, 401, 7):
        assert snapshot(s, revision) == history[revision]
    await s.close()
    s = await Store.open(path)
    assert (s.revision, s.compacted_revision) == (400, 250)
    assert {o["metadata"]["name"]: o["v"] for o in s.list("/r/").items} == history[400]
    for revision in range(250, 401, 11):
        assert snapshot(s, revision) == history[revision]
    await s.close()


# --- reopen ----------------------------------------------------------------------------------


async def test_reopen_restores_state_revision_and_compaction(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    s = await Store.open(path)
    await fill(s, ["a", "b", "c"])
    await s.update("/r/a", obj("a", n="new"))
    await s.delete("/r/c")  # revision 5, a tombstone at the top
    await s.compact(keep=0)
    await s.close()
    s = await Store.open(path)
    assert s.revision == 5 and s.compacted_revision == 5
    assert [(k["metadata"]["name"], rv(k)) for k in s.list("/r/").items] == [("a", 4), ("b", 2)]
    created = await s.create("/r/c", obj("c"))
    assert rv(created) == 6
    with pytest.raises(RevisionConflictError):
        await s.update("/r/a", obj("a"), expected_revision=1)
    await s.close()


async def test_failed_commit_rolls_back_the_whole_group(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kplane.storage import log

    await store.create("/r/a", obj("a"))
    real_append = log.append

    def broken(conn: sqlite3.Connection, rows: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(log, "append", broken)
    results = await asyncio.gather(
        store.update("/r/a", obj("a", v=2)),
        store.delete("/r/a"),
        store.create("/r/b", obj("b")),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) and "disk I/O error" in str(r) for r in results)
    assert store.revision == 1 and store.get("/r/b") is None
    monkeypatch.setattr(log, "append", real_append)
    updated = await store.update("/r/a", obj("a", v=3), expected_revision=1)
    assert rv(updated) == 2
    assert rv(await store.create("/r/b", obj("b"))) == 3


# --- group commit -----------------------------------------------------------------------------


def gate(monkeypatch: pytest.MonkeyPatch, name: str, calls: list[str]) -> threading.Event:
    """Record calls of log.<name>; the first one blocks the writer thread until the event is set."""
    from kplane.storage import log

    real = getattr(log, name)
    release = threading.Event()

    def gated(conn: sqlite3.Connection, *args: Any) -> None:
        calls.append(f"{name} {len(args[0]) if name == 'append' else args[1]}")
        if len(calls) == 1:
            release.wait(10)
        real(conn, *args)

    monkeypatch.setattr(log, name, gated)
    return release


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_writes_queued_during_a_commit_share_the_next_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    release = gate(monkeypatch, "append", calls)
    first = asyncio.ensure_future(store.create("/r/first", obj("first")))
    await until(lambda: bool(calls))
    rest = [asyncio.ensure_future(store.create(f"/r/{i}", obj(str(i)))) for i in range(50)]
    await asyncio.sleep(0)
    assert not first.done()  # not acknowledged before its commit returns
    release.set()
    created = await asyncio.gather(first, *rest)
    assert calls == ["append 1", "append 50"]
    assert [rv(c) for c in created] == list(range(1, 52))


async def test_failed_checks_in_a_batch_consume_no_revision(store: Store) -> None:
    await store.create("/r/a", obj("a"))
    results = await asyncio.gather(
        store.create("/r/a", obj("a")),
        store.create("/r/b", obj("b")),
        store.update("/r/missing", obj("m")),
        store.update("/r/a", obj("a", v=2), expected_revision=1),
        store.update("/r/a", obj("a", v=3), expected_revision=1),
        store.delete("/r/b", expected_revision=2),
        return_exceptions=True,
    )
    assert isinstance(results[0], KeyExistsError) and isinstance(results[2], KeyNotFoundError)
    assert [rv(r) for r in (results[1], results[3], results[5])] == [2, 3, 4]  # type: ignore[arg-type]
    assert isinstance(results[4], RevisionConflictError) and results[4].current_revision == 3
    assert store.revision == 4 and store.get("/r/b") is None


async def test_unencodable_object_in_a_batch_stages_nothing(store: Store) -> None:
    results = await asyncio.gather(
        store.create("/r/a", obj("a")),
        store.create("/r/bad", {"metadata": {}, "bad": object()}),
        store.create("/r/c", obj("c")),
        return_exceptions=True,
    )
    assert isinstance(results[1], TypeError)
    assert [rv(r) for r in (results[0], results[2])] == [1, 2]  # type: ignore[arg-type]
    assert store.get("/r/bad") is None


async def test_failed_commit_fails_writes_staged_on_top_of_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes staged while a doomed commit runs build on it, so they must fail and roll back too."""
    from kplane.storage import log

    await store.create("/r/a", obj("a"))
    await store.delete("/r/a")  # tombstone at 2
    await store.create("/r/b", obj("b"))  # 3
    real_append = log.append
    release, entered = threading.Event(), threading.Event()

    def broken(conn: sqlite3.Connection, rows: Any) -> None:
        if entered.is_set():  # only the first commit fails; the writer must refuse what built on it
            real_append(conn, rows)
            return
        entered.set()
        release.wait(10)
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(log, "append", broken)
    doomed = asyncio.ensure_future(store.create("/r/a", obj("a", v=2)))
    await until(entered.is_set)  # the writer now waits inside the failing commit
    on_top = [
        asyncio.ensure_future(write)
        for write in (store.delete("/r/a"), store.delete("/r/b"), store.create("/r/b", obj("b", v=2)))
    ]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(doomed, *on_top, return_exceptions=True)
    assert all(isinstance(r, StoreError) and "disk full" in str(r) for r in results)
    monkeypatch.setattr(log, "append", real_append)
    assert store.revision == 3 and store.get("/r/a") is None and rv(store.get("/r/b") or {}) == 3
    with pytest.raises(KeyNotFoundError):
        await store.delete("/r/a")
    with pytest.raises(RevisionConflictError):
        await store.update("/r/b", obj("b"), expected_revision=6)
    again = await store.create("/r/a", obj("a", v=3))
    assert rv(again) == 4
    watch = store.watch("/r/", 0)
    events = [await watch.__anext__() for _ in range(4)]
    watch.close()
    assert [(e.type, e.key, e.revision) for e in events] == [
        ("ADDED", "/r/a", 1), ("DELETED", "/r/a", 2), ("ADDED", "/r/b", 3), ("ADDED", "/r/a", 4)
    ]


async def test_compaction_goes_in_bounded_steps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from kplane.storage import writer

    await fill(store, ["a"])
    for i in range(9):
        await store.update("/r/a", obj("a", i=i))  # revision 10
    monkeypatch.setattr(writer, "COMPACT_STEP", 3)
    calls: list[str] = []
    gate(monkeypatch, "compact_range", calls).set()
    results = await asyncio.gather(store.compact(keep=0), store.create("/r/b", obj("b")))
    assert results[0] == 10 and rv(results[1]) == 11
    assert calls == ["compact_range 3", "compact_range 6", "compact_range 9", "compact_range 10"]
    with pytest.raises(CompactedError):
        store.list("/r/", revision=9)


async def test_close_stops_a_running_compaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kplane.storage import writer

    s = await Store.open(tmp_path / "db.sqlite")
    for i in range(6):
        await s.create(f"/r/{i}", obj(str(i)))
        await s.delete(f"/r/{i}")
    monkeypatch.setattr(writer, "COMPACT_STEP", 2)
    calls: list[str] = []
    release = gate(monkeypatch, "compact_range", calls)
    compaction = asyncio.ensure_future(s.compact(keep=0))
    await until(lambda: bool(calls))
    closing = asyncio.ensure_future(s.close())
    await asyncio.sleep(0)
    release.set()
    await closing
    with pytest.raises(StoreError, match="closed before the compaction finished"):
        await compaction
    with pytest.raises(StoreError, match="closed"):
        await s.compact(keep=0)
    s = await Store.open(tmp_path / "db.sqlite")
    assert s.compacted_revision == 2 and s.revision == 12
    await s.close()


async def test_latest_shows_staged_writes_that_get_hides_until_commit(store: Store) -> None:
    base = await store.create("/r/a", obj("a"))
    pending = asyncio.ensure_future(store.update("/r/a", obj("a", w=1), expected_revision=rv(base)))
    await asyncio.sleep(0)  # staged, handed to the writer, not yet committed
    staged = store.latest("/r/a")
    assert staged is not None and staged["data"] == {"w": 1}
    assert store.get("/r/a") == base  # readers still see the committed state
    # A write based on the staged state chains onto it instead of conflicting.
    chained = asyncio.ensure_future(store.update("/r/a", obj("a", w=2), expected_revision=rv(staged)))
    await asyncio.sleep(0)  # the chained write is staged too
    await store.settled("/r/a")
    assert store.get("/r/a") == store.latest("/r/a")  # both committed once settled
    first, second = await asyncio.gather(pending, chained)
    assert first["data"] == {"w": 1} and second["data"] == {"w": 2}
    assert store.get("/r/a") == second
    assert store.latest("/r/missing") is None
    await store.settled("/r/missing")  # nothing in flight: returns at once
