"""Writes that race other writes to the same object, through the real ResourceService in process: the
server serialises them as upstream's GuaranteedUpdate does instead of answering 409."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kplane.apiserver.context import RequestContext
from kplane.apiserver.handlers import ResourceService
from kplane.apiserver.request import ApiPath, Query
from kplane.apiserver.server import ControlPlaneServer, ServerOptions
from kplane.versions.profile import load_profile

NS = "default"
MERGE = "application/merge-patch+json"


class Api:
    def __init__(self, server: ControlPlaneServer) -> None:
        self.server = server
        self.service: ResourceService = server.app.service

    def ctx(self, method: str, name: str = "", body: Any = None, ctype: str = "application/json",
            query: dict[str, str] | None = None) -> RequestContext:
        rtype = self.server.registry.resolve("", "v1", "configmaps")
        return RequestContext(method, ApiPath("", "v1", "configmaps", NS, name, ""), rtype, Query(query or {}),
                              {"content-type": ctype}, orjson.dumps(body) if body is not None else b"", "test")

    def stored(self, name: str) -> Any:
        return self.service.store.get(f"{self.server.registry.resolve('', 'v1', 'configmaps').key(NS, name)}")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    server = ControlPlaneServer(ServerOptions(tmp_path), load_profile())
    await server.start()
    try:
        yield Api(server)
    finally:
        await server.stop()


async def create(api: Api, name: str, **meta: Any) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {}}
    await api.service.create(api.ctx("POST", body=body))


async def test_patches_staged_back_to_back_all_apply(api: Api) -> None:
    await create(api, "cm")
    patches = [asyncio.ensure_future(api.service.patch(api.ctx("PATCH", "cm", {"data": {f"k{i}": "v"}}, MERGE)))
               for i in range(10)]
    answers = await asyncio.gather(*patches)
    assert [a.status for a in answers] == [200] * 10
    assert api.stored("cm")["data"] == {f"k{i}": "v" for i in range(10)}


async def test_delete_behind_an_uncommitted_patch_is_not_a_conflict(api: Api) -> None:
    await create(api, "held", finalizers=["e2e/hold"])
    patch = asyncio.ensure_future(api.service.patch(api.ctx("PATCH", "held", {"data": {"a": "1"}}, MERGE)))
    await asyncio.sleep(0)  # the patch is staged, its commit not yet delivered
    deleted = await api.service.delete(api.ctx("DELETE", "held"))
    assert deleted.status == 200
    assert (await patch).status == 200
    stored = api.stored("held")
    assert stored["metadata"]["deletionTimestamp"] and stored["data"] == {"a": "1"}


async def test_noop_patch_on_a_staged_write_answers_with_the_committed_object(api: Api) -> None:
    await create(api, "same")
    first = asyncio.ensure_future(api.service.patch(api.ctx("PATCH", "same", {"data": {"a": "1"}}, MERGE)))
    await asyncio.sleep(0)
    again = await api.service.patch(api.ctx("PATCH", "same", {"data": {"a": "1"}}, MERGE))
    assert again.status == 200
    assert again.body["metadata"]["resourceVersion"] == api.stored("same")["metadata"]["resourceVersion"]
    assert (await first).status == 200
