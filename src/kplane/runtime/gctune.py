"""Garbage-collector settings for a process that holds many long-lived objects (informer caches, the API
server's in-memory store).

Every cached object is a tree of msgspec structs that the cyclic collector tracks. With CPython's default
thresholds (700 allocations for a young collection, every 10th of those promoting further) a busy
controllers process collects about a thousand times a minute and rescans the growing caches in the older
generations, about a tenth of its CPU under the workload benchmark. Reference counting frees nearly
everything these processes allocate (decoded events, request objects), so rarer collections cost little
memory. Nothing else changes: this only decides how often cycles are looked for.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLD = 20


def tune_gc() -> tuple[int, ...]:
    """Freeze what exists now (modules, classes: never garbage) and collect less often; returns the old
    thresholds. Call once at start-up, before the caches fill."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    return previous
