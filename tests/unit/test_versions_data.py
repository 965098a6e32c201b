"""Internal consistency of the version data files: gates, API lifecycle, removed APIs, served built-ins."""

from __future__ import annotations

import itertools

import pytest

from kplane.versions import apis
from kplane.versions.builtin_resources import _entries, parse_minor
from kplane.versions.gates import STAGES, Gate, GateSpec, _parse_step, all_gates, gate_from_entry

GATES = all_gates()
_ORDER = {"ALPHA": 0, "BETA": 1, "GA": 2, "DEPRECATED": 3}


def test_table_is_big_enough_to_be_the_real_one() -> None:
    assert len(GATES) > 250
    for name in ("WatchList", "DynamicResourceAllocation", "CoordinatedLeaderElection", "KMSv1",
                 "SchedulerQueueingHints", "CloudControllerManagerWebhook", "ContextualLogging",
                 "CRDValidationRatcheting"):
        assert name in GATES, name


@pytest.mark.parametrize("name", sorted(GATES))
def test_gate_history_is_consistent(name: str) -> None:
    gate = GATES[name]
    history = gate.history
    assert history, name
    versions = [s.since for s in history]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), "history goes backwards"
    assert all(s.stage in STAGES for s in history)
    for before, after in itertools.pairwise(history):
        assert (before.stage, before.default, before.locked) != (after.stage, after.default, after.locked), \
            "transition without a change"
        assert _ORDER[after.stage] >= _ORDER[before.stage], "stage regressed"
        assert not (before.locked and not after.locked), "unlocked after locking"
    for spec in history:
        assert not spec.locked or spec.stage in ("GA", "DEPRECATED"), "locked outside GA/Deprecated"
        assert not (spec.stage == "ALPHA" and spec.default), "alpha gates are off by default"
    if history[0].stage == "DEPRECATED" and not gate.unversioned:
        assert history[0].since == 0, "a gate born deprecated needs a 1.0 entry"
    low, high = gate.binaries
    assert 31 <= low <= high <= 36


def test_known_gate_facts() -> None:
    watch = GATES["WatchList"].history
    assert [(s.since, s.stage, s.default) for s in watch] == [
        (27, "ALPHA", False), (32, "BETA", True), (33, "BETA", False), (34, "BETA", True)]
    sac = GATES["StructuredAuthenticationConfiguration"].history[-1]
    assert (sac.since, sac.stage, sac.locked) == (34, "GA", True)
    assert GATES["UnknownVersionInteroperabilityProxy"].binaries == (31, 36)


@pytest.mark.parametrize("bad", ["1.3 BETA", "1.30 GAMMA on", "1.30 BETA maybe", "2.1 BETA on",
                                 "1.30 BETA on frozen", "x BETA on"])
def test_bad_gate_steps_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="bad feature-gate step"):
        _parse_step(bad)


def test_gate_entry_parsing() -> None:
    gate = gate_from_entry("X", {"source": "apiserver", "binaries": "1.32-1.35",
                                 "history": ["1.0 GA on", "1.33 DEPRECATED off locked"]})
    assert gate == Gate("X", (GateSpec(0, True, "GA"), GateSpec(33, False, "DEPRECATED", True)), (32, 35),
                        "apiserver")
    assert gate.known_to(32) and not gate.known_to(36)


def test_every_removed_api_names_its_replacement() -> None:
    removed = apis.removed_apis()
    assert removed[0].removed_in == 16
    assert [r.removed_in for r in removed] == sorted(r.removed_in for r in removed)
    for entry in removed:
        assert entry.kinds
        assert entry.replacement or entry.note, entry
        if entry.replacement:
            group, _, version = entry.replacement.rpartition("/")
            assert apis.version_stage(version) in ("GA", "BETA")
            assert group != entry.group or version != entry.version


def test_removed_table_agrees_with_lifecycle_metadata() -> None:
    table = {(k.group, k.version, k.kind): k for k in apis.kinds()}
    for entry in apis.removed_apis():
        for kind in entry.kinds:
            known = table.get((entry.group, entry.version, kind))
            if known is not None:
                assert known.removed == entry.removed_in, (entry.api_version, kind)


def test_removal_lookups() -> None:
    assert {r.api_version for r in apis.removed_between(31, 33)} == {
        "flowcontrol.apiserver.k8s.io/v1beta3", "authentication.k8s.io/v1beta1"}
    found = apis.removal_of("extensions/v1beta1", "Ingress")
    assert found is not None and found.replacement == "networking.k8s.io/v1"
    assert apis.removal_of("apps/v1", "Deployment") is None


def test_unquoted_versions_are_rejected() -> None:
    with pytest.raises(ValueError, match="quoted"):
        apis._minor(1.4)


def test_lifecycle_is_well_formed() -> None:
    for k in apis.kinds():
        assert k.removed is None or k.removed > k.introduced, k
        assert k.stage in ("GA", "BETA", "ALPHA")
        if k.stage == "GA":
            assert k.removed is None, k


def test_builtin_entries_agree_with_api_lifecycle() -> None:
    """kplane's served built-ins appear exactly at the levels where upstream serves them by default."""
    table = apis.kind_table()
    for entry in _entries():
        key = (str(entry["group"]), str(entry["version"]), str(entry["plural"]))
        lifecycle = table[key]
        assert apis.enabled_by_default(lifecycle), key
        since = parse_minor(str(entry.get("since", "1.0")))
        removed = entry.get("removedIn")
        for minor in range(31, 37):
            ours = since <= minor and (removed is None or minor < parse_minor(str(removed)))
            assert ours == lifecycle.exists_at(minor), (key, minor)


def test_version_priority_orders_like_upstream() -> None:
    order = sorted(["v1alpha1", "v1beta1", "v1", "v2beta2", "v2", "v1beta2", "v11alpha2"],
                   key=apis.version_priority, reverse=True)
    assert order == ["v2", "v1", "v2beta2", "v1beta2", "v1beta1", "v11alpha2", "v1alpha1"]
    with pytest.raises(ValueError):
        apis.version_stage("version1")
