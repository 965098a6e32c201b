"""What a scheduler keeps between pods so that placing one does not cost work proportional to the cluster.

- :class:`AllocationTracker`: the :class:`AllocatedState` of every claim, updated claim by claim as claims
  change (rather than rebuilt from all claims for every pod), with a version per resource pool that moves
  whenever an allocation in that pool comes or goes.
- :class:`OutcomeMemo`: the allocator's answer per node, reused while nothing it depends on changed.

Why the memo is exact: :func:`kplane.dra.allocator.allocate` is a pure function of the node, the claims'
specs, the slices, the classes, the features and the allocated state, and of the allocated state it reads
only what concerns devices of the pools it gathers for the node (devices in use, shared capacity, counters
consumed in those pools). So an answer stays valid while the node object, the slice index, the class
mapping and the versions of the node's pools are the same. Answers with errors (their texts name claims)
and allocations with a ``shareID`` (a fresh UUID per allocation, as upstream) are not remembered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import orjson

from kplane.dra.features import Features
from kplane.dra.model import AllocatedState, DeviceID, Held, Obj, PoolID, held_by
from kplane.dra.pools import SliceIndex

MEMO_MAX_ENTRIES = 8192


class AllocationTracker:
    """An :class:`AllocatedState` kept current one claim at a time.

    ``state`` is the live object: the same as ``AllocatedState.from_claims`` over the current claims, without
    going over all of them. Reference counts make a device stay in use while any claim holds it (a claim in
    flight and its older cached copy are one claim here, since both go under the same key)."""

    def __init__(self) -> None:
        self.state = AllocatedState()
        self._held: dict[str, Held] = {}
        self._devices: Counter[DeviceID] = Counter()
        self._shared: Counter[tuple[DeviceID, str]] = Counter()
        self._shares: Counter[DeviceID] = Counter()
        self._versions: dict[PoolID, int] = {}

    def set(self, key: str, claim: Obj | None) -> None:
        """Record what the claim under ``key`` holds now (None: the claim is gone). Raises InvalidInput for a
        consumed capacity that is not a quantity, before changing anything."""
        held = held_by(claim)
        old = self._held.pop(key, Held())
        if held == old:
            if held.devices or held.shared:
                self._held[key] = held
            return
        self._apply(old, -1)
        self._apply(held, 1)
        if held.devices or held.shared:
            self._held[key] = held
        for pool in old.pools | held.pools:
            self._versions[pool] = self._versions.get(pool, 0) + 1

    def pool_version(self, pool: PoolID) -> int:
        return self._versions.get(pool, 0)

    def pool_versions(self, pools: Sequence[PoolID]) -> tuple[int, ...]:
        """The versions of ``pools``, in order: what a memo entry compares, once per node per pod."""
        versions = self._versions
        return tuple([versions.get(pool, 0) for pool in pools])

    def _apply(self, held: Held, sign: int) -> None:
        state = self.state
        for device in held.devices:
            self._devices[device] += sign
            if self._devices[device] > 0:
                state.devices.add(device)
            else:
                del self._devices[device]
                state.devices.discard(device)
        for device, share, consumed in held.shared:
            self._shared[(device, share)] += sign
            if self._shared[(device, share)] > 0:
                state.shared.add((device, share))
            else:
                del self._shared[(device, share)]
                state.shared.discard((device, share))
            self._shares[device] += sign
            if self._shares[device] <= 0:
                del self._shares[device]
                state.capacity.pop(device, None)
                continue
            total = state.capacity.setdefault(device, {})
            for name, value in consumed:
                total[name] = total.get(name, Fraction(0)) + sign * value


def claims_fingerprint(claims: Sequence[Obj]) -> bytes:
    """What of the claims an allocation depends on besides their names: their specs, in order."""
    return orjson.dumps([c.get("spec") for c in claims], option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class _Entry:
    node: Obj | None
    index: SliceIndex
    classes: Mapping[str, Obj]
    features: Features
    pools: tuple[PoolID, ...]
    """The node's pools when the answer was stored: the same for as long as node, index and features are."""
    versions: tuple[int, ...]
    results: list[dict[str, Any]] | None


class OutcomeMemo:
    """The allocator's answer per (node, claim specs): allocations, or None for "does not fit".

    ``get`` runs for every node of every pod with claims to allocate, so an entry keeps the ids of its node's
    pools: checking it costs a few identity tests and one version lookup per pool, not a walk over the pools."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, bytes], _Entry] = {}

    def get(self, name: str, fingerprint: bytes, node: Obj | None, index: SliceIndex, classes: Mapping[str, Obj],
            features: Features, tracker: AllocationTracker) -> tuple[bool, list[dict[str, Any]] | None]:
        """(whether an answer is known, that answer)."""
        entry = self._entries.get((name, fingerprint))
        if (entry is None or entry.node is not node or entry.index is not index or entry.classes is not classes
                or (entry.features is not features and entry.features != features)
                or tracker.pool_versions(entry.pools) != entry.versions):
            return False, None
        return True, entry.results

    def put(self, name: str, fingerprint: bytes, node: Obj | None, index: SliceIndex, classes: Mapping[str, Obj],
            features: Features, tracker: AllocationTracker, results: list[dict[str, Any]] | None) -> None:
        if results is not None and any(r.get("shareID") for a in results
                                       for r in (a.get("devices") or {}).get("results") or ()):
            return
        if len(self._entries) >= MEMO_MAX_ENTRIES:
            self._entries.clear()
        pools = tuple((p.driver, p.name) for p in index.pools(node, features))
        self._entries[(name, fingerprint)] = _Entry(node, index, classes, features, pools,
                                                    tracker.pool_versions(pools), results)

    def clear(self) -> None:
        self._entries.clear()
