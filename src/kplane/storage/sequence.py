"""Checking and numbering writes on the event loop, ahead of their commit.

Each write is checked (existence, compare-and-swap) against the newest *staged* state, which already
includes every write handed out but not yet durable, and gets the next revision there and then. So the
writer thread only has to run SQL and holds the GIL as little as possible (python-k8s.md §6). Readers
never see staged state: the store applies a write to what they read only once its commit is delivered.

Writes are committed strictly in order. If a commit fails, its writes and every write staged after
them are rolled back here (newest first) and answered with a failure, so revisions stay gap-free. The
writer enforces the same rule on its side: it commits a write only if its `base` is the revision it
committed last.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
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

WriteKind = Literal["create", "update", "delete"]
Head = tuple[int, dict[str, Any]]
# What a key looked like before a write: (live head, tombstone revision).
Saved = tuple[Head | None, int | None]


@dataclass(eq=False)
class Staged:
    """One write, checked and numbered: `base` is the staged revision before it, `revision` after it.

    A write that failed its checks has no row and no event, and the same base and revision.
    """

    base: int
    revision: int
    future: asyncio.Future[Any]
    outcome: dict[str, Any] | StoreError
    key: str = ""
    row: log.Row | None = None
    event: Event | None = None
    saved: Saved = (None, None)
    rolled_back: bool = False


class Sequencer:
    """The newest staged state: every key's head and the revision of every remembered deletion."""

    def __init__(self, loaded: log.Loaded) -> None:
        self.revision = loaded.revision
        self._live: dict[str, Head] = dict(loaded.live)
        self._tombstones = dict(loaded.tombstones)

    def head(self, key: str) -> dict[str, Any] | None:
        """The newest staged object of `key`; None when it does not exist or its deletion is staged."""
        current = self._live.get(key)
        return None if current is None else current[1]

    def stage(
        self,
        kind: WriteKind,
        key: str,
        obj: dict[str, Any] | None,
        expected: int | None,
        future: asyncio.Future[Any],
    ) -> Staged:
        """Check and number one write on top of everything staged so far.

        Raises TypeError, staging nothing, when `obj` cannot be encoded as JSON.
        """
        base = self.revision
        current = self._live.get(key)
        tombstone = self._tombstones.get(key)
        try:
            prev, prev_revision = _check(kind, key, current, tombstone or 0, expected)
        except StoreError as error:
            return Staged(base, base, future, error)
        revision = base + 1
        source = obj if obj is not None else prev
        assert source is not None
        metadata = source.get("metadata", {})
        value = orjson.dumps({**source, "metadata": {**metadata, "resourceVersion": str(revision)}})
        stored: dict[str, Any] = orjson.loads(value)  # a deep copy the caller cannot change later
        deleted = kind == "delete"
        if deleted:
            del self._live[key]
            self._tombstones[key] = revision
        else:
            self._live[key] = (revision, stored)
            if tombstone is not None:
                del self._tombstones[key]
        self.revision = revision
        event_type: EventType = "DELETED" if deleted else ("ADDED" if kind == "create" else "MODIFIED")
        return Staged(
            base,
            revision,
            future,
            stored,
            key,
            (revision, key, int(deleted), prev_revision, value),
            Event(event_type, key, stored, revision, prev),
            (current, tombstone),
        )

    def roll_back(self, writes: list[Staged], committed_revision: int) -> None:
        """Undo `writes`, given newest first, back to the state at `committed_revision`."""
        for write in writes:
            write.rolled_back = True
            if write.row is None:
                continue
            head, tombstone = write.saved
            if head is None:
                self._live.pop(write.key, None)
            else:
                self._live[write.key] = head
            if tombstone is None:
                self._tombstones.pop(write.key, None)
            else:
                self._tombstones[write.key] = tombstone
        self.revision = committed_revision

    def compacted(self, revision: int) -> None:
        """Deletions at or below a compaction are forgotten, so a re-create starts a fresh chain."""
        self._tombstones = {key: rev for key, rev in self._tombstones.items() if rev > revision}


def _check(
    kind: WriteKind, key: str, current: Head | None, tombstone: int, expected: int | None
) -> tuple[dict[str, Any] | None, int]:
    """The key's previous object and the revision its new log row chains to, or why the write fails."""
    if kind == "create":
        if current is not None:
            raise KeyExistsError(key)
        return None, tombstone
    if current is None:
        raise KeyNotFoundError(key)
    prev_revision, prev = current
    if expected is not None and expected != prev_revision:
        raise RevisionConflictError(key, expected, prev_revision)
    return prev, prev_revision
