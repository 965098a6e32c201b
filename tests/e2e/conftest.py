from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import KUBECTL, ControlPlane, start_control_plane


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A fresh ``kplane up`` (API server only) per test module."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    control_plane = start_control_plane(tmp_path_factory.mktemp("kplane"), "--no-controllers", "--nodes", "0")
    yield control_plane
    control_plane.down()


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    return tmp_path
