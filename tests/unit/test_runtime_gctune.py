"""GC tuning for the controllers process, and the pooled transport the controllers' client uses."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube.config.kubeconfig import KubeConfig

from kplane.runtime.client import MAX_CONNECTIONS, pooled_transport
from kplane.runtime.gctune import OLDER_THRESHOLD, YOUNG_THRESHOLD, tune_gc
from kplane.runtime.transport import AiohttpTransport


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def test_tune_gc_raises_thresholds_and_freezes(restore_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    previous = tune_gc()
    assert previous == (700, 10, 10)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    assert gc.get_freeze_count() > 0


def test_tune_gc_still_collects_cycles(restore_gc: None) -> None:
    tune_gc()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def write_kubeconfig(path: Path, user: dict[str, object]) -> KubeConfig:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kplane",
        "clusters": [
            {"name": "kplane", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "kplane", "context": {"cluster": "kplane", "user": "admin"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return KubeConfig.from_file(path)


async def test_pooled_transport_limits(tmp_path: Path) -> None:
    single = write_kubeconfig(tmp_path / "kubeconfig", {"token": "secret"}).get()
    transport = pooled_transport(single)
    try:
        assert isinstance(transport, AiohttpTransport)
        assert transport._max_connections == MAX_CONNECTIONS
    finally:
        await transport.aclose()


def test_pooled_transport_needs_a_user(tmp_path: Path) -> None:
    single = write_kubeconfig(tmp_path / "kubeconfig", {"token": "secret"}).get()
    single = single.__class__(context_name=single.context_name, context=single.context, cluster=single.cluster,
                              user=None, fname=single.fname)
    with pytest.raises(ValueError, match="no user"):
        pooled_transport(single)
