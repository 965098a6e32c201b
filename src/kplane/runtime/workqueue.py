"""A de-duplicating, rate-limited asyncio work queue for controllers.

Semantics follow client-go's `util/workqueue` (k8s.io/client-go/util/workqueue/queue.go,
default_rate_limiters.go): a key is held at most once in the queue; a key added while a worker processes it
is queued again only after `done`, so one key is never processed by two workers at once; failed keys are
re-added after a per-key exponential backoff that `forget` resets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
KC = TypeVar("KC", bound=Hashable, contravariant=True)

# client-go DefaultControllerRateLimiter: per-item exponential failure limiter, 5 ms base, 1000 s cap.
DEFAULT_BASE_DELAY = 0.005
DEFAULT_MAX_DELAY = 1000.0


class ShutDown(Exception):
    """Raised by `WorkQueue.get` once the queue is shut down and has nothing left to hand out."""


class RateLimiter(Protocol[KC]):
    def when(self, key: KC) -> float: ...

    def forget(self, key: KC) -> None: ...

    def num_requeues(self, key: KC) -> int: ...


class ExponentialBackoff(Generic[K]):
    """Per-key delay of base * 2**failures, capped, so a key that keeps failing slows down alone."""

    def __init__(self, base: float = DEFAULT_BASE_DELAY, cap: float = DEFAULT_MAX_DELAY) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        return backoff_delay(self.base, self.cap, exp)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


def backoff_delay(base: float, cap: float, failures: int) -> float:
    """The delay after `failures` earlier failures; computed without overflow for large counts."""
    if failures >= 64 or base * (2.0**failures) > cap:
        return cap
    return base * (2.0**failures)


class WorkQueue(Generic[K]):
    """The queue itself; it must be created and used inside one running event loop."""

    def __init__(self, rate_limiter: RateLimiter[K] | None = None) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._delayed: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False
        self.rate_limiter: RateLimiter[K] = rate_limiter if rate_limiter is not None else ExponentialBackoff()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` after `delay` seconds; of several pending delays for one key the earliest wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._delayed[key] = (due, loop.call_at(due, self._fire_delayed, key))

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)

    async def get(self) -> K:
        """Wait for the next key; the caller must call `done(key)` when finished with it."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shut_down(self) -> None:
        """Stop accepting keys and cancel pending delayed adds; waiting `get` calls raise `ShutDown`."""
        self._shutting_down = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._queue.clear()
        self._dirty.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fire_delayed(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


async def run_workers(queue: WorkQueue[K], workers: int, handle: Callable[[K], Awaitable[None]]) -> None:
    """Run `workers` loops that take keys and call `handle`, until the queue shuts down.

    `handle` owns retry policy (add_rate_limited / forget); an exception escaping it is logged and the key
    retried with backoff, so one bad key never kills a worker. Cancelling this coroutine cancels in-flight
    handlers.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await handle(key)
            except Exception:
                log.exception("unhandled error processing %r", key)
                queue.add_rate_limited(key)
            finally:
                queue.done(key)

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
