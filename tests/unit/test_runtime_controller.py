"""Controller and Manager over the fake API: reconcile triggers, retries, requeues, owners, metrics, CRDs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from prometheus_client import CollectorRegistry

from kplane.runtime.controller import Controller, Result, enqueue_owner
from kplane.runtime.manager import DiscoveredResource, Manager, discover, served_version
from tests.unit.test_runtime_fakeapi import FakeApi, Widget, until, widget

Gadget = create_namespaced_resource("test.kplane.dev", "v1", "Gadget", "gadgets")


def owned(name: str, owner: str, kind: str = "Widget", controller: bool = True) -> dict[str, Any]:
    obj = widget(name)
    ref = {"apiVersion": "test.kplane.dev/v1", "kind": kind, "name": owner, "uid": "u"}
    obj["metadata"]["ownerReferences"] = [{**ref, "controller": controller}]
    return obj


class Harness:
    def __init__(self, reconcile: Any, **options: Any) -> None:
        self.api = FakeApi()
        self.registry = CollectorRegistry()
        self.controller = Controller(
            "widgets",
            self.api.client(),  # type: ignore[arg-type]
            Widget,
            reconcile,
            backoff_base_s=0.001,
            backoff_cap_s=0.005,
            registry=self.registry,
            **options,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.controller.run())
        await asyncio.wait_for(self.controller.informer.wait_synced(), 5)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, {"controller": "widgets", **labels})
        return value or 0.0


@pytest.fixture
async def calls() -> AsyncIterator[list[str]]:
    yield []


async def test_reconciles_existing_and_changed_objects(calls: list[str]) -> None:
    async def reconcile(key: str) -> None:
        calls.append(key)

    h = Harness(reconcile, workers=3)
    h.api.put(Widget, widget("a"))
    await h.start()
    await until(lambda: calls == ["default/a"])
    h.api.put(Widget, widget("a", size=2))
    h.api.put(Widget, widget("b"))
    await until(lambda: sorted(calls) == ["default/a", "default/a", "default/b"])
    h.api.delete(Widget, "default/b")
    await until(lambda: calls.count("default/b") == 2)
    assert h.controller.get("default/b") is None
    assert h.metric("controller_runtime_reconcile_total", result="success") == 4
    assert h.registry.get_sample_value("workqueue_depth", {"controller": "widgets"}) == 0
    await h.stop()


async def test_errors_retry_with_backoff_then_succeed(calls: list[str]) -> None:
    async def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) < 4:
            raise RuntimeError("transient")

    h = Harness(reconcile)
    h.api.put(Widget, widget("a"))
    await h.start()
    await until(lambda: len(calls) == 4)
    await until(lambda: h.metric("controller_runtime_reconcile_total", result="success") == 1)
    assert h.metric("controller_runtime_reconcile_errors_total") == 3
    assert h.metric("controller_runtime_reconcile_total", result="error") == 3
    assert h.metric("controller_runtime_reconcile_time_seconds_count") == 4
    await h.stop()


async def test_requeue_after_and_requeue(calls: list[str]) -> None:
    async def reconcile(key: str) -> Result | None:
        calls.append(key)
        if len(calls) == 1:
            return Result(requeue_after=0.01)
        if len(calls) == 2:
            return Result(requeue=True)
        return None

    h = Harness(reconcile)
    h.api.put(Widget, widget("a"))
    await h.start()
    await until(lambda: len(calls) == 3)
    assert h.metric("controller_runtime_reconcile_total", result="requeue_after") == 1
    assert h.metric("controller_runtime_reconcile_total", result="requeue") == 1
    await h.stop()


async def test_secondary_changes_map_to_owner_keys(calls: list[str]) -> None:
    async def reconcile(key: str) -> None:
        calls.append(key)

    h = Harness(reconcile)
    h.controller.watches(Gadget, enqueue_owner("Widget", "test.kplane.dev"))
    await h.start()
    h.api.put(Gadget, owned("g1", owner="parent"))
    await until(lambda: calls == ["default/parent"])
    await h.stop()


def test_enqueue_owner_only_follows_matching_controller_refs() -> None:
    mapper = enqueue_owner("Widget", "test.kplane.dev")
    assert list(mapper(owned("x", "p"))) == ["default/p"]
    assert list(mapper(owned("x", "p", kind="Other"))) == []
    assert list(mapper(owned("x", "p", controller=False))) == []
    assert list(enqueue_owner("Widget", "other.group")(owned("x", "p"))) == []
    assert list(enqueue_owner("Widget", "test.kplane.dev", owner_namespaced=False)(owned("x", "p"))) == ["p"]


async def test_owns_uses_the_primary_kind() -> None:
    async def reconcile(key: str) -> None:
        return None

    h = Harness(reconcile)
    informer = h.controller.owns(Gadget)
    assert informer.resource is Gadget


async def test_cancel_stops_inflight_reconcile_and_run_can_restart(calls: list[str]) -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def reconcile(key: str) -> None:
        calls.append(key)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(key)
            raise

    h = Harness(reconcile)
    h.api.put(Widget, widget("a"))
    await h.start()
    await asyncio.wait_for(started.wait(), 5)
    await h.stop()
    assert cancelled == ["default/a"]
    assert not h.controller.informer.has_synced()
    await h.start()
    await until(lambda: len(calls) == 2)
    await h.stop()


def test_bad_controller_options() -> None:
    async def reconcile(key: str) -> None:
        return None

    with pytest.raises(ValueError, match="workers"):
        Harness(reconcile, workers=0)
    with pytest.raises(ValueError, match="backoff"):
        Controller("x", FakeApi().client(), Widget, reconcile, backoff_base_s=0)  # type: ignore[arg-type]


def crd(plural: str, kind: str, *, established: bool = True, versions: Any = None) -> Any:
    return CustomResourceDefinition.from_dict(
        {
            "metadata": {"name": f"{plural}.test.kplane.dev"},
            "spec": {
                "group": "test.kplane.dev",
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural},
                "versions": versions or [{"name": "v1", "served": True, "storage": True}],
            },
            "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]},
        }
    )


def test_discover_needs_established_and_served_version() -> None:
    found = discover(crd("gadgets", "Gadget"))
    assert found is not None and found.resource is Gadget and found.namespaced
    assert discover(crd("gadgets", "Gadget", established=False)) is None
    none_served = [{"name": "v1", "served": False, "storage": True}]
    assert discover(crd("gadgets", "Gadget", versions=none_served)) is None
    two = [{"name": "v1", "served": True, "storage": False}, {"name": "v2", "served": True, "storage": True}]
    assert served_version(crd("gadgets", "Gadget", versions=two)) == "v2"
    not_stored = [
        {"name": "v1", "served": True, "storage": False},
        {"name": "v2", "served": False, "storage": True},
    ]
    assert served_version(crd("gadgets", "Gadget", versions=not_stored)) == "v1"


class CrdApi(FakeApi):
    """FakeApi whose CRDs are model objects (as lightkube decodes them), not dicts."""

    def put_crd(self, obj: Any) -> None:
        self.rv += 1
        obj.metadata.resourceVersion = str(self.rv)
        store = self.objects.setdefault(CustomResourceDefinition, {})
        event = "MODIFIED" if obj.metadata.name in store else "ADDED"
        store[obj.metadata.name] = obj
        for watched, queue in self.watchers:
            if watched is CustomResourceDefinition:
                queue.put_nowait((event, obj))

    async def list(self, resource: type) -> Any:
        result = await super().list(resource) if resource is not CustomResourceDefinition else None
        if result is not None:
            return result
        from tests.unit.test_runtime_fakeapi import FakeList

        return FakeList(list(self.objects.get(resource, {}).values()), str(self.rv))

    def drop_crd(self, name: str) -> None:
        obj = self.objects[CustomResourceDefinition].pop(name)
        for watched, queue in self.watchers:
            if watched is CustomResourceDefinition:
                queue.put_nowait(("DELETED", obj))


async def test_manager_starts_and_stops_controllers_for_crds(calls: list[str]) -> None:
    api = CrdApi()
    manager = Manager(api.client())  # type: ignore[arg-type]
    seen: list[DiscoveredResource] = []

    async def reconcile(key: str) -> None:
        calls.append(key)

    def factory(found: DiscoveredResource) -> Controller | None:
        seen.append(found)
        if found.kind != "Gadget":
            return None
        return Controller("gadgets", manager.client, found.resource, reconcile, informers=manager.informers)

    manager.add_dynamic(factory)
    static_calls: list[str] = []

    async def static(key: str) -> None:
        static_calls.append(key)

    manager.controller("widgets", Widget, static, registry=CollectorRegistry())
    api.put(Widget, widget("w"))
    api.put(Gadget, widget("g0"))
    task = asyncio.ensure_future(manager.run())
    await until(lambda: static_calls == ["default/w"])
    assert manager.is_leader
    api.put_crd(crd("gadgets", "Gadget", established=False))
    api.put_crd(crd("others", "Other"))
    await until(lambda: len(seen) == 1)
    assert calls == []
    api.put_crd(crd("gadgets", "Gadget"))
    await until(lambda: calls == ["default/g0"])
    api.put(Gadget, widget("g1"))
    await until(lambda: calls == ["default/g0", "default/g1"])
    assert {r.kind for r in manager.dynamic_resources()} == {"Gadget", "Other"}
    api.drop_crd("gadgets.test.kplane.dev")
    await until(lambda: {r.kind for r in manager.dynamic_resources()} == {"Other"})
    await until(lambda: not manager.informers.get(Gadget).has_synced())
    api.put(Gadget, widget("g2"))
    await asyncio.sleep(0.05)
    assert "default/g2" not in calls
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
