"""Building the controllers' client from a kubeconfig file, and the one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kplane.runtime.client import KubeconfigError, client_from_kubeconfig, load_kubeconfig


def write_kubeconfig(path: Path, *, context: str = "kplane") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": "kplane", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "admin", "user": {"token": "secret"}}],
        "contexts": [
            {"name": "kplane", "context": {"cluster": "kplane", "user": "admin", "namespace": "work"}},
            {"name": "other", "context": {"cluster": "kplane", "user": "admin"}},
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_client_uses_current_context(tmp_path: Path) -> None:
    client = client_from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig"), field_manager="me")
    try:
        assert client.config.context_name == "kplane"
        assert client.namespace == "work"
    finally:
        await client.close()


async def test_client_for_named_context(tmp_path: Path) -> None:
    client = client_from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig"), context="other")
    try:
        assert client.config.context_name == "other"
        assert client.namespace == "default"
    finally:
        await client.close()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no such file"):
        load_kubeconfig(tmp_path / "absent")


def test_unknown_context(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="Context 'nope' not found"):
        client_from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig"), context="nope")


def test_current_context_pointing_nowhere(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="not found"):
        load_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig", context="ghost"))


@pytest.mark.parametrize(
    "content",
    ["{}", "clusters: []\n", "not: [valid", "- a\n- list\n"],
)
def test_malformed_files_give_one_line_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    with pytest.raises(KubeconfigError) as caught:
        load_kubeconfig(path)
    message = str(caught.value)
    assert message.startswith(f"kubeconfig {path}: ")
    assert "\n" not in message
