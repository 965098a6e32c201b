"""``kplane rgd validate`` and ``kplane rgd render``: output on success, one line and exit 1 on failure."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from kplane.cli.main import app

EXAMPLES = Path(__file__).parents[1] / "compat" / "kro" / "examples"
runner = CliRunner()


def test_validate_prints_crd_and_order() -> None:
    result = runner.invoke(app, ["rgd", "validate", "-f", str(EXAMPLES / "webapp-rg.yaml")])
    assert result.exit_code == 0, result.output
    crd, summary = yaml.safe_load_all(result.stdout)
    assert crd["metadata"]["name"] == "webapps.kro.run"
    assert summary["topologicalOrder"] == ["deployment", "service", "ingress"]


def test_validate_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "rgd.yaml"
    bad.write_text("kind: ResourceGraphDefinition\nspec:\n  schema: {apiVersion: v1alpha1, kind: myApp}\n")
    result = runner.invoke(app, ["rgd", "validate", "-f", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "is not a valid KRO kind name" in result.stderr


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    for args in (["-f", str(tmp_path / "missing.yaml")], ["-f", str(broken)]):
        result = runner.invoke(app, ["rgd", "validate", *args])
        assert result.exit_code == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_chained_rgd_needs_its_crds() -> None:
    tenant = str(EXAMPLES / "saas-multi-tenant-tenant-rgd.yaml")
    assert runner.invoke(app, ["rgd", "validate", "-f", tenant]).exit_code == 1
    crds = ["--crd", str(EXAMPLES / "saas-multi-tenant-tenant-environment-rgd.yaml"),
            "--crd", str(EXAMPLES / "saas-multi-tenant-tenant-application-rgd.yaml")]
    assert runner.invoke(app, ["rgd", "validate", "-f", tenant, *crds]).exit_code == 0


def test_render_stream_with_pending(tmp_path: Path) -> None:
    instance = tmp_path / "i.yaml"
    instance.write_text("apiVersion: kro.run/v1alpha1\nkind: WebApp\nmetadata: {name: demo, namespace: t}\n"
                        "spec: {name: demo}\n")
    result = runner.invoke(app, ["rgd", "render", "-f", str(EXAMPLES / "webapp-rg.yaml"), "-i", str(instance)])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert "# pending service: ${deployment.metadata.name}" in result.stdout
    assert "# skipped ingress (includeWhen)" in result.stdout
    instance.write_text("kind: Other\n")
    wrong = runner.invoke(app, ["rgd", "render", "-f", str(EXAMPLES / "webapp-rg.yaml"), "-i", str(instance)])
    assert wrong.exit_code == 1 and "does not match" in wrong.stderr
