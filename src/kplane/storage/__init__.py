"""Revisioned SQLite store (kine-like) with in-memory current state and watch fan-out."""

from kplane.storage.model import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    ListResult,
    RevisionConflictError,
    StoreError,
)
from kplane.storage.store import Store
from kplane.storage.watch import Watch

__all__ = [
    "CompactedError",
    "Event",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "ListResult",
    "RevisionConflictError",
    "Store",
    "StoreError",
    "Watch",
]
