"""Rolling-update arithmetic: int-or-percent rounding, fenceposts, and whole rollouts simulated step by step."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kplane.controllers.rollout import (
    RS,
    max_unavailable,
    new_rs_replicas,
    old_rs_scale_down,
    recreate_step,
    resolve_fenceposts,
    rolling_step,
    scaled_value,
)


def deployment(replicas: int, surge: Any = "25%", unavailable: Any = "25%", kind: str = "RollingUpdate") -> Any:
    strategy: dict[str, Any] = {"type": kind}
    if kind == "RollingUpdate":
        strategy["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"spec": {"replicas": replicas, "strategy": strategy}}


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [(2, 10, True, 2), ("25%", 10, True, 3), ("25%", 10, False, 2), ("0%", 7, True, 0), ("100%", 3, False, 3),
     ("33%", 3, True, 1), ("33%", 3, False, 0), (None, 5, True, 0)],
)
def test_scaled_value_rounds_surge_up_and_unavailable_down(value: Any, total: int, up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up=up) == expected


@pytest.mark.parametrize("bad", ["25", "abc", "%", "2.5%", True])
def test_scaled_value_rejects_what_is_neither_int_nor_percent(bad: Any) -> None:
    with pytest.raises(ValueError, match="invalid value for IntOrString"):
        scaled_value(bad, 10, round_up=True)


def test_fenceposts_never_both_zero() -> None:
    assert resolve_fenceposts(0, 0, 5) == (0, 1)
    assert resolve_fenceposts("10%", "10%", 3) == (1, 0)  # ceil(0.3)=1, floor(0.3)=0
    assert resolve_fenceposts("1%", "1%", 3) == (1, 0)


def test_max_unavailable_is_zero_for_recreate_and_capped_by_replicas() -> None:
    assert max_unavailable(deployment(4, kind="Recreate")) == 0
    assert max_unavailable(deployment(2, 0, 5)) == 2
    assert max_unavailable(deployment(0, 1, 1)) == 0


def test_new_replica_set_grows_into_surge_only() -> None:
    assert new_rs_replicas(3, 1, RS("new", 0), [RS("new", 0), RS("old", 3)]) == 1
    assert new_rs_replicas(3, 1, RS("new", 1), [RS("new", 1), RS("old", 3)]) == 1  # no room: wait
    assert new_rs_replicas(3, 5, RS("new", 0), [RS("new", 0), RS("old", 3)]) == 3  # never past desired
    assert new_rs_replicas(3, 1, RS("new", 5), [RS("new", 5)]) == 3  # scaled down to desired


def test_old_scale_down_removes_unhealthy_first_and_keeps_the_floor() -> None:
    # 3 desired, 1 unavailable allowed; new has 1 unavailable pod, old has 3 of which 1 is unhealthy
    result = old_rs_scale_down(3, 1, RS("new", 1, 0), [RS("old", 3, 2)])
    assert result == {"old": 2}
    # everything healthy and new fully available: old may drop to the floor
    assert old_rs_scale_down(3, 1, RS("new", 2, 2), [RS("old", 2, 2)]) == {"old": 0}
    # no budget at all: nothing moves
    assert old_rs_scale_down(3, 0, RS("new", 1, 0), [RS("old", 3, 3)]) == {}
    assert old_rs_scale_down(3, 1, RS("new", 3, 3), [RS("old", 0, 0)]) == {}


def test_older_replica_sets_scale_down_first() -> None:
    result = old_rs_scale_down(4, 2, RS("new", 0), [RS("oldest", 2, 2), RS("older", 2, 2)])
    assert result == {"oldest": 0}


def test_recreate_waits_for_old_pods_before_scaling_up() -> None:
    d = deployment(3, kind="Recreate")
    assert recreate_step(d, RS("new", 0), [RS("old", 3, 3)], True) == {"old": 0}
    assert recreate_step(d, RS("new", 0), [RS("old", 0)], True) == {}
    assert recreate_step(d, RS("new", 0), [RS("old", 0)], False) == {"new": 3}
    assert recreate_step(d, RS("new", 3), [RS("old", 0)], False) == {}


def simulate(replicas: int, surge: Any, unavailable: Any) -> list[tuple[int, int]]:
    """Run a rollout to the end; after each step pods of every ReplicaSet become available. (total, available)."""
    d = deployment(replicas, surge, unavailable)
    new, old = RS("new", 0, 0), [RS("old", replicas, replicas)]
    seen = []
    for _ in range(200):
        changes = rolling_step(d, new, old)
        if not changes:
            break
        new = RS("new", changes.get("new", new.replicas), min(new.available, changes.get("new", new.replicas)))
        old = [RS(rs.name, changes.get(rs.name, rs.replicas), min(rs.available, changes.get(rs.name, rs.replicas)))
               for rs in old]
        seen.append((new.replicas + sum(rs.replicas for rs in old), new.available + sum(rs.available for rs in old)))
        new = RS("new", new.replicas, new.replicas)  # the kubelet makes the new pods available
    assert (new.replicas, [rs.replicas for rs in old]) == (replicas, [0]), "rollout did not finish"
    return seen


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(1, 30),
    surge=st.one_of(st.integers(0, 5), st.sampled_from(["0%", "10%", "25%", "50%", "100%"])),
    unavailable=st.one_of(st.integers(0, 5), st.sampled_from(["0%", "10%", "25%", "50%", "100%"])),
)
def test_simulated_rollouts_finish_within_surge_and_unavailability(replicas: int, surge: Any, unavailable: Any) -> None:
    max_surge, max_unavail = resolve_fenceposts(surge, unavailable, replicas)
    for total, available in simulate(replicas, surge, unavailable):
        assert total <= replicas + max_surge
        assert available >= replicas - max_unavail


def test_rolling_step_scaling_up_the_new_set_ends_the_step() -> None:
    d = deployment(3, 1, 1)
    assert rolling_step(d, RS("new", 0), [RS("old", 3, 3)]) == {"new": 1}
