"""Leader election rules against an in-memory Lease endpoint with optimistic concurrency."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status
from lightkube.resources.coordination_v1 import Lease

from kplane.runtime.leader import LeaderElectionConfig, LeaderElector, micro_time_now
from tests.unit.test_runtime_fakeapi import until


def api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"HTTP {code}"))


class LeaseApi:
    """get/create/replace for one Lease with resourceVersion checks, as the API server enforces them."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.rv = 0
        self.down = False
        self.writes = 0

    def client(self) -> Any:
        return self

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("connection refused")

    async def get(self, resource: type, name: str, *, namespace: str) -> Any:
        self._check()
        if self.lease is None:
            raise api_error(404)
        return copy.deepcopy(self.lease)

    async def create(self, obj: Any) -> Any:
        self._check()
        if self.lease is not None:
            raise api_error(409)
        return self._store(obj)

    async def replace(self, obj: Any) -> Any:
        self._check()
        if obj.metadata.resourceVersion != self.lease.metadata.resourceVersion:
            raise api_error(409)
        return self._store(obj)

    def _store(self, obj: Any) -> Any:
        self.rv += 1
        self.writes += 1
        obj = copy.deepcopy(obj)
        obj.metadata.resourceVersion = str(self.rv)
        self.lease = obj
        return copy.deepcopy(obj)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(identity: str, **overrides: float) -> LeaderElectionConfig:
    return LeaderElectionConfig(name="lock", namespace="kube-system", identity=identity, **overrides)  # type: ignore[arg-type]


