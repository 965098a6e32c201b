"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules and defaults.

Semantics from k8s.io/client-go/tools/leaderelection/leaderelection.go and resourcelock/leaselock.go:
- a candidate may take the lease when it has no holder, or when the record has not changed for
  leaseDurationSeconds as measured on the candidate's *own* clock since it last saw the record change
  ("observed time"), so clocks need not agree across machines;
- every write carries the resourceVersion it read, so of two racing candidates only one wins (409 for the
  other);
- the leader renews every retry period and gives up (stops its work) if it has not renewed within the
  renew deadline. Because renew deadline < lease duration, the old leader has stopped before anyone else
  may take over.
Defaults: lease duration 15 s, renew deadline 10 s, retry period 2 s (`defaultLeaseDuration` etc. in
controller-runtime's pkg/manager/manager.go).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from kplane.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# client-go's wait.JitterUntil factor for the retry period (leaderelection.go JitterFactor).
JITTER_FACTOR = 1.2


def default_identity() -> str:
    """hostname_uuid, as controller-runtime builds it: unique per process, readable in `kubectl get lease`."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    name: str
    namespace: str = "kube-system"
    identity: str = field(default_factory=default_identity)
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        # The same checks as client-go's NewLeaderElector.
        if not self.name or not self.identity:
            raise ValueError("leader election needs a lease name and an identity")
        if self.lease_duration_s <= self.renew_deadline_s:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline_s <= JITTER_FACTOR * self.retry_period_s:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
        if self.retry_period_s <= 0:
            raise ValueError("retryPeriod must be greater than zero")


def micro_time_now() -> datetime:
    """Now in UTC for a MicroTime field.

    The API server parses MicroTime with a fixed six-digit fraction, and msgspec drops a zero fraction, so a
    timestamp that falls exactly on a second is nudged by one microsecond.
    """
    now = datetime.now(UTC)
    return now if now.microsecond else now.replace(microsecond=1)


def _record(lease: Any) -> tuple[Any, ...]:
    spec = lease.spec or LeaseSpec()
    return (
        spec.holderIdentity,
        spec.renewTime,
        spec.acquireTime,
        spec.leaseTransitions,
        spec.leaseDurationSeconds,
    )


class LeaderElector:
    def __init__(
        self,
        client: AsyncClient,
        config: LeaderElectionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.config = config
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign, run `lead()` while holding the lease, cancel it on losing the lease, campaign again.

        Returns when `lead()` returns; cancelling `run` cancels `lead()` and releases the lease.
        """
        try:
            while True:
                await self.acquire()
                if await self._lead_until_lost(lead):
                    return
        finally:
            if self._leading and self.config.release_on_cancel:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.release())
            self._leading = False

    async def acquire(self) -> None:
        while not await self._attempt():
            await asyncio.sleep(self.config.retry_period_s * random.uniform(1.0, JITTER_FACTOR))
        cfg = self.config
        log.info("%s: became leader of lease %s/%s", cfg.identity, cfg.namespace, cfg.name)

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the lease, and take or renew it if allowed. False when someone else holds it."""
        cfg = self.config
        now = micro_time_now()
        try:
            lease = await self.client.get(Lease, cfg.name, namespace=cfg.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            return await self._create(now)
        self._observe(lease)
        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity or ""
        duration = spec.leaseDurationSeconds or cfg.lease_duration_s
        if holder and holder != cfg.identity and self._observed_at + duration > self._clock():
            self._leading = False
            return False
        ours = holder == cfg.identity
        lease.spec = LeaseSpec(
            holderIdentity=cfg.identity,
            leaseDurationSeconds=math.ceil(cfg.lease_duration_s),
            acquireTime=spec.acquireTime if ours and spec.acquireTime else now,
            renewTime=now,
            leaseTransitions=(spec.leaseTransitions or 0) + (0 if ours else 1),
        )
        try:
            updated = await self.client.replace(lease)
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise
        self._observe(updated)
        self._leading = True
        return True

    async def release(self) -> None:
        """Hand the lease back (empty holder, 1 s duration) so a successor need not wait for it to expire."""
        cfg = self.config
        lease = await self.client.get(Lease, cfg.name, namespace=cfg.namespace)
        if lease.spec is None or lease.spec.holderIdentity != cfg.identity:
            return
        now = micro_time_now()
        lease.spec = LeaseSpec(
            holderIdentity="",
            leaseDurationSeconds=1,
            acquireTime=now,
            renewTime=now,
            leaseTransitions=lease.spec.leaseTransitions,
        )
        await self.client.replace(lease)
        self._leading = False
        log.info("%s: released lease %s/%s", cfg.identity, cfg.namespace, cfg.name)

    async def _attempt(self) -> bool:
        try:
            async with asyncio.timeout(self.config.renew_deadline_s):
                return await self.try_acquire_or_renew()
        except Exception as exc:  # includes TimeoutError
            log.warning("%s: lease %s: %s", self.config.identity, self.config.name, exc)
            return False

    async def _create(self, now: datetime) -> bool:
        cfg = self.config
        lease = Lease(
            metadata=ObjectMeta(name=cfg.name, namespace=cfg.namespace),
            spec=LeaseSpec(
                holderIdentity=cfg.identity,
                leaseDurationSeconds=math.ceil(cfg.lease_duration_s),
                acquireTime=now,
                renewTime=now,
                leaseTransitions=0,
            ),
        )
        try:
            created = await self.client.create(lease)
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise
        self._observe(created)
        self._leading = True
        return True

    def _observe(self, lease: Any) -> None:
        record = _record(lease)
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()

    async def _lead_until_lost(self, lead: Callable[[], Awaitable[None]]) -> bool:
        """Run `lead` beside the renew loop: True if `lead` ended by itself, False if the lease was lost."""
        work = asyncio.ensure_future(lead())
        renew = asyncio.ensure_future(self._renew_until_lost())
        try:
            await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(work, renew)
        if work.done() and not work.cancelled():
            work.result()
            return True
        log.warning("%s: lost lease %s/%s", self.config.identity, self.config.namespace, self.config.name)
        self._leading = False
        return False

    async def _renew_until_lost(self) -> None:
        """Renew every retry period; return (= lost) when a renewal is refused or the deadline passes.

        The deadline counts from the start of the last successful attempt, which is never later than the
        moment other candidates observed that renewal.
        """
        cfg = self.config
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(cfg.retry_period_s)
            while True:
                remaining = last_renewed + cfg.renew_deadline_s - self._clock()
                if remaining <= 0:
                    return
                started = self._clock()
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self.try_acquire_or_renew()
                except Exception as exc:  # includes TimeoutError
                    log.warning("%s: renewing lease %s failed: %s", cfg.identity, cfg.name, exc)
                    await asyncio.sleep(min(cfg.retry_period_s / 4, remaining))
                    continue
                if not renewed:
                    return
                last_renewed = started
                break
