"""The revisioned store: current state in memory, history in an append-only SQLite log.

Reads of the current state never touch SQLite. Writes are checked and numbered on the loop as they
arrive (sequence.py), committed in groups by the writer thread (writer.py) and acknowledged only once
committed (and, with synchronous=FULL, fsynced). The state readers see changes only when a commit is
delivered, so they never see a revision before it is durable, nor a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from kplane.storage import log
from kplane.storage.model import (
    CompactedError,
    Event,
    FutureRevisionError,
    ListResult,
    StoreError,
)
from kplane.storage.sequence import Sequencer, Staged, WriteKind
from kplane.storage.watch import Watch, WatchHub
from kplane.storage.writer import Committed, CompactOp, Item, StopOp, Writer

Predicate = Callable[[dict[str, Any]], bool]


class Store:
    """Use `await Store.open(path)`; objects returned by any method are shared and must not be mutated.

    A write whose caller is cancelled may still commit: the cancellation only stops the waiting.
    """

    def __init__(
        self,
        loaded: log.Loaded,
        writer_conn: sqlite3.Connection,
        reader: sqlite3.Connection,
        lock_fd: int,
        watch_window: int,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._objects = {key: obj for key, (_, obj) in loaded.live.items()}
        self._keys = sorted(self._objects)
        self._revision = loaded.revision
        self._compacted = loaded.compacted
        self._reader = reader
        self._lock_fd = lock_fd
        self._hub = WatchHub(watch_window, loaded.window_start, loaded.recent)
        self._sequencer = Sequencer(loaded)
        self._in_flight: deque[Staged] = deque()  # handed to the writer, not yet delivered; oldest first
        self._writer = Writer(writer_conn, loaded, self._loop, self._deliver)
        self._closing: asyncio.Future[Any] | None = None
        self._writer.start()

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, synchronous: str = "FULL", watch_window: int = 10000
    ) -> Store:
        if watch_window < 1:
            raise ValueError("watch_window must be at least 1")
        location = os.fspath(path)
        loaded, writer_conn, reader, lock_fd = await asyncio.to_thread(
            _open_files, location, synchronous, watch_window
        )
        return cls(loaded, writer_conn, reader, lock_fd, watch_window)

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def get(self, key: str) -> dict[str, Any] | None:
        return self._objects.get(key)

    def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        limit: int | None = None,
        revision: int | None = None,
        predicate: Predicate | None = None,
    ) -> ListResult:
        if limit is not None and limit < 1:
            raise ValueError("limit must be a positive number or None")
        if revision is None or revision == self._revision:
            return self._list_current(prefix, start_after, limit, predicate)
        if revision < 0:
            raise ValueError("revision must not be negative")
        if revision > self._revision:
            raise FutureRevisionError(revision, self._revision)
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        rows = log.snapshot(self._reader, prefix, start_after, revision)
        with contextlib.closing(rows):
            decoded = ((key, orjson.loads(value)) for key, value in rows)
            items, last, more = _take_page(decoded, limit, predicate)
            remaining = 1 + sum(1 for _ in rows) if more and predicate is None else 0
        return ListResult(items, revision, last if more else None, remaining)

    def _list_current(
        self, prefix: str, start_after: str | None, limit: int | None, predicate: Predicate | None
    ) -> ListResult:
        keys = self._keys
        low = bisect_left(keys, prefix)
        if start_after is not None:
            low = max(low, bisect_right(keys, start_after))
        upper = log.prefix_upper_bound(prefix)
        high = len(keys) if upper is None else bisect_left(keys, upper)
        entries = ((keys[i], self._objects[keys[i]]) for i in range(low, high))
        items, last, more = _take_page(entries, limit, predicate)
        remaining = high - low - len(items) if more and predicate is None else 0
        return ListResult(items, self._revision, last if more else None, remaining)

    async def create(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._write("create", key, _checked(obj), None)
        return result

    async def update(
        self, key: str, obj: dict[str, Any], *, expected_revision: int | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._write("update", key, _checked(obj), expected_revision)
        return result

    async def delete(self, key: str, *, expected_revision: int | None = None) -> dict[str, Any]:
        """Returns the last object, stamped with the revision of its deletion."""
        result: dict[str, Any] = await self._write("delete", key, None, expected_revision)
        return result

    def latest(self, key: str) -> dict[str, Any] | None:
        """The newest state of `key`, including writes handed to the writer but not yet committed.

        For read-modify-write on the server: a write based on it is staged on top of those writes, so it
        cannot conflict with them, and fails with them should their commit fail. Never answer a reader with
        it: only committed state may be served (`get`)."""
        return self._sequencer.head(key)

    async def settled(self, key: str) -> None:
        """Wait until every write to `key` handed to the writer is committed or has failed."""
        pending = [write.future for write in self._in_flight if write.key == key]
        if pending:
            await asyncio.wait(pending)

    def watch(self, prefix: str, since: int) -> Watch:
        """Events after revision `since` for keys under `prefix`: replayed from memory, then live.

        Raises CompactedError when `since` is older than the in-memory window or the last compaction,
        and FutureRevisionError when it is newer than the current revision.
        """
        self._check_open()
        return self._hub.watch(prefix, since)

    async def compact(self, keep: int = 1000) -> int:
        """Forget history older than `revision - keep`; returns the revision compacted to."""
        if keep < 0:
            raise ValueError("keep must not be negative")
        compacted: int = await self._submit(lambda future: CompactOp(keep, future))
        return compacted

    async def close(self) -> None:
        """Finish queued writes, then release the database; watchers end."""
        if self._closing is None:
            self._closing = self._loop.create_future()
            self._writer.submit(StopOp(self._closing))
            self._hub.close()
        with contextlib.suppress(StoreError):
            await asyncio.shield(self._closing)
        if self._lock_fd >= 0:
            self._reader.close()
            log.unlock(self._lock_fd)
            self._lock_fd = -1

    async def _write(
        self, kind: WriteKind, key: str, obj: dict[str, Any] | None, expected: int | None
    ) -> Any:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        if expected is not None and (not isinstance(expected, int) or expected < 1):
            raise ValueError("expected_revision must be a positive integer")
        self._check_open()
        future: asyncio.Future[Any] = self._loop.create_future()
        write = self._sequencer.stage(kind, key, obj, expected, future)
        self._in_flight.append(write)
        self._writer.submit(write)
        return await future

    async def _submit(self, make: Callable[[asyncio.Future[Any]], Item]) -> Any:
        self._check_open()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._writer.submit(make(future))
        return await future

    def _check_open(self) -> None:
        if self._closing is not None:
            raise StoreError("store is closed")

    def _deliver(self, committed: Committed) -> None:
        """Runs on the loop: apply the durable writes for readers, publish them, answer the writers."""
        events: list[Event] = []
        outcomes: list[tuple[asyncio.Future[Any], Any]] = []
        for write, failure in committed.writes:
            assert self._in_flight[0] is write, "the writer answers writes in the order it got them"
            self._in_flight.popleft()
            if failure is not None:
                if not write.rolled_back:
                    self._roll_back(write)
                outcomes.append((write.future, failure))
                continue
            if write.event is not None:
                self._apply(write.event)
                events.append(write.event)
            self._revision = write.revision
            outcomes.append((write.future, write.outcome))
        self._hub.publish(events)
        if committed.compacted != self._compacted:
            self._compacted = committed.compacted
            self._hub.compacted(committed.compacted)
            self._sequencer.compacted(committed.compacted)
        _answer(outcomes)
        _answer(committed.outcomes)

    def _roll_back(self, failed: Staged) -> None:
        """Undo the first failed write and everything staged on top of it, which the writer refuses."""
        self._sequencer.roll_back([*reversed(self._in_flight), failed], self._revision)

    def _apply(self, event: Event) -> None:
        if event.type == "DELETED":
            del self._objects[event.key]
            del self._keys[bisect_left(self._keys, event.key)]
            return
        if event.key not in self._objects:
            insort(self._keys, event.key)
        self._objects[event.key] = event.obj


def _open_files(
    path: str, synchronous: str, window: int
) -> tuple[log.Loaded, sqlite3.Connection, sqlite3.Connection, int]:
    lock_fd = log.lock(path)
    try:
        writer_conn = log.connect(path, synchronous)
        try:
            loaded = log.load(writer_conn, window)
            reader = log.connect(path, synchronous, readonly=True)
        except BaseException:
            writer_conn.close()
            raise
    except BaseException:
        log.unlock(lock_fd)
        raise
    return loaded, writer_conn, reader, lock_fd


def _checked(obj: dict[str, Any]) -> dict[str, Any]:
    """The sequencer snapshots the object as it stages it, so later changes to it cannot leak in."""
    if not isinstance(obj, dict):
        raise TypeError(f"object must be a dict, not {type(obj).__name__}")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise TypeError("object metadata must be a dict")
    return obj


def _answer(outcomes: Sequence[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _take_page(
    entries: Iterator[tuple[str, dict[str, Any]]], limit: int | None, predicate: Predicate | None
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Up to `limit` matching objects, the key of the last one, and whether another match follows."""
    items: list[dict[str, Any]] = []
    last: str | None = None
    for key, obj in entries:
        if predicate is not None and not predicate(obj):
            continue
        if limit is not None and len(items) == limit:
            return items, last, True
        items.append(obj)
        last = key
    return items, last, False