def test_defaults_match_client_go() -> None:
    cfg = LeaderElectionConfig(name="lock")
    assert (cfg.lease_duration_s, cfg.renew_deadline_s, cfg.retry_period_s) == (15.0, 10.0, 2.0)
    assert cfg.identity


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lease_duration_s": 10.0, "renew_deadline_s": 10.0}, "leaseDuration must be greater"),
        ({"renew_deadline_s": 2.0, "retry_period_s": 2.0}, "renewDeadline must be greater"),
        ({"retry_period_s": 0.0}, "retryPeriod"),
    ],
)
def test_config_validation(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config("a", **overrides)
    with pytest.raises(ValueError, match="identity"):
        LeaderElectionConfig(name="lock", identity="")


def test_micro_time_always_has_a_fraction() -> None:
    assert micro_time_now().microsecond > 0


async def test_first_candidate_creates_the_lease() -> None:
    api = LeaseApi()
    elector = LeaderElector(api.client(), config("a"), clock=Clock())
    assert await elector.try_acquire_or_renew()
    assert elector.is_leader
    spec = api.lease.spec
    assert (spec.holderIdentity, spec.leaseDurationSeconds, spec.leaseTransitions) == ("a", 15, 0)
    assert spec.acquireTime == spec.renewTime


async def test_renewal_keeps_acquire_time_and_transitions() -> None:
    api = LeaseApi()
    elector = LeaderElector(api.client(), config("a"), clock=Clock())
    await elector.try_acquire_or_renew()
    acquired = api.lease.spec.acquireTime
    assert await elector.try_acquire_or_renew()
    assert api.lease.spec.acquireTime == acquired
    assert api.lease.spec.leaseTransitions == 0
    assert api.writes == 2


async def test_other_candidate_waits_for_expiry_on_its_own_clock() -> None:
    api = LeaseApi()
    clock_b = Clock()
    a = LeaderElector(api.client(), config("a"), clock=Clock())
    b = LeaderElector(api.client(), config("b"), clock=clock_b)
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock_b.now += 14.9
    assert not await b.try_acquire_or_renew()
    assert api.lease.spec.holderIdentity == "a"
    clock_b.now += 0.2
    assert await b.try_acquire_or_renew()
    spec = api.lease.spec
    assert (spec.holderIdentity, spec.leaseTransitions) == ("b", 1)
    assert not await a.try_acquire_or_renew()
    assert not a.is_leader


async def test_a_renewal_seen_by_the_candidate_restarts_its_wait() -> None:
    api = LeaseApi()
    clock_b = Clock()
    a = LeaderElector(api.client(), config("a"), clock=Clock())
    b = LeaderElector(api.client(), config("b"), clock=clock_b)
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()
    clock_b.now += 10
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock_b.now += 10
    assert not await b.try_acquire_or_renew()


async def test_racing_write_loses_on_conflict() -> None:
    api = LeaseApi()
    clock_b = Clock()
    a = LeaderElector(api.client(), config("a"), clock=Clock())
    b = LeaderElector(api.client(), config("b"), clock=clock_b)
    await a.try_acquire_or_renew()
    stale = copy.deepcopy(api.lease)
    assert not await b.try_acquire_or_renew()
    clock_b.now += 20
    await a.try_acquire_or_renew()

    async def stale_get(resource: type, name: str, *, namespace: str) -> Any:
        return copy.deepcopy(stale)

    api.get = stale_get  # type: ignore[method-assign]
    # b still sees the record it observed 20 s ago, so it believes the lease expired; its write is refused.
    assert not await b.try_acquire_or_renew()
    assert api.lease.spec.holderIdentity == "a"
    assert not b.is_leader


async def test_released_lease_is_taken_at_once() -> None:
    api = LeaseApi()
    a = LeaderElector(api.client(), config("a"), clock=Clock())
    b = LeaderElector(api.client(), config("b"), clock=Clock())
    await a.try_acquire_or_renew()
    await a.release()
    assert api.lease.spec.holderIdentity == ""
    assert not a.is_leader
    assert await b.try_acquire_or_renew()
    assert api.lease.spec.leaseTransitions == 1


async def test_release_by_non_holder_changes_nothing() -> None:
    api = LeaseApi()
    a = LeaderElector(api.client(), config("a"), clock=Clock())
    b = LeaderElector(api.client(), config("b"), clock=Clock())
    await a.try_acquire_or_renew()
    writes = api.writes
    await b.release()
    assert api.writes == writes


async def test_unexpected_errors_propagate_from_one_round() -> None:
    api = LeaseApi()

    async def forbidden(resource: type, name: str, *, namespace: str) -> Any:
        raise api_error(403)

    api.get = forbidden  # type: ignore[method-assign]
    with pytest.raises(ApiError):
        await LeaderElector(api.client(), config("a")).try_acquire_or_renew()


FAST = {"lease_duration_s": 0.6, "renew_deadline_s": 0.4, "retry_period_s": 0.05}


async def test_run_cancels_work_when_renewal_fails_then_campaigns_again() -> None:
    api = LeaseApi()
    elector = LeaderElector(api.client(), config("a", **FAST))
    terms: list[str] = []
    cancelled: list[int] = []

    async def lead() -> None:
        terms.append("start")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    task = asyncio.ensure_future(elector.run(lead))
    await until(lambda: terms == ["start"])
    api.down = True
    await until(lambda: cancelled == [1])
    assert not elector.is_leader
    api.down = False
    await until(lambda: terms == ["start", "start"])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert api.lease.spec.holderIdentity == "", "cancelling run releases the lease"


async def test_run_stops_work_when_another_holder_takes_over() -> None:
    api = LeaseApi()
    elector = LeaderElector(api.client(), config("a", **FAST))
    stopped = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.ensure_future(elector.run(lead))
    await until(lambda: elector.is_leader)
    lease = copy.deepcopy(api.lease)
    lease.spec.holderIdentity = "intruder"
    lease.spec.renewTime = micro_time_now()
    await api.replace(lease)
    await asyncio.wait_for(stopped.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_returns_when_work_finishes_and_releases() -> None:
    api = LeaseApi()
    elector = LeaderElector(api.client(), config("a", **FAST))

    async def lead() -> None:
        return None

    await asyncio.wait_for(elector.run(lead), 5)
    assert api.lease.spec.holderIdentity == ""


async def test_run_propagates_work_errors() -> None:
    api = LeaseApi()
    elector = LeaderElector(api.client(), config("a", **FAST))

    async def lead() -> None:
        raise RuntimeError("work failed")

    with pytest.raises(RuntimeError, match="work failed"):
        await asyncio.wait_for(elector.run(lead), 5)


async def test_lease_kind_is_coordination_v1() -> None:
    assert Lease.apiVersion if hasattr(Lease, "apiVersion") else True
    from lightkube.core.resource import api_info

    info = api_info(Lease).resource
    assert (info.group, info.version, info.kind) == ("coordination.k8s.io", "v1", "Lease")
