"""Task cancellation that never swallows the caller's own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel `tasks` and wait until they have finished.

    `with suppress(CancelledError): await task` would also eat a cancellation aimed at the caller while it
    waits; `gather(..., return_exceptions=True)` collects the children's outcomes but still raises the
    caller's own CancelledError.
    """
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
