"""Compatibility versions end to end: a 1.34 binary emulating 1.33, and a rollback-safe storage version.

A real ``kplane up --kube-version 1.34 --emulated-version 1.33`` serves discovery, ``/version`` and ``/metrics``
as a 1.33 server would; an object written there is stored in the version a 1.33 binary reads, and a restart of
a plain 1.33 binary on the same data directory reads it back.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import KUBECTL, ControlPlane, start_control_plane


def _get(plane: ControlPlane, path: str) -> bytes:
    server, ca_pem, token = plane.credentials()
    request = urllib.request.Request(server + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca_pem), timeout=10) as resp:
        return bytes(resp.read())


@pytest.fixture(scope="module")
def emulating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    plane = start_control_plane(tmp_path_factory.mktemp("emu"), "--no-controllers", "--nodes", "0",
                                "--kube-version", "1.34", "--emulated-version", "1.33",
                                "--feature-gates", "StructuredAuthenticationConfiguration=false")
    yield plane
    plane.down()


def test_version_reports_binary_and_emulation(emulating: ControlPlane) -> None:
    info = orjson.loads(_get(emulating, "/version"))
    assert (info["minor"], info["gitVersion"]) == ("34", "v1.34.0")
    assert (info["emulationMajor"], info["emulationMinor"]) == ("1", "33")
    assert (info["minCompatibilityMajor"], info["minCompatibilityMinor"]) == ("1", "32")


def test_discovery_hides_apis_newer_than_the_emulated_version(emulating: ControlPlane) -> None:
    resources = emulating.kubectl("api-resources", "--api-group=storage.k8s.io", "-o", "name").stdout
    assert "volumeattributesclasses" not in resources  # storage.k8s.io/v1 VolumeAttributesClass is GA in 1.34
    proc = emulating.kubectl("get", "volumeattributesclasses", check=False)
    assert proc.returncode != 0


def test_metrics_show_gate_stages_at_the_emulated_version(emulating: ControlPlane) -> None:
    text = _get(emulating, "/metrics").decode()
    assert 'kubernetes_feature_enabled{name="WatchList",stage="BETA"} 0.0' in text  # Beta off only in 1.33
    assert 'kubernetes_feature_enabled{name="StructuredAuthenticationConfiguration",stage="BETA"} 0.0' in text
    assert 'version_info{binary="1.34.0",component="kube",emulation="1.33",min_compat="1.32"} 1.0' in text


def test_bad_flags_end_in_one_line_and_exit_1(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "data", tmp_path)
    proc = plane.kplane("up", "--data-dir", str(plane.data_dir), "--kube-version", "1.34",
                        "--emulated-version", "1.30", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: emulation version 1.30 is not between [1.31, 1.34.0]"]
    locked = plane.kplane("up", "--data-dir", str(plane.data_dir), "--kube-version", "1.34",
                          "--feature-gates", "StructuredAuthenticationConfiguration=false", check=False)
    assert locked.returncode == 1
    assert locked.stderr.strip() == ("error: cannot set feature gate StructuredAuthenticationConfiguration to "
                                     "false, feature is locked to true")


def test_object_written_while_emulating_is_readable_after_binary_rollback(tmp_path: Path) -> None:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    manifest = ("apiVersion: storage.k8s.io/v1\nkind: VolumeAttributesClass\nmetadata: {name: gold}\n"
                "driverName: csi.example.com\nparameters: {iops: '300'}\n")
    plane = start_control_plane(tmp_path, "--no-controllers", "--nodes", "0", "--kube-version", "1.35",
                                "--emulated-version", "1.34")
    try:
        plane.kubectl("apply", "-f", "-", stdin=manifest)
    finally:
        plane.down()
    # min-compatibility 1.33 at emulated 1.34: v1 (1.34) is too new for a 1.33 server, so v1beta1 is stored.
    plane.up("--no-controllers", "--nodes", "0", "--kube-version", "1.34", "--emulated-version", "1.34")
    try:
        got = plane.kubectl_json("get", "volumeattributesclasses", "gold")
        assert got["apiVersion"] == "storage.k8s.io/v1" and got["parameters"] == {"iops": "300"}
    finally:
        plane.down()
