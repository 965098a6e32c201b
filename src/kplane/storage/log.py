"""The SQLite half of the store: one append-only revision log, laid out like kine's.

kine (k3s-io/kine, pkg/drivers/sqlite/sqlite.go and pkg/logstructured) keeps every version of every key
as a row whose id is the global revision; deletes append tombstones and `prev_revision` chains a key's
rows. The UNIQUE (name, prev_revision) index makes a second writer racing from the same revision fail in
SQLite even if the in-memory check above it were ever wrong. Notes: python-k8s.md §2 and §6.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from kplane.storage.model import CompactedError, Event, EventType, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  deleted INTEGER NOT NULL,
  prev_revision INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS log_name_prev_revision ON log (name, prev_revision);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")

# One row of the log: (revision, key, deleted, prev_revision, JSON value).
Row = tuple[int, str, int, int, bytes]


@dataclass
class Loaded:
    """Everything the store keeps in memory, as read from the log at open."""

    revision: int = 0
    compacted: int = 0
    live: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)
    window_start: int = 0
    recent: list[Event] = field(default_factory=list)


def connect(path: str, synchronous: str, *, readonly: bool = False) -> sqlite3.Connection:
    """Autocommit connection; transactions are explicit `BEGIN IMMEDIATE` (3.11 has no `autocommit`)."""
    level = synchronous.upper()
    if level not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
        return conn
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreError(f"cannot use WAL journal mode for {path} (got {mode})")
    conn.execute(f"PRAGMA synchronous = {level}")
    conn.executescript(_SCHEMA)
    return conn


def lock(path: str) -> int:
    """Hold an exclusive lock beside the database: two writers would hand out the same revisions.

    A separate file, because closing any descriptor of the database itself would drop SQLite's own
    POSIX locks (see "How To Corrupt An SQLite Database File", §2.2).
    """
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"store {path} is already open in another store or process") from None
    return fd


def unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def load(conn: sqlite3.Connection, window: int) -> Loaded:
    state = Loaded(compacted=read_compacted(conn))
    top = conn.execute("SELECT MAX(id) FROM log").fetchone()[0] or 0
    # Compaction may remove a tombstone at the very top, so the compact mark also bounds the revision.
    state.revision = max(top, state.compacted)
    heads = conn.execute(
        "SELECT l.name, l.id, l.deleted, l.value FROM log l"
        " JOIN (SELECT MAX(id) AS id FROM log GROUP BY name) m ON l.id = m.id"
    )
    for name, rev, deleted, value in heads:
        if deleted:
            state.tombstones[name] = rev
        else:
            state.live[name] = (rev, orjson.loads(value))
    state.window_start = max(state.compacted, state.revision - window)
    state.recent = _recent_events(conn, state.window_start)
    if state.recent:
        state.window_start = state.recent[0].revision - 1
    else:
        state.window_start = state.revision
    return state


def _recent_events(conn: sqlite3.Connection, after: int) -> list[Event]:
    """Rebuild the newest events so watchers can resume across a restart."""
    rows = conn.execute(
        "SELECT l.id, l.name, l.deleted, l.value, p.deleted, p.value FROM log l"
        " LEFT JOIN log p ON p.id = l.prev_revision WHERE l.id > ? ORDER BY l.id",
        (after,),
    )
    events: list[Event] = []
    for rev, name, deleted, value, prev_deleted, prev_value in rows:
        prev = orjson.loads(prev_value) if prev_value is not None and not prev_deleted else None
        kind: EventType = "DELETED" if deleted else ("ADDED" if prev is None else "MODIFIED")
        events.append(Event(kind, name, orjson.loads(value), rev, prev))
    return events


def read_compacted(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'compact_rev'").fetchone()
    return int(row[0]) if row else 0


_INSERT = "INSERT INTO log (id, name, deleted, prev_revision, value) VALUES "
_ROW_PARAMS = "(?, ?, ?, ?, ?)"


def append(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """Commit one group of writes; with synchronous=FULL this returns only after the WAL is fsynced.

    The group goes in as one multi-row INSERT, which SQLite runs as its own transaction (atomic and, at
    its commit, fsynced). One statement matters beyond SQLite: Python's sqlite3 releases the GIL around
    every step and must win it back from the busy event loop afterwards, so a statement per row (plus
    BEGIN and COMMIT) made each commit wait for the GIL many times over.
    """
    per_statement = max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 5)
    if len(rows) <= per_statement:
        conn.execute(_INSERT + ", ".join([_ROW_PARAMS] * len(rows)), [v for row in rows for v in row])
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            conn.execute(_INSERT + ", ".join([_ROW_PARAMS] * len(chunk)), [v for row in chunk for v in row])
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def compact_range(conn: sqlite3.Connection, after: int, upto: int) -> None:
    """Drop what no read at revision >= `upto` can see, for superseding rows in (after, upto].

    As in kine's CompactSQL, a row goes once a newer row of its key at or below the target supersedes
    it, and tombstones at or below the target go too. Both deletes and the new mark share a
    transaction, so a crash never leaves history half-compacted under an old mark.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM log WHERE id IN (SELECT prev_revision FROM log"
            " WHERE id > ? AND id <= ? AND prev_revision != 0)",
            (after, upto),
        )
        conn.execute("DELETE FROM log WHERE id > ? AND id <= ? AND deleted = 1", (after, upto))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compact_rev', ?)", (upto,))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def snapshot(
    conn: sqlite3.Connection, prefix: str, start_after: str | None, revision: int
) -> Generator[tuple[str, bytes], None, None]:
    """Live (key, value) pairs under `prefix` as of `revision`, in key order, after `start_after`.

    Runs inside one read transaction, which in WAL mode sees a single committed state; the compact mark
    is re-read inside it because a compaction may commit between the caller's check and this read.
    """
    conn.execute("BEGIN")
    try:
        compacted = read_compacted(conn)
        if revision < compacted:
            raise CompactedError(revision, compacted)
        low = prefix if start_after is None or start_after < prefix else start_after
        bound = "name > ?" if start_after is not None and start_after >= prefix else "name >= ?"
        upper = prefix_upper_bound(prefix)
        args: list[Any] = [low, revision]
        upper_sql = ""
        if upper is not None:
            upper_sql = " AND name < ?"
            args.insert(1, upper)
        rows = conn.execute(
            "SELECT l.name, l.value FROM log l JOIN (SELECT MAX(id) AS id FROM log"
            f" WHERE {bound}{upper_sql} AND id <= ? GROUP BY name) m ON l.id = m.id"
            " WHERE l.deleted = 0 ORDER BY l.name",
            args,
        )
        for name, value in rows:
            if name.startswith(prefix):
                yield name, value
    finally:
        _rollback(conn)


def prefix_upper_bound(prefix: str) -> str | None:
    """Smallest string above every string that starts with `prefix`; None when there is none."""
    trimmed = prefix.rstrip("\U0010ffff")
    if not trimmed:
        return None
    following = ord(trimmed[-1]) + 1
    if 0xD800 <= following < 0xE000:  # surrogates cannot be encoded; skip to the next real code point
        following = 0xE000
    return trimmed[:-1] + chr(following)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
