"""Watch streams: one JSON event per line, resumable by resourceVersion, with bookmarks and in-stream 410.

Semantics follow the real server (python-k8s.md §1.7): no or ``0`` resourceVersion starts with synthetic
ADDED events for the current state; ``N`` streams changes after N; a compacted N ends the stream with an
``ERROR`` event carrying a 410 ``Expired`` Status, which client-go and lightkube answer by relisting. A
selector turns a MODIFIED that enters or leaves the selection into ADDED or DELETED, as upstream does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kplane.api import status
from kplane.apiserver import codec
from kplane.apiserver.context import RequestContext
from kplane.apiserver.handlers import ResourceService
from kplane.apiserver.table import to_table
from kplane.apiserver.verbrules import present
from kplane.storage import CompactedError, Event, FutureRevisionError

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Obj = dict[str, Any]


class WatchSettings:
    """Tunables; tests shorten the bookmark interval."""

    bookmark_interval: float = 60.0


def _line(event_type: str, obj: Obj) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


def expired_event(message: str) -> bytes:
    return _line("ERROR", status.gone(message).to_status())


def translate(event: Event, predicate: Callable[[Obj], bool] | None) -> tuple[str, Obj] | None:
    """The event a selector-filtered watcher sees, or ``None`` when the change is outside its selection."""
    if predicate is None:
        return event.type, event.obj
    now_in = event.type != "DELETED" and predicate(event.obj)
    before_in = event.prev is not None and predicate(event.prev)
    if event.type == "ADDED":
        return ("ADDED", event.obj) if now_in else None
    if event.type == "DELETED":
        return ("DELETED", event.obj) if predicate(event.obj) or before_in else None
    if now_in and before_in:
        return "MODIFIED", event.obj
    if now_in:
        return "ADDED", event.obj
    if before_in:
        return "DELETED", event.obj
    return None


async def serve_watch(service: ResourceService, ctx: RequestContext, send: Send, receive: Receive,
                      settings: type[WatchSettings] = WatchSettings, stopping: asyncio.Event | None = None) -> None:
    rtype = ctx.rtype
    store = service.store
    predicate, _ = service.selector_predicate(ctx)
    table, _ = codec.wants_table(ctx.accept)
    include = codec.include_object_policy(ctx.query.get("includeObject"))
    bookmarks = ctx.query.flag("allowWatchBookmarks")
    rv = ctx.query.get("resourceVersion")
    initial_events = ctx.query.flag("sendInitialEvents")
    if initial_events and ctx.query.get("resourceVersionMatch") != "NotOlderThan":
        raise status.invalid("ListOptions", "meta.k8s.io", "", [status.field_forbidden(
            "sendInitialEvents", "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to "
            "NotOlderThan")])
    timeout = ctx.query.integer("timeoutSeconds")
    duration = float(timeout) if timeout else random.uniform(1800, 3600)
    prefix = rtype.key_prefix(ctx.path.namespace)

    def render(event_type: str, obj: Obj) -> bytes:
        obj = present(rtype, obj)
        if table and event_type != "BOOKMARK":
            obj = to_table(rtype, [obj], list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                           include_object=include)
        return _line(event_type, obj)

    def bookmark(revision: int, initial_end: bool = False) -> bytes:
        metadata: Obj = {"resourceVersion": str(revision)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return _line("BOOKMARK", {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": metadata})

    chunks: list[bytes] = []
    if rv in ("", "0") or initial_events:
        snapshot = store.list(prefix, predicate=predicate)
        since = snapshot.revision
        chunks.extend(render("ADDED", item) for item in snapshot.items)
        if initial_events:
            chunks.append(bookmark(since, initial_end=True))
    else:
        since = service._parse_rv(rv)
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-cache, private")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    try:
        watcher = store.watch(prefix, since)
    except CompactedError:
        await _send_chunk(send, expired_event(f"too old resource version: {since} ({store.compacted_revision})"))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    except FutureRevisionError:
        too_large = status.StatusError(504, "Timeout", f"Too large resource version: {since}, current: "
                                       f"{store.revision}")
        await _send_chunk(send, _line("ERROR", too_large.to_status()))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if chunks:
        await _send_chunk(send, b"".join(chunks))
    disconnected = asyncio.ensure_future(_wait_disconnect(receive, stopping))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    last = since
    iterator = watcher.__aiter__()
    next_event: asyncio.Future[Event] | None = None
    try:
        while not disconnected.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                if bookmarks:
                    await _send_chunk(send, bookmark(last))
                break
            wait = min(remaining, settings.bookmark_interval) if bookmarks else remaining
            if next_event is None:
                next_event = asyncio.ensure_future(iterator.__anext__())
            waiting: set[asyncio.Future[Any]] = {next_event, disconnected}
            done, _ = await asyncio.wait(waiting, timeout=wait,
                                         return_when=asyncio.FIRST_COMPLETED)
            if next_event not in done:
                if not disconnected.done() and bookmarks and deadline - loop.time() > 0:
                    await _send_chunk(send, bookmark(last))
                continue
            finished, next_event = next_event, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                break
            except CompactedError:
                await _send_chunk(send, expired_event(
                    f"too old resource version: {last} ({store.compacted_revision})"))
                break
            last = event.revision
            translated = translate(event, predicate)
            if translated is not None:
                await _send_chunk(send, render(*translated))
    finally:
        disconnected.cancel()
        if next_event is not None:
            next_event.cancel()
            next_event.add_done_callback(_consume)
        watcher.close()
    try:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (OSError, RuntimeError):
        return


def _consume(future: asyncio.Future[Event]) -> None:
    """Retrieve the outcome of an abandoned read so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


async def _send_chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _wait_disconnect(receive: Receive, stopping: asyncio.Event | None) -> None:
    """Ends when the client goes away or the server begins to shut down (watches end cleanly then)."""
    client_gone = asyncio.ensure_future(_client_gone(receive))
    waits: set[asyncio.Future[Any]] = {client_gone}
    if stopping is not None:
        waits.add(asyncio.ensure_future(stopping.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def _client_gone(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
