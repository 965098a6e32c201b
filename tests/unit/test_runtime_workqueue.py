"""Work queue: de-duplication, processing exclusivity, backoff, delayed adds, workers, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from kplane.runtime.workqueue import (
    DEFAULT_BASE_DELAY,
    DEFAULT_MAX_DELAY,
    ExponentialBackoff,
    ShutDown,
    WorkQueue,
    backoff_delay,
    run_workers,
)


def test_backoff_defaults_match_client_go() -> None:
    assert DEFAULT_BASE_DELAY == 0.005
    assert DEFAULT_MAX_DELAY == 1000.0


def test_backoff_doubles_per_key_and_caps() -> None:
    limiter: ExponentialBackoff[str] = ExponentialBackoff(base=0.005, cap=0.04)
    assert [limiter.when("a") for _ in range(6)] == [0.005, 0.01, 0.02, 0.04, 0.04, 0.04]
    assert limiter.when("b") == 0.005
    assert limiter.num_requeues("a") == 6
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.005


def test_backoff_delay_never_overflows() -> None:
    assert backoff_delay(0.005, 1000.0, 10_000) == 1000.0
    assert backoff_delay(0.005, 1000.0, 0) == 0.005


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_rejects_bad_parameters(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        ExponentialBackoff(base=base, cap=cap)


def test_forget_unknown_key_is_harmless() -> None:
    limiter: ExponentialBackoff[str] = ExponentialBackoff()
    limiter.forget("never-seen")
    assert limiter.num_requeues("never-seen") == 0


async def test_duplicate_adds_are_collapsed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "a", "b"]:
        queue.add(key)
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_key_added_while_processing_is_requeued_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    assert len(queue) == 0, "a key in processing must not be handed to a second worker"
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_get_waits_for_an_add() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.add("x")
    assert await getter == "x"


async def test_add_after_delivers_later_and_earliest_wins() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 30.0)
    queue.add_after("a", 0.01)
    queue.add_after("a", 20.0)
    assert len(queue) == 0
    assert await asyncio.wait_for(queue.get(), 5) == "a"


async def test_add_after_non_positive_adds_now() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0)
    queue.add_after("b", -1)
    assert len(queue) == 2


async def test_add_rate_limited_uses_backoff_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(ExponentialBackoff(base=0.001, cap=0.002))
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    assert queue.num_requeues("a") == 2
    assert await asyncio.wait_for(queue.get(), 5) == "a"
    queue.forget("a")
    assert queue.num_requeues("a") == 0


async def test_shutdown_wakes_waiters_and_refuses_adds() -> None:
    queue: WorkQueue[str] = WorkQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.add_after("later", 10.0)
    queue.shut_down()
    with pytest.raises(ShutDown):
        await getter
    queue.add("a")
    queue.add_after("b", 0.001)
    assert len(queue) == 0
    assert queue.shutting_down
    with pytest.raises(ShutDown):
        await queue.get()


async def test_workers_process_each_key_once_and_never_concurrently() -> None:
    queue: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    seen: list[int] = []
    overlaps: list[int] = []

    async def handle(key: int) -> None:
        if key in active:
            overlaps.append(key)
        active.add(key)
        await asyncio.sleep(0)
        seen.append(key)
        active.discard(key)
        if len(seen) == 20:
            queue.shut_down()

    for key in range(20):
        queue.add(key)
    await asyncio.wait_for(run_workers(queue, 4, handle), 5)
    assert sorted(seen) == list(range(20))
    assert overlaps == []


async def test_worker_survives_handler_exception_and_retries() -> None:
    queue: WorkQueue[str] = WorkQueue(ExponentialBackoff(base=0.001, cap=0.001))
    calls: list[str] = []

    async def handle(key: str) -> None:
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("boom")
        queue.shut_down()

    queue.add("k")
    await asyncio.wait_for(run_workers(queue, 1, handle), 5)
    assert calls == ["k", "k", "k"]


async def test_cancelling_workers_cancels_inflight_handler() -> None:
    queue: WorkQueue[str] = WorkQueue()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handle(key: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue.add("k")
    task = asyncio.ensure_future(run_workers(queue, 2, handle))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_run_workers_rejects_zero_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()

    async def handle(key: str) -> None:
        return None

    with pytest.raises(ValueError, match="workers"):
        await run_workers(queue, 0, handle)
