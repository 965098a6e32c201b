"""The single writer: a thread that validates, numbers and group-commits writes.

Every write goes through one queue. The thread takes whatever has queued up, checks each write against
its own view of the latest revision per key, gives the survivors consecutive revisions, and commits
them in one transaction, so one fsync covers the whole group (python-k8s.md §6: batching is worth
5-10x). Only after the commit does it hand the outcome to the event loop, which then updates the
readers' state, resolves the futures and feeds watchers, in revision order.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from kplane.storage import log
from kplane.storage.model import (
    Event,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    StoreError,
)

MAX_BATCH = 1000  # writes per transaction
COMPACT_STEP = 1000  # revisions per compaction transaction (kine's compact-batch-size)

Outcome = tuple["asyncio.Future[Any]", "dict[str, Any] | int | BaseException"]


@dataclass(eq=False)
class WriteOp:
    kind: Literal["create", "update", "delete"]
    key: str
    payload: bytes | None
    expected: int | None
    future: asyncio.Future[Any]


@dataclass(eq=False)
class CompactOp:
    keep: int
    future: asyncio.Future[Any]


@dataclass(eq=False)
class StopOp:
    future: asyncio.Future[Any]


Item = WriteOp | CompactOp | StopOp


@dataclass
class Committed:
    """What one turn of the writer made durable, for the loop to publish."""

    revision: int
    compacted: int
    events: list[Event] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


class Writer:
    def __init__(
        self,
        conn: sqlite3.Connection,
        loaded: log.Loaded,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Committed], None],
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._deliver = deliver
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._revision = loaded.revision
        self._compacted = loaded.compacted
        # The writer's own view (the loop's copy lags until a commit is delivered).
        self._live = dict(loaded.live)
        self._tombstones = dict(loaded.tombstones)
        self._compact_target = 0
        self._compact_waiters: list[asyncio.Future[Any]] = []
        self._thread = threading.Thread(target=self._run, name="kplane-store-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: Item) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        stop: StopOp | None = None
        while stop is None:
            items = self._take(block=not self._compact_waiters)
            writes = [item for item in items if isinstance(item, WriteOp)]
            for item in items:
                if isinstance(item, CompactOp):
                    self._request_compaction(item)
                elif isinstance(item, StopOp):
                    stop = item
            if writes:
                self._commit(writes)
            if self._compact_waiters and stop is None:
                self._compact_step()
        self._finish(stop)

    def _take(self, *, block: bool) -> list[Item]:
        items: list[Item] = []
        try:
            items.append(self._queue.get(block=block))
            while len(items) < MAX_BATCH:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _commit(self, writes: list[WriteOp]) -> None:
        result = Committed(self._revision, self._compacted)
        rows: list[log.Row] = []
        saved: dict[str, tuple[tuple[int, dict[str, Any]] | None, int | None]] = {}
        for op in writes:
            saved.setdefault(op.key, (self._live.get(op.key), self._tombstones.get(op.key)))
            try:
                event, prev_revision = self._stage(op, result.revision + 1)
            except StoreError as error:
                result.outcomes.append((op.future, error))
                continue
            except Exception as error:  # _stage changes nothing before it succeeds; keep the thread alive
                result.outcomes.append((op.future, StoreError(f"cannot store {op.key}: {error!r}")))
                continue
            result.revision = event.revision
            result.events.append(event)
            result.outcomes.append((op.future, event.obj))
            deleted = event.type == "DELETED"
            rows.append((event.revision, op.key, int(deleted), prev_revision, orjson.dumps(event.obj)))
        if rows:
            try:
                log.append(self._conn, rows)
            except Exception as error:
                self._restore(saved)
                failure = StoreError(f"write not committed: {error}")
                outcomes: list[Outcome] = [(op.future, failure) for op in writes]
                self._send(Committed(self._revision, self._compacted, [], outcomes))
                return
        self._revision = result.revision
        self._send(result)

    def _stage(self, op: WriteOp, revision: int) -> tuple[Event, int]:
        current = self._live.get(op.key)
        if op.kind == "create":
            if current is not None:
                raise KeyExistsError(op.key)
            prev_revision = self._tombstones.pop(op.key, 0)
            kind: EventType = "ADDED"
            prev = None
        else:
            if current is None:
                raise KeyNotFoundError(op.key)
            prev_revision, prev = current
            if op.expected is not None and op.expected != prev_revision:
                raise RevisionConflictError(op.key, op.expected, prev_revision)
            kind = "MODIFIED" if op.kind == "update" else "DELETED"
        if op.payload is not None:
            obj = orjson.loads(op.payload)
            obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        else:
            assert prev is not None
            obj = {**prev, "metadata": {**prev["metadata"], "resourceVersion": str(revision)}}
        if kind == "DELETED":
            del self._live[op.key]
            self._tombstones[op.key] = revision
        else:
            self._live[op.key] = (revision, obj)
        return Event(kind, op.key, obj, revision, prev), prev_revision

    def _restore(self, saved: dict[str, tuple[tuple[int, dict[str, Any]] | None, int | None]]) -> None:
        for key, (live, tombstone) in saved.items():
            if live is None:
                self._live.pop(key, None)
            else:
                self._live[key] = live
            if tombstone is None:
                self._tombstones.pop(key, None)
            else:
                self._tombstones[key] = tombstone

    def _request_compaction(self, op: CompactOp) -> None:
        target = self._revision - op.keep
        if target <= self._compacted and not self._compact_waiters:
            self._send(Committed(self._revision, self._compacted, [], [(op.future, self._compacted)]))
            return
        self._compact_target = max(self._compact_target, target)
        self._compact_waiters.append(op.future)

    def _compact_step(self) -> None:
        """One bounded transaction of compaction; writes queued meanwhile go in between steps."""
        upto = min(self._compact_target, self._compacted + COMPACT_STEP)
        outcomes: list[Outcome] = []
        try:
            log.compact_range(self._conn, self._compacted, upto)
        except Exception as error:
            failure = StoreError(f"compaction stopped at {self._compacted}: {error}")
            outcomes = [(future, failure) for future in self._compact_waiters]
            self._compact_waiters = []
            self._send(Committed(self._revision, self._compacted, [], outcomes))
            return
        self._compacted = upto
        self._tombstones = {key: rev for key, rev in self._tombstones.items() if rev > upto}
        if upto >= self._compact_target:
            outcomes = [(future, upto) for future in self._compact_waiters]
            self._compact_waiters = []
        self._send(Committed(self._revision, self._compacted, [], outcomes))

    def _finish(self, stop: StopOp) -> None:
        closed = StoreError("store closed before the compaction finished")
        outcomes: list[Outcome] = [(future, closed) for future in self._compact_waiters]
        self._compact_waiters = []
        try:
            self._conn.close()
        finally:
            outcomes.append((stop.future, self._revision))
            self._send(Committed(self._revision, self._compacted, [], outcomes))

    def _send(self, committed: Committed) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone; nobody is left to tell
            self._loop.call_soon_threadsafe(self._deliver, committed)
