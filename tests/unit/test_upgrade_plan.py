"""Pure upgrade planning: version rules, kubelet skew, removed APIs, gate changes, the four steps."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.upgrades.plan import (
    BLOCKER,
    WARNING,
    FoundObject,
    NodeInfo,
    Plan,
    PlanInputs,
    ServerVersion,
    build_plan,
    gate_changes,
    kubelet_minor,
    kubelet_skew,
    parse_target,
)
from kplane.versions.gates import Gate, GateSpec, all_gates

GATES = {
    "Promoted": Gate("Promoted", (GateSpec(30, False, "ALPHA"), GateSpec(35, True, "BETA")), (30, 36), "test"),
    "Locked": Gate("Locked", (GateSpec(30, True, "BETA"), GateSpec(35, True, "GA", locked=True)), (30, 36), "test"),
    "NewAlpha": Gate("NewAlpha", (GateSpec(35, False, "ALPHA"),), (35, 36), "test"),
    "Gone": Gate("Gone", (GateSpec(20, True, "GA", locked=True),), (30, 34), "test"),
    "Same": Gate("Same", (GateSpec(20, True, "GA", locked=True),), (30, 36), "test"),
}


def _server(binary: int, emulated: int | None = None, min_compat: int | None = None) -> ServerVersion:
    emulated = binary if emulated is None else emulated
    return ServerVersion(binary, emulated, emulated - 1 if min_compat is None else min_compat)


def _plan(server: ServerVersion, target: int, **extra: Any) -> Plan:
    return build_plan(PlanInputs(server=server, **extra), target, GATES)


@pytest.mark.parametrize(("text", "minor"), [("1.35", 35), ("v1.36", 36), (" 1.32 ", 32)])
def test_parse_target_accepts_minor_versions(text: str, minor: int) -> None:
    assert parse_target(text) == minor


@pytest.mark.parametrize("text", ["1.35.1", "2.0", "135", "", "latest", "1.30", "1.37", "v1"])
def test_parse_target_rejects_bad_or_unknown_versions(text: str) -> None:
    with pytest.raises(ValueError, match="--to"):
        parse_target(text)


@pytest.mark.parametrize(("version", "minor"), [("v1.33.2", 33), ("v1.34.0-eks-1", 34), ("1.31", 31),
                                                ("v2.0.0", None), ("garbage", None), ("", None)])
def test_kubelet_minor(version: str, minor: int | None) -> None:
    assert kubelet_minor(version) == minor


def test_kubelet_skew_policy() -> None:
    assert kubelet_skew(NodeInfo("n", "v1.32.0"), 35, 35) is None  # three minors older: allowed
    older = kubelet_skew(NodeInfo("n", "v1.31.4"), 35, 34)
    assert older is not None and "more than 3 minors older" in older
    assert kubelet_skew(NodeInfo("n", "v1.23.0"), 26, 26) is not None  # pre-1.25 kubelets: 2 minors only
    assert kubelet_skew(NodeInfo("n", "v1.24.0"), 26, 26) is None
    newer = kubelet_skew(NodeInfo("n", "v1.35.0"), 35, 34)  # newer than the *emulated* version
    assert newer is not None and "newer than the apiserver's emulated version 1.34" in newer
    bad = kubelet_skew(NodeInfo("n", "unknown"), 35, 35)
    assert bad is not None and "not a version" in bad


def test_clean_plan_has_four_steps_in_order() -> None:
    plan = _plan(_server(35), 36, nodes=[NodeInfo("a", "v1.35.1")])
    assert plan.ok and not plan.blockers
    steps = plan.steps
    assert [s.name for s in steps] == ["step1", "step2", "step3", "step4"]
    assert steps[0].flags.kube_version == "1.36" and steps[0].flags.emulated_version == "1.35"
    assert steps[2].flags.emulated_version is None  # the binary's own level
    assert steps[3].flags.min_compatibility_version == "1.36"
    assert steps[3].point_of_no_return and steps[3].optional
    assert all(s.status == "pending" for s in steps)


def test_step4_is_unavailable_before_the_min_compat_flag_exists() -> None:
    plan = _plan(_server(33), 34)
    step4 = plan.steps[3]
    assert step4.status == "unavailable" and step4.flags is None
    assert "from 1.35" in step4.detail


def test_resuming_after_step1_marks_it_done() -> None:
    plan = _plan(_server(36, 35), 36)
    assert plan.ok
    assert [s.status for s in plan.steps] == ["done", "pending", "pending", "pending"]
    done = _plan(_server(36, 36, 36), 36)
    assert [s.status for s in done.steps] == ["done", "done", "done", "done"]


@pytest.mark.parametrize(("server", "target", "fragment"), [
    (_server(36), 35, "downgrade"),
    (_server(34), 36, "skips a minor"),
    (_server(36, 35), 35, "downgrade"),
    (_server(35, 34), 36, "in progress"),
])
def test_version_blockers(server: ServerVersion, target: int, fragment: str) -> None:
    plan = _plan(server, target)
    assert not plan.ok
    assert any(fragment in b.message for b in plan.blockers)


def test_target_that_cannot_emulate_the_current_level_is_blocked() -> None:
    plan = _plan(_server(30, 30, 29), 31)  # a 1.31 binary emulates only itself
    assert any("cannot emulate 1.30" in b.message for b in plan.blockers)


def test_removed_api_objects_block_only_when_removed_by_the_target() -> None:
    objects = [FoundObject("cluster", "flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "fs"),
               FoundObject("m.yaml", "extensions/v1beta1", "Ingress", "web", "default"),
               FoundObject("m.yaml", "networking.k8s.io/v1beta1", "ServiceCIDR", "cidr"),  # removed in 1.37
               FoundObject("m.yaml", "v1", "ConfigMap", "fine")]
    plan = _plan(_server(31), 32, objects=objects)
    messages = [b.message for b in plan.blockers]
    assert len(messages) == 2
    assert "cluster: FlowSchema fs uses flowcontrol.apiserver.k8s.io/v1beta3, removed in 1.32; use " \
           "flowcontrol.apiserver.k8s.io/v1" in messages
    assert any("Ingress default/web uses extensions/v1beta1" in m for m in messages)
    assert all(b.code == "removed-api" and b.severity == BLOCKER for b in plan.blockers)


def test_objects_only_readable_through_a_removed_api_warn() -> None:
    plan = _plan(_server(31), 32, served_removed={"flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema": 3,
                                                  "flowcontrol.apiserver.k8s.io/v1beta3 PriorityLevelConfiguration": 0})
    assert plan.ok
    assert [w.severity for w in plan.warnings] == [WARNING]
    assert "3 FlowSchema object(s)" in plan.warnings[0].message


def test_skewed_kubelets_are_blockers() -> None:
    nodes = [NodeInfo("old", "v1.32.0"), NodeInfo("new", "v1.36.0"), NodeInfo("ok", "v1.35.0")]
    plan = _plan(_server(35), 36, nodes=nodes)
    names = sorted(b.message.split(":")[0] for b in plan.blockers)
    assert names == ["node new", "node old"]  # old is fine against 1.35 but not against 1.36


def test_gate_overrides_that_the_target_refuses() -> None:
    plan = _plan(_server(34), 35, gate_overrides={"Locked": False, "Gone": True, "Promoted": False})
    messages = " | ".join(b.message for b in plan.blockers)
    assert "Locked is set to false but is locked to true at 1.35" in messages
    assert "Gone is set but 1.35 does not know it" in messages
    assert "Promoted" not in messages


def test_gate_changes_between_levels() -> None:
    changes = {c.name: c for c in gate_changes(GATES, 34, 35)}
    assert set(changes) == {"Promoted", "Locked"}  # NewAlpha appears off: noise; Gone unknown; Same unchanged
    assert (changes["Promoted"].stage_from, changes["Promoted"].stage_to) == ("ALPHA", "BETA")
    assert changes["Promoted"].default_to is True


def test_real_gate_data_yields_changes_for_a_real_upgrade() -> None:
    plan = build_plan(PlanInputs(server=_server(33)), 34, all_gates())
    assert plan.gate_changes and all(c.stage_to != "PRE-ALPHA" for c in plan.gate_changes)
    assert not any(c.stage_from == "PRE-ALPHA" and not c.default_to for c in plan.gate_changes)


def test_plan_json_shape() -> None:
    data = _plan(_server(31), 32, objects=[FoundObject("cluster", "flowcontrol.apiserver.k8s.io/v1beta3",
                                                       "FlowSchema", "fs")]).to_dict()
    assert data["ok"] is False and data["target"] == "1.32"
    assert data["current"] == {"binary": "1.31", "emulated": "1.31", "minCompatibility": "1.30", "gitVersion": ""}
    assert [s["name"] for s in data["steps"]] == ["step1", "step2", "step3", "step4"]
    assert data["blockers"][0]["code"] == "removed-api"
    assert any("flowcontrol.apiserver.k8s.io/v1beta3" in r for r in data["removed_apis"])
