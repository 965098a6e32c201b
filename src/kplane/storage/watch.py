"""Watch fan-out: a window of recent events for replay, and one bounded queue per watcher.

Writers never wait for watchers: an event goes into every matching watcher's queue, and a watcher
whose queue is full is ended with CompactedError, which the API layer reports in-stream as 410 Gone,
the same way the real watch cache drops a watcher that cannot keep up (cacher.go, "Forcing ... watcher
close due to unresponsiveness"). Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from kplane.storage.model import CompactedError, Event, FutureRevisionError


class Watch:
    """Async iterator of the events after a revision for the keys under a prefix."""

    def __init__(self, hub: WatchHub, prefix: str, bound: int) -> None:
        self.prefix = prefix
        self._hub = hub
        self._bound = bound
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: CompactedError | None = None
        self._closed = False

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """End the stream: a pending or later `__anext__` stops once the queued events are drained."""
        if not self._closed:
            self._closed = True
            self._hub.forget(self)
            self._wake()

    def _push(self, event: Event) -> None:
        if len(self._queue) >= self._bound:
            self._queue.clear()
            self._error = CompactedError(event.revision, self._hub.oldest, "watcher fell behind")
            self.close()
            return
        self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class WatchHub:
    """Keeps the last `window` events and the watchers grouped by prefix."""

    def __init__(self, window: int, start: int, recent: Iterable[Event]) -> None:
        self._window = window
        self._events: deque[Event] = deque(recent, maxlen=window)
        # Every event with a revision above `_floor` is in `_events` (or was never written).
        self._floor = self._events[0].revision - 1 if self._events else start
        self._head = self._events[-1].revision if self._events else start
        self._watchers: dict[str, set[Watch]] = {}

    @property
    def oldest(self) -> int:
        """The oldest revision a new watch can start after."""
        return self._floor

    def watch(self, prefix: str, since: int) -> Watch:
        if since < self._floor:
            raise CompactedError(since, self._floor)
        if since > self._head:
            raise FutureRevisionError(since, self._head)
        watcher = Watch(self, prefix, self._window)
        for event in self._events:
            if event.revision > since and event.key.startswith(prefix):
                watcher._push(event)
        self._watchers.setdefault(prefix, set()).add(watcher)
        return watcher

    def publish(self, events: Iterable[Event]) -> None:
        for event in events:
            if len(self._events) == self._window:
                self._floor = self._events[0].revision
            self._events.append(event)
            self._head = event.revision
            for prefix, watchers in list(self._watchers.items()):
                if event.key.startswith(prefix):
                    for watcher in list(watchers):
                        watcher._push(event)

    def compacted(self, revision: int) -> None:
        """New watches may not start before a compaction; running ones keep what they have queued."""
        self._floor = max(self._floor, min(revision, self._head))
        while self._events and self._events[0].revision <= self._floor:
            self._events.popleft()

    def forget(self, watcher: Watch) -> None:
        watchers = self._watchers.get(watcher.prefix)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.prefix]

    def close(self) -> None:
        for watchers in list(self._watchers.values()):
            for watcher in list(watchers):
                watcher.close()
