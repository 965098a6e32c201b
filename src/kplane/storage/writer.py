"""The committing thread: it runs the SQL, so the event loop never waits for an fsync.

The loop checks and numbers each write (sequence.py) and queues it. The thread takes everything queued
(whatever arrived during its last commit), commits the writes that continue its last revision in one
transaction, so one fsync covers them all (python-k8s.md §6: batching is worth 5-10x), and hands the
outcome back with one `call_soon_threadsafe`. It holds the GIL only to bind the rows and to report.

The commit stays off the loop on purpose. Committing on the loop (one transaction per loop iteration)
was measured against this on the 2-core machine (issue 2's benchmark): the loop then stands still for
every fsync, 2-3 ms and, when other processes sync too, tens of ms; creates/s, gets/s under load and
watch p99 all came out worse, because here the fsync of one group overlaps the handling of the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kplane.storage import log
from kplane.storage.model import StoreError
from kplane.storage.sequence import Staged

MAX_ITEMS = 1000  # queued items taken per turn
COMPACT_STEP = 1000  # revisions per compaction transaction (kine's compact-batch-size)

Outcome = tuple["asyncio.Future[Any]", "int | BaseException"]


@dataclass(eq=False)
class CompactOp:
    keep: int
    future: asyncio.Future[Any]


@dataclass(eq=False)
class StopOp:
    future: asyncio.Future[Any]


Item = Staged | CompactOp | StopOp


@dataclass
class Committed:
    """What one turn of the writer did, for the loop: each write in order, with its failure if any."""

    compacted: int
    writes: list[tuple[Staged, StoreError | None]] = field(default_factory=list)
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
        self._revision = loaded.revision  # the last committed revision
        self._compacted = loaded.compacted
        self._last_failure = ""  # why the last commit failed; writes staged on top of it fail with it
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
            writes = [item for item in items if isinstance(item, Staged)]
            for item in items:
                if isinstance(item, CompactOp):
                    self._request_compaction(item)
                elif isinstance(item, StopOp):
                    stop = item
            if writes:
                self._send(Committed(self._compacted, self._commit(writes)))
            if self._compact_waiters and stop is None:
                self._compact_step()
        self._finish(stop)

    def _take(self, *, block: bool) -> list[Item]:
        items: list[Item] = []
        try:
            items.append(self._queue.get(block=block))
            while len(items) < MAX_ITEMS:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _commit(self, writes: list[Staged]) -> list[tuple[Staged, StoreError | None]]:
        """Commit, in one transaction, the writes that continue the log without a gap.

        A write whose base is not the last revision was staged on top of a write that failed; the loop
        has already rolled it back and only needs its answer.
        """
        revision = self._revision
        rows: list[log.Row] = []
        results: list[tuple[Staged, StoreError | None]] = []
        stale = StoreError(f"write not committed: a write staged before it failed: {self._last_failure}")
        for write in writes:
            if write.base != revision:
                results.append((write, stale))
                continue
            results.append((write, None))
            revision = write.revision
            if write.row is not None:
                rows.append(write.row)
        if rows:
            try:
                log.append(self._conn, rows)
            except Exception as error:
                self._last_failure = str(error)
                failure = StoreError(f"write not committed: {error}")
                return [(write, failure if refused is None else refused) for write, refused in results]
        self._revision = revision
        return results

    def _request_compaction(self, op: CompactOp) -> None:
        target = self._revision - op.keep
        if target <= self._compacted and not self._compact_waiters:
            self._send(Committed(self._compacted, outcomes=[(op.future, self._compacted)]))
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
            self._send(Committed(self._compacted, outcomes=outcomes))
            return
        self._compacted = upto
        if upto >= self._compact_target:
            outcomes = [(future, upto) for future in self._compact_waiters]
            self._compact_waiters = []
        self._send(Committed(self._compacted, outcomes=outcomes))

    def _finish(self, stop: StopOp) -> None:
        closed = StoreError("store closed before the compaction finished")
        outcomes: list[Outcome] = [(future, closed) for future in self._compact_waiters]
        self._compact_waiters = []
        try:
            self._conn.close()
        finally:
            outcomes.append((stop.future, self._revision))
            self._send(Committed(self._compacted, outcomes=outcomes))

    def _send(self, committed: Committed) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone; nobody is left to tell
            self._loop.call_soon_threadsafe(self._deliver, committed)
