"""Creates and deletes a controller has made but its informer cache has not shown yet.

The cache lags the controller's own writes; planning against it again too soon would create a second set of
pods. Upstream keeps counters fed by informer events (`pkg/controller/controller_utils.go`,
ControllerExpectations, with a 5-minute timeout). Here the controller remembers the pod names it created
and the uids it deleted, and asks the cache whether it has caught up, which needs no event plumbing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# upstream uses 5 minutes; a lost event costs less here, and a short timeout keeps a wedged owner moving
DEFAULT_TIMEOUT_S = 30.0


@dataclass
class _Pending:
    names: set[str] = field(default_factory=set)
    uids: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        self._pending: dict[str, _Pending] = {}

    def expect(self, key: str, *, created: Iterable[str] = (), deleted: Iterable[str] = ()) -> None:
        pending = self._pending.setdefault(key, _Pending(since=self.clock()))
        pending.names.update(created)
        pending.uids.update(deleted)
        pending.since = self.clock()

    def satisfied(self, key: str, seen_names: Iterable[str], live_uids: Iterable[str]) -> bool:
        """Whether the cache (its pod names, and uids of pods not yet deleting) shows every write made."""
        pending = self._pending.get(key)
        if pending is None:
            return True
        pending.names -= set(seen_names)
        pending.uids &= set(live_uids)
        if (not pending.names and not pending.uids) or self.clock() - pending.since > self.timeout_s:
            del self._pending[key]
            return True
        return False

    def satisfied_by(self, key: str, pods: Iterable[Mapping[str, Any]]) -> bool:
        """`satisfied` for the owner's cached pods: their names, and the uids of those not being deleted."""
        pods = list(pods)
        names = [p["metadata"]["name"] for p in pods]
        live = [p["metadata"]["uid"] for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        return self.satisfied(key, names, live)

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
