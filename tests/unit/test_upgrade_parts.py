"""The pure parts around planning: /version and metrics parsing, manifests, state, rollback rules, flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kplane.cli.main import app
from kplane.upgrades.apply import (
    UpgradeState,
    load_state,
    rollback_refusal,
    save_state,
    steps_to_run,
)
from kplane.upgrades.inspect import (
    gate_overrides,
    manifest_objects,
    parse_feature_metrics,
    parse_version_info,
    used_api_versions,
)
from kplane.upgrades.kapi import ApiUnavailable
from kplane.upgrades.plan import PlanInputs, ServerVersion, build_plan
from kplane.upgrades.process import UpArgs, kubeconfig_port, parse_up_argv
from kplane.upgrades.soak import error_rate_check, request_totals
from kplane.versions.gates import Gate, GateSpec


def test_version_info_with_and_without_emulation_fields() -> None:
    new = parse_version_info({"major": "1", "minor": "35", "gitVersion": "v1.35.0", "emulationMajor": "1",
                              "emulationMinor": "34", "minCompatibilityMajor": "1", "minCompatibilityMinor": "33"})
    assert new == ServerVersion(35, 34, 33, "v1.35.0")
    old = parse_version_info({"major": "1", "minor": "32+", "gitVersion": "v1.32.4-gke.1"})
    assert (old.binary, old.emulated, old.min_compat) == (32, 32, 31)
    with pytest.raises(ApiUnavailable):
        parse_version_info({"major": "1"})
    with pytest.raises(ApiUnavailable):
        parse_version_info({"minor": "x"})


def test_feature_metrics_and_overrides() -> None:
    text = "\n".join([
        "# HELP kubernetes_feature_enabled ...",
        'kubernetes_feature_enabled{name="A",stage="BETA"} 1.0',
        'kubernetes_feature_enabled{name="B",stage=""} 0',
        'kubernetes_feature_enabled{stage="ALPHA",name="C"} 0.0',
        'other_metric{name="D"} 1',
        "garbage line",
    ])
    enabled = parse_feature_metrics(text)
    assert enabled == {"A": True, "B": False, "C": False}
    gates = {"A": Gate("A", (GateSpec(30, True, "BETA"),), (30, 36), "t"),
             "B": Gate("B", (GateSpec(30, True, "GA"),), (30, 36), "t")}
    assert gate_overrides(enabled, gates, 35) == {"B": False}  # C is unknown to the table: ignored


def test_used_api_versions_reads_managed_fields_and_last_applied() -> None:
    obj = {"metadata": {"managedFields": [{"apiVersion": "a/v1"}, {"manager": "x"}],
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"b/v1"}'}}}
    assert used_api_versions(obj) == {"a/v1", "b/v1"}
    broken = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{not json"}}}
    assert used_api_versions(broken) == set()
    assert used_api_versions({}) == set()


def test_manifests_files_dirs_lists_and_multi_docs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\n"
                                     "---\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: b}\n")
    (tmp_path / "sub" / "list.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "kind": "FlowSchema", "metadata": {"name": "f"}}]}))
    (tmp_path / "sub" / "notes.txt").write_text("not a manifest")
    found = manifest_objects([tmp_path])
    assert [(o.used_api, o.kind, o.name, o.namespace) for o in found] == [
        ("v1", "ConfigMap", "a", "x"), ("extensions/v1beta1", "Ingress", "b", ""),
        ("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "f", "")]
    assert found[0].source == str(tmp_path / "a.yaml")
    plan = build_plan(PlanInputs(server=ServerVersion(31, 31, 30), objects=found), 32, {})
    assert len(plan.blockers) == 2


@pytest.mark.parametrize(("content", "message"), [
    ("a: [unclosed\n", "not valid YAML (line 2)"),
    ("- 1\n- 2\n", "every YAML document must be an object"),
])
def test_bad_manifests_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        manifest_objects([path])
    assert str(err.value) == f"{path}: {message}"


def test_missing_manifest_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file or directory"):
        manifest_objects([tmp_path / "nope.yaml"])


def test_request_totals_and_error_rate() -> None:
    text = "\n".join([
        'apiserver_request_total{code="200",verb="GET"} 90',
        'apiserver_request_total{code="503",verb="GET"} 2',
        'apiserver_request_total{verb="LIST",code="500"} 1.0',
        'apiserver_request_total{code="404",verb="GET"} 7',
        'apiserver_request_duration_seconds_count{code="500"} 100',
    ])
    assert request_totals(text) == (100.0, 3.0)
    failed = error_rate_check((0, 0), (100, 3))
    assert not failed.ok and "3 of 100" in failed.detail
    assert error_rate_check((0, 0), (1000, 3)).ok
    assert error_rate_check((5, 0), (5, 0)).ok  # nothing counted: nothing failed


def _state(**extra: object) -> UpgradeState:
    base: dict[str, object] = dict(target=36, from_binary=35, from_emulated=35, from_min_compat=34,
                                   from_args={"kube_version": "1.35"}, binary=36, emulated=35, min_compat=34,
                                   phase="step1")
    base.update(extra)
    return UpgradeState(**base)  # type: ignore[arg-type]


def test_rollback_allowed_only_while_emulating_the_old_level() -> None:
    assert rollback_refusal(_state(), ServerVersion(36, 35, 34)) is None
    after3 = rollback_refusal(_state(), ServerVersion(36, 36, 35))
    assert after3 is not None and "already emulates 1.36" in after3 and "step 3" in after3
    after4 = rollback_refusal(_state(), ServerVersion(36, 36, 36))
    assert after4 is not None and "point of no return" in after4
    assert "no upgrade is recorded" in (rollback_refusal(None, ServerVersion(35, 35, 34)) or "")
    assert "already rolled back" in (rollback_refusal(_state(phase="rolled-back"), ServerVersion(35, 35, 34)) or "")
    assert "nothing to roll back" in (rollback_refusal(_state(), ServerVersion(35, 35, 34)) or "")


def test_state_round_trip_and_corrupt_state(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None
    state = _state(history=[{"step": "step1", "ok": True}])
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
    (tmp_path / "upgrade-state.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a kplane upgrade state"):
        load_state(tmp_path)
    (tmp_path / "upgrade-state.json").write_text('{"target": 36}')
    with pytest.raises(ValueError, match="remove it to start over"):
        load_state(tmp_path)


def test_steps_to_run_respects_through_and_done_steps() -> None:
    plan = build_plan(PlanInputs(server=ServerVersion(35, 35, 34)), 36, {})
    assert steps_to_run(plan, "step1") == ["step1"]
    assert steps_to_run(plan, "step3") == ["step1", "step3"]
    assert steps_to_run(plan, "step4") == ["step1", "step3", "step4"]
    resumed = build_plan(PlanInputs(server=ServerVersion(36, 35, 34)), 36, {})
    assert steps_to_run(resumed, "step3") == ["step3"]
    old = build_plan(PlanInputs(server=ServerVersion(33, 33, 32)), 34, {})
    assert steps_to_run(old, "step4") == ["step1", "step3"]  # no min-compat flag at 1.34
    with pytest.raises(ValueError, match="--through"):
        steps_to_run(plan, "step2")


def test_up_command_line_round_trip(tmp_path: Path) -> None:
    args = UpArgs(port=7443, nodes=3, controllers=False, kube_version="1.36", emulated_version="1.35",
                  min_compatibility_version="1.34", feature_gates="A=true,B=false")
    argv = ["/usr/bin/python", "-m", "kplane", *args.argv(tmp_path)]
    assert parse_up_argv(argv) == args
    assert parse_up_argv(["kplane", "up", "--port=0", "--kube-version=1.34"]) == UpArgs(port=0, kube_version="1.34")
    with pytest.raises(ValueError, match="not a `kplane up`"):
        parse_up_argv(["kplane", "down"])
    with pytest.raises(ValueError, match="ends after --port"):
        parse_up_argv(["kplane", "up", "--port"])


def test_kubeconfig_port(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters:\n- cluster: {server: 'https://127.0.0.1:41234'}\n")
    assert kubeconfig_port(path) == 41234
    with pytest.raises(ValueError, match="no readable kubeconfig"):
        kubeconfig_port(tmp_path / "missing")


runner = CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    (["upgrade", "plan", "--to", "1.40"], "outside the version data"),
    (["upgrade", "plan", "--to", "1.35.2"], "--to must be a Kubernetes minor version"),
    (["upgrade", "plan", "--to", "1.35", "-o", "yaml"], "-o must be text or json"),
    (["upgrade", "plan", "--to", "1.35", "--kubeconfig", "/nonexistent/kubeconfig"], "no such file"),
    (["upgrade", "apply", "--to", "1.35", "--data-dir", "/nonexistent/dir"], "no such directory"),
    (["upgrade", "rollback", "--data-dir", "/nonexistent/dir"], "no such directory"),
])
def test_cli_bad_input_is_one_line_exit_1(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_cli_apply_without_a_running_control_plane(tmp_path: Path) -> None:
    result = runner.invoke(app, ["upgrade", "apply", "--to", "1.36", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no control plane is running" in result.output


def test_cli_bad_through(tmp_path: Path) -> None:
    result = runner.invoke(app, ["upgrade", "apply", "--to", "1.36", "--data-dir", str(tmp_path),
                                 "--through", "step2"])
    assert result.exit_code == 1 and "--through must be one of step1, step3, step4" in result.output
