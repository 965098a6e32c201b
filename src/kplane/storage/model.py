"""Errors and value types shared by the store, its SQLite log and its watchers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionConflictError(StoreError):
    """A compare-and-swap lost: the key moved on since the caller read it (the API's 409)."""

    def __init__(self, key: str, expected_revision: int, current_revision: int) -> None:
        super().__init__(
            f"revision conflict on {key}: expected {expected_revision}, current {current_revision}"
        )
        self.key = key
        self.expected_revision = expected_revision
        self.current_revision = current_revision


class CompactedError(StoreError):
    """The requested history is gone (the API's 410 Gone / "too old resource version")."""

    def __init__(self, requested_revision: int, compacted_revision: int, reason: str = "compacted") -> None:
        super().__init__(
            f"revision {requested_revision} is too old ({reason}; oldest available {compacted_revision})"
        )
        self.requested_revision = requested_revision
        self.compacted_revision = compacted_revision


class FutureRevisionError(StoreError):
    """The requested revision has not been written yet."""

    def __init__(self, requested_revision: int, current_revision: int) -> None:
        super().__init__(
            f"revision {requested_revision} is newer than the current revision {current_revision}"
        )
        self.requested_revision = requested_revision
        self.current_revision = current_revision


@dataclass(frozen=True)
class Event:
    """One committed change; `prev` is the key's object before it (None for ADDED)."""

    type: EventType
    key: str
    obj: dict[str, Any]
    revision: int
    prev: dict[str, Any] | None


@dataclass(frozen=True)
class ListResult:
    """A page of objects sorted by key, as of `revision`.

    `continue_key` is the last key of the page when more matching items follow (pass it back as
    `start_after` with `revision` for a consistent next page); `remaining` counts them when that is cheap,
    which is only without a predicate (upstream likewise omits remainingItemCount with selectors).
    """

    items: list[dict[str, Any]]
    revision: int
    continue_key: str | None
    remaining: int
