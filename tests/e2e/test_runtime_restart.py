"""The runtime against a real `kplane up`: survive an API server restart mid-watch, and run a controller
for a CRD created after start-up.

The server is killed (SIGKILL, so watches break mid-stream) and started again on the same port and data
dir, so the controller's client (built once from the kubeconfig) reconnects by itself; the informer
resumes its watch from the last resourceVersion, or relists and diffs if the server answers 410.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ConfigMap
from prometheus_client import CollectorRegistry

from kplane.runtime.client import client_from_kubeconfig
from kplane.runtime.controller import Controller
from kplane.runtime.informer import SharedInformers
from kplane.runtime.manager import DiscoveredResource, Manager
from kplane.runtime.objects import resource_version_of
from tests.e2e.harness import ControlPlane

LABELS = {"kplane.dev/e2e": "runtime-restart"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FixedPortPlane:
    """A control plane that can be stopped and started again on the same port and data dir."""

    def __init__(self, base: Path) -> None:
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.plane = ControlPlane(base / "data", home)
        self.port = free_port()

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def up(self) -> None:
        self.plane.kplane(
            "up", "--detach", "--data-dir", str(self.plane.data_dir), "--port", str(self.port),
            "--no-controllers", "--nodes", "0",
        )  # fmt: skip

    def down(self) -> None:
        self.plane.down()

    def crash(self) -> None:
        """Kill the server outright (no graceful close of watches) and wait until it is gone."""
        pid = int((self.plane.data_dir / "kplane.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"kplane (pid {pid}) did not exit after SIGKILL")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FixedPortPlane]:
    plane = FixedPortPlane(tmp_path)
    plane.up()
    yield plane
    plane.down()


async def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


def config_map(name: str, value: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace="default", labels=LABELS), data={"v": value})


async def test_controller_survives_server_restart_without_missing_or_repeating_work(
    server: FixedPortPlane,
) -> None:
    client: AsyncClient = client_from_kubeconfig(server.kubeconfig)
    done: list[tuple[str, str]] = []
    holder: dict[str, Controller] = {}

    async def reconcile(key: str) -> None:
        obj = holder["c"].get(key)
        done.append((key, resource_version_of(obj) if obj is not None else "deleted"))

    informers = SharedInformers(client, retry_base_s=0.05, retry_cap_s=0.5)
    controller = Controller(
        "restart-e2e", client, ConfigMap, reconcile, namespace="default", labels=LABELS,
        informers=informers, workers=2, registry=CollectorRegistry(),
    )  # fmt: skip
    holder["c"] = controller
    expected: set[tuple[str, str]] = set()
    for i in range(5):
        created = await client.create(config_map(f"cm-{i}", "before"))
        expected.add((f"default/cm-{i}", resource_version_of(created)))
    task = asyncio.ensure_future(controller.run())
    try:
        await wait_until(lambda: expected <= set(done))
        watch_rv = controller.informer.resource_version

        await asyncio.to_thread(server.crash)
        await asyncio.to_thread(server.up)

        for i in range(5, 8):
            created = await client.create(config_map(f"cm-{i}", "after"))
            expected.add((f"default/cm-{i}", resource_version_of(created)))
        for i in (0, 1):
            current = await client.get(ConfigMap, f"cm-{i}", namespace="default")
            current.data = {"v": "changed"}
            replaced = await client.replace(current)
            expected.add((f"default/cm-{i}", resource_version_of(replaced)))
        await client.delete(ConfigMap, "cm-2", namespace="default")
        expected.add(("default/cm-2", "deleted"))

        await wait_until(lambda: expected <= set(done))
        await asyncio.sleep(0.5)  # room for any stray repeat to show up before checking
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()

    repeats = [pair for pair, count in Counter(done).items() if count > 1]
    assert repeats == [], f"work repeated after restart: {repeats}"
    assert set(done) == expected, f"unexpected reconciles: {set(done) - expected}"
    assert controller.informer.resource_version != watch_rv


async def test_dynamic_controller_starts_for_a_crd_added_at_run_time(server: FixedPortPlane) -> None:
    client: AsyncClient = client_from_kubeconfig(server.kubeconfig)
    manager = Manager(client)
    seen: list[str] = []
    started: list[DiscoveredResource] = []

    async def reconcile(key: str) -> None:
        seen.append(key)

    def factory(found: DiscoveredResource) -> Controller | None:
        if found.group != "e2e.kplane.dev":
            return None
        started.append(found)
        return Controller(
            "gizmos",
            client,
            found.resource,
            reconcile,
            informers=manager.informers,
            registry=CollectorRegistry(),
        )

    manager.add_dynamic(factory)
    task = asyncio.ensure_future(manager.run())
    try:
        await asyncio.sleep(0.5)
        assert started == []
        await client.create(  # type: ignore[call-overload]
            CustomResourceDefinition.from_dict(
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": "gizmos.e2e.kplane.dev"},
                    "spec": {
                        "group": "e2e.kplane.dev",
                        "scope": "Namespaced",
                        "names": {
                            "kind": "Gizmo",
                            "plural": "gizmos",
                            "singular": "gizmo",
                            "listKind": "GizmoList",
                        },
                        "versions": [
                            {
                                "name": "v1",
                                "served": True,
                                "storage": True,
                                "schema": {
                                    "openAPIV3Schema": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    }
                                },
                            }
                        ],
                    },
                }
            )
        )
        await wait_until(lambda: len(started) == 1)
        gizmo = started[0].resource
        await client.create(gizmo({"metadata": {"name": "g1", "namespace": "default"}, "spec": {"x": 1}}))
        await wait_until(lambda: "default/g1" in seen)
        await client.delete(CustomResourceDefinition, "gizmos.e2e.kplane.dev")
        await wait_until(lambda: manager.dynamic_resources() == [])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
