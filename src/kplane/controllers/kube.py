"""The few writes and cache reads the workload controllers share, through lightkube only.

Writes are merge patches without a resourceVersion: a controller that plans from a slightly stale cache
would otherwise meet 409s on every busy object, while its fields (replicas, annotations, status) are its
own to set. Objects arrive from the cache as lightkube models or Generic dicts; planning takes plain dicts.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from kplane.runtime import Informer, Result, Store, index_by_owner_uid
from kplane.runtime.errors import is_namespace_terminating
from kplane.runtime.lkutil import as_dict

log = logging.getLogger(__name__)

OWNER_UID_INDEX = "owner-uid"


def ensure_owner_index(informer: Informer) -> Informer:
    """Index the informer's cache by owner uid (once, however many controllers share it)."""
    with contextlib.suppress(ValueError):
        informer.store.add_indexer(OWNER_UID_INDEX, index_by_owner_uid)
    return informer


def owned(store: Store, owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cached objects whose controller reference is `owner`."""
    uid = owner["metadata"].get("uid")
    if not uid:
        return []
    result = []
    for obj in store.by_index(OWNER_UID_INDEX, uid):
        data = as_dict(obj)
        refs = (data.get("metadata") or {}).get("ownerReferences") or []
        if any(ref.get("uid") == uid and ref.get("controller") for ref in refs):
            result.append(data)
    return result


def is_status(exc: ApiError, code: int) -> bool:
    return exc.status is not None and exc.status.code == code


Reconcile = Callable[[str], Awaitable[Result | None]]


def skip_terminating_namespace(reconcile: Reconcile) -> Reconcile:
    """A create refused because the namespace is being deleted ends the sync quietly: every later create
    would fail too, and the namespace controller is removing the owner anyway (upstream's workload
    controllers check `HasStatusCause(err, NamespaceTerminatingCause)` the same way)."""

    @functools.wraps(reconcile)
    async def wrapped(key: str) -> Result | None:
        try:
            return await reconcile(key)
        except ApiError as exc:
            if not is_namespace_terminating(exc):
                raise
            log.debug("not syncing %s: %s", key, exc.status.message)
            return None

    return wrapped


async def create(client: AsyncClient, resource: type, obj: dict[str, Any]) -> str | None:
    """Create `obj`; its name, or None if one of that name exists already (a stale cache's double create)."""
    try:
        created = await client.create(resource.from_dict(obj))  # type: ignore[attr-defined]
    except ApiError as exc:
        if is_status(exc, 409):
            return None
        raise
    return str(created.metadata.name)


async def create_pod(client: AsyncClient, pod: dict[str, Any]) -> str | None:
    return await create(client, Pod, pod)


async def delete(client: AsyncClient, resource: type, name: str, namespace: str) -> None:
    try:
        await client.delete(resource, name, namespace=namespace)
    except ApiError as exc:
        if not is_status(exc, 404):
            raise


async def patch(client: AsyncClient, resource: type, name: str, namespace: str, body: dict[str, Any]) -> None:
    """Merge-patch `resource` (or its `.Status` subresource class); a vanished object is not an error."""
    try:
        await client.patch(resource, name, body, namespace=namespace, patch_type=PatchType.MERGE)
    except ApiError as exc:
        if not is_status(exc, 404):
            raise
        log.debug("%s %s/%s is gone; patch skipped", resource.__name__, namespace, name)
